//! Placeholder fixture; replaced by the CI branch's real-S3 fixture.
#![allow(dead_code)]
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct S3Env {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

pub fn s3_env() -> Option<S3Env> {
    let endpoint = std::env::var("LETHE_TEST_S3_ENDPOINT").ok()?;
    Some(S3Env {
        endpoint,
        bucket: std::env::var("LETHE_TEST_S3_BUCKET").unwrap_or_else(|_| "test-bucket".into()),
        access_key: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        secret_key: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
    })
}

pub async fn fresh_bucket(env: &S3Env, _prefix: &str) -> String {
    env.bucket.clone()
}

pub fn object_store_for(env: &S3Env, bucket: &str) -> Arc<dyn object_store::ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&env.endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region(&env.region)
            .with_access_key_id(&env.access_key)
            .with_secret_access_key(&env.secret_key)
            .build()
            .unwrap(),
    )
}
