//! The object-store capabilities lethe relies on, checked against a real S3 server (radosgw in
//! CI, see `scripts/s3-rgw.sh`) through `object_store`'s `AmazonS3`, and — for the embedded
//! default — against `LocalFileSystem` (and `InMemory`). Quirks found are asserted here, so a
//! change of server or crate version that changes them fails loudly; `docs/s3-testing.md`
//! summarises them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, Error, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, TagSet, UpdateVersion,
};

use common::{fresh_bucket, object_store_for, s3_client, s3_env};

const CAPTURE_TIME: &str = "2024-03-01T12:34:56Z";

fn payload(s: &str) -> PutPayload {
    PutPayload::from(Bytes::from(s.to_string()))
}

async fn read(store: &dyn ObjectStore, path: &Path) -> String {
    let body = store.get(path).await.unwrap().bytes().await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

fn mode(mode: PutMode) -> PutOptions {
    PutOptions::from(mode)
}

fn unquoted(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

// ---------------------------------------------------------------------------------------------
// Real S3 (radosgw in CI)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s3_put_get_head() {
    let Some(env) = s3_env() else { return };
    let bucket = fresh_bucket(&env, "basic").await;
    let store = object_store_for(&env, &bucket);
    let path = Path::from("reads/2024-03-01/ab/obj-1");

    let put = store.put(&path, payload("hello")).await.unwrap();
    let etag = put.e_tag.clone().expect("S3 returns an ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "ETag is quoted: {etag}");

    assert_eq!(read(store.as_ref(), &path).await, "hello");
    let meta = store.head(&path).await.unwrap();
    assert_eq!(meta.size, 5);
    assert_eq!(meta.e_tag.as_deref(), Some(etag.as_str()));
    assert!(matches!(store.head(&Path::from("missing")).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn s3_create_only_put() {
    let Some(env) = s3_env() else { return };
    let bucket = fresh_bucket(&env, "create").await;
    let store = object_store_for(&env, &bucket);
    let path = Path::from("ledger/entries/0000000001");

    store
        .put_opts(&path, payload("first"), mode(PutMode::Create))
        .await
        .expect("first create-only put succeeds");
    // object_store sends `If-None-Match: *`; radosgw answers 412, mapped to AlreadyExists.
    let second = store.put_opts(&path, payload("second"), mode(PutMode::Create)).await;
    assert!(
        matches!(second, Err(Error::AlreadyExists { .. })),
        "second create must fail with AlreadyExists, got {second:?}"
    );
    assert_eq!(read(store.as_ref(), &path).await, "first");
}

#[tokio::test]
async fn s3_conditional_update_etag_quoting() {
    let Some(env) = s3_env() else { return };
    let bucket = fresh_bucket(&env, "update").await;
    let store = object_store_for(&env, &bucket);
    let path = Path::from("ledger/checkpoint");

    let v1 = store.put(&path, payload("v1")).await.unwrap();
    let quoted = v1.e_tag.clone().unwrap();

    // QUIRK: object_store sends `If-Match` with the ETag exactly as given, and the ETag it
    // returns (from PUT or HEAD) is quoted. radosgw 16.2 answers 412 to a quoted If-Match even
    // when it matches, so `UpdateVersion::from(put_result)` never succeeds on radosgw.
    let as_returned = store
        .put_opts(&path, payload("v2-quoted"), mode(PutMode::Update(UpdateVersion::from(v1.clone()))))
        .await;
    assert!(
        matches!(as_returned, Err(Error::Precondition { .. })),
        "radosgw rejected a quoted If-Match before; if this now succeeds, the quirk is gone \
         (update docs/s3-testing.md): {as_returned:?}"
    );
    assert_eq!(read(store.as_ref(), &path).await, "v1");

    // The fix: strip the quotes. The update then succeeds...
    let v2 = store
        .put_opts(
            &path,
            payload("v2"),
            mode(PutMode::Update(UpdateVersion {
                e_tag: Some(unquoted(&quoted)),
                version: None,
            })),
        )
        .await
        .expect("update with the current ETag, unquoted, succeeds");
    assert_eq!(read(store.as_ref(), &path).await, "v2");
    assert_ne!(v2.e_tag, v1.e_tag);

    // ...and the condition is really checked: the now stale ETag (unquoted) is refused.
    let stale = store
        .put_opts(
            &path,
            payload("v3-stale"),
            mode(PutMode::Update(UpdateVersion {
                e_tag: Some(unquoted(&quoted)),
                version: None,
            })),
        )
        .await;
    assert!(matches!(stale, Err(Error::Precondition { .. })), "stale ETag must fail: {stale:?}");
    assert_eq!(read(store.as_ref(), &path).await, "v2");

    // Update of an object that does not exist: Precondition (object_store maps 404 to it).
    let missing = store
        .put_opts(
            &Path::from("ledger/none"),
            payload("x"),
            mode(PutMode::Update(UpdateVersion {
                e_tag: Some(unquoted(&quoted)),
                version: None,
            })),
        )
        .await;
    assert!(
        matches!(missing, Err(Error::Precondition { .. })),
        "update of a missing object must fail: {missing:?}"
    );
}

#[tokio::test]
async fn s3_list_continuation_delimiter_and_batch_delete() {
    let Some(env) = s3_env() else { return };
    let bucket = fresh_bucket(&env, "list").await;
    let store = object_store_for(&env, &bucket);
    const N: usize = 1100; // > 1000, the S3 page size and the DeleteObjects batch limit

    let day = "reads/2024-03-01";
    let keys: Vec<Path> = (0..N)
        .map(|i| Path::from(format!("{day}/{:02x}/{CAPTURE_TIME}-{i:05}", i % 4)))
        .collect();
    let t = Instant::now();
    stream::iter(keys.clone())
        .map(|k| {
            let store = Arc::clone(&store);
            async move { store.put(&k, payload("x")).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    eprintln!("put {N} objects in {:?}", t.elapsed());
    store.put(&Path::from("reads/2024-03-02/00/other"), payload("y")).await.unwrap();
    store.put(&Path::from("keys/2024-03-01"), payload("k")).await.unwrap();

    // Recursive list with a prefix follows continuation tokens past 1000 keys.
    let mut listed: Vec<Path> = store
        .list(Some(&Path::from(day)))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(listed, expected);

    // Prefix is per path segment: "reads/2024-03-0" is not a prefix of anything.
    let none: Vec<_> = store.list(Some(&Path::from("reads/2024-03-0"))).try_collect().await.unwrap();
    assert!(none.is_empty());

    // Delimiter listing: days under reads/, buckets under a day, objects in one bucket
    // (275 each) and, for continuation, a delimiter listing over > 1000 common objects.
    let days = store.list_with_delimiter(Some(&Path::from("reads"))).await.unwrap();
    let mut day_names: Vec<_> = days.common_prefixes.iter().map(|p| p.to_string()).collect();
    day_names.sort();
    assert_eq!(day_names, ["reads/2024-03-01", "reads/2024-03-02"]);
    assert!(days.objects.is_empty());
    let blind = store.list_with_delimiter(Some(&Path::from(day))).await.unwrap();
    assert_eq!(blind.common_prefixes.len(), 4);
    let one = store.list_with_delimiter(Some(&Path::from(format!("{day}/00")))).await.unwrap();
    assert_eq!(one.objects.len(), N / 4);

    // Batch delete: per-key results in input order; a missing key is Ok on S3.
    let mut to_delete = keys.clone();
    to_delete.push(Path::from(format!("{day}/00/never-existed")));
    let t = Instant::now();
    let results: Vec<Result<Path, Error>> = store.delete_stream(stream::iter(to_delete.clone()).map(Ok).boxed()).collect().await;
    eprintln!("delete_stream of {} keys in {:?}", to_delete.len(), t.elapsed());
    assert_eq!(results.len(), to_delete.len());
    for (r, k) in results.iter().zip(&to_delete) {
        assert_eq!(r.as_ref().expect("per-key delete ok"), k);
    }
    // Re-list to confirm (as the sweeper does).
    let left: Vec<_> = store.list(Some(&Path::from(day))).try_collect().await.unwrap();
    assert!(left.is_empty(), "{} objects left after delete", left.len());
    assert_eq!(read(store.as_ref(), &Path::from("keys/2024-03-01")).await, "k");
}

#[tokio::test]
async fn s3_user_metadata_attributes() {
    let Some(env) = s3_env() else { return };
    let bucket = fresh_bucket(&env, "attrs").await;
    let store = object_store_for(&env, &bucket);
    let path = Path::from(format!("reads/2024-03-01/ab/{CAPTURE_TIME}-r1"));

    let mut attributes = Attributes::new();
    attributes.insert(Attribute::Metadata("capture-time".into()), CAPTURE_TIME.into());
    attributes.insert(Attribute::ContentType, "application/octet-stream".into());
    let opts = PutOptions {
        attributes,
        ..PutOptions::from(PutMode::Create)
    };
    store.put_opts(&path, payload("ct"), opts).await.unwrap();

    // Sent as `x-amz-meta-capture-time`, read back by GET (and by a HEAD-only get).
    for head in [false, true] {
        let got = store.get_opts(&path, GetOptions::default().with_head(head)).await.unwrap();
        let ct = got
            .attributes
            .get(&Attribute::Metadata("capture-time".into()))
            .map(|v| v.to_string());
        assert_eq!(ct.as_deref(), Some(CAPTURE_TIME), "head={head}");
        assert_eq!(
            got.attributes.get(&Attribute::ContentType).map(|v| v.as_ref()),
            Some("application/octet-stream")
        );
    }

    // Outside tools see it too.
    let head = s3_client(&env)
        .head_object()
        .bucket(&bucket)
        .key(path.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.metadata().and_then(|m| m.get("capture-time")).map(String::as_str),
        Some(CAPTURE_TIME)
    );
}

#[tokio::test]
async fn s3_tags_on_put() {
    let Some(env) = s3_env() else { return };
    let bucket = fresh_bucket(&env, "tags").await;
    let store = object_store_for(&env, &bucket);
    let path = Path::from(format!("reads/2024-03-01/ab/{CAPTURE_TIME}-r2"));

    let mut tags = TagSet::default();
    tags.push("capture-time", CAPTURE_TIME);
    tags.push("kind", "read");
    let opts = PutOptions {
        tags,
        ..PutOptions::from(PutMode::Create)
    };
    // Sent as the `x-amz-tagging` header (URL-encoded) on the PUT.
    store.put_opts(&path, payload("t"), opts).await.unwrap();

    // object_store cannot read tags back; aws-sdk-s3 can.
    let tagging = s3_client(&env)
        .get_object_tagging()
        .bucket(&bucket)
        .key(path.as_ref())
        .send()
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = tagging
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("capture-time".to_string(), CAPTURE_TIME.to_string()),
            ("kind".to_string(), "read".to_string())
        ]
    );
}

/// Captures the `Date` header of every response the client deserializes.
#[derive(Debug, Default, Clone)]
struct DateHeader(Arc<Mutex<Option<String>>>);

impl Intercept for DateHeader {
    fn name(&self) -> &'static str {
        "DateHeader"
    }
    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let date = context.response().headers().get("date").map(str::to_string);
        *self.0.lock().unwrap() = date;
        Ok(())
    }
}

#[tokio::test]
async fn s3_date_header_for_clock_skew() {
    let Some(env) = s3_env() else { return };
    let client = s3_client(&env);
    let date = DateHeader::default();
    let before = Utc::now();
    client
        .head_bucket()
        .bucket(&env.bucket)
        .customize()
        .interceptor(date.clone())
        .send()
        .await
        .unwrap();
    let after = Utc::now();
    let raw = date.0.lock().unwrap().clone().expect("response has a Date header");
    // IMF-fixdate, e.g. "Sun, 03 Mar 2024 12:00:00 GMT" (1 s resolution).
    let server: DateTime<Utc> = DateTime::parse_from_rfc2822(&raw)
        .unwrap_or_else(|e| panic!("Date {raw:?}: {e}"))
        .with_timezone(&Utc);
    // The header has 1 s resolution; allow a generous margin for a slow CI machine.
    let margin = chrono::Duration::seconds(60);
    assert!(
        server >= before - margin && server <= after + margin,
        "server clock {server} vs local {before}..{after}"
    );
}

// ---------------------------------------------------------------------------------------------
// LocalFileSystem (the embedded default) and InMemory: what they do with the same calls
// ---------------------------------------------------------------------------------------------

fn local() -> (tempfile::TempDir, LocalFileSystem) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn local_create_only_put_works() {
    let (_dir, store) = local();
    let path = Path::from("ledger/entries/0000000001");
    store.put_opts(&path, payload("first"), mode(PutMode::Create)).await.unwrap();
    let second = store.put_opts(&path, payload("second"), mode(PutMode::Create)).await;
    assert!(matches!(second, Err(Error::AlreadyExists { .. })), "{second:?}");
    assert_eq!(read(&store, &path).await, "first");
}

#[tokio::test]
async fn local_update_is_not_implemented() {
    let (_dir, store) = local();
    let path = Path::from("ledger/checkpoint");
    let v1 = store.put(&path, payload("v1")).await.unwrap();
    assert!(v1.e_tag.is_some(), "local puts still return an ETag");
    let r = store
        .put_opts(&path, payload("v2"), mode(PutMode::Update(UpdateVersion::from(v1))))
        .await;
    assert!(matches!(r, Err(Error::NotImplemented { .. })), "{r:?}");
}

#[tokio::test]
async fn local_attributes_are_rejected() {
    let (_dir, store) = local();
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::Metadata("capture-time".into()), CAPTURE_TIME.into());
    let opts = PutOptions {
        attributes,
        ..PutOptions::default()
    };
    let path = Path::from("reads/x");
    let r = store.put_opts(&path, payload("x"), opts).await;
    assert!(matches!(r, Err(Error::NotImplemented { .. })), "{r:?}");
    assert!(matches!(store.head(&path).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn local_tags_are_silently_ignored() {
    let (_dir, store) = local();
    let mut tags = TagSet::default();
    tags.push("capture-time", CAPTURE_TIME);
    let opts = PutOptions {
        tags,
        ..PutOptions::from(PutMode::Create)
    };
    let path = Path::from("reads/y");
    store.put_opts(&path, payload("y"), opts).await.unwrap();
    let got = store.get(&path).await.unwrap();
    assert!(got.attributes.is_empty());
}

#[tokio::test]
async fn local_list_and_batch_delete_missing_key_is_an_error() {
    let (_dir, store) = local();
    for i in 0..3 {
        store.put(&Path::from(format!("reads/d/{i}")), payload("z")).await.unwrap();
    }
    let listing = store.list_with_delimiter(Some(&Path::from("reads"))).await.unwrap();
    assert_eq!(listing.common_prefixes, [Path::from("reads/d")]);
    let keys = vec![Path::from("reads/d/0"), Path::from("reads/d/missing"), Path::from("reads/d/2")];
    let results: Vec<_> = store.delete_stream(stream::iter(keys).map(Ok).boxed()).collect().await;
    assert!(results[0].is_ok() && results[2].is_ok());
    // Unlike S3, deleting a missing key is a per-key NotFound error: callers must accept it.
    assert!(matches!(results[1], Err(Error::NotFound { .. })), "{:?}", results[1]);
}

#[tokio::test]
async fn in_memory_supports_update_and_attributes() {
    let store = InMemory::new();
    let path = Path::from("ledger/checkpoint");
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::Metadata("capture-time".into()), CAPTURE_TIME.into());
    let v1 = store
        .put_opts(
            &path,
            payload("v1"),
            PutOptions {
                attributes,
                ..PutOptions::from(PutMode::Create)
            },
        )
        .await
        .unwrap();
    let got = store.get(&path).await.unwrap();
    assert_eq!(
        got.attributes.get(&Attribute::Metadata("capture-time".into())).map(|v| v.as_ref()),
        Some(CAPTURE_TIME)
    );
    let again = store.put_opts(&path, payload("x"), mode(PutMode::Create)).await;
    assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    store
        .put_opts(&path, payload("v2"), mode(PutMode::Update(UpdateVersion::from(v1.clone()))))
        .await
        .unwrap();
    let stale = store
        .put_opts(&path, payload("v3"), mode(PutMode::Update(UpdateVersion::from(v1))))
        .await;
    assert!(matches!(stale, Err(Error::Precondition { .. })));
}
