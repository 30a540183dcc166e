//! Packaging: shell completions generated from the command line's definition, the Dockerfile's
//! shape (multi-stage, non-root runtime), and tests/docker-smoke.sh, which builds and checks the
//! image where a container runtime exists and otherwise says so and succeeds.

use std::process::Command;

use flux_tests::{flux_engine, repo_root, text};

/// Every shell's script is produced, names the commands, and parses in its shell where that
/// shell is installed (bash always is).
#[test]
fn completion_scripts_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = flux_engine(&["completions", shell]).output().unwrap();
        let (script, err) = text(&out);
        assert!(out.status.success(), "{shell}: {err}");
        for command in ["validate", "run", "status", "ddl", "lease", "completions"] {
            assert!(script.contains(command), "{shell} script lacks {command}");
        }
        assert!(
            script.contains("--kinesis"),
            "{shell}: options of subcommands too"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("flux-engine.{shell}"));
        std::fs::write(&path, &script).unwrap();
        match Command::new(shell).arg("-n").arg(&path).output() {
            Ok(check) => assert!(
                check.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&check.stderr)
            ),
            Err(_) => assert_ne!(shell, "bash", "bash is needed by the test suite"),
        }
    }
    let out = flux_engine(&["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("possible values"));
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_in_another_as_non_root() {
    let file = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].ends_with(" AS build"), "{froms:?}");
    assert!(
        froms[1].contains("-slim"),
        "a small runtime image: {froms:?}"
    );
    assert!(file.contains("cargo build --release --locked -p flux-engine"));
    assert!(file.contains("COPY --from=build "));
    let user = file.lines().rfind(|l| l.starts_with("USER ")).unwrap();
    assert!(!user.contains(" root") && !user.contains(" 0"), "{user}");
    assert!(
        !file.contains("ENTRYPOINT ["),
        "docs/archive.md's examples give the command"
    );
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target"), "{ignore}");
}

/// Without a container runtime the script succeeds saying it tested nothing; with one it is
/// left to run by hand (it builds the whole image).
#[test]
fn the_docker_smoke_script_parses_and_says_when_it_cannot_run() {
    let script = repo_root().join("tests/docker-smoke.sh");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success());
    let runtime = ["docker", "podman"].iter().any(|r| {
        Command::new(r)
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if runtime {
        eprintln!("a container runtime is available: run tests/docker-smoke.sh by hand");
        return;
    }
    let out = Command::new("bash").arg(&script).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("no container runtime here"), "{stdout}");
}
