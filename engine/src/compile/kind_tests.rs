//! Each kind of problem is reported with its [`DiagnosticKind`], the typed name programs act on
//! (the compile passes themselves, the console's API), whatever its message says.

use crate::config::{VarOverrides, load_text};
use crate::diagnostic::DiagnosticKind;

fn kinds(text: &str) -> Vec<DiagnosticKind> {
    kinds_in("p.toml", text)
}

fn kinds_in(file: &str, text: &str) -> Vec<DiagnosticKind> {
    let checked = super::check(load_text(file, text, &VarOverrides::default()));
    checked.diagnostics.iter().map(|d| d.kind).collect()
}

const SOURCE: &str = "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n";
const SINK: &str = "[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.jsonl\"\n";

#[test]
fn every_kind_of_problem_is_typed() {
    use DiagnosticKind::*;
    assert_eq!(kinds(&format!("{SOURCE}{SINK}")), []);
    assert_eq!(kinds("[sources.in\n"), [Syntax]);
    assert_eq!(kinds(&format!("{SOURCE}{SINK}pth = 1\n")), [UnknownKey]);
    assert_eq!(
        kinds(&format!("[sources.in]\ntype = \"file\"\n{SINK}")),
        [MissingKey]
    );
    assert_eq!(
        kinds(&format!(
            "[sources.in]\ntype = \"fiel\"\npath = \"x\"\n{SINK}"
        )),
        [UnknownKind]
    );
    assert_eq!(
        kinds(&format!(
            "{SOURCE}{SINK}[transforms.f]\ntype = \"compact\"\ninputs = [\"in\"]\nkey = \"partition_key\"\nmemory_limit = \"1KiB\"\n[sinks.o2]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"o2.jsonl\"\n"
        )),
        [InvalidValue]
    );
    assert_eq!(
        kinds(&format!(
            "{SOURCE}[sinks.out]\ntype = \"file\"\ninputs = [\"nope\"]\npath = \"o.jsonl\"\n"
        )),
        [UnknownInput]
    );
    assert_eq!(
        kinds(&format!(
            "{SOURCE}{SINK}[sinks.more]\ntype = \"file\"\ninputs = [\"out\"]\npath = \"m.jsonl\"\n"
        )),
        [ReadsSink]
    );
    assert_eq!(
        kinds(&format!(
            "{SOURCE}{SINK}[transforms.a]\ntype = \"filter\"\ninputs = [\"b\"]\nwhere = \"@.x\"\n[transforms.b]\ntype = \"filter\"\ninputs = [\"a\"]\nwhere = \"@.x\"\n"
        )),
        [Cycle]
    );
    assert_eq!(
        kinds(&format!(
            "{SOURCE}{SINK}[sinks.two]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.jsonl\"\n"
        )),
        [SharedPlace]
    );
    assert_eq!(
        kinds_in(
            "p.toml.j2",
            &format!("[pipeline]\nname = \"{{{{ nope }}}}\"\n{SOURCE}{SINK}")
        ),
        [MissingVariable]
    );
    assert_eq!(
        kinds_in(
            "p.toml.j2",
            &format!("{{% for x in 1 %}}{{% endfor %}}\n{SOURCE}{SINK}")
        ),
        [Template]
    );
    assert_eq!(
        kinds(&format!(
            "{SOURCE}{SINK}[transforms.idle]\ntype = \"filter\"\ninputs = [\"in\"]\nwhere = \"@.x\"\n"
        )),
        [UnreadOutput]
    );
}
