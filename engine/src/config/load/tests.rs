use super::*;

fn load(text: &str) -> Loaded {
    load_text("p.toml", text, &VarOverrides::default())
}

/// Inputs found by the `pipeline_load` fuzz target that panicked while locating their
/// error (a range ending inside `→`; an error past a line's trailing `\r`): each loads to
/// an error diagnostic that renders.
#[test]
fn errors_at_awkward_offsets_are_diagnostics_not_panics() {
    for text in [
        "{%→",
        "{% →",
        "[sources.orders]\ntype = \"file\"\ninputs\r",
        "[sources.orders]\r\ntype =\r\n",
        "a = 'x→\r\n",
    ] {
        let l = load(text);
        assert!(l.has_errors(), "{text:?}");
        for d in &l.diagnostics {
            assert!(!d.to_string().is_empty());
        }
    }
}

#[test]
fn loads_a_pipeline() {
    let l = load(
        "[pipeline]\nname = \"x\"\n[sources.a]\ntype = \"file\"\npath = \"in.jsonl\"\n[sinks.b]\ntype = \"file\"\ninputs = [\"a\"]\npath = \"-\"\nbuffer_records = 10\n",
    );
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    let spec = l.spec.unwrap();
    assert_eq!(spec.name, "x");
    assert_eq!(spec.stages.len(), 2);
    assert_eq!(spec.stages[1].inputs[0].stage, "a");
    assert_eq!(spec.stages[1].buffer.records, 10);
}

#[test]
fn stage_errors_keep_their_line_and_path() {
    let l = load(
        "[sinks.out]\ntype = \"file\"\ninputs = [\"a\"]\npth = \"x\"\n\n[sinks.arch]\ntype = \"archive\"\ninputs = [\"a\"]\nurl = \"x\"\nmax_bytes = \"12\"\n",
    );
    let mut d: Vec<_> = l
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.location.as_ref().unwrap().line,
                d.field.clone().unwrap(),
                d.message.clone(),
            )
        })
        .collect();
    d.sort();
    assert_eq!(d[0].0, 4, "{d:?}");
    assert_eq!(d[0].1, "sinks.out.pth");
    assert_eq!(d[1].0, 10, "{d:?}");
    assert_eq!(d[1].1, "sinks.arch.max_bytes");
}

#[test]
fn template_errors_point_into_the_template() {
    let text = "[vars]\nx = \"a.jsonl\"\n\n[sources.a]\ntype = \"file\"\npath = \"{{ x }}\"\nformat = \"{{ 'dat' }}\"\n";
    let l = load(text);
    let d = &l.diagnostics[0];
    assert_eq!(d.location.as_ref().unwrap().line, 7, "{d}");
}

/// A stage's settings check reports every problem it finds, each at the key it is about.
#[test]
fn every_settings_problem_of_a_stage_is_reported_at_its_key() {
    let l = load(
        "[sources.a]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [sinks.b]\ntype = \"archive\"\ninputs = [\"a\"]\nurl = \"file://./a\"\n\
         max_records = 0\ngzip_level = 12\nlease_ttl = \"0s\"\n",
    );
    let found: Vec<(Option<&str>, usize)> = l
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.field.as_deref(),
                d.location.as_ref().map_or(0, |l| l.line),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (Some("sinks.b.max_records"), 8),
            (Some("sinks.b.gzip_level"), 9),
            (Some("sinks.b.lease_ttl"), 10),
        ],
        "{:?}",
        l.diagnostics
    );
    assert!(
        l.diagnostics
            .iter()
            .all(|d| d.kind == DiagnosticKind::InvalidValue)
    );
    assert!(l.spec.unwrap().stages[1].config.is_none());
}

/// Errors of a type's own conversion (a filter expression, a size) point at the value, as
/// the typed decoder places them.
#[test]
fn conversion_errors_point_at_their_value() {
    let l = load(
        "[sources.a]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [transforms.f]\ntype = \"filter\"\ninputs = [\"a\"]\nwhere = \"@.x = 1\"\n\
         [sinks.b]\ntype = \"archive\"\ninputs = [\"f\"]\nurl = \"file://./a\"\nmax_bytes = \"lots\"\n",
    );
    let found: Vec<_> = l
        .diagnostics
        .iter()
        .map(|d| {
            let loc = d.location.as_ref().unwrap();
            (d.field.clone().unwrap_or_default(), loc.line, loc.column)
        })
        .collect();
    assert_eq!(
        found[0],
        ("transforms.f.where".to_owned(), 7, 9),
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "{:?}", l.diagnostics);
    assert_eq!(found[1].0, "sinks.b.max_bytes");
    assert_eq!(found[1].1, 12);
    assert_eq!(l.diagnostics[1].kind, DiagnosticKind::InvalidValue);
}

/// The engine's keys are decoded by one type (`EngineKeys`) and every problem with them is
/// reported at its value, together with the stage's own.
#[test]
fn every_problem_with_the_engine_keys_is_reported_at_its_value() {
    let l = load(
        "[sources.a]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [sinks.b]\ntype = \"file\"\ninputs = \"a\"\npath = \"-\"\n\
         buffer_records = 0\nbuffer_bytes = \"0MiB\"\n\
         [sinks.c]\ntype = 7\ninputs = [\"a\"]\n",
    );
    let found: Vec<(Option<&str>, usize, &str)> = l
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.field.as_deref(),
                d.location.as_ref().map_or(0, |l| l.line),
                d.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                Some("sinks.b.buffer_bytes"),
                9,
                "`buffer_bytes` must be a size string like \"16MiB\""
            ),
            (
                Some("sinks.b.buffer_records"),
                8,
                "`buffer_records` must be a positive integer"
            ),
            (
                Some("sinks.b.inputs"),
                6,
                "`inputs` must be an array of stage ids, e.g. [\"orders\"]"
            ),
            (
                Some("sinks.c.type"),
                11,
                "`type` must be a string, found integer"
            ),
        ],
        "{:?}",
        l.diagnostics
    );
}
