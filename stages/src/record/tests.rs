use std::cmp::Ordering;

use super::*;

fn record(data: &[u8]) -> Record {
    Record {
        stream: "orders".into(),
        shard_id: "shardId-000000000001".into(),
        sequence_number: SequenceNumber::parse(
            "49590338271490256608559692538361571095921575989136588898",
        )
        .unwrap(),
        sub_sequence_number: None,
        partition_key: "c-\"17\"".into(),
        arrival_ts: parse_ts("2026-11-25T10:00:00.123Z").unwrap(),
        data: Bytes::copy_from_slice(data),
        annotations: None,
        probed: None,
    }
}

fn round_trip(data: &[u8]) -> (Vec<u8>, Record) {
    let mut line = Vec::new();
    record(data).write_envelope(&mut line);
    let parsed = Record::parse_envelope(&line, &mut Interner::default()).unwrap();
    (line, parsed)
}

#[test]
fn json_payload_is_embedded_verbatim() {
    let data = br#"{"order_id":"o-1","total":1.50,"name":"Zo\u00eb"}"#;
    let (line, parsed) = round_trip(data);
    let text = String::from_utf8(line).unwrap();
    assert!(text.contains(r#""data":{"order_id":"o-1","total":1.50,"name":"Zo\u00eb"}"#));
    assert_eq!(parsed.data.as_ref(), data);
    assert_eq!(parsed, record(data));
}

/// Found by the `envelope` fuzz target: an arrival time finer than a millisecond was kept
/// when read and cut when written, so parse → write → parse changed the record.
#[test]
fn an_arrival_time_finer_than_milliseconds_reads_as_its_millisecond() {
    let line = br#"{"stream":"orders","shard_id":"s","sequence_number":"1","partition_key":"c","arrival_ts":"2026-11-26T11:12:13.3191+00:00","data":1}"#;
    let parsed = Record::parse_envelope(line, &mut Interner::default()).unwrap();
    assert_eq!(
        parsed.arrival_ts,
        parse_ts("2026-11-26T11:12:13.319Z").unwrap()
    );
    let mut written = Vec::new();
    parsed.write_envelope(&mut written);
    let again = Record::parse_envelope(&written, &mut Interner::default()).unwrap();
    assert_eq!(again, parsed);
}

#[test]
fn non_json_payloads_round_trip_through_base64() {
    let cases: [&[u8]; 6] = [
        b"plain text",
        b"{\"a\":\n1}",
        b" {\"a\":1}",
        b"{\"a\":1} ",
        &[0xff, 0x00, 0x10],
        b"",
    ];
    for data in cases {
        let (line, parsed) = round_trip(data);
        assert!(String::from_utf8_lossy(&line).contains("\"data_b64\":"));
        assert_eq!(parsed.data.as_ref(), data);
    }
}

#[test]
fn envelope_is_one_line_of_json() {
    let (line, _) = round_trip(b"[1,2,3]");
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["partition_key"], "c-\"17\"");
    assert_eq!(v["arrival_ts"], "2026-11-25T10:00:00.123Z");
    assert_eq!(v["data"], serde_json::json!([1, 2, 3]));
}

#[test]
fn annotations_round_trip() {
    let mut r = record(b"1");
    r.annotate("error", "bad".into());
    let mut line = Vec::new();
    r.write_envelope(&mut line);
    let back = Record::parse_envelope(&line, &mut Interner::default()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn sequence_numbers_compare_numerically() {
    let a = SequenceNumber::parse("9").unwrap();
    let b = SequenceNumber::parse("10").unwrap();
    let c = SequenceNumber::parse("0010").unwrap();
    assert!(a < b);
    assert_eq!(b.cmp(&c), Ordering::Equal);
    assert!(SequenceNumber::parse("12a").is_err());
    assert!(SequenceNumber::parse("").is_err());
}

#[test]
fn bad_envelopes_say_why() {
    let mut i = Interner::default();
    let err = Record::parse_envelope(b"{\"stream\":1}", &mut i).unwrap_err();
    assert!(err.starts_with("invalid envelope"), "{err}");
    let line = br#"{"stream":"s","shard_id":"a","sequence_number":"1","partition_key":"k","arrival_ts":"2026-11-25T10:00:00Z"}"#;
    let err = Record::parse_envelope(line, &mut i).unwrap_err();
    assert!(err.contains("neither"), "{err}");
}

#[test]
fn json_scalars_and_null_round_trip_as_json() {
    for data in [
        &b"null"[..],
        b"true",
        b"false",
        b"0",
        b"-1.5e3",
        b"\"text\"",
        b"[]",
        b"{}",
    ] {
        let (line, parsed) = round_trip(data);
        assert!(
            String::from_utf8_lossy(&line).contains("\"data\":"),
            "{line:?}"
        );
        assert_eq!(parsed.data.as_ref(), data);
    }
}

#[test]
fn json_with_lone_surrogate_escapes_goes_to_base64() {
    for (data, json) in [
        (&br#"{"s":"\ud800"}"#[..], false),
        (br#"{"s":"\udc00x"}"#, false),
        (br#"["\ud800\u0041"]"#, false),
        (br#"{"s":"\ud83d\ude00"}"#, true),
        (br#"{"s":"\\ud800"}"#, true),
        (br#"{"s":"\u00e9\n"}"#, true),
    ] {
        let form = if json {
            PayloadForm::Json
        } else {
            PayloadForm::Binary
        };
        assert_eq!(
            payload_form(data),
            form,
            "{}",
            String::from_utf8_lossy(data)
        );
        if json {
            serde_json::from_slice::<serde_json::Value>(data).unwrap();
        }
    }
}

#[test]
fn json_with_invalid_utf8_inside_strings_goes_to_base64() {
    let data = b"{\"name\":\"Zo\xe9\"}";
    assert_eq!(payload_form(data), PayloadForm::Binary);
    let (line, parsed) = round_trip(data);
    assert!(std::str::from_utf8(&line).is_ok());
    assert_eq!(parsed.data.as_ref(), data);
}

#[test]
fn envelopes_with_names_that_are_not_path_segments_are_refused() {
    let mut i = Interner::default();
    for (stream, shard) in [
        ("orders/x", "s"),
        ("orders", "a/b"),
        ("orders", ""),
        ("..", "s"),
    ] {
        let mut r = record(b"1");
        r.stream = stream.into();
        r.shard_id = shard.into();
        let mut line = Vec::new();
        r.write_envelope(&mut line);
        let err = Record::parse_envelope(&line, &mut i).unwrap_err();
        assert!(
            err.contains("stream name") || err.contains("shard id"),
            "{err}"
        );
    }
    let mut r = record(b"1");
    r.shard_id = ".hidden".into();
    let mut line = Vec::new();
    r.write_envelope(&mut line);
    assert_eq!(Record::parse_envelope(&line, &mut i).unwrap(), r);
}

#[test]
fn times_outside_years_0000_to_9999_are_refused() {
    assert!(parse_ts("9999-12-31T23:30:00-01:00").is_err());
    assert!(parse_ts("0000-01-01T00:30:00+01:00").is_err());
    assert!(parse_ts("9999-12-31T23:59:59.999Z").is_ok());
    assert!(parse_ts("0000-01-01T00:00:00Z").is_ok());
    let err = parse_ts("CARD-4111111111111111").unwrap_err();
    assert!(!err.contains("4111"), "{err}");
}

#[test]
fn sequence_numbers_have_at_most_129_digits() {
    assert!(SequenceNumber::parse(&"9".repeat(129)).is_ok());
    assert!(SequenceNumber::parse(&"9".repeat(130)).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// JSON-ish payloads: valid JSON of random shapes with random whitespace, broken JSON,
    /// invalid UTF-8 inside strings, BOMs, CRLF, scalars.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9]{1,40}(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            "\"(\\\\u[0-9a-fA-F]{4}|[a-z])*\"",
        ];
        let json = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z_]{0,4}", inner), 0..4).prop_map(|v| {
                    let members: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{ {} }}", members.join(" ,\t"))
                }),
            ]
        });
        prop_oneof![
            json.clone().prop_map(String::into_bytes),
            (json.clone(), "[ \t\r\n]{0,3}", "[ \t\r\n]{0,3}")
                .prop_map(|(j, a, b)| format!("{a}{j}{b}").into_bytes()),
            (json.clone(), 0usize..64).prop_map(|(j, cut)| {
                let mut b = j.into_bytes();
                b.truncate(cut.min(b.len()));
                b
            }),
            (json, any::<u8>(), any::<prop::sample::Index>()).prop_map(|(j, byte, at)| {
                let mut b = j.into_bytes();
                let i = at.index(b.len() + 1);
                b.insert(i, byte);
                b
            }),
            json_with_bom(),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    fn json_with_bom() -> impl Strategy<Value = Vec<u8>> {
        "[a-z]{0,8}".prop_map(|s| {
            let mut b = vec![0xef, 0xbb, 0xbf];
            b.extend_from_slice(format!("{{\"k\":\"{s}\"}}").as_bytes());
            b
        })
    }

    fn hash_of(s: &SequenceNumber) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(s)
    }

    proptest! {
        /// Equality, hashing and order agree, whatever leading zeros either side carries.
        #[test]
        fn sequence_number_equality_hash_and_order_agree(
            a in "[0-9]{1,70}", b in "[0-9]{1,70}", za in 0usize..3, zb in 0usize..3,
        ) {
            let x = SequenceNumber::parse(&format!("{}{a}", "0".repeat(za))).unwrap();
            let y = SequenceNumber::parse(&format!("{}{b}", "0".repeat(zb))).unwrap();
            let same = a.trim_start_matches('0') == b.trim_start_matches('0');
            prop_assert_eq!(x == y, same);
            prop_assert_eq!(x.cmp(&y) == Ordering::Equal, same);
            if same {
                prop_assert_eq!(hash_of(&x), hash_of(&y));
            }
            let x2 = SequenceNumber::parse(&format!("0{a}")).unwrap();
            prop_assert_eq!(x2.as_str(), format!("0{a}"), "the text is kept as given");
        }

        /// The envelope's own time form, read without the RFC 3339 parser, reads as that
        /// parser reads it; where the parser refuses it, so does `parse_ts`.
        #[test]
        fn envelope_times_read_as_the_rfc3339_parser_reads_them(
            fields in proptest::collection::vec(0u32..100, 7),
            year in prop_oneof![0u32..3, 1960u32..2100, 9997u32..10000],
            sep in proptest::sample::select(vec!["T", "t", " "]),
            zone in proptest::sample::select(vec!["Z", "z", "+00:00"]),
        ) {
            let text = format!(
                "{year:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}.{:03}{zone}",
                fields[0] % 14, fields[1] % 33, fields[2] % 26, fields[3] % 62, fields[4] % 62,
                fields[5] * 10 + fields[6] % 10,
            );
            let general = DateTime::parse_from_rfc3339(&text)
                .map_err(|_| ())
                .and_then(|t| {
                    let t = t.with_timezone(&Utc);
                    check_ts(&t).map(|()| t.trunc_subsecs(3)).map_err(|_| ())
                });
            prop_assert_eq!(parse_ts(&text).map(|t| t.trunc_subsecs(3)).map_err(|_| ()), general, "{}", text);
        }

        /// The scan's answer, where it gives one, is the parse's.
        #[test]
        fn payload_forms_by_scan_are_those_by_parse(data in payload()) {
            let trimmed = data.first().is_some_and(|b| !b.is_ascii_whitespace())
                && data.last().is_some_and(|b| !b.is_ascii_whitespace())
                && !data.contains(&b'\n') && !data.contains(&b'\r');
            if trimmed {
                prop_assert_eq!(payload_form(&data), crate::record::payload_form_by_parse(&data));
            }
        }

        #[test]
        fn any_payload_round_trips_byte_for_byte(data in payload()) {
            let (line, parsed) = round_trip(&data);
            // The line is one line of valid UTF-8 JSON that any reader accepts.
            prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let text = std::str::from_utf8(&line).expect("the envelope is UTF-8");
            let members: std::collections::HashMap<String, Box<RawValue>> =
                serde_json::from_str(text).expect("the envelope is JSON");
            prop_assert!(members.contains_key("data") != members.contains_key("data_b64"));
            prop_assert_eq!(parsed.data.as_ref(), &data[..]);
        }
    }
}

/// The envelope's own timestamp writer says what `format_ts` says, for every time an envelope
/// can hold (and falls back to it for the rest).
#[test]
fn the_envelope_writes_arrival_times_as_format_ts_does() {
    let mut times: Vec<DateTime<Utc>> = vec![
        ts_from_millis(0),
        ts_from_millis(1_764_064_800_123),
        Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(999_999_999),
        Utc.with_ymd_and_hms(-1, 12, 31, 23, 59, 59).unwrap(),
        Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
        // A leap second, as chrono represents one.
        chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc(),
    ];
    let mut ms: i64 = -62_167_219_200_000; // 0000-01-01
    while ms < 253_402_300_800_000 {
        times.push(ts_from_millis(ms) + chrono::Duration::nanoseconds(ms.rem_euclid(1_000_003)));
        ms += 9_876_543_211_117;
    }
    for t in times {
        let mut out = Vec::new();
        write_ts(&mut out, &t);
        assert_eq!(String::from_utf8(out).unwrap(), format_ts(&t), "{t:?}");
    }
}
