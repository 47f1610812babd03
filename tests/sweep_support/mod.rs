//! Test harness for the sweeper: a store wrapper that pages listings like S3 (1,000 keys per
//! page, start-after), can repeat a page (a server that repeats a continuation token), counts
//! every delete per key, and can report the probe's `last_modified` from a chosen clock (the
//! "store's clock"), so tests at fixed dates pass the clock check honestly.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use lethe::clock::{Clock, ManualClock};
use lethe::crypto::Kek;
use lethe::model::{PlateRead, ReadInput, ReadLimits};
use lethe::store::{ReadStore, ReadStoreOptions};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};

/// The wrapper.
pub struct TestStore {
    pub inner: Arc<dyn ObjectStore>,
    pub page_size: Option<usize>,
    pub pages: Arc<AtomicUsize>,
    pub repeat_a_page: AtomicBool,
    pub deletes: Arc<Mutex<HashMap<String, usize>>>,
    pub server_clock: Option<ManualClock>,
}

impl fmt::Debug for TestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestStore({})", self.inner)
    }
}

impl fmt::Display for TestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestStore({})", self.inner)
    }
}

impl TestStore {
    pub fn new(inner: Arc<dyn ObjectStore>, page_size: Option<usize>, server_clock: Option<ManualClock>) -> Self {
        Self {
            inner,
            page_size,
            pages: Arc::new(AtomicUsize::new(0)),
            repeat_a_page: AtomicBool::new(false),
            deletes: Arc::new(Mutex::new(HashMap::new())),
            server_clock,
        }
    }

    pub fn delete_count(&self, p: &str) -> usize {
        self.deletes.lock().unwrap().get(p).copied().unwrap_or(0)
    }
}

#[async_trait]
impl ObjectStore for TestStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        // Like a network store: let other tasks run between requests.
        tokio::task::yield_now().await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut r = self.inner.get_opts(location, options).await?;
        if let (Some(c), true) = (&self.server_clock, location.as_ref() == "sweep/clock-probe") {
            r.meta.last_modified = c.now();
        }
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let counts = self.deletes.clone();
        let counted = locations
            .map_ok(move |p| {
                *counts.lock().unwrap().entry(p.to_string()).or_default() += 1;
                p
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let Some(page) = self.page_size else {
            return self.inner.list(prefix);
        };
        // S3-style: pages of `page` keys in key order, each page starting after the last key.
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        let repeat = self.repeat_a_page.load(Ordering::SeqCst);
        let c2 = self.pages.clone();
        stream::unfold((None::<Path>, false, false), move |(after, done, repeated)| {
            let inner = inner.clone();
            let prefix = prefix.clone();
            let c2 = c2.clone();
            async move {
                if done {
                    return None;
                }
                let s = match &after {
                    None => inner.list(prefix.as_ref()),
                    Some(a) => inner.list_with_offset(prefix.as_ref(), a),
                };
                let mut all: Vec<ObjectMeta> = match s.try_collect().await {
                    Ok(v) => v,
                    Err(e) => return Some((vec![Err(e)], (None, true, repeated))),
                };
                all.sort_by(|a, b| a.location.cmp(&b.location));
                all.truncate(page);
                c2.fetch_add(1, Ordering::SeqCst);
                let last = all.last().map(|m| m.location.clone());
                let full = all.len() == page;
                // A broken server: hands out the first page's token again once.
                let (next, rep) = if repeat && !repeated && after.is_none() && full {
                    (None, true)
                } else {
                    (last, repeated)
                };
                let done = !full;
                Some((all.into_iter().map(Ok).collect::<Vec<_>>(), (next, done, rep)))
            }
        })
        .map(stream::iter)
        .flatten()
        .boxed()
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

pub fn at(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, mi, s).unwrap()
}

/// A valid read.
pub fn read(id: &str, plate: &str, captured: DateTime<Utc>, camera: &str) -> PlateRead {
    let limits = ReadLimits {
        max_image_bytes: 1 << 20,
        future_skew: Duration::minutes(5),
        cutoff: captured - Duration::days(1),
        now: captured,
    };
    ReadInput {
        read_id: Some(id.into()),
        plate: plate.into(),
        region: Some("CA".into()),
        captured_at: Some(captured),
        camera_id: camera.into(),
        image: Some(vec![7u8; 64].into()),
        image_type: Some("image/jpeg".into()),
        ..Default::default()
    }
    .validate(&limits, || unreachable!())
    .unwrap()
}

pub async fn open(store: Arc<dyn ObjectStore>) -> ReadStore {
    ReadStore::open(
        store,
        Kek::ephemeral(),
        ReadStoreOptions {
            blind_bits: 4,
            object_metadata: false,
        },
    )
    .await
    .unwrap()
}
