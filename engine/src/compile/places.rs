//! Pass: the places outside the pipeline that stages read and write (files, standard streams,
//! archives), compared as the operating system and the store resolve them (`./x` is `x`, a link
//! is its target, `file://./a` is `./a`, `s3://b/p/` is `s3://b/p`).
//!
//! - Two sinks may not write one file: one would replace the other's output. Standard output
//!   and standard error may be shared (each write is whole lines, so lines interleave, never
//!   split).
//! - A sink may not write the file a source reads: the run would replace its own input.
//! - Two archive sinks may not write one archive: each takes the stream's lease, and the second
//!   fails on the first's.
//! - An archive sink may not write a stream back into the archive a source reads it from (a
//!   loop). Archiving other streams into an archive the pipeline also reads is allowed.
//! - A `kinesis` source with `workers = "shared"` must feed an archive sink that writes into
//!   its `checkpoints` archive (the workers hand shards over through its checkpoints).

use std::collections::BTreeSet;

use flux_stages::local_path::StdStream;
use flux_stages::registry::{Place, Role, StageConfig};
use flux_stages::store::StoreLocation;

use crate::config::{PipelineSpec, StageSpec};
use crate::diagnostic::{Diagnostic, DiagnosticKind};

/// One stage's place, with the key that names it.
struct Use<'a> {
    stage: &'a StageSpec,
    key: &'static str,
    place: Place,
}

impl Use<'_> {
    fn field(&self) -> String {
        format!("{}.{}", self.stage.path(), self.key)
    }
}

fn key_of(config: &StageConfig) -> &'static str {
    match config {
        StageConfig::ArchiveSource(_) | StageConfig::ArchiveSink(_) => "url",
        _ => "path",
    }
}

/// Checks the places of `spec`'s stages. `upstream(i)` lists the stages (indices into
/// `spec.stages`) whose records reach stage `i` through main outputs.
pub(super) fn check(
    spec: &PipelineSpec,
    upstream: impl Fn(usize) -> Vec<usize>,
    diags: &mut Vec<Diagnostic>,
) {
    let file = spec.file.as_str();
    let mut readers: Vec<Use> = Vec::new();
    let mut writers: Vec<(usize, Use)> = Vec::new();
    for (i, stage) in spec.stages.iter().enumerate() {
        let Some(config) = &stage.config else {
            continue;
        };
        let key = key_of(config);
        let place = match config.place() {
            None => continue,
            Some(Ok(place)) => place,
            Some(Err(e)) => {
                diags.push(
                    Diagnostic::error_of(DiagnosticKind::InvalidValue, file, e)
                        .at(stage.key_location(key))
                        .field(format!("{}.{key}", stage.path())),
                );
                continue;
            }
        };
        let u = Use { stage, key, place };
        match stage.role {
            Role::Source => readers.push(u),
            Role::Sink => writers.push((i, u)),
            Role::Transform => {}
        }
    }

    // Two sinks, one place: reported at the later one, naming the first.
    for (n, (_, w)) in writers.iter().enumerate() {
        let shared = matches!(w.place, Place::Std(StdStream::Stdout | StdStream::Stderr));
        if shared {
            continue;
        }
        let Some((_, first)) = writers[..n].iter().find(|(_, f)| f.place == w.place) else {
            continue;
        };
        let (message, help) = match &w.place {
            Place::Archive(_) => (
                format!(
                    "{} and {} both archive into {}: the second archiver of a stream fails on the first one's lease",
                    first.field(),
                    w.field(),
                    shown(&w.place)
                ),
                format!(
                    "archive every input with one sink: inputs = [{}]",
                    inputs_of(&[first.stage, w.stage])
                ),
            ),
            place => (
                format!(
                    "{} and {} both write {}: one would replace the other's output",
                    first.field(),
                    w.field(),
                    shown(place)
                ),
                format!(
                    "give each sink its own path, or write every input with one sink: inputs = [{}]",
                    inputs_of(&[first.stage, w.stage])
                ),
            ),
        };
        diags.push(
            Diagnostic::error_of(DiagnosticKind::SharedPlace, file, message)
                .at(w.stage.key_location(w.key))
                .field(w.field())
                .help(help),
        );
    }

    // A sink writing what a source reads.
    for (i, w) in &writers {
        let reaching: BTreeSet<String> = upstream(*i)
            .into_iter()
            .filter_map(|j| {
                spec.stages[j]
                    .config
                    .as_ref()?
                    .source_stream()
                    .map(str::to_owned)
            })
            .collect();
        for r in readers.iter().filter(|r| r.place == w.place) {
            let diag = match &w.place {
                Place::File(_) => Diagnostic::error_of(
                    DiagnosticKind::SharedPlace,
                    file,
                    format!(
                        "{} writes {}, the file {} reads: the run would replace its own input",
                        w.field(),
                        shown(&w.place),
                        r.field()
                    ),
                )
                .help("write the output to another path"),
                Place::Archive(_) => {
                    let Some(stream) = r
                        .stage
                        .config
                        .as_ref()
                        .and_then(StageConfig::source_stream)
                        .filter(|s| reaching.contains(*s))
                    else {
                        continue;
                    };
                    Diagnostic::error_of(
                        DiagnosticKind::SharedPlace,
                        file,
                        format!(
                            "{} archives stream `{stream}` into {}, the archive {} reads it from: a loop",
                            w.field(),
                            shown(&w.place),
                            r.field()
                        ),
                    )
                    .help("archive into another url (a copy of an archive is another archive)")
                }
                Place::Std(_) => continue,
            };
            diags.push(diag.at(w.stage.key_location(w.key)).field(w.field()));
        }
    }

    // A source that several processes share hands shards over through the checkpoints in
    // the archive it names: an archive sink it feeds must write there.
    for (j, stage) in spec.stages.iter().enumerate() {
        let Some(Some(Ok(shared))) = stage.config.as_ref().map(StageConfig::shared_archive) else {
            continue;
        };
        let fed = writers
            .iter()
            .any(|(i, w)| w.place == shared && upstream(*i).contains(&j));
        if !fed {
            diags.push(
                Diagnostic::error_of(
                    DiagnosticKind::InvalidValue,
                    file,
                    format!(
                        "{}.workers = \"shared\" needs an archive sink fed by this source that writes into its `checkpoints` archive {}: the workers hand shards over through that archive's checkpoints",
                        stage.path(),
                        shown(&shared)
                    ),
                )
                .at(stage.key_location("workers"))
                .field(format!("{}.workers", stage.path()))
                .help("archive this source's records with a sink whose url is the source's `checkpoints`"),
            );
        }
    }
}

/// A place for messages: local paths relative to the working directory when they are below it
/// (as the user most likely wrote them), else absolute.
fn shown(place: &Place) -> String {
    let cwd = std::env::current_dir().and_then(std::fs::canonicalize).ok();
    let relative = |p: &std::path::Path| -> String {
        match cwd.as_deref().and_then(|c| p.strip_prefix(c).ok()) {
            Some(r) if !r.as_os_str().is_empty() => r.display().to_string(),
            _ => p.display().to_string(),
        }
    };
    match place {
        Place::File(p) => format!("`{}`", relative(p)),
        Place::Archive(StoreLocation::Local(p)) => {
            let r = relative(p);
            if r.starts_with('/') {
                format!("`file://{r}`")
            } else {
                format!("`file://./{r}`")
            }
        }
        other => format!("`{other}`"),
    }
}

fn inputs_of(stages: &[&StageSpec]) -> String {
    let mut labels: Vec<String> = Vec::new();
    for s in stages {
        for input in &s.inputs {
            let l = format!("\"{}\"", input.label());
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
    }
    labels.join(", ")
}

#[cfg(all(test, unix))]
mod tests {
    use crate::config::{VarOverrides, load_text};

    /// The messages of the errors `compile` finds in `text`.
    fn errors(text: &str) -> Vec<String> {
        let loaded = load_text("p.toml", text, &VarOverrides::default());
        let spec = loaded.spec.expect("parses");
        assert!(!loaded.diagnostics.iter().any(|d| d.is_error()));
        let (_, diags) = super::super::compile(&spec);
        diags
            .into_iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}: {}", d.field.unwrap_or_default(), d.message))
            .collect()
    }

    fn file_source(id: &str, path: &str, stream: &str) -> String {
        format!("[sources.{id}]\ntype = \"file\"\npath = \"{path}\"\nstream = \"{stream}\"\n")
    }

    fn sink(id: &str, kind: &str, key: &str, value: &str, inputs: &str) -> String {
        format!("[sinks.{id}]\ntype = \"{kind}\"\ninputs = [{inputs}]\n{key} = \"{value}\"\n")
    }

    #[test]
    fn a_link_and_its_target_are_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(d.join("in.jsonl"), "{}\n").unwrap();
        std::os::unix::fs::symlink(d.join("in.jsonl"), d.join("in-link.jsonl")).unwrap();
        std::fs::create_dir(d.join("real")).unwrap();
        std::os::unix::fs::symlink("real", d.join("alias")).unwrap();
        let d = d.display();
        // A sink writing the source's file through a link.
        let text = file_source("o", &format!("{d}/in.jsonl"), "s")
            + &sink(
                "out",
                "file",
                "path",
                &format!("{d}/in-link.jsonl"),
                "\"o\"",
            );
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("sinks.out.path: sinks.out.path writes"),
            "{e:?}"
        );
        // Two sinks, one file, through a linked directory (the file does not exist yet).
        let text = file_source("o", &format!("{d}/in.jsonl"), "s")
            + &sink("a", "file", "path", &format!("{d}/real/out.jsonl"), "\"o\"")
            + &sink(
                "b",
                "file",
                "path",
                &format!("{d}/alias/./out.jsonl"),
                "\"o\"",
            );
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("sinks.a.path and sinks.b.path both write"),
            "{e:?}"
        );
        // Different files, and standard output twice: fine.
        let text = file_source("o", &format!("{d}/in.jsonl"), "s")
            + &sink("a", "file", "path", &format!("{d}/real/a.jsonl"), "\"o\"")
            + &sink("b", "file", "path", &format!("{d}/alias/b.jsonl"), "\"o\"")
            + &sink("c", "file", "path", "-", "\"o\"")
            + &sink("e", "file", "path", "/dev/stdout", "\"o\"");
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn archive_urls_compare_as_the_store_resolves_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(d.join("arch")).unwrap();
        std::os::unix::fs::symlink("arch", d.join("arch-link")).unwrap();
        let d = d.display();
        let input = file_source("o", "examples/orders.jsonl", "orders")
            + &file_source("r", "examples/orders.jsonl", "refunds");
        for (a, b) in [
            (format!("file://{d}/arch"), format!("{d}/arch-link/")),
            ("s3://b/p".to_owned(), "s3://b//p/".to_owned()),
        ] {
            let text = input.clone()
                + &sink("a", "archive", "url", &a, "\"o\"")
                + &sink("b", "archive", "url", &b, "\"r\"");
            let e = errors(&text);
            assert_eq!(e.len(), 1, "{a} {b}: {e:?}");
            assert!(e[0].contains("both archive into"), "{e:?}");
        }
        // Other buckets, prefixes or endpoints are other archives.
        let text = input.clone()
            + &sink("a", "archive", "url", "s3://b/p", "\"o\"")
            + &sink("b", "archive", "url", "s3://b/q", "\"r\"")
            + &sink("c", "archive", "url", "s3://c/p", "\"r\"")
            + "[sinks.e]\ntype = \"archive\"\ninputs = [\"r\"]\nurl = \"s3://b/p\"\naws = { endpoint = \"http://127.0.0.1:9000\" }\n";
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn a_stream_archived_into_the_archive_it_is_read_from_is_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path())
            .unwrap()
            .display()
            .to_string();
        let source =
            format!("[sources.a]\ntype = \"archive\"\nurl = \"file://{d}\"\nstream = \"orders\"\n");
        // Through a transform.
        let text = source.clone()
            + "[transforms.f]\ntype = \"filter\"\ninputs = [\"a\"]\nwhere = \"@.x == 1\"\n"
            + &sink("back", "archive", "url", &format!("{d}/."), "\"f\"");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("archives stream `orders`"), "{e:?}");
        // Another source of the same stream into it, while the pipeline reads it: a loop too.
        let text = source.clone()
            + &file_source("live", "examples/orders.jsonl", "orders")
            + &sink("out", "file", "path", "-", "\"a\"")
            + &sink("arch", "archive", "url", &d, "\"live\"");
        assert_eq!(errors(&text).len(), 1);
        // Another stream into the archive the pipeline reads: allowed.
        let text = source
            + &file_source("live", "examples/orders.jsonl", "refunds")
            + &sink("out", "file", "path", "-", "\"a\"")
            + &sink("arch", "archive", "url", &d, "\"live\"");
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn shared_workers_need_an_archive_sink_writing_into_their_checkpoints() {
        let source = |checkpoints: &str| {
            format!(
                "[sources.k]\ntype = \"kinesis\"\nstream = \"orders\"\nstart = \"checkpoint\"\ncheckpoints = \"{checkpoints}\"\nworkers = \"shared\"\n"
            )
        };
        let text = source("file://./arch") + &sink("a", "archive", "url", "./arch/", "\"k\"");
        assert_eq!(errors(&text), Vec::<String>::new());
        let text = source("file://./arch") + &sink("a", "archive", "url", "./other", "\"k\"");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("sources.k.workers = \"shared\" needs an archive sink"),
            "{e:?}"
        );
        let text = source("file://./arch") + &sink("out", "file", "path", "-", "\"k\"");
        assert_eq!(errors(&text).len(), 1);
    }
}
