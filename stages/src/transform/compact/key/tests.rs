//! The key paths: forms, the fast path against the general path on examples and on generated
//! payloads (the generators are in `strategies`).

mod strategies;

use super::*;
use crate::record::{SequenceNumber, ts_from_millis};
use strategies::{Damage, Expect, damage, json_ish_payload, json_value};

fn rec(data: &str) -> Record {
    Record {
        stream: "orders".into(),
        shard_id: "shardId-000000000000".into(),
        sequence_number: SequenceNumber::from_u64(1),
        sub_sequence_number: None,
        partition_key: "pk-1".into(),
        arrival_ts: ts_from_millis(0),
        data: bytes::Bytes::copy_from_slice(data.as_bytes()),
        annotations: None,
        probed: None,
    }
}

fn key(path: &str, data: &str) -> Option<String> {
    KeyPath::compile(path)
        .unwrap()
        .extract(&rec(data))
        .map(|k| String::from_utf8(k.into_owned()).unwrap())
}

#[test]
fn forms_are_recognised() {
    assert!(KeyPath::compile("partition_key").unwrap().is_fast());
    assert!(KeyPath::compile("@.partition_key").unwrap().is_fast());
    assert!(KeyPath::compile("$.data.customer_id").unwrap().is_fast());
    assert!(KeyPath::compile("@.data.a.b_2").unwrap().is_fast());
    assert!(!KeyPath::compile("$.data['a b']").unwrap().is_fast());
    assert!(!KeyPath::compile("$.data").unwrap().is_fast());
    assert!(!KeyPath::compile("$.shard_id").unwrap().is_fast());
    assert!(KeyPath::compile("data.x").is_err());
    assert!(KeyPath::compile("$.data[").is_err());
}

#[test]
fn fast_path_agrees_with_the_general_path() {
    let payloads = [
        r#"{"a":{"b":"x"},"c":1}"#,
        r#"{"c":[1,{"b":2}],"a":{"z":null,"b":"q\"uote\u00e9"}}"#,
        r#"{"a":{"b":7}}"#,
        r#"{"a":{"b":1.50}}"#,
        r#"{"a":{"b":true}}"#,
        r#"{"a":{"b":null}}"#,
        r#"{"a":{"b":{"y":1,"x":[2]}}}"#,
        r#"{"a":{"b":"first"},"a":{"b":"last"}}"#,
        r#"{"a":[{"b":1}]}"#,
        r#"{"a":"b"}"#,
        r#"{}"#,
        r#"[1,2]"#,
        r#""text""#,
        "not json",
        r#"{"a":{"b":"x"}} trailing"#,
        r#"{"a":{"b":"x"},"z":[}"#,
    ];
    let general = KeyPath {
        source: String::new(),
        kind: Kind::General(ValuePath::compile("$.data.a.b").unwrap()),
    };
    for p in payloads {
        let fast = key("$.data.a.b", p);
        let slow = general
            .extract(&rec(p))
            .map(|k| String::from_utf8(k.into_owned()).unwrap());
        assert_eq!(fast, slow, "payload {p}");
    }
    assert_eq!(
        key("$.data.a.b", r#"{"a":{"b":"x"}}"#).as_deref(),
        Some("x")
    );
    assert_eq!(key("partition_key", "{}").as_deref(), Some("pk-1"));
    assert_eq!(
        key("$.data.a.b", r#"{"a":{"b":"x"},"a":{"c":1}}"#),
        None,
        "the last duplicate decides"
    );
    assert_eq!(
        key("$.data.a", r#"{"a":1,"\u0061":2}"#).as_deref(),
        Some("2"),
        "also when spelled with escapes"
    );
    assert_eq!(
        key("$.shard_id", "{}").as_deref(),
        Some("shardId-000000000000")
    );
}

/// The key of `data` under `path`, as text (keys of valid payloads are UTF-8).
fn key_of(path: &str, data: &[u8]) -> Option<String> {
    let mut r = rec("");
    r.data = bytes::Bytes::copy_from_slice(data);
    KeyPath::compile(path)
        .unwrap()
        .extract(&r)
        .map(|k| String::from_utf8(k.into_owned()).unwrap())
}

/// The fast path (`$.data.k`) and the general path (`$.data['k']`) give the same answer
/// for every payload, and that answer is also `expected`.
fn both_paths(data: &[u8], expected: Option<&str>) {
    let fast = key_of("$.data.k", data);
    let general = key_of("$.data['k']", data);
    let shown = String::from_utf8_lossy(data);
    assert_eq!(fast, general, "fast vs general on {shown}");
    assert_eq!(fast.as_deref(), expected, "payload {shown}");
}

#[test]
fn payloads_that_are_not_json_have_no_key_on_either_path() {
    let deep = format!(r#"{{"k":"a","z":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
    let broken: [&[u8]; 12] = [
        br#"{"k":"a", BROKEN"#,
        br#"{"k":"a","z":[}"#,
        br#"{"k":"a","z":tru}"#,
        br#"{"k":"a","z":01}"#,
        br#"{"k":"a"} trailing"#,
        b"{\"k\":\"a\",\"z\":\"Zo\xe9\"}",
        b"{\"k\":\"Zo\xe9\"}",
        br#"{"k":"a","z":1e400}"#,
        br#"{"k":"a","z":"\ud800"}"#,
        br#"{"k":"a","z":"\q"}"#,
        b"{\"k\":\"a\",\"z\":\"\x01\"}",
        deep.as_bytes(),
    ];
    for data in broken {
        both_paths(data, None);
    }
    both_paths(br#"{"k":"a","z":[1,{"y":null}]}"#, Some("a"));
}

#[test]
fn numbers_are_keyed_by_their_exact_text_on_both_paths() {
    both_paths(
        br#"{"k":12345678901234567890123}"#,
        Some("12345678901234567890123"),
    );
    both_paths(
        br#"{"k":12345678901234567890124}"#,
        Some("12345678901234567890124"),
    );
    both_paths(br#"{"k" : 1.50 }"#, Some("1.50"));
    both_paths(br#"{"k":-0}"#, Some("-0"));
    both_paths(br#"{"k":1E+2}"#, Some("1E+2"));
    both_paths(br#"{"k":7}"#, Some("7"));
    both_paths(br#"{"k":"7"}"#, Some("7"));
    both_paths(br#"{"k":true}"#, Some("true"));
    both_paths(br#"{"k":null}"#, None);
    // Containers: compact, members sorted, the last duplicate kept, numbers as written.
    both_paths(
        br#"{"k":{ "b" : 12345678901234567890123, "a":[1.50, "x\u0041"], "b":2.0 }}"#,
        Some(r#"{"a":[1.50,"xA"],"b":2.0}"#),
    );
    // Deeper and bracketed paths select the same text.
    let data = br#"{"a":{"k":[10000000000000000000001, 1e-7]}}"#;
    assert_eq!(
        key_of("$.data.a.k", data).as_deref(),
        Some("[10000000000000000000001,1e-7]")
    );
    assert_eq!(key_of("$.data.a.k", data), key_of("$.data.a['k']", data));
    assert_eq!(
        key_of("$.data.a.k[0]", data).as_deref(),
        Some("10000000000000000000001")
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// For any JSON-ish payload (valid objects with random names, values, whitespace and
    /// escapes; numbers beyond u64 and f64; broken, truncated and non-UTF-8 texts), the
    /// fast path and the general path give the same key or both none, and for valid JSON
    /// that key is the last `k` member's value (numbers by their exact text).
    #[test]
    fn fast_and_general_paths_agree_on_any_payload(
        (text, expect) in json_ish_payload(),
        damage in damage(),
    ) {
        let mut data = text.into_bytes();
        match &damage {
            Damage::None => {}
            Damage::Truncate(i) => data.truncate(i.index(data.len() + 1)),
            Damage::Insert(i, b) => data.insert(i.index(data.len() + 1), *b),
            Damage::Replace(i, b) => {
                let i = i.index(data.len());
                data[i] = *b;
            }
            Damage::Append(bytes) => data.extend_from_slice(bytes),
        }
        let shown = String::from_utf8_lossy(&data).into_owned();
        for (fast, general) in [("$.data.k", "$.data['k']"), ("$.data.a.k", "$.data['a']['k']")] {
            proptest::prop_assert_eq!(
                key_of(fast, &data), key_of(general, &data), "{} on {}", fast, shown
            );
        }
        let valid = serde_json::from_slice::<serde_json::Value>(&data).is_ok();
        let expected = match (&damage, valid, expect) {
            (_, false, _) => Some(None),
            (Damage::None, true, Expect::Key(k)) => Some(k),
            _ => None,
        };
        if let Some(expected) = expected {
            proptest::prop_assert_eq!(key_of("$.data.k", &data), expected, "payload {}", shown);
        }
    }
}

proptest::proptest! {
    /// The structural scan selects what the general JSONPath selects, in compact and
    /// pretty-printed payloads.
    #[test]
    fn scan_agrees_with_the_general_path(v in json_value(), pretty: bool, depth in 1usize..3) {
        let text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        };
        let path = ["$.data", ".a", ".b"][..=depth].concat();
        let general = KeyPath {
            source: String::new(),
            kind: Kind::General(ValuePath::compile(&path).unwrap()),
        };
        let slow = general
            .extract(&rec(&text))
            .map(|k| String::from_utf8(k.into_owned()).unwrap());
        proptest::prop_assert_eq!(key(&path, &text), slow, "payload {}", text);
        // The scan itself decided (the general path is only the fallback), except on
        // numbers with an exponent, which it leaves to the parser.
        let names: Vec<String> = ["a", "b"][..depth].iter().map(|s| (*s).to_owned()).collect();
        if !text.contains(['e', 'E']) {
            proptest::prop_assert!(scan::select(text.as_bytes(), &names).is_ok(), "unsure on {}", text);
        }
    }
}

/// A payload's protocol member (`_flux`), fence, copy or damaged, or none: JSON objects with
/// other members around it, sometimes twice.
fn payload_with_member() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let member = prop_oneof![
        Just(r#"{"fence":{"replay_id":"r-1","phase":"start"}}"#.to_owned()),
        Just(
            r#"{"replay":{"id":"r-1","mode":"overwrite"},"origin":{"stream":"s","shard_id":"shardId-000000000001","sequence_number":"7","arrival_ts":"2026-11-25T10:00:00.000Z"}}"#
                .to_owned()
        ),
        Just(r#"{"replay":{"id":"r-1"}}"#.to_owned()),
        Just(r#"{"note":"user"}"#.to_owned()),
        Just("7".to_owned()),
        json_value().prop_map(|v| v.to_string()),
    ];
    (
        json_value(),
        proptest::option::of(member),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(k, member, twice, escaped)| {
            let name = if escaped { r"\u005fflux" } else { "_flux" };
            let mut text = format!(r#"{{"k":{k}"#);
            if let Some(m) = member {
                text.push_str(&format!(r#","{name}":{m}"#));
                if twice {
                    text.push_str(r#","_flux":{"note":"later"}"#);
                }
            }
            text.push('}');
            text
        })
}

proptest::proptest! {
    /// One scan for the key and the protocol member gives the key of [`KeyPath::extract`] and
    /// the marker of [`crate::replay::parse_marker`].
    #[test]
    fn key_and_member_agree_with_their_own_scans(text in payload_with_member()) {
        let path = KeyPath::compile("$.data.k").unwrap();
        let r = rec(&text);
        let member = ["_flux".to_owned()];
        let found = path.extract_with_member(&r, &member, None);
        proptest::prop_assert_eq!(&found.key, &path.extract(&r), "payload {}", text);
        // Read from an archive line by a source that notes the probe, the record gives the
        // same key and member from the note.
        let probe = path.probe(&member).expect("a path into the payload");
        let mut line = Vec::new();
        r.write_envelope(&mut line);
        let read = crate::record::Record::parse_envelope_probed(
            &line[..line.len() - 1],
            &mut crate::record::Interner::default(),
            Some(&probe),
        )
        .unwrap();
        proptest::prop_assert_eq!(read.probed.is_some(), found.member.is_some(), "payload {}", text);
        let noted = path.extract_with_member(&read, &member, Some(&probe));
        proptest::prop_assert_eq!(&noted.key, &found.key, "payload {}", text);
        proptest::prop_assert_eq!(&noted.member, &found.member, "payload {}", text);
        let expected = format!("{:?}", crate::replay::parse_marker(&r.data, "_flux"));
        let got = match found.member {
            Some(None) => format!("{:?}", Ok::<_, crate::replay::MarkerError>(crate::replay::Marker::Live)),
            Some(Some(m)) => format!("{:?}", crate::replay::marker_of_member(m, "_flux")),
            None => expected.clone(),
        };
        proptest::prop_assert_eq!(got, expected, "payload {}", text);
        // Wherever the scan decides the payload, it decides the member too.
        let decided = scan::select(text.as_bytes(), &["k".to_owned()]).is_ok();
        proptest::prop_assert_eq!(found.member.is_some(), decided && !text.contains(r"\u005f"), "payload {}", text);
    }
}
