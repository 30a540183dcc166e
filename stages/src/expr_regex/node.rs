//! [`Node`], the JSON value rewritten queries are evaluated on: its custom functions run the
//! bounded, cached `match()` and `search()`.

use std::borrow::Cow;

use jsonpath_rust::query::queryable::Queryable;
use serde_json::Value;

use super::{MATCH_LITERAL, MATCH_RECORD, Origin, SEARCH_LITERAL, SEARCH_RECORD, is_match};

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
