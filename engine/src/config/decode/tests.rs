use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Deserialize;
use toml::de::DeTable;

use super::*;

fn parse(text: &str) -> Spanned<DeValue<'_>> {
    let root = DeTable::parse(text).expect("valid TOML");
    let span = root.span();
    Spanned::new(span, DeValue::Table(root.into_inner()))
}

fn decode_as<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, Failure> {
    decode_into(parse(text))
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Sink {
    path: String,
    #[serde(default)]
    gzip: bool,
    #[serde(default)]
    level: Option<u32>,
    #[serde(default)]
    ratio: Option<f64>,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    aws: Option<Aws>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    shards: Vec<String>,
}

#[derive(Debug, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Format {
    #[default]
    Jsonl,
    Csv,
    Parquet,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Aws {
    region: String,
}

#[test]
fn every_toml_type_decodes_as_toml_decodes_it() {
    let text = r#"
path = "out.jsonl"
gzip = true
level = 0x10
ratio = 1.5e3
format = "csv"
aws = { region = "eu-west-1" }
tags = { team = "data" }
shards = ["a", "b"]
"#;
    let ours: Sink = decode_as(text).unwrap();
    let toml_own: Sink = toml::from_str(text).unwrap();
    assert_eq!(ours, toml_own);
    assert_eq!(ours.level, Some(16));
    assert_eq!(ours.format, Format::Csv);
}

#[test]
fn an_unknown_key_is_typed_and_placed_on_the_key() {
    let text = "path = \"o\"\naws = { regoin = \"x\" }\n";
    let f = decode_as::<Sink>(text).unwrap_err();
    let DecodeErrorKind::UnknownField { field, expected } = &f.error.kind else {
        panic!("{f:?}")
    };
    assert_eq!(field, "regoin");
    assert_eq!(*expected, ["region"]);
    assert_eq!(&text[f.error.span.clone().unwrap()], "regoin");
    assert_eq!(f.path.to_string(), "aws.regoin");
}

#[test]
fn a_wrong_type_is_placed_on_the_value_and_a_missing_key_on_its_table() {
    let text = "path = \"o\"\nlevel = \"high\"\n";
    let f = decode_as::<Sink>(text).unwrap_err();
    assert!(
        matches!(&f.error.kind, DecodeErrorKind::InvalidType { found, .. } if found == "string \"high\""),
        "{f:?}"
    );
    assert_eq!(&text[f.error.span.clone().unwrap()], "\"high\"");
    assert_eq!(f.path.to_string(), "level");

    let text = "gzip = true\n";
    let f = decode_as::<Sink>(text).unwrap_err();
    assert_eq!(f.error.kind, DecodeErrorKind::MissingField("path"));

    let text = "path = \"o\"\nformat = \"xml\"\n";
    let f = decode_as::<Sink>(text).unwrap_err();
    assert!(matches!(
        &f.error.kind,
        DecodeErrorKind::UnknownVariant { variant, expected }
            if variant == "xml" && expected.len() == 3
    ));
    assert_eq!(&text[f.error.span.clone().unwrap()], "\"xml\"");
}

#[test]
fn a_date_time_decodes_into_toml_values_and_is_a_table_where_a_string_goes() {
    let text = "path = 1979-05-27T07:32:00Z\n";
    let f = decode_as::<Sink>(text).unwrap_err();
    assert!(
        matches!(
            f.error.kind,
            DecodeErrorKind::InvalidType {
                found_table: true,
                ..
            }
        ),
        "{f:?}"
    );
    let value: toml::Table = decode_as(text).unwrap();
    assert_eq!(value, toml::from_str::<toml::Table>(text).unwrap());
}

#[test]
fn the_translation_names_the_key_path_the_span_and_a_suggestion() {
    let text = "path = \"o\"\ngzpi = true\n";
    let root = DeTable::parse(text).unwrap().into_inner();
    let f = decode_as::<Sink>(text).unwrap_err();
    let scope = Scope {
        prefix: "sinks.out",
        names: TableNames::Stage("sinks.out"),
        docs: "docs/pipeline-reference.md",
        fallback: None,
    };
    let p = translate(&f.error, &f.path, &root, &scope);
    assert_eq!(p.kind, crate::diagnostic::DiagnosticKind::UnknownKey);
    assert_eq!(p.field, "sinks.out.gzpi");
    assert_eq!(&text[p.span.unwrap()], "gzpi");
    assert_eq!(p.message, "unknown key `gzpi` in `sinks.out`");
    assert_eq!(p.help.as_deref(), Some("did you mean `gzip`?"));
    assert_eq!(p.suggestion, Some("gzip"));
    assert_eq!(p.top_key.as_deref(), Some("gzpi"));

    let text = "[cluster]\nname = 1\n";
    let root = DeTable::parse(text).unwrap().into_inner();
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct File {
        cluster: Aws,
    }
    let f = decode_as::<File>(text).unwrap_err();
    let scope = Scope {
        prefix: "",
        names: TableNames::Sections("the cluster file"),
        docs: "docs/cluster.md",
        fallback: None,
    };
    let p = translate(&f.error, &f.path, &root, &scope);
    assert_eq!(p.field, "cluster.name");
    assert_eq!(p.message, "unknown key `name` in [cluster]");
    assert_eq!(p.help.as_deref(), Some("expected one of `region`"));
}

/// Any TOML document decodes into `toml::Table` exactly as toml's own deserializer decodes it.
fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        any::<f64>()
            .prop_filter("toml writes NaN without its payload", |f| !f.is_nan())
            .prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        ".*".prop_map(toml::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map("[a-z_.\" -]{1,6}", inner, 0..4)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_document_decodes_as_toml_decodes_it(
        doc in prop::collection::btree_map("[a-z_]{1,6}", toml_value(), 0..6)
    ) {
        let table: toml::Table = doc.into_iter().collect();
        let text = toml::to_string(&table).unwrap();
        let ours: toml::Table = decode_as(&text).unwrap();
        let theirs: toml::Table = toml::from_str(&text).unwrap();
        prop_assert_eq!(ours, theirs);
    }
}
