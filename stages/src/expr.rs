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

mod sparse;
use sparse::SparsePaths;

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
/// For a predicate over simple payload paths it also evaluates the predicate itself on the
/// values found in the bytes ([`sparse`]), which is exact.
#[derive(Debug, Clone)]
pub struct Prefilter {
    literals: std::sync::Arc<Vec<memchr::memmem::Finder<'static>>>,
    exact: Option<std::sync::Arc<Exact>>,
}

/// The predicate, for evaluating on a sparse view.
#[derive(Debug)]
struct Exact {
    paths: SparsePaths,
    query: JpQuery,
    regex: bool,
}

/// Finds the member that holds a payload base64-encoded.
static DATA_B64: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"data_b64\""));

impl Prefilter {
    /// False when the bytes certainly cannot hold a matching payload.
    pub fn may_match(&self, raw: &[u8]) -> bool {
        self.decide(raw).unwrap_or(true)
    }

    /// Whether the payload `raw` matches, when the bytes tell: `Some(false)` when a literal is
    /// missing, the predicate's answer on the payload's sparse view when it reads only simple
    /// payload paths, `None` when only a parse can tell.
    pub fn decide(&self, raw: &[u8]) -> Option<bool> {
        if !self.literals_may_match(raw) {
            return Some(false);
        }
        let exact = self.exact.as_ref()?;
        let view = exact.paths.payload_view(raw)?;
        Some(evaluate(&exact.query, exact.regex, view))
    }

    fn literals_may_match(&self, raw: &[u8]) -> bool {
        if self.literals.is_empty() || memchr::memchr(b'\\', raw).is_some() {
            return true;
        }
        self.literals.iter().all(|lit| lit.find(raw).is_some())
    }

    /// False when an archive line (one envelope) certainly cannot hold a matching payload.
    /// A payload stored base64-encoded under `data_b64` (not JSON, or JSON with surrounding
    /// whitespace or line breaks) is invisible to a byte test, so such lines always pass.
    pub fn may_match_envelope(&self, line: &[u8]) -> bool {
        if !self.is_useful() || DATA_B64.find(line).is_some() {
            return true;
        }
        if !self.literals_may_match(line) {
            return false;
        }
        match &self.exact {
            Some(exact) => exact
                .paths
                .envelope_view(line)
                .is_none_or(|view| evaluate(&exact.query, exact.regex, view)),
            None => true,
        }
    }

    /// True when the prefilter can rule anything out.
    pub fn is_useful(&self) -> bool {
        !self.literals.is_empty() || self.exact.is_some()
    }
}

/// A filter expression or JSONPath that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// Nothing but spaces.
    #[error("the filter expression is empty")]
    Empty,
    /// Text that is not a valid expression of its kind.
    #[error("invalid {what} {expr:?}: {reason}")]
    Invalid {
        /// "filter expression" or "JSONPath".
        what: &'static str,
        /// The expression, trimmed.
        expr: String,
        /// What is wrong, where (a column) when the parser says.
        reason: String,
    },
}

impl From<ExprError> for String {
    fn from(e: ExprError) -> String {
        e.to_string()
    }
}

impl Predicate {
    /// Compiles a filter expression (the part inside `[?…]`).
    pub fn compile(expr: &str) -> Result<Predicate, ExprError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(ExprError::Empty);
        }
        let invalid = |reason: String| ExprError::Invalid {
            what: "filter expression",
            expr: trimmed.to_owned(),
            reason,
        };
        check_nesting(trimmed).map_err(invalid)?;
        let query = parse_json_path(&format!("$[?{trimmed}]"))
            .map_err(|e| invalid(explain(&e.to_string(), 3)))?;
        let filter = match query.segments.as_slice() {
            [Segment::Selector(Selector::Filter(filter))] => filter.clone(),
            _ => {
                return Err(invalid(
                    "expected one filter expression such as \"@.data.status == 'paid'\"".into(),
                ));
            }
        };
        let regex = expr_regex::check(&query).map_err(invalid)?;
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
            exact: SparsePaths::of(&filter).map(|paths| {
                std::sync::Arc::new(Exact {
                    paths,
                    query: query.clone(),
                    regex,
                })
            }),
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

    /// Whether the payload `raw` matches when the bytes tell without a parse (see
    /// [`Prefilter::decide`]).
    pub fn decide(&self, raw_data: &[u8]) -> Option<bool> {
        self.prefilter.decide(raw_data)
    }

    /// Evaluates the predicate against a record's envelope view.
    pub fn matches(&self, view: Value) -> bool {
        evaluate(&self.query, self.regex, view)
    }
}

/// Evaluates a compiled `$[?…]` query against one view: true when the view is selected.
fn evaluate(query: &JpQuery, regex: bool, view: Value) -> bool {
    if regex {
        let root = Node::Array(vec![Node::from(view)]);
        return js_path_process(query, &root).is_ok_and(|hits| !hits.is_empty());
    }
    let root = Value::Array(vec![view]);
    js_path_process(query, &root).is_ok_and(|hits| !hits.is_empty())
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

/// Parentheses and brackets open at once, at most, in an expression or path.
const MAX_NESTING: usize = 10;

/// Refuses text nested deeper than [`MAX_NESTING`] (outside string literals). jsonpath-rust's
/// parser backtracks exponentially in the depth of unclosed calls such as `count(count(…`:
/// 14 levels took seconds, so a hostile pipeline file or variable could stall its loading.
fn check_nesting(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(format!(
                            "parentheses and brackets are nested more than {MAX_NESTING} levels deep"
                        ));
                    }
                }
                ')' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    Ok(())
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
    pub fn compile(path: &str) -> Result<ValuePath, ExprError> {
        let trimmed = path.trim();
        let invalid = |reason: String| ExprError::Invalid {
            what: "JSONPath",
            expr: trimmed.to_owned(),
            reason,
        };
        if !trimmed.starts_with('$') {
            return Err(invalid(
                "a path starts with `$`, e.g. \"$.data.order_id\"".into(),
            ));
        }
        check_nesting(trimmed).map_err(invalid)?;
        let query = parse_json_path(trimmed).map_err(|e| invalid(explain(&e.to_string(), 0)))?;
        let regex = expr_regex::check(&query).map_err(invalid)?;
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
mod tests;
