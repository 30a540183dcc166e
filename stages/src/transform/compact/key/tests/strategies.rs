//! Proptest strategies for the key tests: JSON values, and JSON-ish payloads (valid, damaged,
//! with escapes and numbers past u64 and f64) with the key each must give.

pub(super) fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        "[a-c\\\"{}\\[\\]:, é\\\\]{0,6}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[abc]", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON-ish payload and the key `$.data.k` must give when the payload is valid JSON
/// (`None` inside: no key; `Unknown`: a container, not predicted).
#[derive(Debug, Clone)]
pub(super) enum Expect {
    Key(Option<String>),
    Unknown,
}

/// Writes `c` into a JSON string: as it is, as `\uXXXX` (UTF-16 units) or as a short escape.
fn push_char(out: &mut String, c: char, mode: u8) {
    let short = match c {
        '"' => Some("\\\""),
        '\\' => Some("\\\\"),
        '/' => Some("\\/"),
        '\n' => Some("\\n"),
        _ => None,
    };
    match (mode, short) {
        (2, Some(s)) => out.push_str(s),
        (0, None) if c >= ' ' => out.push(c),
        _ => {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
}

fn json_string() -> impl proptest::strategy::Strategy<Value = (String, Expect)> {
    use proptest::prelude::*;
    (
        "[abk\"\\\\/é😀\n\u{1} ]{0,12}",
        proptest::collection::vec(0u8..3, 12),
        proptest::bool::weighted(0.03),
    )
        .prop_map(|(s, modes, lone_surrogate)| {
            let mut text = String::from("\"");
            for (c, m) in s.chars().zip(modes.iter().cycle()) {
                push_char(&mut text, c, *m);
            }
            if lone_surrogate {
                text.push_str("\\udc00");
            }
            text.push('"');
            (text, Expect::Key(Some(s)))
        })
}

fn whitespace() -> impl proptest::strategy::Strategy<Value = &'static str> {
    proptest::sample::select(vec!["", "", "", " ", "\n  ", "\t", "\r\n"])
}

/// A member name: mostly the path's names, sometimes spelled with escapes.
fn member_name() -> impl proptest::strategy::Strategy<Value = (String, String)> {
    use proptest::prelude::*;
    (
        proptest::sample::select(vec!["k", "k", "a", "b", "kk", "K"]),
        0u8..6,
    )
        .prop_map(|(name, mode)| {
            let mut text = String::from("\"");
            for c in name.chars() {
                push_char(&mut text, c, u8::from(mode == 0));
            }
            text.push('"');
            (name.to_owned(), text)
        })
}

/// A scalar: numbers beyond u64 and f64 (also past f64's range), strings with escapes.
fn json_ish_scalar() -> impl proptest::strategy::Strategy<Value = (String, Expect)> {
    use proptest::prelude::*;
    let number = prop_oneof![
        3 => "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,4})?",
        1 => "-?(0|[1-9][0-9]{0,3})(\\.[0-9]{1,4})?[eE][+-]?[0-9]{1,2}",
        1 => "-?[1-9](\\.[0-9]{1,4})?[eE][+-]?[0-9]{3}",
    ];
    prop_oneof![
        1 => Just(("null".to_owned(), Expect::Key(None))),
        1 => Just(("true".to_owned(), Expect::Key(Some("true".into())))),
        1 => Just(("false".to_owned(), Expect::Key(Some("false".into())))),
        4 => number.prop_map(|n| (n.clone(), Expect::Key(Some(n)))),
        4 => json_string(),
    ]
}

fn json_ish_value() -> impl proptest::strategy::Strategy<Value = (String, Expect)> {
    use proptest::prelude::*;
    json_ish_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec((whitespace(), inner.clone(), whitespace()), 0..4).prop_map(
                |items| {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|(a, (v, _), b)| format!("{a}{v}{b}"))
                        .collect();
                    (format!("[{}]", items.join(",")), Expect::Unknown)
                }
            ),
            json_ish_object(inner).prop_map(|(text, _)| (text, Expect::Unknown)),
        ]
    })
}

/// A payload: an object of mostly scalars, objects of scalars and deeper values.
pub(super) fn json_ish_payload() -> impl proptest::strategy::Strategy<Value = (String, Expect)> {
    use proptest::prelude::*;
    json_ish_object(prop_oneof![
        4 => json_ish_scalar(),
        1 => json_ish_object(json_ish_scalar()).prop_map(|(text, _)| (text, Expect::Unknown)),
        1 => json_ish_value(),
    ])
}

/// An object of `values`; the expectation is the last `k` member's.
fn json_ish_object(
    values: impl proptest::strategy::Strategy<Value = (String, Expect)>,
) -> impl proptest::strategy::Strategy<Value = (String, Expect)> {
    use proptest::prelude::*;
    proptest::collection::vec((whitespace(), member_name(), whitespace(), values), 0..5).prop_map(
        |members| {
            let mut expect = Expect::Key(None);
            let parts: Vec<String> = members
                .into_iter()
                .map(|(w1, (name, name_text), w2, (value, e))| {
                    if name == "k" {
                        expect = e;
                    }
                    format!("{w1}{name_text}{w2}:{w2}{value}{w1}")
                })
                .collect();
            (format!("{{{}}}", parts.join(",")), expect)
        },
    )
}

/// How a generated payload is broken (or not).
#[derive(Debug, Clone)]
pub(super) enum Damage {
    None,
    Truncate(proptest::sample::Index),
    Insert(proptest::sample::Index, u8),
    Replace(proptest::sample::Index, u8),
    Append(Vec<u8>),
}

pub(super) fn damage() -> impl proptest::strategy::Strategy<Value = Damage> {
    use proptest::prelude::*;
    let byte = proptest::sample::select(vec![
        b'{', b'}', b'[', b']', b'"', b',', b':', b'\\', b' ', b'x', b'1', b'e', 0xe9, 0xff, 0x01,
    ]);
    prop_oneof![
        4 => Just(Damage::None),
        1 => any::<proptest::sample::Index>().prop_map(Damage::Truncate),
        1 => (any::<proptest::sample::Index>(), byte.clone()).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => (any::<proptest::sample::Index>(), byte.clone()).prop_map(|(i, b)| Damage::Replace(i, b)),
        1 => proptest::collection::vec(byte, 1..4).prop_map(Damage::Append),
    ]
}
