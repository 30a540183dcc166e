//! One way to reach AWS for every stage: the standard credential and region chain (environment,
//! shared profiles including SSO, ECS/IMDS), with `region`, `profile` and `endpoint` settable
//! per stage (`aws = { region = "eu-west-1" }`), the standard `AWS_ENDPOINT_URL*` variables
//! honoured, and the SDK's retries configured once so no stage
//! writes its own retry loop for what the SDK already retries (standard mode: exponential
//! backoff with full jitter on throttling, 5xx and timeouts).

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use schemars::JsonSchema;
use serde::Deserialize;

/// Connection settings of an AWS-backed stage. Everything is optional: by default the standard
/// chain decides (environment, `~/.aws/config`, instance or task role).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// The region, e.g. `eu-west-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// A named profile of the shared AWS config files.
    #[serde(default)]
    pub profile: Option<String>,
    /// An endpoint URL to use instead of AWS's (an emulator, MinIO, a VPC endpoint). The
    /// standard `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` variables work too.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Attempts per call, including the first, for calls the SDK considers retryable
    /// (throttling, 5xx, timeouts). Default 8.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

impl AwsSettings {
    /// True when calls go to a custom endpoint (here or through the environment): S3 then uses
    /// path-style addressing, which emulators and most S3-compatible stores need.
    pub fn custom_endpoint(&self, service_env: &str) -> bool {
        self.endpoint.is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os(format!("AWS_ENDPOINT_URL_{service_env}")).is_some()
    }
}

/// Loads the shared SDK configuration for these settings.
pub async fn sdk_config(settings: &AwsSettings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(settings.max_attempts.unwrap_or(8).max(1))
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(20)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
        selected_profiles()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(profile.clone());
    }
    if let Some(endpoint) = &settings.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// A readable message for an SDK error: the service's error code and message when there is one,
/// otherwise the transport error, never the request (which may carry payloads).
pub fn describe<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    if let SdkError::DispatchFailure(d) = err
        && let Some(missing) = d.as_connector_error().and_then(|c| credentials_problem(c))
    {
        return missing;
    }
    match err {
        SdkError::ServiceError(e) => {
            let inner = e.err();
            match (inner.code(), inner.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_owned(),
                _ => inner.to_string(),
            }
        }
        SdkError::DispatchFailure(e) => {
            let mut msg = "cannot reach the endpoint".to_owned();
            if e.is_timeout() {
                msg.push_str(" (timeout)");
            }
            if let Some(source) = std::error::Error::source(err) {
                msg.push_str(&format!(": {source}"));
                let mut next = std::error::Error::source(source);
                while let Some(s) = next {
                    msg.push_str(&format!(": {s}"));
                    next = s.source();
                }
            }
            msg
        }
        SdkError::TimeoutError(_) => "the request timed out".to_owned(),
        other => {
            let mut msg = other.to_string();
            let mut next = std::error::Error::source(other);
            while let Some(s) = next {
                msg.push_str(&format!(": {s}"));
                next = s.source();
            }
            msg
        }
    }
}

/// Profiles named in pipeline files' `aws` tables (the environment's `AWS_PROFILE` is read when
/// needed), for messages about credentials.
fn selected_profiles() -> &'static std::sync::Mutex<std::collections::BTreeSet<String>> {
    static PROFILES: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<String>>> =
        std::sync::OnceLock::new();
    PROFILES.get_or_init(Default::default)
}

/// When `err` is the credential chain failing (no credentials, a profile that does not exist or
/// is broken), what the AWS CLI would say instead of a transport error: credentials are looked
/// up before anything is sent, so the endpoint was never tried.
fn credentials_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            let mut profiles: Vec<String> = selected_profiles()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect();
            if let Ok(p) = std::env::var("AWS_PROFILE")
                && !p.is_empty()
                && !profiles.contains(&p)
            {
                profiles.push(p);
            }
            let detail = match c {
                CredentialsError::CredentialsNotLoaded(_) => String::new(),
                other => format!(
                    " ({})",
                    std::error::Error::source(other)
                        .map_or_else(|| other.to_string(), |s| s.to_string())
                ),
            };
            return Some(if profiles.is_empty() {
                format!(
                    "no AWS credentials found{detail}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance or task role (looked in the environment, ~/.aws/credentials and ~/.aws/config, web identity, ECS and EC2 metadata)"
                )
            } else {
                format!(
                    "no AWS credentials from the profile {}{detail}: the profile could not be found or holds no credentials (check ~/.aws/config and ~/.aws/credentials, or AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE)",
                    profiles
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
        next = e.source();
    }
    None
}
