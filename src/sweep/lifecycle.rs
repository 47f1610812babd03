//! The third layer of retention: a bucket lifecycle rule as a backstop behind the sweeper.
//!
//! The sweeper deletes by capture time and proves it; the lifecycle rule is counted by the
//! store from upload time and proves nothing, so it is set a few days *longer* than retention:
//! it only ever removes what a broken or stopped sweeper left behind. `lethe init` calls
//! [`set_lifecycle_backstop`] where the store supports it (S3, MinIO, Ceph RGW) and prints what
//! it set. Rules:
//!
//! - `lethe-reads-backstop`: expire `reads/` objects (and their non-current versions) after
//!   `ceil(retention / 24 h) + margin` days;
//! - `lethe-ids-backstop`: the same for the idempotency markers under `ids/`;
//! - `lethe-abort-multipart`: abort incomplete multipart uploads after one day.
//!
//! `keys/` is deliberately not covered: a day key's tombstone must outlive its day.
//! Setting a bucket's lifecycle configuration replaces the whole configuration.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration,
};

use crate::policy::Retention;

/// Days past retention before the backstop expires a read.
pub const DEFAULT_MARGIN_DAYS: u32 = 3;

/// A lifecycle rule as set, for `lethe init` to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackstopRule {
    /// Rule id.
    pub id: String,
    /// Object prefix ("" = whole bucket).
    pub prefix: String,
    /// What it does.
    pub action: String,
}

/// Setting the lifecycle configuration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// A rule could not be built (a bug).
    #[error("building lifecycle rule: {0}")]
    Build(#[from] aws_sdk_s3::error::BuildError),
    /// The server refused or failed.
    #[error("put-bucket-lifecycle-configuration on bucket {bucket}: {source}")]
    Put {
        /// The bucket.
        bucket: String,
        /// The SDK error.
        source: Box<
            aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_bucket_lifecycle_configuration::PutBucketLifecycleConfigurationError>,
        >,
    },
    /// The server refused or failed when reading back.
    #[error("get-bucket-lifecycle-configuration on bucket {bucket}: {source}")]
    Get {
        /// The bucket.
        bucket: String,
        /// The SDK error.
        source: Box<
            aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::get_bucket_lifecycle_configuration::GetBucketLifecycleConfigurationError>,
        >,
    },
}

/// Expiry in days of the backstop for `retention`: whole days of retention, rounded up, plus `margin_days`.
pub fn backstop_days(retention: &Retention, margin_days: u32) -> i32 {
    let days = retention.retention_hours.div_ceil(24) + margin_days;
    i32::try_from(days).unwrap_or(i32::MAX)
}

/// An S3 client for bucket settings. Checksums are computed only when an operation requires
/// them (Ceph RGW rejects the SDK's default trailing checksums), path-style addressing
/// for MinIO and RGW. Credentials and region come from the standard `AWS_*` environment.
pub async fn s3_client(endpoint: Option<&str>, region: Option<&str>, path_style: bool) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    let shared = loader.load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&shared)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .force_path_style(path_style);
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// Sets the backstop rules on `bucket` (replacing its lifecycle configuration) and returns them.
pub async fn set_lifecycle_backstop(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    retention: &Retention,
    margin_days: u32,
) -> Result<Vec<BackstopRule>, LifecycleError> {
    let days = backstop_days(retention, margin_days);
    let expire = |id: &str, prefix: &str| -> Result<LifecycleRule, LifecycleError> {
        Ok(LifecycleRule::builder()
            .id(id)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(days).build())
            .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
            .build()?)
    };
    let abort = LifecycleRule::builder()
        .id("lethe-abort-multipart")
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .status(ExpirationStatus::Enabled)
        .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build())
        .build()?;
    let config = BucketLifecycleConfiguration::builder()
        .rules(expire("lethe-reads-backstop", "reads/")?)
        .rules(expire("lethe-ids-backstop", "ids/")?)
        .rules(abort)
        .build()?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(config)
        .send()
        .await
        .map_err(|e| LifecycleError::Put {
            bucket: bucket.into(),
            source: Box::new(e),
        })?;
    let action = format!(
        "expire after {days} days (retention {} h + {margin_days} days)",
        retention.retention_hours
    );
    Ok(vec![
        BackstopRule {
            id: "lethe-reads-backstop".into(),
            prefix: "reads/".into(),
            action: action.clone(),
        },
        BackstopRule {
            id: "lethe-ids-backstop".into(),
            prefix: "ids/".into(),
            action,
        },
        BackstopRule {
            id: "lethe-abort-multipart".into(),
            prefix: String::new(),
            action: "abort incomplete multipart uploads after 1 day".into(),
        },
    ])
}

/// The ids of the lifecycle rules currently on `bucket` (empty when it has none).
pub async fn lifecycle_rule_ids(client: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<String>, LifecycleError> {
    match client.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
        Ok(out) => Ok(out.rules().iter().filter_map(|r| r.id().map(String::from)).collect()),
        Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
        Err(e) => Err(LifecycleError::Get {
            bucket: bucket.into(),
            source: Box::new(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backstop_is_longer_than_retention() {
        assert_eq!(backstop_days(&Retention::default(), DEFAULT_MARGIN_DAYS), 33);
        assert_eq!(backstop_days(&Retention { retention_hours: 25 }, 3), 5);
    }
}
