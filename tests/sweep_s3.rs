//! The sweeper on the real S3 server (radosgw in CI). Skipped when LETHE_TEST_S3_ENDPOINT is
//! unset. Each test works under a fresh prefix of the test bucket; S3 lists 1,000 keys a page.

mod common;
mod sweep_support;

use std::sync::Arc;

use chrono::Duration;
use futures::TryStreamExt;
use lethe::clock::{Clock, ManualClock, SystemClock};
use lethe::sweep::{self, MemoryProofLog, ProofLog, SweepEvent, SweepOptions};
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use sweep_support::{open, read, TestStore};

fn prefixed(store: Arc<dyn ObjectStore>, name: &str) -> Arc<dyn ObjectStore> {
    let p = format!("test-sweep-{name}-{}", SystemClock.now().timestamp_nanos_opt().unwrap_or(0));
    Arc::new(PrefixStore::new(store, p))
}

#[tokio::test]
async fn s3_sweep_deletes_2500_reads_in_pages_each_once_and_sets_the_backstop() {
    let Some(env) = common::s3_env() else {
        eprintln!("LETHE_TEST_S3_ENDPOINT unset: skipped");
        return;
    };
    let bucket = common::fresh_bucket(&env, "sweep").await;
    let store = prefixed(common::object_store_for(&env, &bucket), "paging");
    let raw = Arc::new(TestStore::new(store, None, None));
    let reads = open(raw.clone()).await;
    let now = SystemClock.now();
    let day_start = (now - Duration::days(40)).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let mut keys = Vec::new();
    for i in 0..2500 {
        let r = read(&format!("s3-{i:05}"), "S3PAGE1", day_start + Duration::seconds(i * 30), "cam");
        if let lethe::store::PutOutcome::Stored(s) = reads.put(&r, true, now).await.unwrap() {
            keys.push(s.key);
        }
    }
    let log = MemoryProofLog::new();
    log.append(
        now,
        SweepEvent::IngestCommit {
            day: day_start.date_naive(),
            count: 2500,
        },
    )
    .await
    .unwrap();
    let clock = ManualClock::new(now);
    let rep = sweep::run(&reads, &log, &clock, &SweepOptions::default()).await.unwrap();
    assert_eq!(rep.exit_code(), 0, "{rep:?}");
    assert_eq!(rep.deleted(), 2500);
    for k in &keys {
        assert_eq!(raw.delete_count(&k.to_string()), 1, "{k}");
    }
    assert!(reads
        .list_day(day_start.date_naive())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .is_empty());
    assert!(rep.days[0].closed.as_ref().unwrap().reconciled);

    let client = lethe::sweep::lifecycle::s3_client(Some(&env.endpoint), Some(&env.region), true).await;
    let rules = lethe::sweep::lifecycle::set_lifecycle_backstop(&client, &bucket, &Default::default(), 3)
        .await
        .unwrap();
    assert_eq!(rules.len(), 3);
    let ids = lethe::sweep::lifecycle::lifecycle_rule_ids(&client, &bucket).await.unwrap();
    assert!(ids.iter().any(|i| i == "lethe-reads-backstop"), "{ids:?}");
}

#[tokio::test]
async fn s3_a_principal_without_delete_permission_fails_loudly() {
    let Some(env) = common::s3_env() else {
        eprintln!("LETHE_TEST_S3_ENDPOINT unset: skipped");
        return;
    };
    // A second user that may read and write but not delete (set up by the CI fixture).
    let (Ok(ak), Ok(sk)) = (
        std::env::var("LETHE_TEST_S3_NODELETE_ACCESS_KEY_ID"),
        std::env::var("LETHE_TEST_S3_NODELETE_SECRET_ACCESS_KEY"),
    ) else {
        eprintln!("LETHE_TEST_S3_NODELETE_* unset: skipped");
        return;
    };
    let bucket = common::fresh_bucket(&env, "sweep").await;
    // The limited user may list, read and write this bucket, but not delete.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam:::user/nodelete"]}},"Action":["s3:ListBucket","s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    );
    common::s3_client(&env)
        .put_bucket_policy()
        .bucket(&bucket)
        .policy(policy)
        .send()
        .await
        .unwrap();
    let name = format!("test-sweep-nodelete-{}", SystemClock.now().timestamp_nanos_opt().unwrap_or(0));
    let full: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(common::object_store_for(&env, &bucket), name.as_str()));
    let limited_env = common::S3Env {
        access_key: ak,
        secret_key: sk,
        ..env.clone()
    };
    let limited: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(common::object_store_for(&limited_env, &bucket), name.as_str()));
    let kek = lethe::crypto::Kek::ephemeral();
    let opts = lethe::store::ReadStoreOptions::default();
    let writer = lethe::store::ReadStore::open(full, kek.clone(), opts.clone()).await.unwrap();
    let now = SystemClock.now();
    let r = read("nd-1", "NODEL1", now - Duration::days(40), "cam");
    writer.put(&r, true, now).await.unwrap();
    let sweeper = lethe::store::ReadStore::open(limited, kek, opts).await.unwrap();
    // It can see and read what it would delete: the failure below is the missing delete right.
    let keys: Vec<_> = sweeper.list_day(r.day()).try_collect().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(sweeper.get(&keys[0]).await.unwrap().read_id, "nd-1");
    let log = MemoryProofLog::new();
    let res = sweep::run(&sweeper, &log, &ManualClock::new(now), &SweepOptions::default()).await;
    let code = match &res {
        Ok(rep) => rep.exit_code(),
        Err(e) => e.exit_code(),
    };
    assert_ne!(code, 0, "{res:?}");
    assert_eq!(writer.list_day(r.day()).try_collect::<Vec<_>>().await.unwrap().len(), 1);
    assert!(log.proofs().iter().all(|p| p.reads_deleted == 0));
}
