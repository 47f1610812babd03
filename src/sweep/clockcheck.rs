//! Clock sanity: the local clock against the store's clock, before anything is deleted.
//!
//! A sweeper whose clock runs a year ahead would delete a year of evidence. Before deleting,
//! the sweep writes a probe object and reads back its `last_modified`, which the store sets from
//! its own clock (the S3 server's time; on a local directory the kernel's file time, which
//! tools such as `faketime` do not move), and refuses when the two differ by more than
//! [`super::SweepOptions::max_clock_skew`].

use chrono::{DateTime, Duration, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::SweepError;

/// Where the probe is written (and removed again).
pub const PROBE: &str = "sweep/clock-probe";

/// Store time minus local time, measured around a probe write. The local time is taken as the
/// midpoint of the write, so a slow store does not look like a skewed one.
pub async fn measure_skew(
    store: &dyn ObjectStore,
    local_before: DateTime<Utc>,
    local_after: impl Fn() -> DateTime<Utc>,
) -> Result<Duration, SweepError> {
    let p = Path::from(PROBE);
    let body = format!("lethe sweep clock probe written at local time {}", local_before.to_rfc3339());
    store.put(&p, PutPayload::from(body)).await.map_err(|source| SweepError::Backend {
        op: "put",
        key: PROBE.into(),
        source,
    })?;
    let meta = store.head(&p).await.map_err(|source| SweepError::Backend {
        op: "head",
        key: PROBE.into(),
        source,
    })?;
    let after = local_after();
    let _ = store.delete(&p).await;
    let local_mid = local_before + (after - local_before) / 2;
    Ok(meta.last_modified - local_mid)
}
