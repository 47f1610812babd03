//! The `aws-sdk-s3` client, for what `object_store` cannot do: bucket settings (versioning,
//! lifecycle, Object Lock, public access) that `lethe init` sets and `lethe audit` checks.
//!
//! Configured from the same settings as the data path: endpoint, region, path-style addressing,
//! and credentials from the standard `AWS_*` variables. Checksums are computed only where S3
//! requires them: Ceph RGW rejects aws-chunked bodies with trailing checksums.

use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};

use crate::config::{ConfigError, StoreConfig, StoreKind};

/// Builds a client for the configured S3 store. Fails for a store that is not S3.
pub async fn client(cfg: &StoreConfig) -> Result<aws_sdk_s3::Client, ConfigError> {
    if cfg.kind != StoreKind::S3 {
        return Err(ConfigError::new("store.kind", "bucket settings exist only on an S3 store"));
    }
    let region = cfg.region.clone().unwrap_or_else(|| "us-east-1".into());
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(region))
        .load()
        .await;
    let mut b = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(!cfg.virtual_hosted_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(e) = &cfg.endpoint {
        b = b.endpoint_url(e.clone());
    }
    // Static credentials from the environment win over any other provider, as for object_store.
    if let (Ok(k), Ok(s)) = (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
        b = b.credentials_provider(Credentials::new(k, s, std::env::var("AWS_SESSION_TOKEN").ok(), None, "environment"));
    }
    Ok(aws_sdk_s3::Client::from_conf(b.build()))
}

/// The bucket name of an S3 store.
pub fn bucket(cfg: &StoreConfig) -> Result<&str, ConfigError> {
    cfg.bucket
        .as_deref()
        .ok_or_else(|| ConfigError::new("store.bucket", "missing for an S3 store"))
}
