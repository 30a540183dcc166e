//! The archive line reader and writer (`Record::parse_envelope`, `Record::write_envelope`).
//!
//! - The input as an archive line: the reader's scan and serde_json give the same record or the
//!   same error, with and without a probe of payload paths, whose values are the payload's own;
//!   a record that parses is written
//!   as one line that parses back to the same record, and writing that again gives the same line.
//! - The input as a payload (and, when it is a JSON object, as annotations): written and read
//!   back, the record is the same and the payload bytes are exact.
//!
//! Floats inside annotations are compared up to their last bits: serde_json (built without its
//! `float_roundtrip` feature) reads some long decimals a few ULPs off, so such an annotation can
//! change slightly on every archive round trip (reported; the payload is verbatim and exact).
#![no_main]

use flux_stages::json::probe::PayloadProbe;
use flux_stages::record::{Interner, PayloadForm, Record, payload_form};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut interner = Interner::default();
    let by_serde = Record::parse_envelope_by_serde(data, &mut interner);
    assert_eq!(
        Record::parse_envelope(data, &mut interner),
        by_serde,
        "the scan and serde_json disagree"
    );
    let probe = PayloadProbe::new(vec![vec!["k".into()], vec!["_flux".into(), "v".into()]])
        .expect("two paths");
    let probed = Record::parse_envelope_probed(data, &mut interner, Some(&probe));
    assert_eq!(probed, by_serde, "the probed scan and serde_json disagree");
    if let Ok(r) = &probed {
        check_probe(r, &probe);
    }
    match Record::parse_envelope(data, &mut interner) {
        Ok(record) => {
            let line = write(&record);
            let again = Record::parse_envelope(&line, &mut interner)
                .unwrap_or_else(|e| panic!("a written envelope does not parse: {e}"));
            same_record(&again, &record, "parse → write → parse");
            if again == record {
                assert_eq!(write(&again), line, "writing is not stable");
            }
        }
        Err(e) => assert!(!e.is_empty()),
    }

    let mut record = flux_fuzz::record(data);
    record.partition_key = String::from_utf8_lossy(data).as_ref().into();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) {
        record.annotations = (!map.is_empty()).then(|| Box::new(map));
    }
    let line = write(&record);
    let back = Record::parse_envelope(&line, &mut interner)
        .unwrap_or_else(|e| panic!("a written envelope does not parse: {e}"));
    assert_eq!(back.data.as_ref(), data, "payload bytes changed");
    same_record(&back, &record, "write → parse");
    let trimmed = data.first().is_some_and(|b| !b.is_ascii_whitespace())
        && data.last().is_some_and(|b| !b.is_ascii_whitespace())
        && !data.contains(&b'\n')
        && !data.contains(&b'\r');
    if trimmed {
        assert_eq!(
            payload_form(data),
            flux_stages::record::payload_form_by_parse(data),
            "the scan and the parse disagree on the payload's form"
        );
    }
    if payload_form(data) == PayloadForm::Json {
        assert!(
            line.windows(data.len()).any(|w| w == data),
            "a JSON payload is embedded verbatim"
        );
    }
});

/// A probe's note gives the values serde_json finds at its paths in the payload.
fn check_probe(record: &Record, probe: &PayloadProbe) {
    let Some(note) = record.probed else {
        return;
    };
    let values = note
        .values(probe, &record.data)
        .expect("a note for this probe, inside the payload");
    let payload: Value = serde_json::from_slice(&record.data).expect("a noted payload is JSON");
    for (path, value) in probe.paths().iter().zip(values) {
        let mut want = Some(&payload);
        for name in path {
            want = want.and_then(|v| v.as_object()).and_then(|o| o.get(name));
        }
        let got = value.map(|v| serde_json::from_slice::<Value>(v).expect("a value's text"));
        assert_eq!(got.as_ref(), want, "the note's value at {path:?}");
    }
}

/// The envelope of `record`: one line, ending in its only newline.
fn write(record: &Record) -> Vec<u8> {
    let mut line = Vec::new();
    record.write_envelope(&mut line);
    assert_eq!(line.last(), Some(&b'\n'));
    assert!(
        !line[..line.len() - 1].contains(&b'\n'),
        "an envelope is one line"
    );
    line
}

/// Asserts that two records are the same, annotations up to float precision.
fn same_record(got: &Record, want: &Record, what: &str) {
    let strip = |r: &Record| Record {
        annotations: None,
        ..r.clone()
    };
    assert_eq!(strip(got), strip(want), "{what} changed the record");
    let (a, b) = (got.annotations.as_deref(), want.annotations.as_deref());
    let same = match (a, b) {
        (Some(a), Some(b)) => same_json(&Value::Object(a.clone()), &Value::Object(b.clone())),
        (a, b) => a == b,
    };
    assert!(same, "{what} changed the annotations: {a:?} vs {b:?}");
}

fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x != y => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 8.0 * f64::EPSILON * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && same_json(x, y))
        }
        _ => a == b,
    }
}
