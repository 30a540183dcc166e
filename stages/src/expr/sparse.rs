//! Exact evaluation of a predicate on raw bytes, without parsing the payload into a value, for
//! predicates that read only simple paths into the payload (`@.data.status`, `@.data.a.b`).
//!
//! The paths the predicate reads are found in one structural scan of the bytes
//! ([`crate::json::scan`]), and the predicate is evaluated on a *sparse view*: `{"data": …}`
//! holding only those paths' values. Every query of such a predicate selects the same nodes in
//! the sparse view as in the full one, so the answer is the same; where the scan cannot tell
//! (escaped member names, exponents, text that is not JSON), the caller parses as before.

use jsonpath_rust::parser::model::{
    Comparable, Comparison, Filter, FilterAtom, FnArg, Segment, Selector, SingularQuery,
    SingularQuerySegment, Test, TestFunction,
};
use serde_json::{Map, Value};

use crate::json::scan;

/// The payload paths a predicate reads, when it reads nothing else.
#[derive(Debug, Clone)]
pub(super) struct SparsePaths {
    /// Member names below `data`, one list per path (at least one name each).
    below_data: Vec<Vec<String>>,
    /// The same paths from the envelope's root (`data` first), after the path `data` itself.
    from_root: Vec<Vec<String>>,
}

impl SparsePaths {
    /// The paths of `filter`, or `None` when it reads anything but simple payload paths (other
    /// envelope fields, `$`, wildcards, indexes, descendants, nested filters, custom functions).
    pub(super) fn of(filter: &Filter) -> Option<SparsePaths> {
        let mut below_data = Vec::new();
        filter_paths(filter, &mut below_data)?;
        below_data.sort();
        below_data.dedup();
        let mut from_root = vec![vec!["data".to_owned()]];
        from_root.extend(below_data.iter().map(|names| {
            let mut path = vec!["data".to_owned()];
            path.extend(names.iter().cloned());
            path
        }));
        Some(SparsePaths {
            below_data,
            from_root,
        })
    }

    /// The sparse view of a payload, `None` when the scan cannot tell.
    pub(super) fn payload_view(&self, payload: &[u8]) -> Option<Value> {
        let found = scan::select_many(payload, &self.below_data).ok()?;
        view(&self.below_data, &found)
    }

    /// The sparse view of an archive line (one envelope holding its payload under `data`),
    /// `None` when the scan cannot tell or the line has no `data` member.
    pub(super) fn envelope_view(&self, line: &[u8]) -> Option<Value> {
        let found = scan::select_many(line, &self.from_root).ok()?;
        let (data, below) = found.split_first()?;
        data.as_ref()?;
        view(&self.below_data, below)
    }
}

/// `{"data": {…}}` with each found value at its path.
fn view(paths: &[Vec<String>], found: &[Option<&[u8]>]) -> Option<Value> {
    let mut data = Map::new();
    for (names, text) in paths.iter().zip(found) {
        let Some(text) = text else { continue };
        let value: Value = serde_json::from_slice(text).ok()?;
        insert(&mut data, names, value);
    }
    let mut root = Map::with_capacity(1);
    root.insert("data".to_owned(), Value::Object(data));
    Some(Value::Object(root))
}

/// Puts `value` at `names` below `map`, creating the objects on the way. A found path's
/// ancestors are objects in the text, so a value already there is one (a found prefix, whose
/// text holds the same member).
fn insert(map: &mut Map<String, Value>, names: &[String], value: Value) {
    let Some((last, parents)) = names.split_last() else {
        return;
    };
    let mut at = map;
    for name in parents {
        let slot = at
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(inner) = slot else { return };
        at = inner;
    }
    at.insert(last.clone(), value);
}

fn filter_paths(filter: &Filter, out: &mut Vec<Vec<String>>) -> Option<()> {
    match filter {
        Filter::Or(parts) | Filter::And(parts) => {
            parts.iter().try_for_each(|p| filter_paths(p, out))
        }
        Filter::Atom(FilterAtom::Filter { expr, .. }) => filter_paths(expr, out),
        Filter::Atom(FilterAtom::Test { expr, .. }) => test_paths(expr, out),
        Filter::Atom(FilterAtom::Comparison(cmp)) => {
            let (a, b) = match cmp.as_ref() {
                Comparison::Eq(a, b)
                | Comparison::Ne(a, b)
                | Comparison::Gt(a, b)
                | Comparison::Gte(a, b)
                | Comparison::Lt(a, b)
                | Comparison::Lte(a, b) => (a, b),
            };
            comparable_paths(a, out)?;
            comparable_paths(b, out)
        }
    }
}

fn comparable_paths(c: &Comparable, out: &mut Vec<Vec<String>>) -> Option<()> {
    match c {
        Comparable::Literal(_) => Some(()),
        Comparable::Function(f) => function_paths(f, out),
        Comparable::SingularQuery(SingularQuery::Current(segments)) => {
            let names: Option<Vec<&str>> = segments
                .iter()
                .map(|s| match s {
                    SingularQuerySegment::Name(n) => Some(n.as_str()),
                    SingularQuerySegment::Index(_) => None,
                })
                .collect();
            push_data_path(&names?, out)
        }
        Comparable::SingularQuery(SingularQuery::Root(_)) => None,
    }
}

fn test_paths(t: &Test, out: &mut Vec<Vec<String>>) -> Option<()> {
    match t {
        Test::RelQuery(segments) => {
            let names: Option<Vec<&str>> = segments
                .iter()
                .map(|s| match s {
                    Segment::Selector(Selector::Name(n)) => Some(n.as_str()),
                    _ => None,
                })
                .collect();
            push_data_path(&names?, out)
        }
        Test::AbsQuery(_) => None,
        Test::Function(f) => function_paths(f, out),
    }
}

fn function_paths(f: &TestFunction, out: &mut Vec<Vec<String>>) -> Option<()> {
    let args: Vec<&FnArg> = match f {
        TestFunction::Length(a) => vec![a.as_ref()],
        TestFunction::Value(a) | TestFunction::Count(a) => vec![a],
        TestFunction::Search(a, b) | TestFunction::Match(a, b) => vec![a, b],
        TestFunction::Custom(..) => return None,
    };
    args.into_iter().try_for_each(|a| match a {
        FnArg::Literal(_) => Some(()),
        FnArg::Test(t) => test_paths(t, out),
        FnArg::Filter(f) => filter_paths(f, out),
    })
}

/// Keeps `data.<names…>` (at least one name below `data`); anything else is not sparse.
fn push_data_path(names: &[&str], out: &mut Vec<Vec<String>>) -> Option<()> {
    match names {
        ["data", rest @ ..] if !rest.is_empty() => {
            out.push(rest.iter().map(|n| (*n).to_owned()).collect());
            Some(())
        }
        _ => None,
    }
}
