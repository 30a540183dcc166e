//! Packaging: shell completions generated from the command line's definition, the Dockerfile's
//! shape (multi-stage, non-root runtime), and tests/docker-smoke.sh, which builds and checks the
//! image where a container runtime exists and otherwise says so and succeeds.

use std::process::Command;

use crate::support::{flux_engine, repo_root, text};

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

/// The Dockerfile's build stage without a container runtime: its COPY and RUN steps replayed in
/// an empty folder, in order, up to the release build (too slow for the suite), with the
/// dependencies fetched from the local cache (`--offline`, the host's packages: no network).
/// Catches a manifest the image no longer copies, or a stub layout cargo cannot resolve; then
/// checks that the whole workspace as the stage copies it resolves with the lock file.
#[test]
fn the_dockerfile_build_stage_resolves_the_workspace_it_copies() {
    let root = repo_root();
    let file = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = |command: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("PATH", {
                let cargo_dir = std::path::Path::new(&cargo).parent().unwrap().to_path_buf();
                let path = std::env::var_os("PATH").unwrap_or_default();
                std::env::join_paths(std::iter::once(cargo_dir).chain(std::env::split_paths(&path)))
                    .unwrap()
            })
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "`{command}`: {}", text(&out).1);
    };
    // What this build already downloaded: the host's packages, from the local cache.
    let rustc = std::path::Path::new(&cargo).with_file_name("rustc");
    let version = Command::new(if rustc.exists() {
        rustc.as_os_str()
    } else {
        "rustc".as_ref()
    })
    .arg("-vV")
    .output()
    .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("rustc -vV names no host: {version}"));
    let fetch = format!("cargo fetch --locked --offline --target {host}");
    // The build stage's instructions, continuation lines joined.
    let stage: String = file
        .split("\nFROM ")
        .nth(1)
        .expect("a build stage")
        .replace("\\\n", " ");
    let mut steps = 0;
    for line in stage.lines().map(str::trim) {
        if let Some(args) = line.strip_prefix("COPY ") {
            let parts: Vec<&str> = args.split_whitespace().collect();
            let (to, sources) = parts.split_last().unwrap();
            for from in sources {
                let target = dir.path().join(to);
                let source = root.join(from);
                if source.is_dir() {
                    run(&format!(
                        "cp -r '{}' '{}'",
                        source.display(),
                        target.display()
                    ));
                } else {
                    let target = if to.ends_with('/') {
                        target.join(from)
                    } else {
                        target
                    };
                    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                    std::fs::copy(&source, &target).unwrap();
                }
            }
            steps += 1;
        } else if let Some(command) = line.strip_prefix("RUN ") {
            if command.contains("cargo build --release") {
                break;
            }
            run(&command.replace("cargo fetch --locked", &fetch));
            steps += 1;
        }
    }
    assert!(steps >= 5, "{steps} steps of the build stage ran");
    run(&fetch);
}
