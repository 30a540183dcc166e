use proptest::prelude::*;

use super::scan;
use crate::json::probe::PayloadProbe;
use crate::record::{Interner, Record};

fn probe() -> PayloadProbe {
    PayloadProbe::new(vec![
        vec!["k".to_owned()],
        vec!["_flux".to_owned(), "v".to_owned()],
    ])
    .expect("two paths")
}

const LINE: &str = r#"{"stream":"orders","shard_id":"shardId-000000000001","sequence_number":"49590338271490256608559692538361571095","partition_key":"c-17","arrival_ts":"2026-11-25T10:00:00.123Z","data":{"k":"c-17","n":1.5,"_flux":{"v":[1,2]}}}"#;

#[test]
fn a_usual_line_is_read_by_the_scan_with_its_probe_noted() {
    let (env, found) = scan(LINE.as_bytes(), Some(&probe())).expect("read by the scan");
    assert_eq!(&*env.stream, "orders");
    assert_eq!(found[0], Some(&br#""c-17""#[..]));
    assert_eq!(found[1], Some(&b"[1,2]"[..]));
    let mut interner = Interner::default();
    let record = Record::parse_envelope_probed(LINE.as_bytes(), &mut interner, Some(&probe()))
        .expect("parses");
    assert_eq!(
        Ok(&record),
        Record::parse_envelope_by_serde(LINE.as_bytes(), &mut interner).as_ref()
    );
    let note = record.probed.expect("noted");
    assert_eq!(
        note.values(&probe(), &record.data),
        Some([Some(&br#""c-17""#[..]), Some(&b"[1,2]"[..])])
    );
    // Without a probe nothing is noted.
    let plain = Record::parse_envelope(LINE.as_bytes(), &mut interner).unwrap();
    assert!(plain.probed.is_none());
}

#[test]
fn lines_the_scan_does_not_mirror_are_left_to_serde_json() {
    for line in [
        // A duplicate field (serde_json refuses it).
        LINE.replace(
            r#""stream":"orders","#,
            r#""stream":"orders","stream":"orders","#,
        ),
        // An escaped member name.
        LINE.replace(r#""stream""#, r#""\u0073tream""#),
        // A field of another type.
        LINE.replace(r#""partition_key":"c-17""#, r#""partition_key":17"#),
        // Not JSON.
        LINE.replace(r#"{"k""#, r#"{k"#),
        // An exponent in the payload.
        LINE.replace("1.5", "1e5"),
    ] {
        assert!(scan(line.as_bytes(), Some(&probe())).is_none(), "{line}");
    }
}

/// A member of a generated envelope: a known field with a value of the right type or not,
/// or another member.
fn member() -> impl Strategy<Value = String> {
    let string = prop_oneof![
        Just(r#""orders""#.to_owned()),
        Just(r#""shardId-000000000001""#.to_owned()),
        Just(r#""or\u0064ers""#.to_owned()),
        Just(r#""c-\"17\"""#.to_owned()),
        Just("\"caf\u{e9}\"".to_owned()),
        Just(r#""""#.to_owned()),
        Just("17".to_owned()),
        Just("null".to_owned()),
    ];
    let seq = prop_oneof![
        Just(r#""49590338271490256608559692538361571095""#.to_owned()),
        Just(r#""12""#.to_owned()),
        Just(r#""x""#.to_owned()),
    ];
    let ts = prop_oneof![
        Just(r#""2026-11-25T10:00:00.123Z""#.to_owned()),
        Just(r#""2026-11-25T10:00:00.123456+02:00""#.to_owned()),
        Just(r#""yesterday""#.to_owned()),
    ];
    let sub = prop_oneof![
        Just("7".to_owned()),
        Just("0".to_owned()),
        Just("null".to_owned()),
        Just("-1".to_owned()),
        Just("1.0".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just(r#""7""#.to_owned()),
    ];
    let annotations = prop_oneof![
        Just("{}".to_owned()),
        Just(r#"{"a":1,"w":{"start":"x"}}"#.to_owned()),
        Just("null".to_owned()),
        Just("[1]".to_owned()),
    ];
    let b64 = prop_oneof![
        Just(r#""eyJrIjoxfQ==""#.to_owned()),
        Just(r#""not base64!""#.to_owned()),
        Just("null".to_owned()),
    ];
    prop_oneof![
        string.clone().prop_map(|v| format!(r#""stream":{v}"#)),
        string.clone().prop_map(|v| format!(r#""shard_id":{v}"#)),
        seq.prop_map(|v| format!(r#""sequence_number":{v}"#)),
        string.prop_map(|v| format!(r#""partition_key":{v}"#)),
        ts.prop_map(|v| format!(r#""arrival_ts":{v}"#)),
        sub.prop_map(|v| format!(r#""sub_sequence_number":{v}"#)),
        payload().prop_map(|v| format!(r#""data":{v}"#)),
        b64.prop_map(|v| format!(r#""data_b64":{v}"#)),
        annotations.prop_map(|v| format!(r#""annotations":{v}"#)),
        Just(r#""other":[1,{"k":2}]"#.to_owned()),
    ]
}

/// A payload: JSON of several shapes around the probe's paths, and some that is not JSON.
fn payload() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(r#""c-17""#.to_owned()),
        Just("12345678901234567890123".to_owned()),
        Just("-0.5".to_owned()),
        Just("1E3".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just(r#""\ud83d\ude00""#.to_owned()),
        Just(r#""a\"b""#.to_owned()),
        Just("\"\u{1F600}\"".to_owned()),
        Just("[1, {\"v\": 2}]".to_owned()),
        Just(r#"{"v":3,"v":4}"#.to_owned()),
    ];
    let name = prop_oneof![
        Just("k"),
        Just("_flux"),
        Just("v"),
        Just("x"),
        Just(r"\u006b"),
    ];
    let object = proptest::collection::vec((name, leaf.clone()), 0..4).prop_map(|members| {
        let inner: Vec<String> = members
            .iter()
            .map(|(n, v)| format!(r#""{n}" : {v}"#))
            .collect();
        format!("{{{}}}", inner.join(","))
    });
    prop_oneof![
        4 => object.clone(),
        2 => (object.clone(), object).prop_map(|(a, b)| format!(r#"{{"_flux":{a},"k":{b}}}"#)),
        1 => leaf,
        1 => Just("{\"k\":1".to_owned()),
        1 => Just("{\"k\":\"\x01\"}".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the line, reading it with the scan (with and without a probe) gives what
    /// serde_json gives, record or error; and a note's values are the payload's own.
    #[test]
    fn the_scan_reads_every_line_as_serde_json_does(
        members in proptest::collection::vec(member(), 0..12),
        space in proptest::sample::select(vec!["", " ", "\t", "\r"]),
    ) {
        let line = format!("{space}{{{}}}{space}", members.join(&format!(",{space}")));
        let mut interner = Interner::default();
        let want = Record::parse_envelope_by_serde(line.as_bytes(), &mut interner);
        prop_assert_eq!(&Record::parse_envelope(line.as_bytes(), &mut interner), &want);
        let probe = probe();
        let got = Record::parse_envelope_probed(line.as_bytes(), &mut interner, Some(&probe));
        prop_assert_eq!(&got, &want);
        if let Ok(Some(note)) = got.as_ref().map(|r| r.probed) {
            let data = &got.as_ref().unwrap().data;
            let values = note.values(&probe, data).expect("this probe's note");
            let expected = crate::json::scan::select_many(data, probe.paths())
                .expect("a noted payload is JSON");
            prop_assert_eq!(values.to_vec(), expected);
        }
    }
}
