//! `cluster status`: a cluster's state, master, steps and how to reach Drill's web UI.

use super::{WhichArgs, runtime, which};
use crate::cli::{EXIT_OK, EXIT_RUNTIME};
use crate::cluster::describe;
use crate::cluster::file::ClusterFile;

pub(super) fn status(args: WhichArgs) -> i32 {
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
