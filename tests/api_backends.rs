//! The core API scenario on every backend: the local directory (the embedded default) and the
//! real S3 server (radosgw in CI; skipped locally when LETHE_TEST_S3_ENDPOINT is unset, never in
//! CI). The in-memory backend runs the full suite in `tests/api.rs`.

mod api_support;
mod common;

use std::sync::Arc;

use api_support::*;
use lethe::api::proto::ReadStatus;
use lethe::api::ApiLimits;
use lethe::ledger::record::Decision;
use lethe::ledger::RecordBody;
use object_store::ObjectStore;
use tonic::Code;

async fn scenario(store: Arc<dyn ObjectStore>) {
    let h = Harness::start_on(store, ApiLimits::default()).await;
    let batch = vec![
        read("k1", "7ABC123", t0() - hours(30), "cam-1"),
        read("k2", "7ABC123", t0() - hours(2), "cam-2"),
        read("k3", "7A8C123", t0() - hours(1), "cam-3"),
        read("k4", "5XYZ555", t0() - hours(1), "cam-1"),
        read("k5", "5XYZ555", t0() - hours(800), "cam-1"),
    ];
    let ack = h.ingest(batch.clone()).await.unwrap();
    assert_eq!((ack.stored, ack.rejected), (4, 1));
    let again = h.ingest(batch).await.unwrap();
    assert_eq!((again.stored, again.duplicates, again.rejected), (0, 4, 1));
    assert_eq!(again.results[4].status(), ReadStatus::Rejected);

    let mut req = search_req("7abc 123");
    req.folded = true;
    let (header, results) = h.search_as("city-pd", req).await.unwrap();
    let got: Vec<(String, bool)> = results
        .iter()
        .map(|r| (r.read.as_ref().unwrap().read_id.clone(), r.exact))
        .collect();
    assert_eq!(got, [("k1".into(), true), ("k2".into(), true), ("k3".into(), false)]);
    assert_eq!(header.count, 3);
    // Past retention after the clock moves on, swept or not.
    h.clock.advance(hours(700));
    let (_, results) = h.search_as("county-so", search_req("7ABC123")).await.unwrap();
    assert_eq!(results.len(), 1);
    let e = h.search_as("nv-city-pd", search_req("7ABC123")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let records = h.ledger().await;
    let access: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            RecordBody::Access(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(access.len(), 3);
    assert_eq!(access[0].receipt.count, 3);
    assert_eq!(access[2].decision, Decision::Deny);
    let commits = records.iter().filter(|r| matches!(r, RecordBody::IngestCommit(_))).count();
    assert_eq!(commits, 2, "two capture days, committed once each");
    h.stop().await;
}

#[tokio::test]
async fn api_on_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_automatic_cleanup(true);
    scenario(Arc::new(fs)).await;
}

#[tokio::test]
async fn api_on_real_s3() {
    let Some(env) = common::s3_env() else { return };
    let bucket = common::fresh_bucket(&env, "api").await;
    scenario(common::object_store_for(&env, &bucket)).await;
}
