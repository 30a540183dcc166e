//! JSONPath (RFC 9535) expressions as pipeline files use them, evaluated with jsonpath-rust.
//!
//! - [`Predicate`]: a filter expression such as `@.data.status == 'cancelled' && @.data.total > 100`,
//!   where `@` is the record's envelope view. It is compiled once into the query `$[?<expr>]` and
//!   evaluated against a one-element array holding the view.
//! - [`ValuePath`]: a query such as `$.data.order_id` that selects one value.
//!
//! Predicates carry a cheap pre-check: string literals that a conjunction compares for equality
//! with a `@.data…` field must appear, JSON-encoded, in the raw payload bytes. When one is missing
//! (and the payload has no backslash escapes that could spell it differently) the record cannot
//! match and is rejected without parsing the payload.

use jsonpath_rust::parser::model::{
    Comparable, Comparison, Filter, FilterAtom, JpQuery, Literal, Segment, Selector, SingularQuery,
    SingularQuerySegment,
};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use jsonpath_rust::query::queryable::Queryable;
use serde_json::Value;

use crate::expr_regex::{self, Node};

/// A compiled filter expression.
#[derive(Debug, Clone)]
pub struct Predicate {
    source: String,
    query: JpQuery,
    prefilter: Prefilter,
    needs_data: bool,
    /// True when the query uses `match()`/`search()` (rewritten by [`expr_regex`]).
    regex: bool,
}

/// A cheap test on raw bytes that rules records out before anything is parsed: every literal
/// must occur in the bytes (unless they contain a backslash escape, which could spell a literal
/// differently). Applied to a payload, or to a whole archive line that contains the payload.
#[derive(Debug, Clone)]
pub struct Prefilter {
    literals: std::sync::Arc<Vec<memchr::memmem::Finder<'static>>>,
}

impl Prefilter {
    /// False when the bytes certainly cannot hold a matching payload.
    pub fn may_match(&self, raw: &[u8]) -> bool {
        if self.literals.is_empty() || memchr::memchr(b'\\', raw).is_some() {
            return true;
        }
        self.literals.iter().all(|lit| lit.find(raw).is_some())
    }

    /// False when an archive line (one envelope) certainly cannot hold a matching payload.
    /// A payload stored base64-encoded under `data_b64` (not JSON, or JSON with surrounding
    /// whitespace or line breaks) is invisible to a byte test, so such lines always pass.
    pub fn may_match_envelope(&self, line: &[u8]) -> bool {
        if self.literals.is_empty() || memchr::memmem::find(line, b"\"data_b64\"").is_some() {
            return true;
        }
        self.may_match(line)
    }

    /// True when the prefilter can rule anything out.
    pub fn is_useful(&self) -> bool {
        !self.literals.is_empty()
    }
}

impl Predicate {
    /// Compiles a filter expression (the part inside `[?…]`).
    pub fn compile(expr: &str) -> Result<Predicate, String> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err("the filter expression is empty".into());
        }
        let query = parse_json_path(&format!("$[?{trimmed}]")).map_err(|e| {
            format!(
                "invalid filter expression {trimmed:?}: {}",
                explain(&e.to_string(), 3)
            )
        })?;
        let filter = match query.segments.as_slice() {
            [Segment::Selector(Selector::Filter(filter))] => filter.clone(),
            _ => {
                return Err(format!(
                    "invalid filter expression {trimmed:?}: expected one filter expression such as \"@.data.status == 'paid'\""
                ));
            }
        };
        let regex = expr_regex::check(&query)
            .map_err(|e| format!("invalid filter expression {trimmed:?}: {e}"))?;
        let query = if regex {
            expr_regex::rewrite(&query)
        } else {
            query
        };
        let mut literals = Vec::new();
        collect_required(&filter, &mut literals);
        let prefilter = Prefilter {
            literals: std::sync::Arc::new(
                literals
                    .into_iter()
                    .map(|l| memchr::memmem::Finder::new(&l).into_owned())
                    .collect(),
            ),
        };
        Ok(Predicate {
            source: trimmed.to_owned(),
            query,
            prefilter,
            needs_data: trimmed.contains("data"),
            regex,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// False when the raw payload certainly cannot match; true when it must be evaluated.
    pub fn may_match(&self, raw_data: &[u8]) -> bool {
        self.prefilter.may_match(raw_data)
    }

    /// The raw-bytes pre-check, for pushing down into a source.
    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    /// True when the expression mentions the payload at all (otherwise it need not be parsed).
    pub fn needs_data(&self) -> bool {
        self.needs_data
    }

    /// Evaluates the predicate against a record's envelope view.
    pub fn matches(&self, view: Value) -> bool {
        if self.regex {
            let root = Node::Array(vec![Node::from(view)]);
            return js_path_process(&self.query, &root).is_ok_and(|hits| !hits.is_empty());
        }
        let root = Value::Array(vec![view]);
        match js_path_process(&self.query, &root) {
            Ok(hits) => !hits.is_empty(),
            Err(_) => false,
        }
    }
}

fn collect_required(filter: &Filter, out: &mut Vec<Vec<u8>>) {
    match filter {
        Filter::And(parts) => parts.iter().for_each(|p| collect_required(p, out)),
        Filter::Atom(FilterAtom::Comparison(cmp)) => {
            if let Comparison::Eq(a, b) = cmp.as_ref() {
                let lit = match (a, b) {
                    (Comparable::SingularQuery(q), Comparable::Literal(Literal::String(s)))
                    | (Comparable::Literal(Literal::String(s)), Comparable::SingularQuery(q))
                        if targets_data(q) =>
                    {
                        Some(s)
                    }
                    _ => None,
                };
                if let Some(s) = lit {
                    // Serializing a string cannot fail.
                    out.push(serde_json::to_vec(s).unwrap_or_default());
                }
            }
        }
        Filter::Atom(FilterAtom::Filter { expr, not: false }) => collect_required(expr, out),
        _ => {}
    }
}

fn targets_data(q: &SingularQuery) -> bool {
    match q {
        SingularQuery::Current(segs) => {
            matches!(segs.first(), Some(SingularQuerySegment::Name(n)) if n == "data")
                && segs.len() > 1
        }
        SingularQuery::Root(_) => false,
    }
}

/// Turns jsonpath-rust's parser error (a pest dump of the wrapped query) into a column in the
/// user's own text and what was expected there, in words.
fn explain(err: &str, wrapper: usize) -> String {
    let column = err
        .split("--> ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c.is_whitespace()).next())
        .and_then(|pos| pos.split(':').nth(1))
        .and_then(|c| c.parse::<usize>().ok())
        .map(|c| c.saturating_sub(wrapper).max(1));
    let expected: Vec<&str> = err
        .split("= expected ")
        .nth(1)
        .map(|rest| rest.lines().next().unwrap_or_default())
        .unwrap_or_default()
        .split([',', ' '])
        .filter(|w| !w.is_empty() && *w != "or")
        .collect();
    let mut words: Vec<&str> = Vec::new();
    for rule in expected {
        let word = match rule {
            "comp_op" => "a comparison operator (==, !=, <, <=, >, >=)",
            "logical_expr_and" | "logical_expr" => "&& or ||",
            "literal" | "string" | "number" => "a literal ('text', 42, true, null)",
            "selector"
            | "segment"
            | "name_segment"
            | "index_segment"
            | "ALPHA"
            | "member_name_shorthand" => "a field name or [index]",
            "filter_query" | "rel_query" | "jp_query" | "singular_query" => {
                "a path such as @.data.status"
            }
            _ => "a valid expression",
        };
        if !words.contains(&word) {
            words.push(word);
        }
    }
    let place = column
        .map(|c| format!("at column {c}"))
        .unwrap_or_else(|| "here".into());
    if words.is_empty() {
        format!("syntax error {place}")
    } else {
        format!("syntax error {place}: expected {}", words.join(" or "))
    }
}

/// A compiled JSONPath query that selects a single value, e.g. `$.data.order_id`.
#[derive(Debug, Clone)]
pub struct ValuePath {
    source: String,
    query: JpQuery,
    /// True when the query uses `match()`/`search()` (rewritten by [`expr_regex`]).
    regex: bool,
}

impl ValuePath {
    /// Compiles a query; it must start with `$`.
    pub fn compile(path: &str) -> Result<ValuePath, String> {
        let trimmed = path.trim();
        if !trimmed.starts_with('$') {
            return Err(format!(
                "invalid JSONPath {trimmed:?}: a path starts with `$`, e.g. \"$.data.order_id\""
            ));
        }
        let query = parse_json_path(trimmed).map_err(|e| {
            format!(
                "invalid JSONPath {trimmed:?}: {}",
                explain(&e.to_string(), 0)
            )
        })?;
        let regex =
            expr_regex::check(&query).map_err(|e| format!("invalid JSONPath {trimmed:?}: {e}"))?;
        Ok(ValuePath {
            source: trimmed.to_owned(),
            query: if regex {
                expr_regex::rewrite(&query)
            } else {
                query
            },
            regex,
        })
    }

    /// The path as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first value the path selects, if any.
    pub fn select<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        if self.regex {
            // Evaluate on a copy that knows the bounded match()/search(), then find the hit
            // in the original by its normalized path.
            let node = Node::from(value.clone());
            let path = js_path_process(&self.query, &node)
                .ok()?
                .into_iter()
                .next()?
                .path;
            return value.reference(path);
        }
        js_path_process(&self.query, value)
            .ok()
            .and_then(|hits| hits.into_iter().next().map(|h| h.val))
    }

    /// The selected value as a key string: strings as they are, other scalars as JSON text;
    /// `None` when nothing (or null) is selected.
    pub fn select_key(&self, value: &Value) -> Option<String> {
        match self.select(value)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(p.may_match(br#"{"status":"cancelled","total":5}"#));
        assert!(p.may_match(br#"{"status":"\u0063ancelled","total":500}"#));
        let or = Predicate::compile("@.data.status == 'a' || @.data.status == 'b'").unwrap();
        assert!(or.may_match(b"{}"));
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
            let err = Predicate::compile(expr).unwrap_err();
            assert!(
                err.contains("not a valid regular expression") || err.contains("pattern string"),
                "{expr}: {err}"
            );
        }
        let err = Predicate::compile(r"match(@.data.code, '(\\w{100}){100}')").unwrap_err();
        assert!(err.contains("compiles to more than"), "{err}");
        let err = ValuePath::compile("$.data.items[?match(@.sku, 'abc(')].id").unwrap_err();
        assert!(err.contains("not a valid regular expression"), "{err}");
    }

    #[test]
    fn regex_functions_keep_their_meaning() {
        let p =
            Predicate::compile("match(@.data.code, 'A.C') && search(@.data.note, 'urgent|asap')")
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
}
