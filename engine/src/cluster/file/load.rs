//! Loading a cluster file: render it, parse it, decode it with the shared decoder (errors
//! name the file, line, column and key path) and check what the types cannot.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ClusterFile;
use crate::config::VarOverrides;
use crate::config::decode::{self, Scope, TableNames, find_key};
use crate::config::load::render_text;
use crate::config::template::Rendered;
use crate::diagnostic::{Diagnostic, LineIndex};

/// A loaded cluster file, or every problem found.
pub fn load_file(path: &str, overrides: &VarOverrides) -> Result<ClusterFile, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::error(
            path,
            format!("cannot read cluster file: {e}"),
        )]
    })?;
    load_text(path, &text, overrides)
}

/// Loads a cluster file from its text; `file` names it in diagnostics.
pub fn load_text(
    file: &str,
    text: &str,
    overrides: &VarOverrides,
) -> Result<ClusterFile, Vec<Diagnostic>> {
    let rendered = render_text(file, text, overrides).map_err(|d| vec![d])?;
    decode(file, text, &rendered).map_err(|mut diags| {
        // Values read with env("…") are never shown.
        diags.iter_mut().for_each(|d| d.redact(&rendered.secrets));
        diags
    })
}

fn decode(file: &str, text: &str, rendered: &Rendered) -> Result<ClusterFile, Vec<Diagnostic>> {
    let ctx = Ctx {
        source: LineIndex::new(text),
        rendered,
    };
    let (root, errors) = DeTable::parse_recoverable(&rendered.text);
    if !errors.is_empty() {
        return Err(crate::config::load::syntax_errors(file, &errors, |s| {
            ctx.locate(s)
        }));
    }
    let span = root.span();
    let table = root.into_inner();
    let value = Spanned::new(span, DeValue::Table(table.clone()));
    let parsed = match decode::decode_into::<ClusterFile>(value) {
        Ok(f) => f,
        Err(failure) => {
            let scope = Scope {
                prefix: "",
                names: TableNames::Sections("the cluster file"),
                docs: "docs/cluster.md",
                fallback: None,
            };
            let p = decode::translate(&failure.error, &failure.path, &table, &scope);
            let mut d =
                Diagnostic::error_of(p.kind, file, p.message).at(p.span.map(|s| ctx.locate(s)));
            if !p.field.is_empty() {
                d = d.field(p.field);
            }
            d.help = p.help;
            return Err(vec![d]);
        }
    };
    let problems = validate(&parsed);
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems
            .into_iter()
            .map(|(key, message)| {
                let span = find_key(&table, &key).or_else(|| {
                    // a missing key: point at its section
                    let parent = key.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
                    find_key(&table, parent)
                });
                Diagnostic::error(file, message)
                    .at(span.map(|s| ctx.locate(s)))
                    .field(key)
            })
            .collect())
    }
}

/// Checks what the types cannot: names, counts, checksums, URLs, the timeout's range.
fn validate(f: &ClusterFile) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |k: &str, m: String| out.push((k.to_owned(), m));
    let c = &f.cluster;
    if c.name.trim().is_empty() {
        err("cluster.name", "`name` must not be empty".into());
    }
    if !c.release_label.starts_with("emr-") {
        err(
            "cluster.release_label",
            format!(
                "`release_label` {:?} must look like \"emr-7.5.0\"",
                c.release_label
            ),
        );
    }
    if let Some(uri) = &c.log_uri
        && !uri.starts_with("s3://")
    {
        err(
            "cluster.log_uri",
            format!("`log_uri` {uri:?} must be an s3:// URL"),
        );
    }
    if let Some(t) = c.idle_timeout {
        let secs = t.0.as_secs();
        if !(60..=7 * 24 * 3600).contains(&secs) {
            err(
                "cluster.idle_timeout",
                format!("`idle_timeout` {t} must be between 1 minute and 7 days (EMR's limits)"),
            );
        }
    }
    for (group, g) in [
        ("master", Some(&f.instances.master)),
        ("core", f.instances.core.as_ref()),
    ] {
        if let Some(g) = g
            && g.count < 1
        {
            err(
                &format!("instances.{group}.count"),
                format!("`count` must be at least 1, not {}", g.count),
            );
        }
    }
    if f.instances.master.count != 1 && f.instances.master.count != 3 {
        err(
            "instances.master.count",
            "`count` of the master group must be 1 (or 3 for high availability)".into(),
        );
    }
    if let Some(d) = &f.drill {
        match (&d.sha512, &d.sha256) {
            (None, None) => err(
                "drill.sha512",
                "[drill] needs the tarball's checksum: `sha512` (or `sha256`), hex; the bootstrap script verifies it".into(),
            ),
            (Some(_), Some(_)) => err(
                "drill.sha256",
                "give one of `sha512` and `sha256`, not both".into(),
            ),
            (Some(h), None) if !is_hex(h, 128) => err(
                "drill.sha512",
                "`sha512` must be 128 hexadecimal digits".into(),
            ),
            (None, Some(h)) if !is_hex(h, 64) => err(
                "drill.sha256",
                "`sha256` must be 64 hexadecimal digits".into(),
            ),
            _ => {}
        }
        if !d
            .version
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
            || d.version.is_empty()
        {
            err(
                "drill.version",
                format!("`version` {:?} is not a version like \"1.21.2\"", d.version),
            );
        }
        if let Some(url) = &d.download_url
            && (!url.starts_with("https://") && !url.starts_with("http://")
                || url
                    .chars()
                    .any(|ch| ch.is_whitespace() || "\"'$`\\".contains(ch)))
        {
            err(
                "drill.download_url",
                format!(
                    "`download_url` {url:?} must be an http(s):// URL without quotes, `$` or spaces"
                ),
            );
        }
        if f.bootstrap.is_none() {
            err(
                "bootstrap.s3_prefix",
                "[drill] needs `[bootstrap] s3_prefix`: where the generated install script is uploaded".into(),
            );
        }
    }
    if let Some(b) = &f.bootstrap
        && !b.s3_prefix.starts_with("s3://")
    {
        err(
            "bootstrap.s3_prefix",
            format!("`s3_prefix` {:?} must be an s3:// URL", b.s3_prefix),
        );
    }
    if let Some(d) = &f.ddl {
        match (&d.pipeline, &d.sink, &d.inline) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            (Some(_), None, None) => err(
                "ddl.sink",
                "[ddl] names a `pipeline`; add `sink = \"<id>\"`, the `ddl` sink in it".into(),
            ),
            _ => err(
                "ddl.pipeline",
                "[ddl] takes either `pipeline` and `sink`, or `[ddl.inline]`".into(),
            ),
        }
        if f.bootstrap.is_none() {
            err(
                "bootstrap.s3_prefix",
                "[ddl] needs `[bootstrap] s3_prefix`: where the step scripts are uploaded".into(),
            );
        }
    }
    out.dedup();
    out
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

struct Ctx<'a> {
    source: LineIndex,
    rendered: &'a Rendered,
}

impl Ctx<'_> {
    fn locate(&self, span: Range<usize>) -> crate::diagnostic::Location {
        self.source.locate(self.rendered.source_range(span))
    }
}
