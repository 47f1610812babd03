//! The sweep lease: at most one sweeper deletes at a time, and a dead holder's lease expires.
//!
//! Leases are generation-numbered objects `sweep/lease/{n:020}`, each written with a create-only
//! conditional put, so for every generation exactly one process wins. To take the lease a
//! sweeper reads the newest generation `n`: if there is none, or it is released, or its
//! `expires_at` has passed, it creates `n + 1` — which only one contender can do. Renewing is
//! the same step by the holder (create `n + 1` before `n` expires); if that create fails, someone
//! else took over and the holder stops before its next destructive step. Lease times are the
//! store's clock (the sweep's local clock corrected by the skew its clock check measured), so a
//! sweep forced past a skewed clock writes the same times as any other. A lease that expires
//! further ahead than any live sweeper could have set (more than the lease time plus the allowed
//! skew from now) was not written in store time — by a version before this rule, under a skewed
//! clock — and is taken over as stale.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::SweepError;

/// Prefix of the lease generations.
pub const LEASE_PREFIX: &str = "sweep/lease";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseFile {
    v: u8,
    holder: String,
    taken_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    released: bool,
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    holder: String,
    generation: u64,
    expires_at: DateTime<Utc>,
    ttl: Duration,
}

fn gen_path(n: u64) -> Path {
    Path::from(format!("{LEASE_PREFIX}/{n:020}"))
}

fn backend(op: &'static str, key: impl std::fmt::Display, source: object_store::Error) -> SweepError {
    SweepError::Backend {
        op,
        key: key.to_string(),
        source,
    }
}

async fn newest(store: &dyn ObjectStore) -> Result<Option<(u64, LeaseFile)>, SweepError> {
    let prefix = Path::from(LEASE_PREFIX);
    let metas: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| backend("list", &prefix, e))?;
    let Some(n) = metas.iter().filter_map(|m| m.location.filename()?.parse::<u64>().ok()).max() else {
        return Ok(None);
    };
    let p = gen_path(n);
    let bytes = store
        .get(&p)
        .await
        .map_err(|e| backend("get", &p, e))?
        .bytes()
        .await
        .map_err(|e| backend("get", &p, e))?;
    let f: LeaseFile = serde_json::from_slice(&bytes).map_err(|e| SweepError::Corrupt {
        key: p.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Some((n, f)))
}

async fn create(store: &dyn ObjectStore, n: u64, f: &LeaseFile) -> Result<bool, SweepError> {
    let p = gen_path(n);
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store
        .put_opts(&p, PutPayload::from(serde_json::to_vec(f).expect("serializes")), opts)
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(backend("put", &p, e)),
    }
}

impl Lease {
    /// Takes the lease for `ttl`, or fails with [`SweepError::Busy`] naming the live holder.
    /// `now` is the store's time; `max_skew` how far a live holder's clock may be from it.
    pub async fn take(
        store: Arc<dyn ObjectStore>,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
        max_skew: Duration,
    ) -> Result<Lease, SweepError> {
        let next = match newest(store.as_ref()).await? {
            None => 1,
            Some((n, f)) if f.released || f.expires_at <= now => n + 1,
            Some((n, f)) if f.expires_at > now + ttl + max_skew => {
                tracing::warn!(
                    holder = %f.holder,
                    expires_at = %f.expires_at,
                    "taking over a lease that expires further ahead than a live sweeper could have set"
                );
                n + 1
            }
            Some((_, f)) => {
                return Err(SweepError::Busy {
                    holder: f.holder,
                    expires_at: f.expires_at,
                })
            }
        };
        let file = LeaseFile {
            v: 1,
            holder: holder.to_string(),
            taken_at: now,
            expires_at: now + ttl,
            released: false,
        };
        if !create(store.as_ref(), next, &file).await? {
            // Someone created this generation between our read and our create.
            let (holder, expires_at) = match newest(store.as_ref()).await? {
                Some((_, f)) => (f.holder, f.expires_at),
                None => ("unknown".into(), now),
            };
            return Err(SweepError::Busy { holder, expires_at });
        }
        if next > 2 {
            // Old generations are history; removing them is best effort.
            let _ = store.delete(&gen_path(next - 2)).await;
        }
        Ok(Lease {
            store,
            holder: holder.to_string(),
            generation: next,
            expires_at: now + ttl,
            ttl,
        })
    }

    /// The generation held.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Call before every destructive step: renews the lease when a third of its time is left,
    /// and fails with [`SweepError::LeaseLost`] if it expired or another process took it over.
    pub async fn ensure(&mut self, now: DateTime<Utc>) -> Result<(), SweepError> {
        if now >= self.expires_at {
            return Err(SweepError::LeaseLost {
                generation: self.generation,
            });
        }
        if self.expires_at - now > self.ttl * 2 / 3 {
            return Ok(());
        }
        let file = LeaseFile {
            v: 1,
            holder: self.holder.clone(),
            taken_at: now,
            expires_at: now + self.ttl,
            released: false,
        };
        if !create(self.store.as_ref(), self.generation + 1, &file).await? {
            return Err(SweepError::LeaseLost {
                generation: self.generation,
            });
        }
        let _ = self.store.delete(&gen_path(self.generation)).await;
        self.generation += 1;
        self.expires_at = file.expires_at;
        Ok(())
    }

    /// Releases the lease so the next sweeper need not wait for it to expire.
    pub async fn release(self, now: DateTime<Utc>) -> Result<(), SweepError> {
        let file = LeaseFile {
            v: 1,
            holder: self.holder.clone(),
            taken_at: now,
            expires_at: now,
            released: true,
        };
        // Writing a release into our own generation is safe even if we lost it: a taker
        // creates a newer generation, which is what every contender reads.
        let p = gen_path(self.generation);
        self.store
            .put(&p, PutPayload::from(serde_json::to_vec(&file).expect("serializes")))
            .await
            .map_err(|e| backend("put", &p, e))?;
        Ok(())
    }
}
