//! Conversions between the wire messages and the model.

use chrono::{DateTime, Utc};

use super::proto;
use crate::model::{PlateRead, Position, ReadInput, VehicleAttributes};

/// A protobuf timestamp as a UTC instant; `Err` names nothing (the caller knows the field).
pub fn from_timestamp(t: &prost_types::Timestamp) -> Result<DateTime<Utc>, String> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(format!("nanos {} is out of range", t.nanos));
    }
    DateTime::<Utc>::from_timestamp(t.seconds, t.nanos as u32).ok_or_else(|| format!("{} seconds is out of range", t.seconds))
}

/// A UTC instant as a protobuf timestamp.
pub fn to_timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn opt(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// A wire read as model input. A malformed timestamp is `Err((field, reason))`.
pub fn read_input(r: proto::Read) -> Result<ReadInput, (&'static str, String)> {
    let captured_at = match &r.captured_at {
        Some(t) => Some(from_timestamp(t).map_err(|e| ("captured_at", e))?),
        None => None,
    };
    let vehicle = r.vehicle.unwrap_or_default();
    Ok(ReadInput {
        read_id: opt(r.read_id),
        plate: r.plate,
        region: opt(r.region),
        captured_at,
        camera_id: r.camera_id,
        position: r.position.map(|p| Position { lat: p.lat, lon: p.lon }),
        confidence: r.confidence,
        vehicle: VehicleAttributes {
            make: opt(vehicle.make),
            model: opt(vehicle.model),
            color: opt(vehicle.color),
            body: opt(vehicle.body),
        },
        source: r.source.into_iter().collect(),
        image_type: opt(r.image_type),
        image: (!r.image.is_empty()).then_some(r.image),
    })
}

/// A stored read on the wire (the raw plate as captured; the canonical form is sent beside it).
pub fn wire_read(r: PlateRead) -> proto::Read {
    proto::Read {
        read_id: r.read_id,
        plate: r.plate_raw,
        region: r.region.unwrap_or_default(),
        captured_at: Some(to_timestamp(r.captured_at)),
        camera_id: r.camera_id,
        position: r.position.map(|p| proto::Position { lat: p.lat, lon: p.lon }),
        confidence: r.confidence,
        vehicle: Some(proto::Vehicle {
            make: r.vehicle.make.unwrap_or_default(),
            model: r.vehicle.model.unwrap_or_default(),
            color: r.vehicle.color.unwrap_or_default(),
            body: r.vehicle.body.unwrap_or_default(),
        }),
        source: r.source.into_iter().collect(),
        image_type: r.image_type.unwrap_or_default(),
        image: r.image.unwrap_or_default(),
    }
}
