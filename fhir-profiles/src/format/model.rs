//! The fhirbolt typed R4 model: strict reading, and its JSON serialisation as the canonical form.

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

pub(crate) type R4Resource = Resource;

/// Only fields of the R4 model, every mandatory one present.
pub(crate) fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

/// Tolerant reading, for data that was validated when it was stored.
pub(crate) fn lax() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Lax,
    })
}

/// Keeps unknown fields in the element model, so the structural check can point at them.
pub(crate) fn compatible() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Compatibility,
    })
}

/// fhirbolt's JSON for a resource: the canonical form this crate returns and stores.
pub(crate) fn canonical_json(resource: R4Resource) -> Result<Value, String> {
    fhirbolt::json::to_json_value(resource, None).map_err(|e| e.to_string())
}
