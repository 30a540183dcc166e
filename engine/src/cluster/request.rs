//! The RunJobFlow request, as a plain serde struct with EMR's field names: `--dry-run` prints
//! it as JSON, and [`RunJobFlow::send`] turns exactly it into the SDK call, so what is printed
//! is what is sent.

use serde::Serialize;

use super::file::{ClusterFile, InstanceGroup, Market, Metastore};
use super::steps::DdlStep;

/// The tag that marks a cluster as launched by flux-engine from a cluster file named so.
pub const NAME_TAG: &str = "flux-engine:cluster";

/// RunJobFlow's input, as sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RunJobFlow {
    /// Cluster name.
    pub name: String,
    /// EMR release.
    pub release_label: String,
    /// Log location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_uri: Option<String>,
    /// Service role.
    pub service_role: String,
    /// Instance profile.
    pub job_flow_role: String,
    /// Visible to every IAM user of the account.
    pub visible_to_all_users: bool,
    /// Applications.
    pub applications: Vec<App>,
    /// Instances.
    pub instances: Instances,
    /// Bootstrap actions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_actions: Vec<BootstrapAction>,
    /// Steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Application configurations (hive-site for Glue).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configurations: Vec<Configuration>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Idle auto-termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_termination_policy: Option<AutoTermination>,
}

/// An application.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct App {
    /// Its name, e.g. "Hive".
    pub name: String,
}

/// `Instances`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Instances {
    /// The groups.
    pub instance_groups: Vec<Group>,
    /// Subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2_subnet_id: Option<String>,
    /// Key pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2_key_name: Option<String>,
    /// Always true: the cluster waits for queries after its steps.
    pub keep_job_flow_alive_when_no_steps: bool,
    /// Always false: `cluster down` must be able to end it.
    pub termination_protected: bool,
}

/// An instance group.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Group {
    /// Group name.
    pub name: String,
    /// MASTER or CORE.
    pub instance_role: String,
    /// EC2 type.
    pub instance_type: String,
    /// How many.
    pub instance_count: i32,
    /// ON_DEMAND or SPOT.
    pub market: String,
}

/// A bootstrap action.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct BootstrapAction {
    /// Its name.
    pub name: String,
    /// The script.
    pub script_bootstrap_action: Script,
}

/// A script and its arguments.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Script {
    /// `s3://…`
    pub path: String,
    /// Arguments.
    pub args: Vec<String>,
}

/// A step.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Step {
    /// Its name.
    pub name: String,
    /// Always CONTINUE: a failed DDL step leaves the cluster up to be looked at.
    pub action_on_failure: String,
    /// What runs.
    pub hadoop_jar_step: JarStep,
}

/// A jar and its arguments.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct JarStep {
    /// The jar.
    pub jar: String,
    /// Arguments.
    pub args: Vec<String>,
}

/// A tag.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A configuration classification and its properties.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Configuration {
    /// E.g. `hive-site`.
    pub classification: String,
    /// Its properties.
    pub properties: std::collections::BTreeMap<String, String>,
}

/// The Glue Data Catalog client EMR's Hive uses as its metastore.
pub const GLUE_FACTORY: &str =
    "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory";

/// Hive's metastore on Glue when Drill's is (`hive_metastore = "glue"`): both then see the
/// same tables.
pub fn configurations(file: &ClusterFile) -> Vec<Configuration> {
    match &file.drill {
        Some(d) if d.hive_metastore == Metastore::Glue => vec![Configuration {
            classification: "hive-site".into(),
            properties: [(
                "hive.metastore.client.factory.class".to_owned(),
                GLUE_FACTORY.to_owned(),
            )]
            .into(),
        }],
        _ => Vec::new(),
    }
}

/// Idle auto-termination.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AutoTermination {
    /// Seconds without work before EMR terminates the cluster.
    pub idle_timeout: i64,
}

fn group(name: &str, role: &str, g: &InstanceGroup) -> Group {
    Group {
        name: name.into(),
        instance_role: role.into(),
        instance_type: g.instance_type.clone(),
        instance_count: g.count,
        market: match g.market {
            Market::OnDemand => "ON_DEMAND".into(),
            Market::Spot => "SPOT".into(),
        },
    }
}

/// The applications: those of the file, plus ZooKeeper when Drill is installed (Drill
/// registers its drillbits there); no duplicates, in the file's order.
pub fn applications(file: &ClusterFile) -> Vec<String> {
    let mut apps: Vec<String> = Vec::new();
    for a in &file.cluster.applications {
        if !apps.iter().any(|x| x.eq_ignore_ascii_case(a)) {
            apps.push(a.clone());
        }
    }
    if file.drill.is_some() && !apps.iter().any(|a| a.eq_ignore_ascii_case("ZooKeeper")) {
        apps.push("ZooKeeper".into());
    }
    apps
}

impl RunJobFlow {
    /// The request for a cluster file, its bootstrap script's URL (when Drill is installed)
    /// and its DDL steps.
    pub fn new(file: &ClusterFile, bootstrap_url: Option<&str>, steps: &[DdlStep]) -> RunJobFlow {
        let c = &file.cluster;
        let mut groups = vec![group("master", "MASTER", &file.instances.master)];
        if let Some(core) = &file.instances.core {
            groups.push(group("core", "CORE", core));
        }
        let mut tags: Vec<Tag> = c
            .tags
            .iter()
            .filter(|(k, _)| k.as_str() != NAME_TAG)
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        tags.push(Tag {
            key: NAME_TAG.into(),
            value: c.name.clone(),
        });
        RunJobFlow {
            name: c.name.clone(),
            release_label: c.release_label.clone(),
            log_uri: c.log_uri.clone(),
            service_role: c.service_role.clone(),
            job_flow_role: c.job_flow_role.clone(),
            visible_to_all_users: true,
            applications: applications(file)
                .into_iter()
                .map(|name| App { name })
                .collect(),
            instances: Instances {
                instance_groups: groups,
                ec2_subnet_id: c.subnet_id.clone(),
                ec2_key_name: c.key_name.clone(),
                keep_job_flow_alive_when_no_steps: true,
                termination_protected: false,
            },
            bootstrap_actions: bootstrap_url
                .zip(file.drill.as_ref())
                .map(|(url, d)| BootstrapAction {
                    name: format!("flux-engine: install Drill {}", d.version),
                    script_bootstrap_action: Script {
                        path: url.into(),
                        args: Vec::new(),
                    },
                })
                .into_iter()
                .collect(),
            steps: steps
                .iter()
                .map(|s| Step {
                    name: s.name.clone(),
                    action_on_failure: "CONTINUE".into(),
                    hadoop_jar_step: JarStep {
                        jar: s.jar.clone(),
                        args: s.args.clone(),
                    },
                })
                .collect(),
            configurations: configurations(file),
            tags,
            auto_termination_policy: c.idle_timeout.map(|t| AutoTermination {
                idle_timeout: t.0.as_secs() as i64,
            }),
        }
    }

    /// Sends the request; returns the cluster id.
    pub async fn send(&self, client: &aws_sdk_emr::Client) -> Result<String, String> {
        use aws_sdk_emr::types as t;
        let instances = t::JobFlowInstancesConfig::builder()
            .set_instance_groups(Some(
                self.instances
                    .instance_groups
                    .iter()
                    .map(|g| {
                        t::InstanceGroupConfig::builder()
                            .name(&g.name)
                            .instance_role(t::InstanceRoleType::from(g.instance_role.as_str()))
                            .instance_type(&g.instance_type)
                            .instance_count(g.instance_count)
                            .market(t::MarketType::from(g.market.as_str()))
                            .build()
                    })
                    .collect(),
            ))
            .set_ec2_subnet_id(self.instances.ec2_subnet_id.clone())
            .set_ec2_key_name(self.instances.ec2_key_name.clone())
            .keep_job_flow_alive_when_no_steps(self.instances.keep_job_flow_alive_when_no_steps)
            .termination_protected(self.instances.termination_protected)
            .build();
        let mut req = client
            .run_job_flow()
            .name(&self.name)
            .release_label(&self.release_label)
            .set_log_uri(self.log_uri.clone())
            .service_role(&self.service_role)
            .job_flow_role(&self.job_flow_role)
            .visible_to_all_users(self.visible_to_all_users)
            .instances(instances);
        for a in &self.applications {
            req = req.applications(t::Application::builder().name(&a.name).build());
        }
        for b in &self.bootstrap_actions {
            req = req.bootstrap_actions(
                t::BootstrapActionConfig::builder()
                    .name(&b.name)
                    .script_bootstrap_action(
                        t::ScriptBootstrapActionConfig::builder()
                            .path(&b.script_bootstrap_action.path)
                            .set_args(Some(b.script_bootstrap_action.args.clone()))
                            .build(),
                    )
                    .build(),
            );
        }
        for s in &self.steps {
            req = req.steps(
                t::StepConfig::builder()
                    .name(&s.name)
                    .action_on_failure(t::ActionOnFailure::from(s.action_on_failure.as_str()))
                    .hadoop_jar_step(
                        t::HadoopJarStepConfig::builder()
                            .jar(&s.hadoop_jar_step.jar)
                            .set_args(Some(s.hadoop_jar_step.args.clone()))
                            .build(),
                    )
                    .build(),
            );
        }
        for c in &self.configurations {
            req = req.configurations(
                t::Configuration::builder()
                    .classification(&c.classification)
                    .set_properties(Some(
                        c.properties
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ))
                    .build(),
            );
        }
        for tag in &self.tags {
            req = req.tags(t::Tag::builder().key(&tag.key).value(&tag.value).build());
        }
        if let Some(p) = &self.auto_termination_policy {
            req = req.auto_termination_policy(
                t::AutoTerminationPolicy::builder()
                    .idle_timeout(p.idle_timeout)
                    .build(),
            );
        }
        let out = req
            .send()
            .await
            .map_err(|e| format!("RunJobFlow failed: {}", super::describe(&e)))?;
        out.job_flow_id
            .ok_or_else(|| "RunJobFlow answered without a cluster id".into())
    }
}

#[cfg(test)]
mod tests;
