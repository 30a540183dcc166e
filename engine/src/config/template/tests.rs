//! Rendering as a whole: text and offsets mapped back, undefined variables, defaults and `env`.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, toml::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
        .collect()
}

#[test]
fn renders_and_maps_offsets_back() {
    let t = "a = \"{{ x }}\"\n{% if true %}\nb = 1\n{% endif %}\nc = 2\n";
    let r = render("t.toml", t, &vars(&[("x", "hello")])).unwrap();
    assert_eq!(r.text, "a = \"hello\"\nb = 1\nc = 2\n");
    let c_out = r.text.find("c = 2").unwrap();
    assert_eq!(r.source_offset(c_out), t.find("c = 2").unwrap());
    let hello = r.text.find("hello").unwrap();
    assert_eq!(r.source_offset(hello), t.find("x }}").unwrap());
}

#[test]
fn undefined_variables_are_named() {
    let t = "a = 1\nb = \"{{ incident }}\"\n";
    let err = render("t.toml", t, &vars(&[])).unwrap_err();
    assert_eq!(err.message, "template variable `incident` is not defined");
    assert_eq!(err.location.unwrap().line, 2);
}

#[test]
fn defaults_and_env() {
    // SAFETY-free: tests set a unique variable name.
    let t =
        "a = \"{{ target | default(stream) }}\"\nb = \"{{ env('FLUX_TEST_HOME_NOT_SET_X') }}\"\n";
    let err = render("t.toml", t, &vars(&[("stream", "orders")])).unwrap_err();
    assert!(
        err.message.contains("FLUX_TEST_HOME_NOT_SET_X"),
        "{}",
        err.message
    );
    let r = render(
        "t.toml",
        "a = \"{{ target | default(stream) }}\"\n",
        &vars(&[("stream", "orders")]),
    )
    .unwrap();
    assert_eq!(r.text, "a = \"orders\"\n");
}
