//! `flux-engine cluster up|status|down`: an EMR cluster (Hive, ZooKeeper, Drill installed by a
//! generated bootstrap action) from a cluster file, with steps that create the `ddl` sink's
//! Hive tables and Drill views. See docs/cluster.md.
//!
//! The cluster id is not stored locally: every cluster carries the tag
//! `flux-engine:cluster=<name>`, and `status`/`down` find it with ListClusters (active states)
//! filtered by name, then by that tag.

pub mod bootstrap;
pub mod file;
pub mod request;
pub mod steps;

use aws_sdk_emr::Client;
use aws_sdk_emr::types::ClusterState;
use flux_stages::aws::AwsSettings;

pub use flux_stages::aws::describe;

/// An EMR client for these settings (the same loader as every stage, so `aws = { endpoint }`
/// and `AWS_ENDPOINT_URL_EMR` apply).
pub async fn client(aws: &AwsSettings) -> Client {
    Client::new(&flux_stages::aws::sdk_config(aws).await)
}

/// The states of a cluster that is not (being) terminated.
pub fn active_states() -> Vec<ClusterState> {
    vec![
        ClusterState::Starting,
        ClusterState::Bootstrapping,
        ClusterState::Running,
        ClusterState::Waiting,
    ]
}

/// A cluster found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `j-…`
    pub id: String,
    /// Its state.
    pub state: String,
}

/// The active clusters named `name` that carry the flux-engine tag for that name.
pub async fn find_by_name(client: &Client, name: &str) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    let mut pages = client
        .list_clusters()
        .set_cluster_states(Some(active_states()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("ListClusters failed: {}", describe(&e)))?;
        for c in page.clusters() {
            if c.name() != Some(name) {
                continue;
            }
            let Some(id) = c.id() else { continue };
            let described = client
                .describe_cluster()
                .cluster_id(id)
                .send()
                .await
                .map_err(|e| format!("DescribeCluster {id} failed: {}", describe(&e)))?;
            let tagged = described.cluster().is_some_and(|c| {
                c.tags()
                    .iter()
                    .any(|t| t.key() == Some(request::NAME_TAG) && t.value() == Some(name))
            });
            if tagged {
                found.push(Found {
                    id: id.to_owned(),
                    state: c
                        .status()
                        .and_then(|s| s.state())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                });
            }
        }
    }
    Ok(found)
}

/// Exactly one active cluster of that name, or why not.
pub async fn find_one(client: &Client, name: &str) -> Result<String, String> {
    let found = find_by_name(client, name).await?;
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(format!(
            "no active cluster named {name:?} (tag {}={name}); pass --id j-… for another one",
            request::NAME_TAG
        )),
        many => Err(format!(
            "{} active clusters are named {name:?}: {}; pass --id to pick one",
            many.len(),
            many.iter()
                .map(|f| format!("{} ({})", f.id, f.state))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
