//! The retention policy: `policies/retention.toml`.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::config::ConfigError;

/// The retention rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Hours after capture that a read is kept. 720 (30 days) by default.
    pub retention_hours: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { retention_hours: 720 }
    }
}

/// The file name inside the policy folder.
pub const FILE: &str = "retention.toml";

impl Retention {
    /// Loads `{dir}/retention.toml`; the default (720 h) when the folder has no such file.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses `retention.toml` text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let r: Retention = toml::from_str(text).map_err(|e| ConfigError::new(origin, e.message().to_string()))?;
        if r.retention_hours == 0 || r.retention_hours > 24 * 366 * 10 {
            return Err(ConfigError::new(
                format!("{origin}: retention_hours"),
                "must be between 1 and 87840",
            ));
        }
        Ok(r)
    }

    /// The retention period as an exact duration.
    pub fn period(&self) -> Duration {
        Duration::hours(i64::from(self.retention_hours))
    }

    /// The cutoff at `now`: reads captured strictly before it are expired.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.period()
    }

    /// Is a read captured at `at` expired at `now`?
    pub fn is_expired(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        at < self.cutoff(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn shipped_policy_is_thirty_days() {
        let r = Retention::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").as_path()).unwrap();
        assert_eq!(r.retention_hours, 720);
    }

    #[test]
    fn cutoff_is_exact_hours_across_dst_and_leap_day() {
        let r = Retention::default();
        // US DST ended 2026-11-01; 2028-02-29 is a leap day.
        for now in [
            Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2028, 3, 10, 0, 0, 0).unwrap(),
        ] {
            let c = r.cutoff(now);
            assert_eq!((now - c).num_seconds(), 720 * 3600);
            assert!(r.is_expired(c - Duration::seconds(1), now));
            assert!(!r.is_expired(c + Duration::seconds(1), now));
        }
    }
}
