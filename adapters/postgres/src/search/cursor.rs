//! Opaque paging cursors: the sort-key values and row key of the row a page ends at (or,
//! for `previous` links, starts at), so the next page continues strictly after it with a
//! keyset condition instead of an OFFSET scan.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// Sort-key values of the boundary row, as text (`None` for a missing value).
    #[serde(rename = "k")]
    pub keys: Vec<Option<String>>,
    /// Its row key, the final tie-breaker.
    #[serde(rename = "r")]
    pub res_id: i64,
    /// True for a `previous` link: the page ends just before the boundary row.
    #[serde(rename = "b", default, skip_serializing_if = "std::ops::Not::not")]
    pub backwards: bool,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a cursor of a search with `sort_keys` keys.
    pub fn decode(token: &str, sort_keys: usize) -> Result<Cursor, StoreError> {
        let invalid = || StoreError::InvalidCursor(token.chars().take(64).collect());
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.keys.len() != sort_keys {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let c = Cursor {
            keys: vec![Some("2020-01-01 00:00:00+00".into()), None],
            res_id: 42,
            backwards: true,
        };
        assert_eq!(Cursor::decode(&c.encode(), 2).ok(), Some(c.clone()));
        assert!(Cursor::decode(&c.encode(), 1).is_err());
        assert!(Cursor::decode("not a cursor!", 0).is_err());
        assert!(Cursor::decode("", 0).is_err());
    }
}
