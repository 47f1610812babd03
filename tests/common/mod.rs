//! Shared fixture for the integration tests that run against a real S3 server.
//!
//! CI (`scripts/test.sh`) starts radosgw (`scripts/s3-rgw.sh`) and exports:
//! `LETHE_TEST_S3_ENDPOINT`, `LETHE_TEST_S3_BUCKET`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and `LETHE_REQUIRE_S3=1`.
//! Without `LETHE_TEST_S3_ENDPOINT` the real-S3 tests skip, unless `LETHE_REQUIRE_S3=1` or
//! `CI=true`, in which case [`s3_env`] panics, so CI can never silently skip them.
//!
//! Use from a test file with `mod common;`. See `docs/s3-testing.md` for radosgw quirks.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::ObjectStore;

/// Where the real S3 server is and how to sign in to it.
#[derive(Debug, Clone)]
pub struct S3Env {
    /// e.g. `http://127.0.0.1:7480`
    pub endpoint: String,
    /// A bucket that exists already (tests should prefer [`fresh_bucket`]).
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

fn flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The real S3 server to test against, or `None` (skip) when `LETHE_TEST_S3_ENDPOINT` is unset.
///
/// Panics when it is unset but `LETHE_REQUIRE_S3=1` or `CI=true`, and when the endpoint is set
/// but the credentials are not.
pub fn s3_env() -> Option<S3Env> {
    let Some(endpoint) = var("LETHE_TEST_S3_ENDPOINT") else {
        if flag("LETHE_REQUIRE_S3") || flag("CI") {
            panic!(
                "LETHE_TEST_S3_ENDPOINT is not set, but LETHE_REQUIRE_S3=1 or CI=true requires the \
                 real-S3 tests to run. Run `bash scripts/test.sh`, or start the server with \
                 `bash scripts/s3-rgw.sh start && source /tmp/lethe-rgw/env`."
            );
        }
        eprintln!("LETHE_TEST_S3_ENDPOINT not set: skipping real-S3 test");
        return None;
    };
    let need =
        |name: &str| var(name).unwrap_or_else(|| panic!("LETHE_TEST_S3_ENDPOINT is set but {name} is not (source /tmp/lethe-rgw/env)"));
    Some(S3Env {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        bucket: var("LETHE_TEST_S3_BUCKET").unwrap_or_else(|| "lethe-test".into()),
        access_key: need("AWS_ACCESS_KEY_ID"),
        secret_key: need("AWS_SECRET_ACCESS_KEY"),
        region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
    })
}

/// An aws-sdk-s3 client for the test server: path-style addressing, static credentials, and
/// checksums only when required (radosgw rejects aws-chunked bodies with trailing checksums
/// with 400 `XAmzContentSHA256Mismatch`).
pub fn s3_client(env: &S3Env) -> aws_sdk_s3::Client {
    let creds = Credentials::new(&env.access_key, &env.secret_key, None, None, "lethe-test");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&env.endpoint)
        .region(Region::new(env.region.clone()))
        .credentials_provider(creds)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Creates a new, empty bucket with a unique name starting with `prefix`, so that each test
/// works in isolation. Buckets are left behind: the server is thrown away after the run.
pub async fn fresh_bucket(env: &S3Env, prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let clean: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(30)
        .collect();
    let clean = clean.trim_matches('-');
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    let name = format!(
        "{}-{:x}-{:x}-{}",
        if clean.is_empty() { "t" } else { clean },
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    assert!(name.len() <= 63, "bucket name too long: {name}");
    s3_client(env)
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {name} at {}: {e:?}", env.endpoint));
    name
}

/// An `object_store` S3 store on `bucket` of the test server: path-style, plain HTTP allowed,
/// conditional puts by ETag (`If-None-Match: *` for `PutMode::Create`, `If-Match` for
/// `PutMode::Update` — pass the ETag *unquoted* to radosgw, see `docs/s3-testing.md`).
pub fn object_store_for(env: &S3Env, bucket: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(&env.endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region(&env.region)
        .with_bucket_name(bucket)
        .with_access_key_id(&env.access_key)
        .with_secret_access_key(&env.secret_key)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .build()
        .unwrap_or_else(|e| panic!("object_store for {bucket} at {}: {e}", env.endpoint));
    Arc::new(store)
}
