//! Every value is written for the place it lands in.
use super::*;

#[test]
fn a_loop_that_runs_too_long_is_an_error_naming_the_file_and_line() {
    let d = render_with(
        "# pipeline\n{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(d.file, "t.toml");
    assert!(
        d.message.contains("rendering stopped after"),
        "{}",
        d.message
    );
    assert_eq!(d.location.as_ref().map(|l| l.line), Some(2), "{d:?}");
}

#[test]
fn output_past_the_size_budget_is_an_error() {
    for t in [
        "{% for a in range(1000) %}{{ \"x\" * 100000 }}{% endfor %}",
        "{% for a in range(100) %}{% set b %}{{ \"y\" * 1000000 }}{% endset %}{{ b }}{% endfor %}",
        "{% for a in range(300) %}x = \"{{ \"z\" * 100000 }}\"\n{% endfor %}",
    ] {
        let d = render_with(t, &[]).unwrap_err();
        assert!(
            d.message.contains("larger than 16 MiB"),
            "{t}: {}",
            d.message
        );
    }
}

#[test]
fn a_loop_over_five_hundred_stages_renders_within_the_budget() {
    let t = "{% for i in range(500) %}[transforms.f{{ i }}]\ntype = \"filter\"\ninputs = [\"in\"]\nwhere = \"{{ 'x' ~ i }}\"\n\n{% endfor %}";
    let text = render_with(t, &[]).unwrap();
    assert_eq!(text.matches("[transforms.f").count(), 500);
}

fn render_with(t: &str, pairs: &[(&str, toml::Value)]) -> Result<String, Diagnostic> {
    let vars = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    render("t.toml", t, &vars).map(|r| r.text)
}

fn s(v: &str) -> toml::Value {
    toml::Value::String(v.into())
}

fn parse(text: &str) -> toml::Table {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const EVIL: &str =
    "x\"\n[sinks.evil]\ntype = \"file\"\ninputs = [\"orders\"]\npath = \"/tmp/evil.jsonl\"\n#";

#[test]
fn a_value_cannot_end_its_string() {
    for t in [
        "a = \"{{ v }}\"\n",
        "a = \"\"\"{{ v }}\"\"\"\n",
        "a = { b = \"pre-{{ v }}-post\" }\n",
        "a = [\"{{ v }}\", \"{{ v }}\"]\n",
    ] {
        let text = render_with(t, &[("v", s(EVIL))]).unwrap();
        let table = parse(&text);
        assert_eq!(table.keys().collect::<Vec<_>>(), ["a"], "{text}");
        assert!(
            text.contains(&escape::quoted(EVIL)[1..EVIL.len()]) || text.contains("\\n"),
            "{text}"
        );
    }
    let table =
        parse(&render_with("a = { b = \"pre-{{ v }}-post\" }\n", &[("v", s(EVIL))]).unwrap());
    assert_eq!(
        table["a"]["b"].as_str().unwrap(),
        format!("pre-{EVIL}-post")
    );
}

#[test]
fn values_where_a_value_goes_are_typed_literals() {
    let text = render_with(
        "a = {{ s }}\nb = {{ n }}\nc = {{ f }}\nd = {{ t }}\ne = {{ l }}\nf = {{ m }}\ng = [{{ s }}, {{ n }}]\nh = { x = {{ s }} }\n",
        &[
            ("s", s(EVIL)),
            ("n", toml::Value::Integer(800)),
            ("f", toml::Value::Float(1.0)),
            ("t", toml::Value::Boolean(false)),
            ("l", toml::Value::Array(vec![s("a'b"), toml::Value::Integer(1)])),
            ("m", toml::Value::Table(toml::Table::from_iter([("k\"]".to_owned(), s(EVIL))]))),
        ],
    )
    .unwrap();
    let t = parse(&text);
    assert_eq!(t.len(), 8, "{text}");
    assert_eq!(t["a"].as_str(), Some(EVIL));
    assert_eq!(t["b"].as_integer(), Some(800));
    assert_eq!(t["c"].as_float(), Some(1.0));
    assert_eq!(t["d"].as_bool(), Some(false));
    assert_eq!(t["e"][0].as_str(), Some("a'b"));
    assert_eq!(t["f"]["k\"]"].as_str(), Some(EVIL));
    assert_eq!(t["g"][0].as_str(), Some(EVIL));
    assert_eq!(t["h"]["x"].as_str(), Some(EVIL));
}

#[test]
fn values_in_key_places_are_quoted_keys() {
    let t = parse(
        &render_with(
            "[sinks.{{ id }}]\ntype = \"file\"\n{{ id }} = 1\n",
            &[("id", s(EVIL))],
        )
        .unwrap(),
    );
    assert_eq!(t.keys().collect::<Vec<_>>(), ["sinks"]);
    let sinks = t["sinks"].as_table().unwrap();
    assert_eq!(sinks.keys().collect::<Vec<_>>(), [EVIL]);
    assert_eq!(sinks[EVIL].as_table().unwrap().len(), 2);
    let err = render_with("{{ l }} = 1\n", &[("l", toml::Value::Array(vec![]))]).unwrap_err();
    assert!(
        err.message.contains("`{{ l }}` cannot be a TOML key"),
        "{}",
        err.message
    );
}

#[test]
fn literal_strings_and_comments_refuse_what_would_end_them() {
    let err = render_with("a = 'x-{{ v }}'\n", &[("v", s("it's"))]).unwrap_err();
    assert_eq!(
        err.message,
        "the value of `{{ v }}` cannot be written inside a '…' string, which has no escapes: it contains a `'`"
    );
    assert_eq!(err.location.unwrap().line, 1);
    assert!(render_with("a = '{{ v }}'\n", &[("v", s("a\nb = 1"))]).is_err());
    let err = render_with("a = 1 # was {{ v }}\n", &[("v", s("x\nevil = 1"))]).unwrap_err();
    assert!(err.message.contains("in a TOML comment"), "{}", err.message);
    assert_eq!(
        render_with("a = '''{{ v }}'''\n", &[("v", s("a\nb"))]).unwrap(),
        "a = '''a\nb'''\n"
    );
    assert_eq!(
        render_with("a = 'C:\\{{ v }}'\n", &[("v", s("x\"y"))]).unwrap(),
        "a = 'C:\\x\"y'\n"
    );
}

#[test]
fn a_value_after_a_backslash_is_refused() {
    // `"\{{ v }}"` with v = `"` would otherwise write `"\\"`: an escaped backslash, then a quote.
    let err = render_with("a = \"\\{{ v }}\"\n", &[("v", s("\""))]).unwrap_err();
    assert!(
        err.message.contains("right after a `\\`"),
        "{}",
        err.message
    );
    assert_eq!(
        render_with("a = \"\\\\{{ v }}\"\n", &[("v", s("\""))]).unwrap(),
        "a = \"\\\\\\\"\"\n"
    );
}

#[test]
fn template_text_and_tojson_keep_working() {
    // tojson (safe JSON text) where a value goes, as older templates wrote it.
    let t = parse(
        &render_with(
            "k = {{ v | tojson }}\nl = {{ [v, 1] | tojson }}\n",
            &[("v", s(EVIL))],
        )
        .unwrap(),
    );
    assert_eq!(t["k"].as_str(), Some(EVIL));
    assert_eq!(t["l"][0].as_str(), Some(EVIL));
    // … and inside a string it is text like any other, so it cannot end the string.
    let t = parse(
        &render_with(
            "k = { a = \"{{ v | tojson }}\" }\n",
            &[("v", s(", evil = 1, x = "))],
        )
        .unwrap(),
    );
    assert_eq!(t["k"].as_table().unwrap().len(), 1);
    // Captured blocks and macros: template text as it is, the values inside still escaped.
    let text = render_with(
        "{% set block %}b = \"{{ v }}\"\n{% endset %}{{ block }}{% macro m(x) %}\"{{ x }}\"{% endmacro %}c = {{ m(v) }}\n",
        &[("v", s(EVIL))],
    )
    .unwrap();
    let t = parse(&text);
    assert_eq!(t["b"].as_str(), Some(EVIL), "{text}");
    assert_eq!(t["c"].as_str(), Some(EVIL), "{text}");
    // The annotate stage's per-record templates survive the file rendering.
    let text = render_with("f = \"{{ '{{' }} record.shard_id {{ '}}' }}\"\n", &[]).unwrap();
    assert_eq!(text, "f = \"{{ record.shard_id }}\"\n");
}

#[test]
fn concatenating_template_text_with_a_value_still_escapes_the_value() {
    let text = render_with(
        "{% set pre %}x{% endset %}a = \"{{ pre ~ v }}\"\n",
        &[("v", s(EVIL))],
    )
    .unwrap();
    let t = parse(&text);
    assert_eq!(t.len(), 1, "{text}");
    assert_eq!(t["a"].as_str().unwrap(), format!("x{EVIL}"));
    // Where a value goes, the template text stays text and the value a quoted string: not
    // valid TOML, but no new key either.
    let text = render_with(
        "{% set pre %}x{% endset %}{% set both = pre ~ v %}b = {{ both }}\n",
        &[("v", s(EVIL))],
    )
    .unwrap();
    assert!(text.starts_with("b = x\"x\\\""), "{text}");
    assert!(toml::from_str::<toml::Table>(&text).is_err(), "{text}");
}

#[test]
fn safe_is_refused() {
    let err = render_with("a = {{ v | safe }}\n", &[("v", s("1\nevil = 2"))]).unwrap_err();
    assert!(
        err.message.contains("`safe` is not available"),
        "{}",
        err.message
    );
}

#[test]
fn jsonpath_literal_and_path_segment() {
    let text = render_with(
        "w = \"@.data.region == {{ r | jsonpath_literal }}\"\n",
        &[("r", s("eu' || @.x == 'y\\\n"))],
    )
    .unwrap();
    let w = parse(&text)["w"].as_str().unwrap().to_owned();
    assert_eq!(w, "@.data.region == 'eu\\' || @.x == \\'y\\\\\\n'");
    let err = render_with(
        "p = \"r-{{ id | path_segment }}.jsonl\"\n",
        &[("id", s("../../x"))],
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "template: `{{ id | path_segment }}`: the value is not a usable file name: it contains a path separator (`/` or `\\`)"
    );
    assert_eq!(
        render_with(
            "p = \"r-{{ id | path_segment }}.jsonl\"\n",
            &[("id", s("INC-1"))]
        )
        .unwrap(),
        "p = \"r-INC-1.jsonl\"\n"
    );
}

#[test]
fn offsets_map_back_across_escaped_values() {
    let t = "a = \"{{ v }}\"\nb = {{ n }}\nc = oops\n";
    let r = render(
        "t.toml",
        t,
        &BTreeMap::from([
            ("v".to_owned(), s("q\"\n")),
            ("n".to_owned(), toml::Value::Integer(5)),
        ]),
    )
    .unwrap();
    assert_eq!(r.text, "a = \"q\\\"\\n\"\nb = 5\nc = oops\n");
    assert_eq!(
        r.source_offset(r.text.find("c = oops").unwrap()),
        t.find("c = oops").unwrap()
    );
    assert_eq!(
        r.source_offset(r.text.find('5').unwrap()),
        t.find("n }}").unwrap()
    );
}
