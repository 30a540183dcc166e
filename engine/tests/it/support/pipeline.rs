//! A fluent builder for the pipeline files the tests run, instead of TOML written by hand
//! through `format!` (where a path or an expression with a quote in it breaks the file):
//!
//! ```ignore
//! let p = Pipeline::new("copy")
//!     .source("in", "file").set("path", &input)
//!     .transform("f", "filter", &["in"]).set("where", "@.data.n > 1")
//!     .sink("out", "file", &["f"]).set("path", "out.jsonl")
//!     .write(dir);
//! ```
//!
//! Stages and their keys are written in the order they were given, one `[role.id]` table per
//! stage as people write them; every value is rendered by the `toml` crate, so quoting is always
//! right.

use std::path::{Path, PathBuf};

/// A value a stage key can take: strings, numbers, booleans, paths (as their text), lists of
/// strings, and any `toml::Value` or table (written inline, `{ id = "INC-7", … }`).
pub(crate) trait IntoToml {
    fn into_toml(self) -> toml::Value;
}

macro_rules! into_toml_via_from {
    ($($t:ty),*) => {$(
        impl IntoToml for $t {
            fn into_toml(self) -> toml::Value {
                toml::Value::from(self)
            }
        }
    )*};
}
into_toml_via_from!(&str, String, i64, i32, bool, f64, toml::Table);

impl IntoToml for &String {
    fn into_toml(self) -> toml::Value {
        toml::Value::String(self.clone())
    }
}

impl IntoToml for usize {
    fn into_toml(self) -> toml::Value {
        toml::Value::Integer(i64::try_from(self).expect("fits TOML's integers"))
    }
}

impl IntoToml for u64 {
    fn into_toml(self) -> toml::Value {
        toml::Value::Integer(i64::try_from(self).expect("fits TOML's integers"))
    }
}

impl IntoToml for toml::Value {
    fn into_toml(self) -> toml::Value {
        self
    }
}

impl IntoToml for &Path {
    fn into_toml(self) -> toml::Value {
        toml::Value::String(self.to_str().expect("a UTF-8 path").to_owned())
    }
}

impl IntoToml for &PathBuf {
    fn into_toml(self) -> toml::Value {
        self.as_path().into_toml()
    }
}

impl IntoToml for PathBuf {
    fn into_toml(self) -> toml::Value {
        self.as_path().into_toml()
    }
}

impl IntoToml for &[&str] {
    fn into_toml(self) -> toml::Value {
        toml::Value::Array(self.iter().map(|s| (*s).into()).collect())
    }
}

impl<const N: usize> IntoToml for [&str; N] {
    fn into_toml(self) -> toml::Value {
        self[..].into_toml()
    }
}

/// An inline table from `(key, value)` pairs: `table([("id", "INC-7"), ("mode", "overwrite")])`.
pub(crate) fn table<V: IntoToml>(
    pairs: impl IntoIterator<Item = (&'static str, V)>,
) -> toml::Table {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_toml()))
        .collect()
}

struct Stage {
    role: &'static str,
    id: String,
    keys: Vec<(String, toml::Value)>,
}

/// A pipeline file being built; [`Pipeline::set`] sets a key of the stage added (or chosen
/// with [`Pipeline::stage`]) last.
pub(crate) struct Pipeline {
    name: String,
    stages: Vec<Stage>,
    current: usize,
}

impl Pipeline {
    /// An empty pipeline; [`Pipeline::write`] names its file `NAME.toml`.
    pub(crate) fn new(name: &str) -> Self {
        Pipeline {
            name: name.to_owned(),
            stages: Vec::new(),
            current: 0,
        }
    }

    fn add(mut self, role: &'static str, id: &str, kind: &str, inputs: Option<&[&str]>) -> Self {
        assert!(
            !self.stages.iter().any(|s| s.role == role && s.id == id),
            "{role}.{id} twice"
        );
        let mut keys = vec![("type".to_owned(), kind.into())];
        if let Some(inputs) = inputs {
            keys.push(("inputs".to_owned(), inputs.into_toml()));
        }
        self.stages.push(Stage {
            role,
            id: id.to_owned(),
            keys,
        });
        self.current = self.stages.len() - 1;
        self
    }

    /// An archiver of Kinesis stream `stream` into the archive at `url` (which holds its
    /// checkpoints too): source `stream` (polling every 20 ms, 50 ms when idle) → sink `archive`,
    /// the current stage.
    pub(crate) fn kinesis_archiver(name: &str, stream: &str, url: &str) -> Self {
        Pipeline::new(name)
            .source("stream", "kinesis")
            .set("stream", stream)
            .set("start", "checkpoint")
            .set("checkpoints", url)
            .set("poll_interval", "20ms")
            .set("idle_interval", "50ms")
            .sink("archive", "archive", &["stream"])
            .set("url", url)
    }

    /// Adds `[sources.ID]` of type `kind`.
    pub(crate) fn source(self, id: &str, kind: &str) -> Self {
        self.add("sources", id, kind, None)
    }

    /// Adds `[transforms.ID]` of type `kind` reading `inputs`.
    pub(crate) fn transform(self, id: &str, kind: &str, inputs: &[&str]) -> Self {
        self.add("transforms", id, kind, Some(inputs))
    }

    /// Adds `[sinks.ID]` of type `kind` reading `inputs`.
    pub(crate) fn sink(self, id: &str, kind: &str, inputs: &[&str]) -> Self {
        self.add("sinks", id, kind, Some(inputs))
    }

    /// Sets `key` of the current stage (replacing an earlier value of that key).
    pub(crate) fn set(mut self, key: &str, value: impl IntoToml) -> Self {
        let value = value.into_toml();
        let stage = self
            .stages
            .get_mut(self.current)
            .expect("a stage to set keys of: add one first");
        match stage.keys.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => stage.keys.push((key.to_owned(), value)),
        }
        self
    }

    /// Sets `key` only when `value` is given.
    pub(crate) fn set_some(self, key: &str, value: Option<impl IntoToml>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Makes the stage `id` (of any role) the current one again, to set more of its keys.
    pub(crate) fn stage(mut self, id: &str) -> Self {
        self.current = self
            .stages
            .iter()
            .position(|s| s.id == id)
            .unwrap_or_else(|| panic!("no stage {id}"));
        self
    }

    /// The value of `key` of the stage `id`, if set.
    pub(crate) fn get(&self, id: &str, key: &str) -> Option<&toml::Value> {
        let stage = self.stages.iter().find(|s| s.id == id)?;
        stage.keys.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Applies `f` when `cond` holds: optional stages and keys without breaking the chain.
    pub(crate) fn when(self, cond: bool, f: impl FnOnce(Self) -> Self) -> Self {
        if cond { f(self) } else { self }
    }

    /// The pipeline as TOML text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("[{}.{}]\n", s.role, key(&s.id)));
            for (k, v) in &s.keys {
                out.push_str(&format!("{} = {v}\n", key(k)));
            }
        }
        out
    }

    /// Writes the file `NAME.toml` in `dir` and returns its path.
    pub(crate) fn write(&self, dir: impl AsRef<Path>) -> PathBuf {
        let path = dir.as_ref().join(format!("{}.toml", self.name));
        std::fs::write(&path, self.render())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

/// A TOML key: bare where it can be, quoted otherwise.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_owned()
    } else {
        toml::Value::String(k.to_owned()).to_string()
    }
}

#[test]
fn the_builder_writes_what_toml_reads_back() {
    let p = Pipeline::new("p")
        .source("in", "file")
        .set("path", Path::new("/tmp/a \"quoted\" path"))
        .set("shards", 3)
        .transform("f", "filter", &["in"])
        .set("where", "@.data.s == 'x' && @.data.t != \"y\"")
        .set("replay", table([("id", "INC-7"), ("mode", "overwrite")]))
        .sink("out", "file", &["f", "in.dead_letter"])
        .set("path", "out.jsonl")
        .stage("in")
        .set("shards", 4);
    let text = p.render();
    let t: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(
        t["sources"]["in"]["path"].as_str(),
        Some("/tmp/a \"quoted\" path")
    );
    assert_eq!(t["sources"]["in"]["shards"].as_integer(), Some(4));
    assert_eq!(
        t["transforms"]["f"]["where"].as_str(),
        Some("@.data.s == 'x' && @.data.t != \"y\"")
    );
    assert_eq!(
        t["transforms"]["f"]["replay"]["mode"].as_str(),
        Some("overwrite")
    );
    assert_eq!(
        t["sinks"]["out"]["inputs"],
        toml::Value::from(vec!["f", "in.dead_letter"])
    );
    assert!(
        text.starts_with("[sources.in]\ntype = \"file\"\n"),
        "{text}"
    );
}
