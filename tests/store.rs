//! One integration suite for the encrypted read store, run on every backend: in-memory, the local
//! directory, and the real S3 server (radosgw in CI; skipped locally when LETHE_TEST_S3_ENDPOINT
//! is unset, never in CI).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::TryStreamExt;
use lethe::crypto::Kek;
use lethe::model::{PlateMatch, PlateRead, ReadInput, ReadLimits};
use lethe::store::{FindQuery, PutOutcome, ReadKey, ReadStore, ReadStoreOptions, StoreError};
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
}

fn read(id: &str, plate: &str, at: DateTime<Utc>, camera: &str) -> PlateRead {
    let limits = ReadLimits {
        max_image_bytes: 1 << 20,
        future_skew: Duration::minutes(5),
        cutoff: at - Duration::days(1),
        now: at,
    };
    ReadInput {
        read_id: Some(id.into()),
        plate: plate.into(),
        region: Some("CA".into()),
        captured_at: Some(at),
        camera_id: camera.into(),
        image: Some(vec![7u8; 2048].into()),
        image_type: Some("image/jpeg".into()),
        ..Default::default()
    }
    .validate(&limits, || unreachable!())
    .unwrap()
}

async fn open(store: Arc<dyn ObjectStore>, kek: &Kek, metadata: bool) -> ReadStore {
    ReadStore::open(
        store,
        kek.clone(),
        ReadStoreOptions {
            blind_bits: 8,
            object_metadata: metadata,
        },
    )
    .await
    .unwrap()
}

async fn all_objects(store: &dyn ObjectStore) -> Vec<Path> {
    store.list(None).map_ok(|m| m.location).try_collect().await.unwrap()
}

/// put / get / list / find / delete / shred, tamper and wrong key: the whole contract.
pub async fn suite(store: Arc<dyn ObjectStore>, metadata: bool) {
    let kek = Kek::ephemeral();
    let rs = open(store.clone(), &kek, metadata).await;
    let day = t0().date_naive();

    // put and get
    let r1 = read("r-1", "7ABC123", t0(), "cam-1");
    let k1 = match rs.put(&r1, true, t0()).await.unwrap() {
        PutOutcome::Stored(s) => {
            assert!(s.created_day_key);
            s.key
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(rs.get(&k1).await.unwrap(), r1);

    // idempotent retry, conflicting retry
    assert!(matches!(rs.put(&r1, true, t0()).await.unwrap(), PutOutcome::Duplicate(_)));
    let mut r1b = r1.clone();
    r1b.camera_id = "cam-9".into();
    assert!(matches!(rs.put(&r1b, true, t0()).await, Err(StoreError::IdConflict)));
    let r1c = read("r-1", "9ZZZ999", t0() + Duration::minutes(3), "cam-1");
    assert!(matches!(rs.put(&r1c, true, t0()).await, Err(StoreError::IdConflict)));
    let before = all_objects(store.as_ref()).await.len();

    // more reads: an OCR look-alike, another plate, another camera, another day
    let r2 = read("r-2", "7A8C123", t0() + Duration::minutes(1), "cam-1"); // B misread as 8
    let r3 = read("r-3", "5XYZ999", t0() + Duration::minutes(2), "cam-2");
    let r4 = read("r-4", "7ABC123", t0() + Duration::hours(3), "cam-2");
    let r5 = read("r-5", "7ABC123", t0() + Duration::days(1), "cam-1");
    for r in [&r2, &r3, &r4, &r5] {
        assert!(matches!(rs.put(r, true, t0()).await.unwrap(), PutOutcome::Stored(_)));
    }
    assert_eq!(
        all_objects(store.as_ref()).await.len(),
        before + 4 * 2 + 1,
        "4 reads + 4 markers + 1 day key"
    );

    // list a day
    let listed: BTreeSet<ReadKey> = rs.list_day(day).try_collect().await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.contains(&k1));
    assert_eq!(rs.days().await.unwrap(), vec![day, day.succ_opt().unwrap()]);

    // find: exact only
    let q = FindQuery {
        plate: "7ABC123".into(),
        from: t0() - Duration::days(1),
        to: t0() + Duration::days(2),
        folded: false,
        camera_id: None,
    };
    let found: Vec<_> = rs.find(q.clone()).try_collect().await.unwrap();
    let ids: Vec<&str> = found.iter().map(|f| f.read.read_id.as_str()).collect();
    assert_eq!(ids, ["r-1", "r-4", "r-5"]);
    assert!(found.iter().all(|f| f.matched == PlateMatch::Exact));
    // folded: the misread is found and flagged inexact
    let found: Vec<_> = rs.find(FindQuery { folded: true, ..q.clone() }).try_collect().await.unwrap();
    let got: Vec<(&str, PlateMatch)> = found.iter().map(|f| (f.read.read_id.as_str(), f.matched)).collect();
    assert_eq!(
        got,
        [
            ("r-1", PlateMatch::Exact),
            ("r-2", PlateMatch::Folded),
            ("r-4", PlateMatch::Exact),
            ("r-5", PlateMatch::Exact)
        ]
    );
    // window and camera
    let found: Vec<_> = rs
        .find(FindQuery {
            to: t0() + Duration::hours(1),
            ..q.clone()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let found: Vec<_> = rs
        .find(FindQuery {
            camera_id: Some("cam-2".into()),
            ..q.clone()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found.iter().map(|f| f.read.read_id.as_str()).collect::<Vec<_>>(), ["r-4"]);

    // tamper: one flipped byte
    let raw = store.get(&k1.path()).await.unwrap().bytes().await.unwrap();
    let mut bad = raw.to_vec();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    store.put(&k1.path(), PutPayload::from(bad)).await.unwrap();
    let e = rs.get(&k1).await.unwrap_err().to_string();
    assert!(e.contains("authentication failed") && e.contains(&k1.to_string()), "{e}");
    store.put(&k1.path(), PutPayload::from(raw.clone())).await.unwrap();
    rs.get(&k1).await.unwrap();

    // tamper: copied to another name (another time label, same day and bucket)
    let moved = ReadKey {
        captured_at: k1.captured_at + Duration::seconds(1),
        ..k1.clone()
    };
    store.put(&moved.path(), PutPayload::from(raw.clone())).await.unwrap();
    let e = rs.get(&moved).await.unwrap_err().to_string();
    assert!(e.contains("authentication failed"), "{e}");
    // copied to another day: sealed under the other day's key
    let other_day = ReadKey {
        day: k1.day.succ_opt().unwrap(),
        captured_at: k1.captured_at + Duration::days(1),
        ..k1.clone()
    };
    store.put(&other_day.path(), PutPayload::from(raw.clone())).await.unwrap();
    let e = rs.get(&other_day).await.unwrap_err().to_string();
    assert!(e.contains("moved or relabelled"), "{e}");
    let rep = rs.delete_paths(vec![moved.path(), other_day.path()]).await;
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);

    // tamper: capture-time label (object metadata) changed, where the store keeps metadata
    if metadata {
        let mut attrs = Attributes::new();
        attrs.insert(Attribute::Metadata("capture-time".into()), "2026-11-01T00:00:00Z".into());
        store
            .put_opts(
                &k1.path(),
                PutPayload::from(raw.clone()),
                PutOptions {
                    attributes: attrs,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let e = rs.get(&k1).await.unwrap_err().to_string();
        assert!(e.contains("capture-time label"), "{e}");
        let mut attrs = Attributes::new();
        attrs.insert(
            Attribute::Metadata("capture-time".into()),
            k1.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).into(),
        );
        store
            .put_opts(
                &k1.path(),
                PutPayload::from(raw.clone()),
                PutOptions {
                    attributes: attrs,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        rs.get(&k1).await.unwrap();
    }

    // wrong KEK: refused at open, naming both key ids
    let e = ReadStore::open(store.clone(), Kek::ephemeral(), ReadStoreOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("key-encryption key") && e.contains(kek.id()), "{e}");

    // delete a day
    let keys: Vec<Path> = rs.list_day(day).map_ok(|k| k.path()).try_collect().await.unwrap();
    let rep = rs.delete_paths(keys.clone()).await;
    assert_eq!(rep.deleted.len(), 4);
    assert!(rep.failed.is_empty());
    assert_eq!(rs.list_day(day).try_collect::<Vec<_>>().await.unwrap().len(), 0);
    // deleting again is not an error (already gone)
    assert!(rs.delete_paths(keys).await.failed.is_empty());

    // shred the next day: a copy taken earlier can no longer be decrypted, and the error says so
    let d2 = day.succ_opt().unwrap();
    let k5: Vec<ReadKey> = rs.list_day(d2).try_collect().await.unwrap();
    let copy = store.get(&k5[0].path()).await.unwrap().bytes().await.unwrap();
    assert!(rs.shred_day(d2, t0()).await.unwrap());
    assert!(!rs.shred_day(d2, t0()).await.unwrap(), "idempotent");
    store.put(&k5[0].path(), PutPayload::from(copy)).await.unwrap(); // restore the copy
    let e = rs.get(&k5[0]).await.unwrap_err().to_string();
    assert!(e.contains("shredded"), "{e}");
    // the same from a fresh process (no key cache)
    let fresh = open(store.clone(), &kek, metadata).await;
    let e = fresh.get(&k5[0]).await.unwrap_err().to_string();
    assert!(e.contains(&format!("day {d2} was shredded")), "{e}");
    // and a shredded day's key is never created again
    let late = read("r-6", "1AAA111", t0() + Duration::days(1) + Duration::hours(1), "cam-1");
    let e = fresh.put(&late, false, t0()).await.unwrap_err().to_string();
    assert!(e.contains("shredded"), "{e}");
    // a search over a shredded day finds nothing rather than failing
    assert!(fresh.find(q).try_collect::<Vec<_>>().await.unwrap().is_empty());
}

/// No stored byte — names, bodies, metadata — contains a plate in plaintext.
pub async fn no_plaintext(store: Arc<dyn ObjectStore>, metadata: bool, extra_files: &[std::path::PathBuf]) {
    let kek = Kek::ephemeral();
    let rs = open(store.clone(), &kek, metadata).await;
    let plates = ["QWX4821", "ZKP9034", "MNB7712", "HJK5520", "TRV0098"];
    for (i, p) in plates.iter().enumerate() {
        let mut r = read(&format!("id-{i}"), p, t0() + Duration::minutes(i as i64), "cam-1");
        r.plate_raw = format!("{p} ");
        rs.put(&r, true, t0()).await.unwrap();
        let g = read(&format!("gen-{i}"), p, t0() + Duration::minutes(30 + i as i64), "cam-1");
        rs.put(&g, false, t0()).await.unwrap();
    }
    let mut scanned = 0;
    for path in all_objects(store.as_ref()).await {
        let res = store.get(&path).await.unwrap();
        let attrs: Vec<String> = res.attributes.iter().map(|(k, v)| format!("{k:?}={}", v.as_ref())).collect();
        let body = res.bytes().await.unwrap();
        for p in plates {
            assert!(!path.as_ref().contains(p), "plate in object name {path}");
            assert!(!body.windows(p.len()).any(|w| w == p.as_bytes()), "plate in object body {path}");
            assert!(!attrs.iter().any(|a| a.contains(p)), "plate in metadata of {path}");
        }
        scanned += 1;
    }
    assert!(scanned >= 10);
    for f in extra_files {
        let body = std::fs::read(f).unwrap();
        for p in plates {
            assert!(!body.windows(p.len()).any(|w| w == p.as_bytes()), "plate in {}", f.display());
        }
    }
}

#[tokio::test]
async fn suite_in_memory() {
    suite(Arc::new(object_store::memory::InMemory::new()), false).await;
}

#[tokio::test]
async fn suite_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_fsync(true);
    suite(Arc::new(fs), false).await;
}

#[tokio::test]
async fn suite_real_s3() {
    let Some(env) = common::s3_env() else {
        return eprintln!("skipped: LETHE_TEST_S3_ENDPOINT unset");
    };
    let bucket = common::fresh_bucket(&env, "store-suite").await;
    suite(common::object_store_for(&env, &bucket), true).await;
}

#[tokio::test]
async fn no_plaintext_in_memory() {
    no_plaintext(Arc::new(object_store::memory::InMemory::new()), false, &[]).await;
}

#[tokio::test]
async fn no_plaintext_on_disk_including_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(&data).unwrap();
    let kek_path = dir.path().join("keys/kek");
    Kek::load(&kek_path, true).unwrap();
    // every file under the whole directory: data files and key files
    no_plaintext(Arc::new(fs), false, &[]).await;
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 10);
    for f in files {
        let body = std::fs::read(&f).unwrap();
        let name = f.display().to_string();
        for p in ["QWX4821", "ZKP9034", "MNB7712", "HJK5520", "TRV0098"] {
            assert!(
                !name.contains(p) && !body.windows(p.len()).any(|w| w == p.as_bytes()),
                "plate in {name}"
            );
        }
    }
}

#[tokio::test]
async fn no_plaintext_real_s3() {
    let Some(env) = common::s3_env() else {
        return eprintln!("skipped: LETHE_TEST_S3_ENDPOINT unset");
    };
    let bucket = common::fresh_bucket(&env, "plaintext").await;
    no_plaintext(common::object_store_for(&env, &bucket), true, &[]).await;
}

/// A find streams: its first result comes after at most the fetch window of GETs, not after every
/// candidate of the day was fetched and held, however many reads the plate has that day; and the
/// results still come in capture-time order, all of them.
#[tokio::test]
async fn find_streams_a_busy_plate_without_holding_its_day() {
    use futures::StreamExt;
    use lethe::store::fault::FaultStore;
    use lethe::store::reads::FIND_FETCH_WINDOW;

    let faults = Arc::new(FaultStore::new(Arc::new(object_store::memory::InMemory::new())));
    let kek = Kek::ephemeral();
    let rs = open(faults.clone(), &kek, false).await;
    let n = 3 * FIND_FETCH_WINDOW + 17;
    // Stored in reverse time order: the results must come back sorted anyway.
    futures::stream::iter((0..n).rev())
        .for_each_concurrent(32, |i| {
            let rs = rs.clone();
            async move {
                let r = read(&format!("busy-{i}"), "8BUS001", t0() + Duration::seconds(i as i64), "cam-1");
                rs.put(&r, false, t0() + Duration::days(1)).await.unwrap();
            }
        })
        .await;
    let q = FindQuery {
        plate: "8BUS001".into(),
        from: t0() - Duration::hours(1),
        to: t0() + Duration::hours(2),
        folded: false,
        camera_id: None,
    };
    let before = faults.gets();
    let mut s = rs.find(q);
    let first = s.next().await.unwrap().unwrap();
    let gets = faults.gets() - before;
    assert!(
        gets <= FIND_FETCH_WINDOW + 2,
        "{gets} GETs before the first of {n} results: the day was fetched whole"
    );
    assert_eq!(first.read.captured_at, t0());
    let mut all = vec![first];
    while let Some(f) = s.next().await {
        all.push(f.unwrap());
    }
    assert_eq!(all.len(), n);
    assert!(all.windows(2).all(|w| w[0].read.captured_at < w[1].read.captured_at), "time order");
}
