//! [`check`]: a pattern written in a query (a literal) must compile within the limits, found by
//! walking the whole parsed query.

use jsonpath_rust::parser::model::{
    Comparable, Filter, FilterAtom, FnArg, JpQuery, Literal, Segment, Selector, Test, TestFunction,
};

use super::{Origin, compile};

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
