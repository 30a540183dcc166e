//! `cluster up`: plan the uploads and the RunJobFlow request, upload the scripts, launch the
//! cluster and, with `--wait`, wait until it is ready.

use bytes::Bytes;
use flux_stages::store::{self, StoreOptions};
use flux_stages::units::HumanDuration;

use super::{UpArgs, load, runtime};
use crate::cli::{EXIT_INVALID, EXIT_OK, EXIT_RUNTIME, VarArgs};
use crate::cluster::file::ClusterFile;
use crate::cluster::request::RunJobFlow;
use crate::cluster::steps::{self, DdlStep};
use crate::cluster::{self as emr, bootstrap, describe};

/// Everything `up` sends: the scripts to upload (key below the prefix, text) and the request.
struct LaunchPlan {
    uploads: Vec<(String, String)>,
    request: RunJobFlow,
}

fn plan(path: &str, f: &ClusterFile, vars: &VarArgs) -> Result<LaunchPlan, String> {
    let overrides = vars.overrides()?;
    let model = match &f.ddl {
        Some(ddl) => {
            let config = steps::ddl_config(path, ddl, &overrides)?;
            Some(steps::model(&config).map_err(|e| format!("[ddl]: {e}"))?)
        }
        None => None,
    };
    let ddl_steps: Vec<DdlStep> = steps::steps(f, model.as_ref());
    let mut uploads = Vec::new();
    let mut bootstrap_url = None;
    if let (Some(d), Some(b)) = (&f.drill, &f.bootstrap) {
        let key = bootstrap::script_key(d);
        uploads.push((key.clone(), bootstrap::script(f, d, model.as_ref())));
        bootstrap_url = Some(format!("{}/{key}", b.s3_prefix.trim_end_matches('/')));
    }
    for s in &ddl_steps {
        uploads.push((s.key.clone(), s.script.clone()));
    }
    Ok(LaunchPlan {
        uploads,
        request: RunJobFlow::new(f, bootstrap_url.as_deref(), &ddl_steps),
    })
}

pub(super) fn up(args: UpArgs) -> i32 {
    let f = match load(&args.file, &args.vars) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let plan = match plan(&args.file, &f, &args.vars) {
        Ok(p) => p,
        Err(e) => {
            errln!("error: {}: {e}", args.file);
            return EXIT_INVALID;
        }
    };
    if args.dry_run {
        outln!(
            "{}",
            serde_json::to_string_pretty(&plan.request).expect("JSON")
        );
        for (key, _) in &plan.uploads {
            let prefix = f.bootstrap.as_ref().map(|b| b.s3_prefix.as_str());
            errln!(
                "would upload {}/{key}",
                prefix.unwrap_or_default().trim_end_matches('/')
            );
        }
        // The request is shown for review, but a dry run says no where `up` would.
        if let Some((_, message)) = f.drill.as_ref().and_then(|d| d.placeholder_digest()) {
            errln!("error: {}: {message}", args.file);
            return EXIT_INVALID;
        }
        return EXIT_OK;
    }
    if let Some((_, message)) = f.drill.as_ref().and_then(|d| d.placeholder_digest()) {
        errln!("error: {}: {message}", args.file);
        return EXIT_INVALID;
    }
    let Some(rt) = runtime() else {
        return EXIT_RUNTIME;
    };
    rt.block_on(async {
        match launch(&f, &plan, &args).await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                errln!("error: {e}");
                EXIT_RUNTIME
            }
        }
    })
}

async fn launch(f: &ClusterFile, plan: &LaunchPlan, args: &UpArgs) -> Result<(), String> {
    let client = emr::client(&f.aws).await;
    let name = &f.cluster.name;
    let existing = emr::find_by_name(&client, name).await?;
    if !existing.is_empty() {
        return Err(format!(
            "a cluster named {name:?} is already active: {}; `flux-engine cluster down` it first",
            existing
                .iter()
                .map(|c| format!("{} ({})", c.id, c.state))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(b) = &f.bootstrap
        && !plan.uploads.is_empty()
    {
        let store = store::open_with(
            &b.s3_prefix,
            &StoreOptions {
                aws: f.aws.clone(),
                ..Default::default()
            },
        )?;
        for (key, text) in &plan.uploads {
            store
                .put(key, Bytes::from(text.clone()))
                .await
                .map_err(|e| format!("uploading {key}: {e}"))?;
            errln!("uploaded {}", store_url(&b.s3_prefix, key));
        }
    }
    let id = plan.request.send(&client).await?;
    outln!("{id}");
    errln!("cluster {id} ({name}) is starting; `flux-engine cluster status` shows its progress");
    if args.wait {
        wait(&client, &id, args.timeout.0, args.poll_interval.0).await?;
    }
    Ok(())
}

fn store_url(prefix: &str, key: &str) -> String {
    format!("{}/{key}", prefix.trim_end_matches('/'))
}

async fn wait(
    client: &aws_sdk_emr::Client,
    id: &str,
    timeout: std::time::Duration,
    every: std::time::Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let (state, reason) = state_of(client, id).await?;
        if state != last {
            errln!("{id}: {state}");
            last = state.clone();
        }
        match state.as_str() {
            "WAITING" | "RUNNING" => return Ok(()),
            "TERMINATING" | "TERMINATED" | "TERMINATED_WITH_ERRORS" => {
                return Err(format!("cluster {id} ended: {state} {reason}"));
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "cluster {id} is still {state} after {}",
                humantime_secs(timeout)
            ));
        }
        tokio::time::sleep(every).await;
    }
}

fn humantime_secs(d: std::time::Duration) -> String {
    HumanDuration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

async fn state_of(client: &aws_sdk_emr::Client, id: &str) -> Result<(String, String), String> {
    let out = client
        .describe_cluster()
        .cluster_id(id)
        .send()
        .await
        .map_err(|e| format!("DescribeCluster {id} failed: {}", describe(&e)))?;
    let status = out.cluster().and_then(|c| c.status());
    let state = status
        .and_then(|s| s.state())
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let reason = status
        .and_then(|s| s.state_change_reason())
        .and_then(|r| r.message())
        .unwrap_or_default()
        .to_owned();
    Ok((state, reason))
}
