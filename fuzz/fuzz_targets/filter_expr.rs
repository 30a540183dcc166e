//! Filter expressions and value paths (`flux_stages::expr::{Predicate, ValuePath}`).
//!
//! The input is an expression, optionally followed by a NUL byte and a payload. The expression
//! compiles or gives an error, as a filter (`where = "…"`) and as a path (`$…`). A compiled
//! filter is evaluated on the payload's record (and on a few fixed payloads), and its raw-bytes
//! prefilter never rules out a record that the filter matches, neither on the payload nor on
//! the record's archive line.
#![no_main]

use flux_stages::expr::{Predicate, ValuePath};
use libfuzzer_sys::fuzz_target;

const PAYLOADS: [&[u8]; 4] = [
    br#"{"order_id":"o-1","status":"paid","region":"eu","total":120.5,"items":[{"sku":"a","qty":2}]}"#,
    br#"{"order_id":"o-2","status":"cancelled","region":"us","total":12,"tags":["x","y"],"n":null}"#,
    b"not json \xff",
    br#"[1,"two",{"three":3}]"#,
];

fuzz_target!(|data: &[u8]| {
    let (expr, payload) = flux_fuzz::split_nul(data);
    let expr = String::from_utf8_lossy(expr);
    match Predicate::compile(&expr) {
        Ok(predicate) => {
            let _ = (predicate.source(), predicate.needs_data());
            for payload in payload.into_iter().chain(PAYLOADS) {
                evaluate(&predicate, payload);
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match ValuePath::compile(&expr) {
        Ok(path) => {
            for payload in payload.into_iter().chain(PAYLOADS) {
                let record = flux_fuzz::record(payload);
                let view = record.view(record.data_view());
                let selected = path.select(&view).cloned();
                let key = path.select_key(&view);
                assert_eq!(
                    key.is_none(),
                    matches!(selected, None | Some(serde_json::Value::Null))
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

fn evaluate(predicate: &Predicate, payload: &[u8]) {
    let record = flux_fuzz::record(payload);
    if !predicate.matches(record.view(record.data_view())) {
        return;
    }
    assert!(
        predicate.may_match(payload),
        "the prefilter ruled out a payload that matches"
    );
    let mut line = Vec::new();
    record.write_envelope(&mut line);
    assert!(
        predicate.prefilter().may_match_envelope(&line),
        "the prefilter ruled out an archive line that matches"
    );
}
