//! `match()` and `search()` in JSONPath filter expressions (RFC 9535 §2.4.6–2.4.7), checked when
//! the pipeline is loaded and bounded when it runs.
//!
//! jsonpath-rust compiles the pattern with `Regex::new` every time it evaluates `match()` or
//! `search()`, for every record, and treats a pattern it cannot compile as "no match". So an
//! invalid pattern in a pipeline file silently matched nothing, and a pattern taken from the
//! record (`match(@.data.code, @.data.pattern)`) could cost a large compilation per record.
//!
//! Here, instead:
//!
//! - [`check`] walks a parsed query: a pattern written in the expression (a literal) is compiled
//!   once, and an invalid or oversized one is a load error;
//! - [`rewrite`] replaces `match`/`search` by custom functions that jsonpath-rust hands to
//!   [`Node`], this module's JSON value type, whose [`Queryable::extension_custom`] evaluates
//!   them with compiled regexes from a small per-thread cache;
//! - a pattern written in the expression is compiled with the `regex` crate's usual size limit
//!   ([`LITERAL_SIZE_LIMIT`]) once per thread and kept; a pattern taken from a record is compiled
//!   with a smaller one ([`RECORD_SIZE_LIMIT`]) and a length limit ([`MAX_PATTERN_LEN`]), kept in a
//!   small least-recently-used cache, and one over a limit (or invalid) matches nothing, like any
//!   other pattern that is not an I-Regexp. Records cannot evict the expression's own patterns.
//!
//! The translation of an I-Regexp (RFC 9485) into the `regex` crate's syntax is the one
//! jsonpath-rust uses: `.` outside a class does not match `\n` or `\r`, and `match()` anchors
//! the whole pattern.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use jsonpath_rust::parser::model::{
    Comparable, Comparison, Filter, FilterAtom, FnArg, JpQuery, Literal, Segment, Selector, Test,
    TestFunction,
};
use jsonpath_rust::query::queryable::Queryable;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

/// The longest pattern compiled, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// The most memory a pattern written in the expression may compile to (the `regex` crate's
/// default `size_limit`).
pub const LITERAL_SIZE_LIMIT: usize = 10 << 20;
/// The most memory a pattern taken from a record may compile to.
pub const RECORD_SIZE_LIMIT: usize = 1 << 20;
/// The lazy DFA cache of one pattern taken from a record.
const RECORD_DFA_SIZE_LIMIT: usize = 256 << 10;
/// Patterns taken from records kept compiled, per thread.
const CACHE_ENTRIES: usize = 32;

/// The functions `match`/`search` become: with the pattern written in the expression, or taken
/// from the record.
const MATCH_LITERAL: &str = "flux:match";
const SEARCH_LITERAL: &str = "flux:search";
const MATCH_RECORD: &str = "flux:match-record";
const SEARCH_RECORD: &str = "flux:search-record";

/// Where a pattern comes from, which sets its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Written in the pipeline file, checked when it is loaded.
    Expression,
    /// Taken from a record.
    Record,
}

/// Compiles an I-Regexp for `match()` (`whole = true`) or `search()`, within the limits. The
/// error is a phrase that follows "the pattern …", e.g. "is not a valid regular expression: …".
pub fn compile(pattern: &str, whole: bool, origin: Origin) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_PATTERN_LEN} are allowed",
            pattern.len()
        ));
    }
    let limit = match origin {
        Origin::Expression => LITERAL_SIZE_LIMIT,
        Origin::Record => RECORD_SIZE_LIMIT,
    };
    let mut builder = RegexBuilder::new(&translate(pattern, whole));
    builder.size_limit(limit);
    if origin == Origin::Record {
        builder.dfa_size_limit(RECORD_DFA_SIZE_LIMIT);
    }
    builder
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "compiles to more than {} MiB; write it smaller (a Unicode class such as \\w repeated many times is large: [A-Za-z0-9_] is small)",
                limit >> 20
            ),
            regex::Error::Syntax(s) => format!(
                "is not a valid regular expression: {}",
                s.lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("error: "))
                    .unwrap_or(s.lines().last().unwrap_or_default())
            ),
            other => other.to_string(),
        })
}

/// Translates an I-Regexp (RFC 9485) into the `regex` crate's syntax, as jsonpath-rust does.
fn translate(pattern: &str, whole: bool) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '.' if !in_class => out.push_str(r"[^\n\r]"),
            _ => out.push(c),
        }
    }
    if whole { format!("^(?:{out})$") } else { out }
}

/// A pattern and whether it must match the whole text.
type Key = (String, bool);
/// A compiled pattern, or `None` when it does not compile within the limits.
type Compiled = Option<Arc<Regex>>;

/// Compiled patterns, per thread: the expression's own, kept (there are as many as the pipeline
/// file has), and those taken from records (a failed compilation too), least recently used out
/// first.
#[derive(Default)]
struct Cache {
    expression: HashMap<Key, Compiled>,
    /// With the clock value of their last use.
    entries: HashMap<Key, (Compiled, u64)>,
    clock: u64,
    compilations: u64,
}

impl Cache {
    fn get(&mut self, pattern: &str, whole: bool, origin: Origin) -> Option<Arc<Regex>> {
        if origin == Origin::Expression {
            if let Some(re) = self.expression.get(&(pattern.to_owned(), whole)) {
                return re.clone();
            }
            self.compilations += 1;
            let re = compile(pattern, whole, origin).ok().map(Arc::new);
            self.expression
                .insert((pattern.to_owned(), whole), re.clone());
            return re;
        }
        self.clock += 1;
        let clock = self.clock;
        // Lookup without allocating a key: the cache is small.
        if let Some((re, used)) = self
            .entries
            .iter_mut()
            .find(|((p, w), _)| *w == whole && p == pattern)
            .map(|(_, v)| v)
        {
            *used = clock;
            return re.clone();
        }
        if self.entries.len() >= CACHE_ENTRIES
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.compilations += 1;
        let re = compile(pattern, whole, origin).ok().map(Arc::new);
        self.entries
            .insert((pattern.to_owned(), whole), (re.clone(), clock));
        re
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// How many patterns this thread has compiled for `match()`/`search()` so far.
pub fn compilations() -> u64 {
    CACHE.with(|c| c.borrow().compilations)
}

fn is_match(text: &str, pattern: &str, whole: bool, origin: Origin) -> bool {
    CACHE.with(|c| {
        let re = c.borrow_mut().get(pattern, whole, origin);
        re.is_some_and(|re| re.is_match(text))
    })
}

/// Checks every `match()`/`search()` of a query: a literal pattern must compile (within the
/// limits). Returns true when the query has any.
pub fn check(query: &JpQuery) -> Result<bool, String> {
    let mut found = false;
    visit_query(query, &mut |f| {
        let (name, pattern) = match f {
            TestFunction::Match(_, p) => ("match", p),
            TestFunction::Search(_, p) => ("search", p),
            _ => return Ok(()),
        };
        found = true;
        match pattern {
            FnArg::Literal(Literal::String(p)) => compile(p, name == "match", Origin::Expression)
                .map(|_| ())
                .map_err(|e| format!("the pattern {p:?} of {name}() {e}")),
            FnArg::Literal(_) => Err(format!(
                "{name}() takes a pattern string as its second argument, e.g. {name}(@.data.code, '[A-Z]{{3}}')"
            )),
            _ => Ok(()),
        }
    })?;
    Ok(found)
}

fn visit_query(
    q: &JpQuery,
    f: &mut dyn FnMut(&TestFunction) -> Result<(), String>,
) -> Result<(), String> {
    q.segments.iter().try_for_each(|s| visit_segment(s, f))
}

fn visit_segment(
    s: &Segment,
    f: &mut dyn FnMut(&TestFunction) -> Result<(), String>,
) -> Result<(), String> {
    match s {
        Segment::Descendant(inner) => visit_segment(inner, f),
        Segment::Selector(sel) => visit_selector(sel, f),
        Segment::Selectors(sels) => sels.iter().try_for_each(|s| visit_selector(s, f)),
    }
}

fn visit_selector(
    s: &Selector,
    f: &mut dyn FnMut(&TestFunction) -> Result<(), String>,
) -> Result<(), String> {
    match s {
        Selector::Filter(filter) => visit_filter(filter, f),
        _ => Ok(()),
    }
}

fn visit_filter(
    filter: &Filter,
    f: &mut dyn FnMut(&TestFunction) -> Result<(), String>,
) -> Result<(), String> {
    match filter {
        Filter::Or(parts) | Filter::And(parts) => parts.iter().try_for_each(|p| visit_filter(p, f)),
        Filter::Atom(FilterAtom::Filter { expr, .. }) => visit_filter(expr, f),
        Filter::Atom(FilterAtom::Test { expr, .. }) => visit_test(expr, f),
        Filter::Atom(FilterAtom::Comparison(cmp)) => {
            let (a, b) = cmp.vals();
            visit_comparable(a, f)?;
            visit_comparable(b, f)
        }
    }
}

fn visit_comparable(
    c: &Comparable,
    f: &mut dyn FnMut(&TestFunction) -> Result<(), String>,
) -> Result<(), String> {
    match c {
        Comparable::Function(func) => visit_function(func, f),
        _ => Ok(()),
    }
}

fn visit_test(
    t: &Test,
    f: &mut dyn FnMut(&TestFunction) -> Result<(), String>,
) -> Result<(), String> {
    match t {
        Test::RelQuery(segments) => segments.iter().try_for_each(|s| visit_segment(s, f)),
        Test::AbsQuery(q) => visit_query(q, f),
        Test::Function(func) => visit_function(func, f),
    }
}

fn visit_function(
    func: &TestFunction,
    f: &mut dyn FnMut(&TestFunction) -> Result<(), String>,
) -> Result<(), String> {
    f(func)?;
    let args: Vec<&FnArg> = match func {
        TestFunction::Custom(_, args) => args.iter().collect(),
        TestFunction::Length(a) => vec![a.as_ref()],
        TestFunction::Value(a) | TestFunction::Count(a) => vec![a],
        TestFunction::Search(a, b) | TestFunction::Match(a, b) => vec![a, b],
    };
    for arg in args {
        match arg {
            FnArg::Literal(_) => {}
            FnArg::Test(t) => visit_test(t, f)?,
            FnArg::Filter(filter) => visit_filter(filter, f)?,
        }
    }
    Ok(())
}

/// The query with every `match()`/`search()` replaced by this module's bounded, cached
/// versions. Evaluate the result on [`Node`]s only.
pub fn rewrite(query: &JpQuery) -> JpQuery {
    JpQuery::new(query.segments.iter().map(rw_segment).collect())
}

fn rw_segment(s: &Segment) -> Segment {
    match s {
        Segment::Descendant(inner) => Segment::Descendant(Box::new(rw_segment(inner))),
        Segment::Selector(sel) => Segment::Selector(rw_selector(sel)),
        Segment::Selectors(sels) => Segment::Selectors(sels.iter().map(rw_selector).collect()),
    }
}

fn rw_selector(s: &Selector) -> Selector {
    match s {
        Selector::Filter(filter) => Selector::Filter(rw_filter(filter)),
        other => other.clone(),
    }
}

fn rw_filter(filter: &Filter) -> Filter {
    match filter {
        Filter::Or(parts) => Filter::Or(parts.iter().map(rw_filter).collect()),
        Filter::And(parts) => Filter::And(parts.iter().map(rw_filter).collect()),
        Filter::Atom(FilterAtom::Filter { expr, not }) => Filter::Atom(FilterAtom::Filter {
            expr: Box::new(rw_filter(expr)),
            not: *not,
        }),
        Filter::Atom(FilterAtom::Test { expr, not }) => Filter::Atom(FilterAtom::Test {
            expr: Box::new(rw_test(expr)),
            not: *not,
        }),
        Filter::Atom(FilterAtom::Comparison(cmp)) => {
            let c = |c: &Comparable| match c {
                Comparable::Function(func) => Comparable::Function(rw_function(func)),
                other => other.clone(),
            };
            let cmp = match cmp.as_ref() {
                Comparison::Eq(a, b) => Comparison::Eq(c(a), c(b)),
                Comparison::Ne(a, b) => Comparison::Ne(c(a), c(b)),
                Comparison::Gt(a, b) => Comparison::Gt(c(a), c(b)),
                Comparison::Gte(a, b) => Comparison::Gte(c(a), c(b)),
                Comparison::Lt(a, b) => Comparison::Lt(c(a), c(b)),
                Comparison::Lte(a, b) => Comparison::Lte(c(a), c(b)),
            };
            Filter::Atom(FilterAtom::Comparison(Box::new(cmp)))
        }
    }
}

fn rw_test(t: &Test) -> Test {
    match t {
        Test::RelQuery(segments) => Test::RelQuery(segments.iter().map(rw_segment).collect()),
        Test::AbsQuery(q) => Test::AbsQuery(rewrite(q)),
        Test::Function(func) => Test::Function(Box::new(rw_function(func))),
    }
}

fn rw_arg(a: &FnArg) -> FnArg {
    match a {
        FnArg::Literal(l) => FnArg::Literal(l.clone()),
        FnArg::Test(t) => FnArg::Test(Box::new(rw_test(t))),
        FnArg::Filter(f) => FnArg::Filter(rw_filter(f)),
    }
}

fn rw_function(func: &TestFunction) -> TestFunction {
    let literal = |p: &FnArg| matches!(p, FnArg::Literal(_));
    match func {
        TestFunction::Match(a, b) => TestFunction::Custom(
            if literal(b) {
                MATCH_LITERAL
            } else {
                MATCH_RECORD
            }
            .into(),
            vec![rw_arg(a), rw_arg(b)],
        ),
        TestFunction::Search(a, b) => TestFunction::Custom(
            if literal(b) {
                SEARCH_LITERAL
            } else {
                SEARCH_RECORD
            }
            .into(),
            vec![rw_arg(a), rw_arg(b)],
        ),
        TestFunction::Custom(name, args) => {
            TestFunction::Custom(name.clone(), args.iter().map(rw_arg).collect())
        }
        TestFunction::Length(a) => TestFunction::Length(Box::new(rw_arg(a))),
        TestFunction::Value(a) => TestFunction::Value(rw_arg(a)),
        TestFunction::Count(a) => TestFunction::Count(rw_arg(a)),
    }
}

/// A JSON value for evaluating rewritten queries: the same data as [`serde_json::Value`] (objects
/// keep `serde_json`'s member order), whose custom functions include the bounded `match()` and
/// `search()`.
#[derive(Debug, Clone, Default)]
pub enum Node {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object, members in `serde_json`'s order.
    Object(Vec<(String, Node)>),
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Node::Null, Node::Null) => true,
            (Node::Bool(a), Node::Bool(b)) => a == b,
            (Node::Number(a), Node::Number(b)) => a == b,
            (Node::String(a), Node::String(b)) => a == b,
            (Node::Array(a), Node::Array(b)) => a == b,
            // Like serde_json: members compare as a map, whatever their order.
            (Node::Object(a), Node::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.iter().any(|(k2, v2)| k == k2 && v == v2))
            }
            _ => false,
        }
    }
}

impl From<Value> for Node {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => Node::Number(n),
            Value::String(s) => Node::String(s),
            Value::Array(items) => Node::Array(items.into_iter().map(Node::from).collect()),
            Value::Object(map) => {
                Node::Object(map.into_iter().map(|(k, v)| (k, Node::from(v))).collect())
            }
        }
    }
}

impl From<&Node> for Value {
    fn from(n: &Node) -> Self {
        match n {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Array(items) => Value::Array(items.iter().map(Value::from).collect()),
            Node::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<&str> for Node {
    fn from(s: &str) -> Self {
        Node::String(s.to_owned())
    }
}

impl From<String> for Node {
    fn from(s: String) -> Self {
        Node::String(s)
    }
}

impl From<bool> for Node {
    fn from(b: bool) -> Self {
        Node::Bool(b)
    }
}

impl From<i64> for Node {
    fn from(i: i64) -> Self {
        Node::Number(i.into())
    }
}

impl From<f64> for Node {
    fn from(f: f64) -> Self {
        serde_json::Number::from_f64(f).map_or(Node::Null, Node::Number)
    }
}

impl From<Vec<Node>> for Node {
    fn from(items: Vec<Node>) -> Self {
        Node::Array(items)
    }
}

impl Queryable for Node {
    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Node::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&Vec<Self>> {
        match self {
            Node::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_object(&self) -> Option<Vec<(&str, &Self)>> {
        match self {
            Node::Object(members) => Some(members.iter().map(|(k, v)| (k.as_str(), v)).collect()),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Node::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Node::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Node::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn null() -> Self {
        Node::Null
    }

    fn extension_custom(name: &str, args: Vec<Cow<Self>>) -> Self {
        let (whole, origin) = match name {
            MATCH_LITERAL => (true, Origin::Expression),
            SEARCH_LITERAL => (false, Origin::Expression),
            MATCH_RECORD => (true, Origin::Record),
            SEARCH_RECORD => (false, Origin::Record),
            // jsonpath-rust's own extensions (`in`, `nin`, …), on serde_json values.
            other => {
                let args = args
                    .iter()
                    .map(|a| Cow::Owned(Value::from(a.as_ref())))
                    .collect();
                return Node::from(<Value as Queryable>::extension_custom(other, args));
            }
        };
        // A missing argument (a path that selects nothing) leaves fewer than two.
        Node::Bool(match args.as_slice() {
            [text, pattern] => match (text.as_str(), pattern.as_str()) {
                (Some(text), Some(pattern)) => is_match(text, pattern, whole, origin),
                _ => false,
            },
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_translation_follows_i_regexp() {
        assert_eq!(translate("a.b", true), r"^(?:a[^\n\r]b)$");
        assert_eq!(translate(r"[.]\.", false), r"[.]\.");
        let e = Origin::Expression;
        assert!(compile("a|b", true, e).unwrap().is_match("a"));
        assert!(!compile("a|b", true, e).unwrap().is_match("ab"));
        assert!(compile("a|b", false, e).unwrap().is_match("xbx"));
    }

    #[test]
    fn limits_refuse_oversized_patterns() {
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(
            compile(&long, true, Origin::Expression)
                .unwrap_err()
                .contains("bytes long")
        );
        for origin in [Origin::Expression, Origin::Record] {
            let big = compile(r"(\w{100}){100}", true, origin).unwrap_err();
            assert!(big.contains("compiles to more than"), "{big}");
            let err = compile("abc(", true, origin).unwrap_err();
            assert!(err.contains("not a valid regular expression"), "{err}");
        }
        // A written pattern may be larger than one a record supplies.
        assert!(compile(r"[\p{L}\d]{8,32}", true, Origin::Expression).is_ok());
        assert!(compile(r"[\p{L}\d]{8,32}", true, Origin::Record).is_err());
    }

    #[test]
    fn the_cache_compiles_each_pattern_once_and_stays_small() {
        std::thread::spawn(|| {
            let r = Origin::Record;
            for _ in 0..100 {
                assert!(is_match("abc", "a.c", true, Origin::Expression));
                assert!(is_match("abc", "a.c", true, r));
                assert!(!is_match("abc", r"(\w{100}){100}", true, r));
            }
            assert_eq!(compilations(), 3);
            for i in 0..(CACHE_ENTRIES * 3) {
                is_match("x", &format!("x{i}?"), true, r);
            }
            CACHE.with(|c| assert_eq!(c.borrow().entries.len(), CACHE_ENTRIES));
            // The expression's own pattern was not evicted.
            assert!(is_match("abc", "a.c", true, Origin::Expression));
            assert_eq!(compilations(), 3 + CACHE_ENTRIES as u64 * 3);
        })
        .join()
        .unwrap();
    }
}
