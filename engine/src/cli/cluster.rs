//! `flux-engine cluster up|status|down`: an EMR cluster from a cluster file (docs/cluster.md).

use bytes::Bytes;
use clap::{Args, Subcommand};
use flux_stages::aws::AwsSettings;
use flux_stages::store::{self, StoreOptions};
use flux_stages::units::HumanDuration;

use super::{EXIT_INVALID, EXIT_OK, EXIT_RUNTIME, VarArgs, print_diagnostics};
use crate::cluster::file::{self, ClusterFile};
use crate::cluster::request::RunJobFlow;
use crate::cluster::steps::{self, DdlStep};
use crate::cluster::{self as emr, bootstrap, describe};

#[derive(Args, Debug)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Upload the generated scripts and launch the cluster (RunJobFlow with the DDL steps).
    Up(UpArgs),
    /// Show a cluster: state, master, steps, how to reach Drill's web UI.
    Status(WhichArgs),
    /// Terminate a cluster.
    Down(WhichArgs),
}

#[derive(Args, Debug)]
struct UpArgs {
    /// The cluster file.
    file: String,
    #[command(flatten)]
    vars: VarArgs,
    /// Print the RunJobFlow request as JSON; upload and launch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait until the cluster is WAITING or RUNNING (or fails).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "45m")]
    timeout: HumanDuration,
    /// How often --wait asks.
    #[arg(long, default_value = "30s")]
    poll_interval: HumanDuration,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["file", "id"]))]
struct WhichArgs {
    /// The cluster file (the cluster is found by its name and tag).
    file: Option<String>,
    /// The cluster id, `j-…`.
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    vars: VarArgs,
}

pub(crate) fn cluster(args: ClusterArgs) -> i32 {
    match args.command {
        ClusterCommand::Up(a) => up(a),
        ClusterCommand::Status(a) => status(a),
        ClusterCommand::Down(a) => down(a),
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            None
        }
    }
}

fn load(path: &str, vars: &VarArgs) -> Result<ClusterFile, i32> {
    let overrides = vars.overrides().map_err(|e| {
        errln!("error: {e}");
        EXIT_INVALID
    })?;
    file::load_file(path, &overrides).map_err(|diags| {
        print_diagnostics(&diags);
        errln!("{path}: {} error(s)", diags.len());
        EXIT_INVALID
    })
}

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

fn up(args: UpArgs) -> i32 {
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

/// The cluster id and the AWS settings for status/down.
async fn which(
    args: &WhichArgs,
) -> Result<(aws_sdk_emr::Client, String, Option<ClusterFile>), i32> {
    let f = match &args.file {
        Some(path) => Some(load(path, &args.vars)?),
        None => None,
    };
    let aws = f
        .as_ref()
        .map(|f| f.aws.clone())
        .unwrap_or_else(AwsSettings::default);
    let client = emr::client(&aws).await;
    let id = match (&args.id, &f) {
        (Some(id), _) => id.clone(),
        (None, Some(f)) => emr::find_one(&client, &f.cluster.name).await.map_err(|e| {
            errln!("error: {e}");
            EXIT_RUNTIME
        })?,
        (None, None) => unreachable!("clap requires FILE or --id"),
    };
    Ok((client, id, f))
}

fn status(args: WhichArgs) -> i32 {
    let Some(rt) = runtime() else {
        return EXIT_RUNTIME;
    };
    rt.block_on(async {
        let (client, id, f) = match which(&args).await {
            Ok(x) => x,
            Err(code) => return code,
        };
        match show(&client, &id, f.as_ref()).await {
            Ok(text) => {
                out!("{text}");
                EXIT_OK
            }
            Err(e) => {
                errln!("error: {e}");
                EXIT_RUNTIME
            }
        }
    })
}

async fn show(
    client: &aws_sdk_emr::Client,
    id: &str,
    f: Option<&ClusterFile>,
) -> Result<String, String> {
    use std::fmt::Write;
    let out = client
        .describe_cluster()
        .cluster_id(id)
        .send()
        .await
        .map_err(|e| format!("DescribeCluster {id} failed: {}", describe(&e)))?;
    let c = out
        .cluster()
        .ok_or_else(|| format!("DescribeCluster {id} answered without a cluster"))?;
    let mut s = String::new();
    let state = c
        .status()
        .and_then(|s| s.state())
        .map(|s| s.as_str())
        .unwrap_or("?");
    let _ = writeln!(s, "cluster {id} ({}): {state}", c.name().unwrap_or("?"));
    if let Some(reason) = c
        .status()
        .and_then(|s| s.state_change_reason())
        .and_then(|r| r.message())
    {
        let _ = writeln!(s, "  reason: {reason}");
    }
    let _ = writeln!(s, "  release: {}", c.release_label().unwrap_or("?"));
    let apps: Vec<String> = c
        .applications()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a.name().unwrap_or("?"),
                a.version().unwrap_or_default()
            )
            .trim()
            .to_owned()
        })
        .collect();
    let _ = writeln!(s, "  applications: {}", apps.join(", "));
    let dns = c.master_public_dns_name().filter(|d| !d.is_empty());
    let _ = writeln!(
        s,
        "  master: {}",
        dns.unwrap_or("(no public DNS name yet, or a private subnet)")
    );
    if let Some(t) = f.and_then(|f| f.cluster.idle_timeout) {
        let _ = writeln!(
            s,
            "  idle timeout: {t} (terminates itself after that long idle)"
        );
    }
    let steps = client
        .list_steps()
        .cluster_id(id)
        .send()
        .await
        .map_err(|e| format!("ListSteps {id} failed: {}", describe(&e)))?;
    let _ = writeln!(s, "  steps:");
    // ListSteps returns the newest first; show them in the order they run.
    for step in steps.steps().iter().rev() {
        let _ = writeln!(
            s,
            "    {}  {:<11} {}",
            step.id().unwrap_or("?"),
            step.status()
                .and_then(|st| st.state())
                .map(|st| st.as_str())
                .unwrap_or("?"),
            step.name().unwrap_or("?")
        );
    }
    if steps.steps().is_empty() {
        let _ = writeln!(s, "    (none)");
    }
    let master_instance = client
        .list_instances()
        .cluster_id(id)
        .instance_group_types(aws_sdk_emr::types::InstanceGroupType::Master)
        .send()
        .await
        .ok()
        .and_then(|o| {
            o.instances()
                .iter()
                .find_map(|i| i.ec2_instance_id().map(str::to_owned))
        });
    let _ = writeln!(
        s,
        "  Drill web UI (port 8047 on the master), then open http://localhost:8047:"
    );
    let _ = writeln!(
        s,
        "    aws ssm start-session --target {} --document-name AWS-StartPortForwardingSession --parameters '{{\"portNumber\":[\"8047\"],\"localPortNumber\":[\"8047\"]}}'",
        master_instance.as_deref().unwrap_or("<master instance id>")
    );
    let key = f
        .and_then(|f| f.cluster.key_name.clone())
        .unwrap_or_else(|| "<key pair>".into());
    let _ = writeln!(
        s,
        "    ssh -i {key}.pem -N -L 8047:localhost:8047 hadoop@{}",
        dns.unwrap_or("<master public DNS>")
    );
    Ok(s)
}

fn down(args: WhichArgs) -> i32 {
    let Some(rt) = runtime() else {
        return EXIT_RUNTIME;
    };
    rt.block_on(async {
        let (client, id, _) = match which(&args).await {
            Ok(x) => x,
            Err(code) => return code,
        };
        match client.terminate_job_flows().job_flow_ids(&id).send().await {
            Ok(_) => {
                outln!("{id}");
                errln!("cluster {id} is terminating");
                EXIT_OK
            }
            Err(e) => {
                errln!("error: TerminateJobFlows {id} failed: {}", describe(&e));
                EXIT_RUNTIME
            }
        }
    })
}
