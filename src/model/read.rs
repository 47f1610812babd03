//! The plate read: what one camera saw of one vehicle at one instant.
//!
//! A read's whole content lives only inside its encrypted object. Its plaintext encoding (below) is
//! versioned; the content hash used for idempotent ingest is the SHA-256 of that encoding.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::plate::{self, PlateError};

/// The longest camera id accepted.
pub const MAX_CAMERA_ID_LEN: usize = 128;
/// The longest client-supplied read id accepted.
pub const MAX_READ_ID_LEN: usize = 128;

/// A position in WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Latitude, −90 to 90.
    pub lat: f64,
    /// Longitude, −180 to 180.
    pub lon: f64,
}

/// What the camera or its analytics said about the vehicle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleAttributes {
    /// Make, e.g. "Toyota".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Body type, e.g. "sedan".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// One plate read, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateRead {
    /// The read's id: supplied by the client (making retries idempotent) or generated.
    pub read_id: String,
    /// The plate text exactly as captured.
    pub plate_raw: String,
    /// The canonical plate (see [`plate::canonical`]).
    pub plate: String,
    /// Issuing jurisdiction (state or country code), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The capture instant.
    pub captured_at: DateTime<Utc>,
    /// The camera or reading unit.
    pub camera_id: String,
    /// Where the camera was, if it reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// OCR confidence, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Vehicle attributes.
    #[serde(default)]
    pub vehicle: VehicleAttributes,
    /// Free-form source metadata (unit label, address, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source: BTreeMap<String, String>,
    /// The image crop's media type, when there is an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
    /// The image crop. Not part of the JSON metadata; framed after it.
    #[serde(skip)]
    pub image: Option<Bytes>,
}

/// A read as a client sends it, before validation.
#[derive(Debug, Clone, Default)]
pub struct ReadInput {
    /// Optional client-supplied id.
    pub read_id: Option<String>,
    /// Plate text as captured.
    pub plate: String,
    /// Issuing jurisdiction.
    pub region: Option<String>,
    /// Capture instant.
    pub captured_at: Option<DateTime<Utc>>,
    /// Camera id.
    pub camera_id: String,
    /// Position.
    pub position: Option<Position>,
    /// Confidence.
    pub confidence: Option<f32>,
    /// Vehicle attributes.
    pub vehicle: VehicleAttributes,
    /// Source metadata.
    pub source: BTreeMap<String, String>,
    /// Image media type.
    pub image_type: Option<String>,
    /// Image bytes.
    pub image: Option<Bytes>,
}

/// Why a read was refused. Each names the field; none repeats the plate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The plate is unusable.
    #[error("plate: {0}")]
    Plate(#[from] PlateError),
    /// No capture time.
    #[error("captured_at: missing")]
    MissingCaptureTime,
    /// Capture time too far in the future.
    #[error("captured_at: {at} is in the future (more than {skew_secs} s ahead of the server clock)")]
    FromTheFuture {
        /// The time given.
        at: DateTime<Utc>,
        /// The allowed skew.
        skew_secs: i64,
    },
    /// Capture time already past retention.
    #[error("captured_at: {at} is already past the retention period (cutoff {cutoff})")]
    PastRetention {
        /// The time given.
        at: DateTime<Utc>,
        /// The current cutoff.
        cutoff: DateTime<Utc>,
    },
    /// Camera id missing or malformed.
    #[error("camera_id: {0}")]
    Camera(String),
    /// Read id malformed.
    #[error("read_id: {0}")]
    ReadId(String),
    /// Region malformed.
    #[error("region: {0}")]
    Region(String),
    /// Position out of range.
    #[error("position: {0}")]
    Position(String),
    /// Confidence out of range.
    #[error("confidence: {0} is not between 0 and 1")]
    Confidence(f32),
    /// Image too large.
    #[error("image: {len} bytes exceeds the limit of {max} bytes")]
    ImageTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A free-text field is too long or has control characters.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Limits applied when validating a read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// The largest image accepted, in bytes.
    pub max_image_bytes: usize,
    /// How far in the future a capture time may be.
    pub future_skew: chrono::Duration,
    /// Reads captured before this instant are refused (now − retention).
    pub cutoff: DateTime<Utc>,
    /// The current instant.
    pub now: DateTime<Utc>,
}

fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), ReadError> {
    if s.len() > max {
        return Err(ReadError::Field {
            field,
            reason: format!("{} bytes exceeds the limit of {max}", s.len()),
        });
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(ReadError::Field {
            field,
            reason: "contains control characters".into(),
        });
    }
    Ok(())
}

/// Is this a valid client-supplied read id? Printable ASCII without spaces or slashes.
pub fn check_read_id(id: &str) -> Result<(), ReadError> {
    if id.is_empty() {
        return Err(ReadError::ReadId("empty".into()));
    }
    if id.len() > MAX_READ_ID_LEN {
        return Err(ReadError::ReadId(format!(
            "{} bytes exceeds the limit of {MAX_READ_ID_LEN}",
            id.len()
        )));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\') {
        return Err(ReadError::ReadId(
            "only printable ASCII without spaces or slashes is allowed".into(),
        ));
    }
    Ok(())
}

impl ReadInput {
    /// Validates the input into a [`PlateRead`]. `generate_id` is called when no id was supplied.
    pub fn validate(self, limits: &ReadLimits, generate_id: impl FnOnce() -> String) -> Result<PlateRead, ReadError> {
        let plate = plate::canonical(&self.plate)?;
        check_text("plate", &self.plate, 64)?;
        let captured_at = self.captured_at.ok_or(ReadError::MissingCaptureTime)?;
        if captured_at > limits.now + limits.future_skew {
            return Err(ReadError::FromTheFuture {
                at: captured_at,
                skew_secs: limits.future_skew.num_seconds(),
            });
        }
        if captured_at < limits.cutoff {
            return Err(ReadError::PastRetention {
                at: captured_at,
                cutoff: limits.cutoff,
            });
        }
        let camera_id = self.camera_id.trim().to_string();
        if camera_id.is_empty() {
            return Err(ReadError::Camera("missing".into()));
        }
        if camera_id.len() > MAX_CAMERA_ID_LEN {
            return Err(ReadError::Camera(format!(
                "{} bytes exceeds the limit of {MAX_CAMERA_ID_LEN}",
                camera_id.len()
            )));
        }
        if camera_id.chars().any(|c| c.is_control()) {
            return Err(ReadError::Camera("contains control characters".into()));
        }
        let read_id = match self.read_id.filter(|s| !s.is_empty()) {
            Some(id) => {
                check_read_id(&id)?;
                id
            }
            None => generate_id(),
        };
        let region = match self.region.map(|r| r.trim().to_ascii_uppercase()).filter(|r| !r.is_empty()) {
            Some(r) if r.len() <= 8 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => Some(r),
            Some(_) => return Err(ReadError::Region("must be up to 8 letters, digits or dashes (e.g. CA, WA)".into())),
            None => None,
        };
        if let Some(p) = self.position {
            if !p.lat.is_finite() || !(-90.0..=90.0).contains(&p.lat) {
                return Err(ReadError::Position(format!("latitude {} is not between -90 and 90", p.lat)));
            }
            if !p.lon.is_finite() || !(-180.0..=180.0).contains(&p.lon) {
                return Err(ReadError::Position(format!("longitude {} is not between -180 and 180", p.lon)));
            }
        }
        if let Some(c) = self.confidence {
            if !c.is_finite() || !(0.0..=1.0).contains(&c) {
                return Err(ReadError::Confidence(c));
            }
        }
        if let Some(img) = &self.image {
            if img.len() > limits.max_image_bytes {
                return Err(ReadError::ImageTooLarge {
                    len: img.len(),
                    max: limits.max_image_bytes,
                });
            }
        }
        for (field, v) in [
            ("vehicle.make", &self.vehicle.make),
            ("vehicle.model", &self.vehicle.model),
            ("vehicle.color", &self.vehicle.color),
            ("vehicle.body", &self.vehicle.body),
            ("image_type", &self.image_type),
        ] {
            if let Some(v) = v {
                check_text(field, v, 128)?;
            }
        }
        if self.source.len() > 64 {
            return Err(ReadError::Field {
                field: "source",
                reason: "more than 64 entries".into(),
            });
        }
        for (k, v) in &self.source {
            check_text("source", k, 128)?;
            check_text("source", v, 1024)?;
        }
        Ok(PlateRead {
            read_id,
            plate_raw: self.plate,
            plate,
            region,
            captured_at,
            camera_id,
            position: self.position,
            confidence: self.confidence,
            vehicle: self.vehicle,
            source: self.source,
            image_type: if self.image.is_some() { self.image_type } else { None },
            image: self.image.filter(|i| !i.is_empty()),
        })
    }
}

/// Version byte of the plaintext encoding. Changing the encoding needs a new version and a
/// decoder for the old one: stored objects carry it.
pub const PLAINTEXT_VERSION: u8 = 1;

/// Errors decoding a read's plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Too short or wrongly framed.
    #[error("read plaintext is truncated or malformed")]
    Malformed,
    /// From a newer version of lethe.
    #[error("read plaintext version {0} is not supported")]
    Version(u8),
    /// The metadata JSON did not parse.
    #[error("read metadata does not parse: {0}")]
    Json(#[from] serde_json::Error),
}

impl PlateRead {
    /// The folded plate (see [`plate::folded`]).
    pub fn plate_folded(&self) -> String {
        plate::folded(&self.plate)
    }

    /// The capture day (UTC), which names the read's partition and key.
    pub fn day(&self) -> NaiveDate {
        self.captured_at.date_naive()
    }

    /// Plaintext encoding: version byte, u32 big-endian metadata length, metadata JSON, image.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_head();
        out.extend_from_slice(self.image_bytes());
        out
    }

    /// The plaintext up to the image: [`PlateRead::encode`] is `encode_head() ‖ image_bytes()`.
    pub fn encode_head(&self) -> Vec<u8> {
        let meta = serde_json::to_vec(self).expect("read metadata serializes");
        let mut out = Vec::with_capacity(5 + meta.len());
        out.push(PLAINTEXT_VERSION);
        out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        out.extend_from_slice(&meta);
        out
    }

    /// The image, or nothing.
    pub fn image_bytes(&self) -> &[u8] {
        self.image.as_deref().unwrap_or(&[])
    }

    /// Decodes [`PlateRead::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&version, rest) = bytes.split_first().ok_or(DecodeError::Malformed)?;
        if version != PLAINTEXT_VERSION {
            return Err(DecodeError::Version(version));
        }
        if rest.len() < 4 {
            return Err(DecodeError::Malformed);
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let rest = &rest[4..];
        if rest.len() < len {
            return Err(DecodeError::Malformed);
        }
        let mut read: PlateRead = serde_json::from_slice(&rest[..len])?;
        let img = &rest[len..];
        read.image = if img.is_empty() { None } else { Some(Bytes::copy_from_slice(img)) };
        Ok(read)
    }

    /// SHA-256 of the plaintext encoding: equal content, equal hash.
    pub fn content_hash(&self) -> [u8; 32] {
        Self::content_hash_of(&self.encode_head(), self.image_bytes())
    }

    /// [`PlateRead::content_hash`] from the two parts of the encoding (`encode_head()`,
    /// `image_bytes()`), without joining them.
    pub fn content_hash_of(head: &[u8], image: &[u8]) -> [u8; 32] {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        h.update(head);
        h.update(image);
        h.finish().as_ref().try_into().expect("32 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn limits() -> ReadLimits {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
        ReadLimits {
            max_image_bytes: 1024,
            future_skew: chrono::Duration::seconds(300),
            cutoff: now - chrono::Duration::hours(720),
            now,
        }
    }

    fn input() -> ReadInput {
        ReadInput {
            plate: "abc 123".into(),
            captured_at: Some(Utc.with_ymd_and_hms(2026, 12, 3, 11, 0, 0).unwrap()),
            camera_id: "cam-1".into(),
            position: Some(Position { lat: 47.6, lon: -122.3 }),
            image: Some(vec![1, 2, 3].into()),
            image_type: Some("image/jpeg".into()),
            ..Default::default()
        }
    }

    #[test]
    fn encode_round_trips() {
        let r = input().validate(&limits(), || "id1".into()).unwrap();
        assert_eq!(r.plate, "ABC123");
        let back = PlateRead::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.content_hash(), r.content_hash());
    }

    #[test]
    fn each_bad_field_is_named() {
        let l = limits();
        let cases: Vec<(ReadInput, &str)> = vec![
            (
                ReadInput {
                    plate: "".into(),
                    ..input()
                },
                "plate:",
            ),
            (
                ReadInput {
                    captured_at: None,
                    ..input()
                },
                "captured_at:",
            ),
            (
                ReadInput {
                    captured_at: Some(l.now + chrono::Duration::hours(1)),
                    ..input()
                },
                "captured_at:",
            ),
            (
                ReadInput {
                    captured_at: Some(l.cutoff - chrono::Duration::seconds(1)),
                    ..input()
                },
                "captured_at:",
            ),
            (
                ReadInput {
                    camera_id: " ".into(),
                    ..input()
                },
                "camera_id:",
            ),
            (
                ReadInput {
                    read_id: Some("a b".into()),
                    ..input()
                },
                "read_id:",
            ),
            (
                ReadInput {
                    position: Some(Position { lat: 91.0, lon: 0.0 }),
                    ..input()
                },
                "position:",
            ),
            (
                ReadInput {
                    position: Some(Position { lat: f64::NAN, lon: 0.0 }),
                    ..input()
                },
                "position:",
            ),
            (
                ReadInput {
                    confidence: Some(1.5),
                    ..input()
                },
                "confidence:",
            ),
            (
                ReadInput {
                    image: Some(vec![0; 1025].into()),
                    ..input()
                },
                "image:",
            ),
            (
                ReadInput {
                    region: Some("CALIFORNIA".into()),
                    ..input()
                },
                "region:",
            ),
        ];
        for (inp, field) in cases {
            let err = inp.validate(&l, || "x".into()).unwrap_err().to_string();
            assert!(err.starts_with(field), "{err} should name {field}");
        }
    }

    #[test]
    fn rejects_truncated_plaintext() {
        let r = input().validate(&limits(), || "id1".into()).unwrap();
        let enc = r.encode();
        assert!(PlateRead::decode(&enc[..3]).is_err());
        assert!(PlateRead::decode(&[9]).is_err());
    }
}
