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
//!
//! [`Queryable::extension_custom`]: jsonpath_rust::query::queryable::Queryable::extension_custom

mod check_query;
mod node;
mod rewrite_query;

pub use check_query::check;
pub use node::Node;
pub use rewrite_query::rewrite;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

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

#[cfg(test)]
mod tests;
