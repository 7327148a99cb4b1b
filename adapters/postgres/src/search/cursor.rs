//! Opaque paging cursors: the sort-key values and row key of the row a page ends at (or,
//! for `previous` links, starts at), so the next page continues strictly after it with a
//! keyset condition instead of an OFFSET scan.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// What a cursor carries on the wire: the position and a check binding it to its search.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(flatten)]
    cursor: Cursor,
    #[serde(rename = "c")]
    check: String,
}

/// A short digest of the position and the search it belongs to, so an edited cursor, or
/// one taken from another search, is refused rather than served from a made-up place.
fn check(cursor: &Cursor, search: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(search.as_bytes());
    hash.update([0]);
    hash.update(serde_json::to_vec(cursor).unwrap_or_default());
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Cursor {
    /// The cursor as a URL-safe token for the search identified by `search`.
    pub fn encode(&self, search: &str) -> String {
        let wire = Wire {
            cursor: self.clone(),
            check: check(self, search),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Decodes a cursor of the search identified by `search`, which has `sort_keys` keys.
    pub fn decode(token: &str, sort_keys: usize, search: &str) -> Result<Cursor, StoreError> {
        let invalid = || StoreError::InvalidCursor(token.chars().take(64).collect());
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if wire.cursor.keys.len() != sort_keys || wire.check != check(&wire.cursor, search) {
            return Err(invalid());
        }
        Ok(wire.cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let c = Cursor {
            keys: vec![Some("2020-01-01T00:00:00.000000Z".into()), None],
            res_id: 42,
            backwards: true,
        };
        let token = c.encode("search A");
        assert_eq!(Cursor::decode(&token, 2, "search A").ok(), Some(c.clone()));
        assert!(Cursor::decode(&token, 1, "search A").is_err());
        assert!(
            Cursor::decode(&token, 2, "search B").is_err(),
            "bound to its search"
        );
        assert!(Cursor::decode("not a cursor!", 0, "search A").is_err());
        assert!(Cursor::decode("", 0, "search A").is_err());
        // Any edited character is refused.
        for i in 0..token.len() {
            let mut edited = token.clone().into_bytes();
            edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(edited).unwrap_or_default();
            if edited != token {
                assert!(
                    Cursor::decode(&edited, 2, "search A").is_err(),
                    "edit at {i}"
                );
            }
        }
    }
}
