use super::*;
use serde_json::json;

#[test]
fn predicates_match_the_view() {
    let p = Predicate::compile("@.data.status == 'cancelled' && @.data.total > 100").unwrap();
    assert!(p.matches(json!({"data": {"status": "cancelled", "total": 101}})));
    assert!(!p.matches(json!({"data": {"status": "cancelled", "total": 99}})));
    assert!(!p.matches(json!({"data": {"status": "paid", "total": 500}})));
    assert!(!p.matches(json!({"data": "not an object"})));
    let shard = Predicate::compile("@.shard_id == 'shardId-000000000001'").unwrap();
    assert!(shard.matches(json!({"shard_id": "shardId-000000000001"})));
}

#[test]
fn precheck_rejects_only_impossible_payloads() {
    let p = Predicate::compile("@.data.status == 'cancelled' && @.data.total > 100").unwrap();
    assert!(!p.may_match(br#"{"status":"paid","total":500}"#));
    assert!(p.may_match(br#"{"status":"\u0063ancelled","total":500}"#));
    let or = Predicate::compile("@.data.status == 'a' || @.data.status == 'b'").unwrap();
    assert!(!or.may_match(b"{}"));
    // Not JSON: only a parse can tell.
    assert!(or.may_match(b"{"));
    assert_eq!(or.decide(b"{"), None);
}

#[test]
fn predicates_over_simple_payload_paths_are_decided_on_the_bytes() {
    let p = Predicate::compile("@.data.status == 'cancelled' && @.data.total > 100").unwrap();
    assert_eq!(
        p.decide(br#"{"status":"cancelled","total":5}"#),
        Some(false)
    );
    assert_eq!(
        p.decide(br#"{"total":101,"status":"cancelled"}"#),
        Some(true)
    );
    assert_eq!(
        p.decide(br#"{"status":"cancelled","total":101,"total":1}"#),
        Some(false)
    );
    // Escaped member names and exponents are left to the parse.
    assert_eq!(
        p.decide(br#"{"status":"cancelled","tot\u0061l":500}"#),
        None
    );
    assert_eq!(p.decide(br#"{"status":"cancelled","total":1e3}"#), None);
    let nested = Predicate::compile("@.data.a.b >= 2 || length(@.data.s) == 3").unwrap();
    assert_eq!(nested.decide(br#"{"a":{"b":2}}"#), Some(true));
    assert_eq!(nested.decide(br#"{"a":{"b":1},"s":"abc"}"#), Some(true));
    assert_eq!(nested.decide(br#"{"a":[{"b":5}],"s":"ab"}"#), Some(false));
    // Anything but simple payload paths is evaluated on the whole view.
    for expr in [
        "@.partition_key == 'k'",
        "@.data.items[0].sku == 'x'",
        "@.data.items[*].qty",
        "$[0].data.s == 'x'",
        "@.data == 'x'",
        "@..s",
    ] {
        let p = Predicate::compile(expr).unwrap();
        assert_eq!(
            p.decide(br#"{"s":"x","items":[{"sku":"x","qty":2}]}"#),
            None,
            "{expr}"
        );
    }
}

/// Deep nesting is refused before the parser sees it (the parser's time grows exponentially
/// with unclosed calls), in filters, value paths and key paths alike; ten levels still parse,
/// and brackets inside string literals do not count.
#[test]
fn nesting_past_the_limit_is_refused_before_parsing() {
    let deep = format!("{}@.data.x", "count(\t\t(".repeat(12));
    let err = Predicate::compile(&deep).unwrap_err().to_string();
    assert!(err.contains("nested more than 10 levels"), "{err}");
    let path = format!("$.a[?{}@.x", "count(".repeat(14));
    let err = ValuePath::compile(&path).unwrap_err().to_string();
    assert!(err.contains("nested more than 10 levels"), "{err}");
    let err = crate::transform::compact::key::KeyPath::compile(&path).unwrap_err();
    assert!(err.contains("nested more than 10 levels"), "{err}");
    let ten = format!("{}@.data.x == 1{}", "(".repeat(10), ")".repeat(10));
    assert!(Predicate::compile(&ten).is_ok());
    let quoted = format!("@.data.s == '{}'", "(".repeat(40));
    assert!(Predicate::compile(&quoted).is_ok());
    assert!(ValuePath::compile("$.data['a(((((((((((b']").is_ok());
}

#[test]
fn invalid_expressions_are_errors() {
    assert!(Predicate::compile("@.data.status = 'x'").is_err());
    assert!(Predicate::compile("").is_err());
    assert!(ValuePath::compile("data.order_id").is_err());
}

#[test]
fn invalid_regex_literals_are_load_errors() {
    for expr in [
        "match(@.data.code, 'abc(')",
        "search(@.data.code, '[a-')",
        "@.data.ok == true && !match(@.data.code, '(?P<')",
        "@.data.items[?search(@.sku, 'x{2,1}')]",
        "match(@.data.code, 7)",
    ] {
        let err = Predicate::compile(expr).unwrap_err().to_string();
        assert!(
            err.contains("not a valid regular expression") || err.contains("pattern string"),
            "{expr}: {err}"
        );
    }
    let err = Predicate::compile(r"match(@.data.code, '(\\w{100}){100}')")
        .unwrap_err()
        .to_string();
    assert!(err.contains("compiles to more than"), "{err}");
    let err = ValuePath::compile("$.data.items[?match(@.sku, 'abc(')].id")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid regular expression"), "{err}");
}

#[test]
fn regex_functions_keep_their_meaning() {
    let p = Predicate::compile("match(@.data.code, 'A.C') && search(@.data.note, 'urgent|asap')")
        .unwrap();
    assert!(p.matches(json!({"data": {"code": "ABC", "note": "reply asap"}})));
    assert!(!p.matches(json!({"data": {"code": "ABCD", "note": "reply asap"}})));
    assert!(!p.matches(json!({"data": {"code": "A\nC", "note": "asap"}})));
    assert!(!p.matches(json!({"data": {"code": "ABC"}})));
    let nested = Predicate::compile("@.data.items[?match(@.sku, 'X-[0-9]+')]").unwrap();
    assert!(nested.matches(json!({"data": {"items": [{"sku": "Y"}, {"sku": "X-12"}]}})));
    assert!(!nested.matches(json!({"data": {"items": [{"sku": "X-"}]}})));
    let p = ValuePath::compile("$.data.items[?search(@.sku, '^X')].id").unwrap();
    let v = json!({"data": {"items": [{"sku": "Y", "id": 1}, {"sku": "X-1", "id": 2}]}});
    assert_eq!(p.select(&v), Some(&json!(2)));
    // jsonpath-rust's own functions still work next to them.
    let p = Predicate::compile("match(@.data.code, 'a') && length(@.data.code) == 1").unwrap();
    assert!(p.matches(json!({"data": {"code": "a"}})));
}

/// Issue 11: a pattern taken from the record is compiled once (per thread), within the
/// size limit; one too large matches nothing instead of costing a compilation per record.
#[test]
fn record_supplied_patterns_are_bounded_and_cached() {
    std::thread::spawn(|| {
        let p = Predicate::compile("match(@.data.code, @.data.pattern)").unwrap();
        let before = crate::expr_regex::compilations();
        for _ in 0..200 {
            assert!(!p.matches(json!({"data": {"code": "x", "pattern": r"(\w{100}){100}"}})));
            assert!(p.matches(json!({"data": {"code": "abc", "pattern": "a.c"}})));
        }
        assert_eq!(crate::expr_regex::compilations() - before, 2);
        let long = "a".repeat(crate::expr_regex::MAX_PATTERN_LEN + 1);
        assert!(!p.matches(json!({"data": {"code": long.clone(), "pattern": long}})));
    })
    .join()
    .unwrap();
}

#[test]
fn value_paths_select_keys() {
    let p = ValuePath::compile("$.data.order_id").unwrap();
    assert_eq!(
        p.select_key(&json!({"data": {"order_id": "o-1"}})).unwrap(),
        "o-1"
    );
    assert_eq!(
        p.select_key(&json!({"data": {"order_id": 7}})).unwrap(),
        "7"
    );
    assert!(p.select_key(&json!({"data": {}})).is_none());
}

mod push_down {
    use super::*;
    use crate::record::{Interner, Record, SequenceNumber, parse_ts};
    use proptest::prelude::*;

    fn record(data: Vec<u8>) -> Record {
        Record {
            stream: "orders".into(),
            shard_id: "shardId-000000000001".into(),
            sequence_number: SequenceNumber::from_u64(7),
            sub_sequence_number: None,
            partition_key: "k".into(),
            arrival_ts: parse_ts("2026-11-25T10:00:00Z").unwrap(),
            data: data.into(),
            annotations: None,
            probed: None,
        }
    }

    /// A value the predicate compares with: from a small alphabet so that matches happen.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("cancelled".to_owned()),
            Just("é/\"x".to_owned()),
            "[a-c]{0,3}",
            any::<String>(),
        ]
    }

    /// Payloads of many shapes around a `status` field: compact and spaced JSON, surrounding
    /// whitespace and line breaks (stored as `data_b64`), escapes, BOMs, invalid UTF-8,
    /// scalars, and bytes that are not JSON.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let object = (word(), any::<bool>(), any::<bool>())
            .prop_map(|(w, spaced, escape)| {
                let value = if escape {
                    w.chars()
                        .map(|c| format!("\\u{:04x}", c as u32 & 0xffff))
                        .collect::<String>()
                } else {
                    serde_json::to_string(&w)
                        .unwrap()
                        .trim_matches('"')
                        .to_owned()
                };
                if spaced {
                    format!("{{ \"status\" : \"{value}\" , \"n\" : 1 }}")
                } else {
                    format!("{{\"status\":\"{value}\"}}")
                }
            })
            .boxed();
        prop_oneof![
            object.clone().prop_map(String::into_bytes),
            (object.clone(), "[ \t\r\n]{1,3}", any::<bool>()).prop_map(|(o, ws, before)| {
                if before {
                    format!("{ws}{o}")
                } else {
                    format!("{o}{ws}")
                }
                .into_bytes()
            }),
            object.clone().prop_map(|o| {
                let mut b = vec![0xef, 0xbb, 0xbf];
                b.extend_from_slice(o.as_bytes());
                b
            }),
            object.prop_map(|o| {
                let mut b = o.into_bytes();
                b.insert(2, 0xff);
                b
            }),
            word().prop_map(|w| serde_json::to_vec(&w).unwrap()),
            Just(b"null".to_vec()),
            prop::collection::vec(any::<u8>(), 0..32),
        ]
    }

    proptest! {
        /// The bounded, cached match()/search() mean what jsonpath-rust's own do, for
        /// patterns written in the expression and taken from the record; a written pattern
        /// jsonpath-rust could not compile (it matched nothing) is now a load error.
        #[test]
        fn bounded_regex_functions_agree_with_jsonpath_rust(
            text in "[ab.\n]{0,6}",
            pattern in "[ab.|*()\\[\\]^$?+{}0-9\\\\]{0,6}",
            search in any::<bool>(),
            written in any::<bool>(),
        ) {
            let f = if search { "search" } else { "match" };
            let expr = if written {
                format!("{f}(@.data.t, '{}')", pattern.replace('\\', "\\\\"))
            } else {
                format!("{f}(@.data.t, @.data.p)")
            };
            let view = serde_json::json!({"data": {"t": text, "p": pattern}});
            let native = parse_json_path(&format!("$[?{expr}]")).unwrap();
            let native = js_path_process(&native, &Value::Array(vec![view.clone()]))
                .is_ok_and(|hits| !hits.is_empty());
            match Predicate::compile(&expr) {
                Ok(p) => prop_assert_eq!(p.matches(view), native, "{}", expr),
                Err(e) => {
                    prop_assert!(written, "{}: {}", expr, e);
                    prop_assert!(!native, "{}", expr);
                }
            }
        }

        /// What the pushed-down byte test lets through is a superset of what the filter
        /// keeps, whatever the payload: push-down never changes a filter's result.
        #[test]
        fn push_down_never_drops_a_record_the_filter_keeps(data in payload(), lit in word()) {
            let literal = lit.replace('\\', "\\\\").replace('\'', "\\'");
            let p = Predicate::compile(&format!("@.data.status == '{literal}'")).unwrap();
            let r = record(data);
            let mut line = Vec::new();
            r.write_envelope(&mut line);
            let back = Record::parse_envelope(&line, &mut Interner::default()).unwrap();
            let keeps = p.matches(back.view(back.data_view()));
            if keeps {
                prop_assert!(p.prefilter().may_match_envelope(&line), "line {:?}", String::from_utf8_lossy(&line));
                prop_assert!(p.may_match(&r.data));
            }
        }
    }

    /// Predicates over simple payload paths, with `{lit}` for a literal.
    const SPARSE: &[&str] = &[
        "@.data.status == '{lit}'",
        "@.data.status != '{lit}' || @.data.n > 0",
        "@.data.n >= 1 && @.data.status",
        "!@.data.missing && length(@.data.status) > 2",
        "match(@.data.status, '[a-c].*') || search(@.data.a.b, '{lit}')",
        "@.data.a.b == @.data.status",
        "@.data.a == @.data.z || count(@.data.a.b) == 1",
        "!(@.data.n < 1) && value(@.data.a.b) != '{lit}'",
    ];

    /// Payloads with a nested object and numbers besides `status`, or any payload above.
    fn rich_payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            payload(),
            (word(), word(), -3i64..3, any::<bool>(), any::<bool>()).prop_map(
                |(status, inner, n, dup, spaced)| {
                    let mut v = serde_json::json!({"status": status, "n": n, "a": {"b": inner}});
                    if dup {
                        v["a"] = serde_json::json!([inner]);
                    }
                    if spaced {
                        serde_json::to_vec_pretty(&v).unwrap()
                    } else {
                        serde_json::to_vec(&v).unwrap()
                    }
                }
            ),
        ]
    }

    proptest! {
        /// Where the bytes decide a predicate (on a payload, or on an archive line), they give
        /// the answer of evaluating it on the whole view.
        #[test]
        fn decisions_on_the_bytes_agree_with_the_whole_view(
            data in rich_payload(),
            lit in word(),
            which in 0..SPARSE.len(),
        ) {
            let literal = lit.replace('\\', "\\\\").replace('\'', "\\'");
            let expr = SPARSE[which].replace("{lit}", &literal);
            let Ok(p) = Predicate::compile(&expr) else { return Ok(()) };
            let r = record(data);
            let whole = p.matches(r.view(r.data_view()));
            if let Some(decided) = p.decide(&r.data) {
                prop_assert_eq!(decided, whole, "{} on {:?}", expr, String::from_utf8_lossy(&r.data));
            }
            let mut line = Vec::new();
            r.write_envelope(&mut line);
            let line = &line[..line.len() - 1];
            if whole {
                prop_assert!(p.prefilter().may_match_envelope(line), "{} on {:?}", expr, String::from_utf8_lossy(line));
            }
        }
    }

    #[test]
    fn compact_json_payloads_are_decided_without_a_parse() {
        let p = Predicate::compile("@.data.n >= 1 && @.data.a.b == 'x'").unwrap();
        let r = record(br#"{"n":1,"a":{"b":"x"},"z":[1,{"q":null}]}"#.to_vec());
        assert_eq!(p.decide(&r.data), Some(true));
        let mut line = Vec::new();
        r.write_envelope(&mut line);
        assert!(p.prefilter().may_match_envelope(&line));
        let r = record(br#"{"n":0,"a":{"b":"x"}}"#.to_vec());
        let mut line = Vec::new();
        r.write_envelope(&mut line);
        assert!(!p.prefilter().may_match_envelope(&line));
        // An envelope without `data` is left to the parse (which rejects it).
        assert!(
            p.prefilter()
                .may_match_envelope(br#"{"stream":"s","n":1,"a":{"b":"x"}}"#)
        );
    }

    #[test]
    fn base64_payloads_pass_the_envelope_test() {
        let p = Predicate::compile("@.data.status == 'cancelled'").unwrap();
        for data in [
            &b"{\"status\":\"cancelled\"}\n"[..],
            b" {\"status\":\"cancelled\"}",
            b"{\"status\":\"cancelled\"}\r\n",
        ] {
            let r = record(data.to_vec());
            let mut line = Vec::new();
            r.write_envelope(&mut line);
            assert!(p.matches(r.view(r.data_view())));
            assert!(p.prefilter().may_match_envelope(&line));
        }
        let r = record(b"{\"status\":\"paid\"}".to_vec());
        let mut line = Vec::new();
        r.write_envelope(&mut line);
        assert!(!p.prefilter().may_match_envelope(&line));
    }
}
