//! The compact stage's key extraction (`flux_stages::transform::compact::key::KeyPath`): the fast
//! structural scan of `$.data.a.b` and the general JSONPath `$.data['a']['b']` give the same key
//! for every payload, and for a valid JSON payload the key is what the payload holds there.
//!
//! The input is a payload, or `a.b<NUL>payload` to choose the member names. Any text before
//! the NUL is also compiled as a key path (it compiles or gives an error).
#![no_main]

use flux_stages::transform::compact::key::KeyPath;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (head, payload) = flux_fuzz::split_nul(data);
    let (paths, payload): (Vec<String>, &[u8]) = match payload {
        Some(payload) => {
            let head = String::from_utf8_lossy(head);
            if let Err(e) = KeyPath::compile(&head) {
                assert!(!e.is_empty());
            }
            (vec![head.into_owned()], payload)
        }
        None => (vec!["k".into(), "a.k".into(), "order_id".into()], head),
    };
    for names in &paths {
        let names: Vec<&str> = names.split('.').collect();
        if names.iter().all(|n| is_simple_name(n)) {
            agree(&names, payload);
        }
    }
});

fn is_simple_name(n: &str) -> bool {
    let mut bytes = n.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn agree(names: &[&str], payload: &[u8]) {
    let dotted = format!("$.data.{}", names.join("."));
    let fast = KeyPath::compile(&dotted).expect("a dotted path compiles");
    assert!(fast.is_fast(), "{dotted} takes the fast path");
    let at = KeyPath::compile(&format!("@.data.{}", names.join("."))).expect("compiles");
    let bracketed: String = names.iter().map(|n| format!("['{n}']")).collect();
    let general = KeyPath::compile(&format!("$.data{bracketed}")).expect("compiles");
    assert!(!general.is_fast());

    let record = flux_fuzz::record(payload);
    let key = fast.extract(&record).map(|k| k.into_owned());
    assert_eq!(at.extract(&record).map(|k| k.into_owned()), key);
    assert_eq!(
        general.extract(&record).map(|k| k.into_owned()),
        key,
        "fast and general paths disagree on {dotted} over {:?}",
        String::from_utf8_lossy(payload)
    );

    // What a JSON reader finds there: no key for a payload that is not JSON, nor for null or
    // a missing member; a string's own text.
    let found = serde_json::from_slice::<Value>(payload).ok().and_then(|v| {
        names.iter().try_fold(v, |v, n| match v {
            Value::Object(mut m) => m.remove(*n),
            _ => None,
        })
    });
    match found {
        None | Some(Value::Null) => assert_eq!(key, None),
        Some(Value::String(s)) => assert_eq!(key.as_deref(), Some(s.as_bytes())),
        Some(_) => assert!(key.is_some()),
    }
}
