//! Object names in the store.
//!
//! ```text
//! reads/{capture day UTC}/{blind bucket}/{capture time}-{locator}   one encrypted read
//! ids/{capture day UTC}/{locator}                                    idempotency marker (client ids)
//! keys/day/{capture day}  keys/hold/{hold}  keys/kek-check           wrapped keys (crypto/keys.rs)
//! holds/{hold}/record.json, released.json, purge.json                 a legal hold (hold/)
//! holds/{hold}/reads/{capture time}-{locator}                         reads under legal hold
//! sweep/lease/{n}  sweep/days/{day}/{batch}.json  sweep/clock-probe   the sweeper (sweep/)
//! ledger/…                                                            the ledger (ledger/)
//! ```
//!
//! The capture time is written `YYYYMMDDTHHMMSS.nnnnnnnnnZ` so that names sort by time, and the
//! sweeper and searches filter by time without fetching an object. The locator is an HMAC of the
//! read id under a key derived from the KEK, so no client-chosen text (which could be a plate)
//! ever appears in an object name. **Changing this layout breaks stored data.**

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use object_store::path::Path;

/// Prefix of all reads.
pub const READS: &str = "reads";
/// Prefix of idempotency markers.
pub const IDS: &str = "ids";
/// Prefix of held reads.
pub const HOLDS: &str = "holds";

const TIME_FMT: &str = "%Y%m%dT%H%M%S%.9fZ";

/// Formats a capture time for an object name.
pub fn time_label(t: DateTime<Utc>) -> String {
    t.format(TIME_FMT).to_string()
}

/// Parses [`time_label`]'s output.
pub fn parse_time_label(s: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(s, TIME_FMT).ok()?;
    let t = naive.and_utc();
    (time_label(t) == s).then_some(t)
}

/// The parsed name of a stored read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadKey {
    /// Capture day (UTC).
    pub day: NaiveDate,
    /// Blind-index bucket.
    pub bucket: String,
    /// Capture instant.
    pub captured_at: DateTime<Utc>,
    /// HMAC of the read id.
    pub locator: String,
}

impl ReadKey {
    /// The object path.
    pub fn path(&self) -> Path {
        Path::from(self.to_string())
    }

    /// Parses an object path under `reads/`.
    pub fn parse(path: &Path) -> Option<Self> {
        let s = path.as_ref();
        let mut parts = s.split('/');
        if parts.next()? != READS {
            return None;
        }
        let day = NaiveDate::parse_from_str(parts.next()?, "%Y-%m-%d").ok()?;
        let bucket = parts.next()?.to_string();
        let name = parts.next()?;
        if parts.next().is_some() || bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (time, locator) = name.split_once('-')?;
        let captured_at = parse_time_label(time)?;
        if captured_at.date_naive() != day || locator.len() != 32 || !locator.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Self {
            day,
            bucket,
            captured_at,
            locator: locator.to_string(),
        })
    }

    /// The idempotency marker of this read.
    pub fn marker_path(&self) -> Path {
        Path::from(format!("{IDS}/{}/{}", self.day, self.locator))
    }

    /// The associated data that binds an envelope to this name and capture time.
    pub fn context(&self) -> Vec<u8> {
        format!(
            "lethe/read/v1\n{self}\n{}",
            self.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        )
        .into_bytes()
    }
}

impl std::fmt::Display for ReadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{READS}/{}/{}/{}-{}",
            self.day,
            self.bucket,
            time_label(self.captured_at),
            self.locator
        )
    }
}

/// The prefix of one day's reads.
pub fn day_prefix(day: NaiveDate) -> Path {
    Path::from(format!("{READS}/{day}"))
}

/// The prefix of one bucket of one day.
pub fn bucket_prefix(day: NaiveDate, bucket: &str) -> Path {
    Path::from(format!("{READS}/{day}/{bucket}"))
}

/// The prefix of one day's idempotency markers.
pub fn marker_prefix(day: NaiveDate) -> Path {
    Path::from(format!("{IDS}/{day}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip_and_sort_by_time() {
        let t = Utc.with_ymd_and_hms(2026, 12, 3, 16, 50, 52).unwrap() + chrono::Duration::nanoseconds(123_456_789);
        let k = ReadKey {
            day: t.date_naive(),
            bucket: "0af".into(),
            captured_at: t,
            locator: "ab".repeat(16),
        };
        assert_eq!(
            k.to_string(),
            format!("reads/2026-12-03/0af/20261203T165052.123456789Z-{}", "ab".repeat(16))
        );
        assert_eq!(ReadKey::parse(&k.path()), Some(k));
        assert!(time_label(t) < time_label(t + chrono::Duration::nanoseconds(1)));
    }

    #[test]
    fn rejects_foreign_names() {
        for s in [
            "reads/2026-12-03/0af/x-y",
            "reads/2026-13-03/0af/20261203T165052.123456789Z-aa",
            "keys/day/2026-12-03",
            "reads/2026-12-04/0af/20261203T165052.123456789Z-abababababababababababababababab",
        ] {
            assert!(ReadKey::parse(&Path::from(s)).is_none(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn time_labels_round_trip(secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000) {
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            prop_assert_eq!(parse_time_label(&time_label(t)), Some(t));
        }
    }
}
