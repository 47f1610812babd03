//! Opening the object store named by the configuration, and checking it at start.
//!
//! A bad setting — missing bucket, unreachable endpoint, wrong credentials, unwritable directory
//! — fails here, at start, with one line naming the setting, rather than on the first read.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::config::{ConfigError, StoreConfig, StoreKind};

/// Builds the object store. Does no I/O beyond creating the local directory.
pub fn build(cfg: &StoreConfig) -> Result<Arc<dyn ObjectStore>, ConfigError> {
    match cfg.kind {
        StoreKind::Memory => Ok(Arc::new(InMemory::new())),
        StoreKind::Local => {
            std::fs::create_dir_all(&cfg.path)
                .map_err(|e| ConfigError::new("store.path", format!("cannot create {}: {e}", cfg.path.display())))?;
            let fs = LocalFileSystem::new_with_prefix(&cfg.path)
                .map_err(|e| ConfigError::new("store.path", format!("{}: {e}", cfg.path.display())))?
                .with_fsync(cfg.fsync)
                .with_automatic_cleanup(true);
            Ok(Arc::new(fs))
        }
        StoreKind::S3 => {
            let bucket = cfg
                .bucket
                .clone()
                .ok_or_else(|| ConfigError::new("store.bucket", "missing for an S3 store"))?;
            // Credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) from the env.
            // Client options first: `with_client_options` replaces them whole, `allow_http` included.
            let mut b = AmazonS3Builder::from_env()
                .with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(5))
                        .with_timeout(Duration::from_secs(60)),
                )
                .with_bucket_name(bucket)
                .with_region(cfg.region.clone().unwrap_or_else(|| "us-east-1".into()))
                .with_allow_http(cfg.allow_http)
                .with_virtual_hosted_style_request(cfg.virtual_hosted_style)
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(20),
                });
            if let Some(e) = &cfg.endpoint {
                b = b.with_endpoint(e.clone());
            }
            let s3 = b.build().map_err(|e| ConfigError::new("store", e.to_string()))?;
            Ok(Arc::new(s3))
        }
    }
}

/// Checks that the store answers, the bucket exists and the credentials are accepted, by listing
/// and writing a probe object. Maps each failure to the setting that causes it.
pub async fn probe(store: &dyn ObjectStore, cfg: &StoreConfig) -> Result<(), ConfigError> {
    let prefix = Path::from("keys");
    let res = tokio::time::timeout(Duration::from_secs(30), store.list_with_delimiter(Some(&prefix))).await;
    let err = match res {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => return Err(unreachable_err(cfg, "no answer within 30 s")),
    };
    Err(classify(err, cfg))
}

fn unreachable_err(cfg: &StoreConfig, why: &str) -> ConfigError {
    ConfigError::new(
        "store.endpoint",
        format!("cannot reach {}: {why}", cfg.endpoint.as_deref().unwrap_or("the AWS S3 endpoint")),
    )
}

fn classify(err: object_store::Error, cfg: &StoreConfig) -> ConfigError {
    let bucket = cfg.bucket.as_deref().unwrap_or("");
    match cfg.kind {
        StoreKind::Local => ConfigError::new("store.path", format!("{}: {err}", cfg.path.display())),
        StoreKind::Memory => ConfigError::new("store", err.to_string()),
        StoreKind::S3 => match err {
            object_store::Error::NotFound { .. } => {
                ConfigError::new("store.bucket", format!("bucket '{bucket}' does not exist at the endpoint"))
            }
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => ConfigError::new(
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                format!("credentials were refused for bucket '{bucket}' (wrong key or secret, or no access)"),
            ),
            other => {
                let msg = other.to_string();
                let low = msg.to_ascii_lowercase();
                if low.contains("nosuchbucket") {
                    ConfigError::new("store.bucket", format!("bucket '{bucket}' does not exist at the endpoint"))
                } else if low.contains("signaturedoesnotmatch") || low.contains("invalidaccesskeyid") || low.contains("accessdenied") {
                    ConfigError::new(
                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                        format!("credentials were refused for bucket '{bucket}' (wrong key or secret, or no access)"),
                    )
                } else if low.contains("missing") && low.contains("credential") {
                    ConfigError::new("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", "not set")
                } else {
                    unreachable_err(cfg, &first_line(&msg))
                }
            }
        },
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    if line.len() > 240 {
        format!("{}…", &line[..line.floor_char_boundary(240)])
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_endpoint_names_the_setting() {
        // Port 9 (discard) on loopback: nothing listens there.
        let cfg = StoreConfig {
            kind: StoreKind::S3,
            bucket: Some("b".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            allow_http: true,
            ..Default::default()
        };
        let store = build(&cfg).unwrap();
        let e = probe(store.as_ref(), &cfg).await.unwrap_err();
        assert_eq!(e.setting, "store.endpoint", "{e}");
    }

    #[tokio::test]
    async fn unwritable_directory_names_the_setting() {
        let cfg = StoreConfig {
            kind: StoreKind::Local,
            path: "/proc/lethe-cannot-be-here".into(),
            ..Default::default()
        };
        let e = build(&cfg).err().unwrap();
        assert_eq!(e.setting, "store.path");
    }
}
