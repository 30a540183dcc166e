//! `flux-engine cluster up|status|down` through the real binary against moto (EMR and S3 on
//! one endpoint), plus the generated scripts against goldens, `bash -n` and shellcheck (when
//! installed), and bad cluster files against their `.stderr` goldens.
//!
//! `FLUX_BLESS=1` rewrites the goldens.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::emulators::{self, Emulators};
use crate::support::{assert_golden, flux_engine, repo_root, text};
use flux_engine::cluster::{bootstrap, file, steps};
use flux_engine::config::VarOverrides;

const ANALYTICS: &str = "pipelines/clusters/analytics.toml";

fn analytics() -> file::ClusterFile {
    let path = repo_root().join(ANALYTICS);
    file::load_file(path.to_str().unwrap(), &VarOverrides::default())
        .unwrap_or_else(|d| panic!("{ANALYTICS}: {d:?}"))
}

/// The model of a cluster file's `[ddl]` sink.
fn ddl_model(path: &str, f: &file::ClusterFile) -> flux_stages::sink::ddl::model::Model {
    let config =
        steps::ddl_config(path, f.ddl.as_ref().unwrap(), &VarOverrides::default()).unwrap();
    steps::model(&config).unwrap()
}

/// `bash -n`, and shellcheck when it is installed (it is not installed for this test).
fn check_shell(name: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, script).unwrap();
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match Command::new("shellcheck").arg(&path).output() {
        Ok(out) => assert!(
            out.status.success(),
            "shellcheck {name}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => eprintln!("shellcheck is not installed; only `bash -n` checked {name}"),
    }
}

fn golden(name: &str) -> PathBuf {
    repo_root().join("tests/golden/cluster").join(name)
}

#[test]
fn the_bootstrap_script_matches_its_golden_and_parses() {
    let f = analytics();
    let drill = f.drill.as_ref().expect("[drill]");
    let model = ddl_model(repo_root().join(ANALYTICS).to_str().unwrap(), &f);
    let script = bootstrap::script(&f, drill, Some(&model));
    assert_golden(&golden("install-drill-1.21.2.sh"), &script);
    check_shell("install-drill.sh", &script);
    // what the bootstrap must do, stated here too so a blessed regression still fails
    for needle in [
        "set -euo pipefail",
        "sha512sum --check",
        "\"isMaster\"",
        "masterPrivateDnsName",
        "zk.connect: \"$MASTER:$ZK_PORT\"",
        "thrift://__MASTER__:9083",
        "nohup ",
        "https://archive.apache.org/dist/drill/1.21.2/apache-drill-1.21.2.tar.gz",
    ] {
        assert!(script.contains(needle), "the script lacks {needle:?}");
    }
}

/// The checksum check really fails the script: run its download-and-verify part against a
/// local file with a wrong digest.
#[test]
fn a_wrong_checksum_fails_the_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("apache-drill.tar.gz");
    std::fs::write(&tarball, b"not drill").unwrap();
    let info = dir.path().join("info");
    std::fs::create_dir(&info).unwrap();
    std::fs::write(info.join("instance.json"), r#"{"isMaster": true}"#).unwrap();
    let mut f = analytics();
    let drill = f.drill.as_mut().unwrap();
    drill.download_url = Some(format!("file://{}", tarball.display()));
    let script = bootstrap::script(&f, f.drill.as_ref().unwrap(), None)
        .replace(
            "INFO=/mnt/var/lib/info",
            &format!("INFO={}", info.display()),
        )
        .replace("sudo ", "echo would-run ")
        .replace(
            "DRILL_HOME=/opt/drill",
            &format!("DRILL_HOME={}", dir.path().join("drill").display()),
        );
    let path = dir.path().join("install.sh");
    std::fs::write(&path, &script).unwrap();
    let out = Command::new("bash").arg(&path).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "the script succeeded:\n{stdout}{stderr}"
    );
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(
        !stdout.contains("would-run"),
        "it went on installing: {stdout}"
    );
}

#[test]
fn the_drill_step_script_matches_its_golden_and_parses() {
    let f = analytics();
    let model = ddl_model(repo_root().join(ANALYTICS).to_str().unwrap(), &f);
    let all = steps::steps(&f, Some(&model));
    assert_eq!(all.len(), 2, "a Hive step and a Drill step");
    assert_golden(&golden("drill-views.sh"), &all[1].script);
    check_shell("drill-views.sh", &all[1].script);
    assert!(all[0].script.contains("CREATE EXTERNAL TABLE"));
}

#[test]
fn the_shipped_cluster_file_dry_runs() {
    let out = flux_engine(&["cluster", "up", ANALYTICS, "--dry-run"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    // The request is printed for review, but the shipped all-zero digest is refused, as
    // `cluster up` refuses it.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is the all-zero placeholder"), "{stderr}");
    let req: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(req["ReleaseLabel"], "emr-7.5.0");
    assert_eq!(req["AutoTerminationPolicy"]["IdleTimeout"], 3600);
    // `validate` knows a cluster file, and warns of the placeholder without failing.
    let out = flux_engine(&["validate", ANALYTICS, "pipelines/"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains(&format!("{ANALYTICS}: ok (cluster file)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("pipelines/clusters/analytics.toml: ok (cluster file)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pipelines/quickstart.toml: ok ("),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: `drill.sha512` is the all-zero placeholder"),
        "{stderr}"
    );
    // The replay template needs its variables: the only failing file under pipelines/.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("replay.toml.j2"), "{stderr}");
    assert_eq!(stderr.matches(" error(s)").count(), 1, "{stderr}");
}

/// Every bad cluster file is rejected (exit 2) with exactly its `.stderr` golden.
#[test]
fn bad_cluster_files_are_reported_with_file_line_and_key() {
    let dir = "tests/golden/cluster-bad";
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    for file in files {
        let out = flux_engine(&["cluster", "up", &file, "--dry-run"])
            .current_dir(repo_root())
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stdout.is_empty(), "{file} printed a request: {stdout}");
        assert!(stderr.contains(&format!("--> {file}")), "{stderr}");
        let stem = file.strip_suffix(".toml").unwrap();
        assert_golden(&repo_root().join(format!("{stem}.stderr")), &stderr);
    }
}

// ---- against moto -------------------------------------------------------------------------

/// A cluster file for the emulators: a unique name and bucket, Drill, an inline `ddl` sink.
fn cluster_file(dir: &Path, name: &str, bucket: &str) -> PathBuf {
    let text = format!(
        r#"[cluster]
name = "{name}"
release_label = "emr-7.5.0"
log_uri = "s3://{bucket}/logs/"
service_role = "EMR_DefaultRole"
job_flow_role = "EMR_EC2_DefaultRole"
subnet_id = "subnet-0123456789abcdef0"
idle_timeout = "2h"
tags = {{ team = "analytics" }}

[instances]
master = {{ type = "m5.xlarge" }}
core = {{ type = "m5.2xlarge", count = 2, market = "spot" }}

[drill]
version = "1.21.2"
sha512 = "{sha}"

[bootstrap]
s3_prefix = "s3://{bucket}/bootstrap"

[ddl.inline]
archive = "s3://{bucket}/archive"
stream = "orders"
out = "sql"
columns = {{ order_id = "data.order_id", total = "data.total:double" }}
"#,
        sha = "ab".repeat(64)
    );
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(emu: &Emulators, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = flux_engine(args);
    emu.apply(&mut cmd);
    let out = cmd.current_dir(dir).output().unwrap();
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

async fn keys(emu: &Emulators, bucket: &str) -> Vec<String> {
    let listed = emu
        .s3()
        .await
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn active_named(emu: &Emulators, name: &str) -> Vec<String> {
    let out = emu
        .emr()
        .await
        .list_clusters()
        .set_cluster_states(Some(flux_engine::cluster::active_states()))
        .send()
        .await
        .unwrap();
    out.clusters()
        .iter()
        .filter(|c| c.name() == Some(name))
        .filter_map(|c| c.id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn dry_run_prints_the_request_and_creates_nothing() {
    let emu = emulators::get();
    let bucket = emulators::unique("cluster-dry");
    emu.s3()
        .await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let name = emulators::unique("dry");
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), &name, &bucket);
    let (code, stdout, stderr) = run(
        &emu,
        dir.path(),
        &["cluster", "up", file.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let req: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(req["Name"], name.as_str());
    assert_eq!(
        req["Applications"],
        serde_json::json!([{ "Name": "Hive" }, { "Name": "ZooKeeper" }])
    );
    assert_eq!(req["Instances"]["InstanceGroups"][1]["Market"], "SPOT");
    assert_eq!(req["Instances"]["KeepJobFlowAliveWhenNoSteps"], true);
    assert_eq!(
        req["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"],
        format!("s3://{bucket}/bootstrap/install-drill-1.21.2.sh")
    );
    assert_eq!(req["Steps"].as_array().unwrap().len(), 2);
    assert_eq!(req["AutoTerminationPolicy"]["IdleTimeout"], 7200);
    assert!(keys(&emu, &bucket).await.is_empty(), "a dry run uploaded");
    assert!(
        active_named(&emu, &name).await.is_empty(),
        "a dry run launched"
    );
}

#[tokio::test]
async fn up_refuses_the_placeholder_digest_before_touching_aws() {
    let emu = emulators::get();
    let bucket = emulators::unique("cluster-zero");
    emu.s3()
        .await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let name = emulators::unique("zero");
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), &name, &bucket);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&"ab".repeat(64), &"0".repeat(128));
    std::fs::write(&file, text).unwrap();
    let (code, _, stderr) = run(&emu, dir.path(), &["cluster", "up", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`drill.sha512` is the all-zero placeholder")
            && stderr.contains("apache-drill-1.21.2.tar.gz.sha512"),
        "{stderr}"
    );
    assert!(
        keys(&emu, &bucket).await.is_empty(),
        "uploaded bootstrap scripts"
    );
    assert!(
        active_named(&emu, &name).await.is_empty(),
        "launched a cluster"
    );
    // A dry run still shows the request, placeholder and all, and refuses it as `up` does.
    let (code, stdout, stderr) = run(
        &emu,
        dir.path(),
        &["cluster", "up", file.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.contains("\"ReleaseLabel\""), "{stdout}");
    assert!(
        stderr.contains("`drill.sha512` is the all-zero placeholder"),
        "{stderr}"
    );
    assert!(keys(&emu, &bucket).await.is_empty(), "a dry run uploaded");
}

#[tokio::test]
async fn up_status_down() {
    let emu = emulators::get();
    let bucket = emulators::unique("cluster-up");
    emu.s3()
        .await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let name = emulators::unique("analytics");
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), &name, &bucket);
    let file = file.to_str().unwrap();

    // up
    let (code, stdout, stderr) = run(
        &emu,
        dir.path(),
        &[
            "cluster",
            "up",
            file,
            "--wait",
            "--poll-interval",
            "1s",
            "--timeout",
            "30s",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let id = stdout.trim().to_owned();
    assert!(id.starts_with("j-"), "{stdout}");

    let emr = emu.emr().await;
    let c = emr.describe_cluster().cluster_id(&id).send().await.unwrap();
    let c = c.cluster().unwrap();
    assert_eq!(c.name(), Some(name.as_str()));
    assert_eq!(c.release_label(), Some("emr-7.5.0"));
    assert_eq!(c.log_uri(), Some(format!("s3://{bucket}/logs/").as_str()));
    assert_eq!(c.service_role(), Some("EMR_DefaultRole"));
    let apps: Vec<_> = c.applications().iter().filter_map(|a| a.name()).collect();
    assert_eq!(apps, ["Hive", "ZooKeeper"]);
    let mut tags: Vec<_> = c
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("flux-engine:cluster".to_owned(), name.clone()),
            ("team".to_owned(), "analytics".to_owned())
        ]
    );
    let groups = emr
        .list_instance_groups()
        .cluster_id(&id)
        .send()
        .await
        .unwrap();
    let mut groups: Vec<_> = groups
        .instance_groups()
        .iter()
        .map(|g| {
            (
                g.instance_group_type().unwrap().as_str().to_owned(),
                g.instance_type().unwrap().to_owned(),
                g.requested_instance_count().unwrap(),
                g.market().unwrap().as_str().to_owned(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("CORE".into(), "m5.2xlarge".into(), 2, "SPOT".into()),
            ("MASTER".into(), "m5.xlarge".into(), 1, "ON_DEMAND".into())
        ]
    );
    let actions = emr
        .list_bootstrap_actions()
        .cluster_id(&id)
        .send()
        .await
        .unwrap();
    let paths: Vec<_> = actions
        .bootstrap_actions()
        .iter()
        .filter_map(|a| a.script_path())
        .collect();
    let script_url = format!("s3://{bucket}/bootstrap/install-drill-1.21.2.sh");
    assert_eq!(paths, [script_url.as_str()]);

    // the uploaded scripts are what flux-engine generates for this file
    let f = file::load_file(file, &VarOverrides::default()).unwrap();
    let model = ddl_model(file, &f);
    let expected = bootstrap::script(&f, f.drill.as_ref().unwrap(), Some(&model));
    let s3 = emu.s3().await;
    let get = |key: String| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            let o = s3.get_object().bucket(bucket).key(&key).send().await;
            let o = o.unwrap_or_else(|e| panic!("{key}: {e:?}"));
            String::from_utf8(o.body.collect().await.unwrap().to_vec()).unwrap()
        }
    };
    assert_eq!(
        get("bootstrap/install-drill-1.21.2.sh".into()).await,
        expected
    );
    // …and, but for the cluster's name and digest, the golden of the shipped file
    let golden_text = std::fs::read_to_string(golden("install-drill-1.21.2.sh")).unwrap();
    assert_eq!(
        expected
            .replace(&format!("\"{name}\""), "\"analytics\"")
            .replace(&format!("flux-{name}"), "flux-analytics")
            .replace(&"ab".repeat(64), &"0".repeat(128)),
        golden_text
    );
    let hive_sql = get("bootstrap/ddl/orders/hive.sql".into()).await;
    assert!(hive_sql.contains("CREATE EXTERNAL TABLE"), "{hive_sql}");
    let drill_sh = get("bootstrap/ddl/orders/drill-views.sh".into()).await;
    assert!(drill_sh.contains("/storage/flux.json"), "{drill_sh}");

    // the DDL steps, in the order they run (ListSteps lists the newest first)
    let listed = emr.list_steps().cluster_id(&id).send().await.unwrap();
    let mut steps: Vec<_> = listed
        .steps()
        .iter()
        .map(|s| {
            let cfg = s.config().unwrap();
            (
                s.name().unwrap().to_owned(),
                cfg.jar().unwrap().to_owned(),
                cfg.args().to_vec(),
                s.action_on_failure().unwrap().as_str().to_owned(),
            )
        })
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            (
                "flux-engine: Drill views for stream orders".into(),
                "command-runner.jar".into(),
                vec![
                    "bash".to_owned(),
                    "-c".into(),
                    format!(
                        "aws s3 cp s3://{bucket}/bootstrap/ddl/orders/drill-views.sh /tmp/flux-drill-views.sh && bash /tmp/flux-drill-views.sh"
                    )
                ],
                "CONTINUE".into()
            ),
            (
                "flux-engine: Hive tables for stream orders".into(),
                "command-runner.jar".into(),
                vec![
                    "hive-script".to_owned(),
                    "--run-hive-script".into(),
                    "--args".into(),
                    "-f".into(),
                    format!("s3://{bucket}/bootstrap/ddl/orders/hive.sql")
                ],
                "CONTINUE".into()
            ),
        ]
    );

    // a second `up` refuses: the name is taken
    let (code, _, stderr) = run(&emu, dir.path(), &["cluster", "up", file]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("already active"), "{stderr}");
    assert_eq!(active_named(&emu, &name).await, vec![id.clone()]);

    // status, found by name and tag
    let (code, stdout, stderr) = run(&emu, dir.path(), &["cluster", "status", file]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with(&format!("cluster {id} ({name}): ")),
        "{stdout}"
    );
    let state = stdout.lines().next().unwrap().rsplit(' ').next().unwrap();
    assert!(["RUNNING", "WAITING"].contains(&state), "{stdout}");
    assert!(stdout.contains("Hive tables for stream orders"), "{stdout}");
    assert!(stdout.contains("idle timeout: 2h"), "{stdout}");
    assert!(
        stdout.contains("AWS-StartPortForwardingSession"),
        "{stdout}"
    );

    // down
    let (code, stdout, stderr) = run(&emu, dir.path(), &["cluster", "down", file]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), id);
    let c = emr.describe_cluster().cluster_id(&id).send().await.unwrap();
    let state = c
        .cluster()
        .unwrap()
        .status()
        .unwrap()
        .state()
        .unwrap()
        .as_str()
        .to_owned();
    assert!(
        ["TERMINATING", "TERMINATED"].contains(&state.as_str()),
        "{state}"
    );

    // by id, it is still there to look at; by name, it is gone
    let (code, stdout, _) = run(&emu, dir.path(), &["cluster", "status", "--id", &id]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains(": TERMINAT"), "{stdout}");
    let (code, _, stderr) = run(&emu, dir.path(), &["cluster", "down", file]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no active cluster named"), "{stderr}");
}

#[tokio::test]
async fn two_clusters_of_one_name_are_not_guessed_between() {
    let emu = emulators::get();
    let bucket = emulators::unique("cluster-two");
    emu.s3()
        .await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let name = emulators::unique("twin");
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), &name, &bucket);
    let file = file.to_str().unwrap();
    let (code, first, stderr) = run(&emu, dir.path(), &["cluster", "up", file]);
    assert_eq!(code, Some(0), "{stderr}");
    // a second cluster of that name, launched by someone else with the same tag
    let emr = emu.emr().await;
    let second = emr
        .run_job_flow()
        .name(&name)
        .release_label("emr-7.5.0")
        .instances(
            aws_sdk_emr::types::JobFlowInstancesConfig::builder()
                .keep_job_flow_alive_when_no_steps(true)
                .instance_groups(
                    aws_sdk_emr::types::InstanceGroupConfig::builder()
                        .instance_role(aws_sdk_emr::types::InstanceRoleType::Master)
                        .instance_type("m5.xlarge")
                        .instance_count(1)
                        .build(),
                )
                .build(),
        )
        .tags(
            aws_sdk_emr::types::Tag::builder()
                .key("flux-engine:cluster")
                .value(&name)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .job_flow_id()
        .unwrap()
        .to_owned();
    let (code, _, stderr) = run(&emu, dir.path(), &["cluster", "down", file]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("2 active clusters"), "{stderr}");
    assert!(
        stderr.contains(first.trim()) && stderr.contains(&second),
        "{stderr}"
    );
    for id in [first.trim(), second.as_str()] {
        let (code, _, stderr) = run(&emu, dir.path(), &["cluster", "down", "--id", id]);
        assert_eq!(code, Some(0), "{stderr}");
    }
}
