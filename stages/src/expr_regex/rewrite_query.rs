//! [`rewrite`]: `match()`/`search()` become custom functions that [`super::Node`] evaluates with
//! compiled, cached regexes.

use jsonpath_rust::parser::model::{
    Comparable, Comparison, Filter, FilterAtom, FnArg, JpQuery, Segment, Selector, Test,
    TestFunction,
};

use super::{MATCH_LITERAL, MATCH_RECORD, SEARCH_LITERAL, SEARCH_RECORD};

/// The query with every `match()`/`search()` replaced by this module's bounded, cached
/// versions. Evaluate the result on [`Node`]s only.
///
/// [`Node`]: super::Node
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
