//! The bytes a leaf commits to: one recorded fact about one resource
//! version, in a canonical binary form (see the crate documentation for the
//! format byte by byte).
//!
//! Binary and length-prefixed rather than JSON so that there is exactly one
//! encoding of each value, which any auditor can rebuild with a few lines in
//! any language and any Keccak-256.

use crate::hasher::{Hash, Hasher};

/// The format version, byte 0 of every encoded leaf. A new layout gets a new
/// version; old leaves keep theirs forever (they are hashed into the log).
pub const LEAF_FORMAT_VERSION: u8 = 0x01;

/// What a leaf records, byte 1 of its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LeafKind {
    /// A version of a patient's Consent was written.
    ConsentVersion = 1,
    /// An AuditEvent (an access) was recorded.
    AuditEvent = 2,
}

impl LeafKind {
    /// The kind's byte in the encoding.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind a byte stands for, if any.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(LeafKind::ConsentVersion),
            2 => Some(LeafKind::AuditEvent),
            _ => None,
        }
    }
}

/// One leaf's data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeafData {
    pub kind: LeafKind,
    /// The FHIR resource type, e.g. `Consent`.
    pub resource_type: String,
    /// The resource's logical id.
    pub id: String,
    /// The version recorded (`meta.versionId`).
    pub version_id: String,
    /// SHA-256 of the version's stored content, so that the leaf commits to
    /// the content without publishing it.
    pub content_sha256: [u8; 32],
    /// When the version was recorded: UTC microseconds since the Unix epoch.
    pub recorded_micros: i64,
    /// Random bytes, kept with the record and revealed only with a proof, so
    /// that a published leaf hash cannot be confirmed by guessing the other
    /// fields (ids and times are guessable; the salt is not).
    pub salt: [u8; 32],
}

/// Why bytes are not an encoded leaf, or a leaf cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeafDataError {
    #[error("no bytes: a leaf starts with its format version")]
    Empty,
    #[error(
        "leaf format version {0:#04x} is not known (this code reads {LEAF_FORMAT_VERSION:#04x})"
    )]
    UnknownVersion(u8),
    #[error("leaf kind {0} is not known")]
    UnknownKind(u8),
    /// The bytes end inside a field.
    #[error("the leaf ends inside its {field}: {needed} more bytes needed, {available} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("the leaf's {field} is not UTF-8")]
    NotUtf8 { field: &'static str },
    /// Bytes after the salt: an encoding has exactly one length.
    #[error("{0} bytes after the end of the leaf")]
    TrailingBytes(usize),
    /// A text field too long for its 16-bit length prefix.
    #[error(
        "the leaf's {field} has {length} bytes, more than the {} a leaf can hold",
        u16::MAX
    )]
    FieldTooLong { field: &'static str, length: usize },
}

impl LeafData {
    /// The canonical encoding (format version 1). Fails only for a text
    /// field longer than 65,535 bytes of UTF-8, which no FHIR type, id or
    /// version id comes near.
    pub fn encode(&self) -> Result<Vec<u8>, LeafDataError> {
        let mut bytes = Vec::with_capacity(
            2 + 6 + self.resource_type.len() + self.id.len() + self.version_id.len() + 32 + 8 + 32,
        );
        bytes.push(LEAF_FORMAT_VERSION);
        bytes.push(self.kind.code());
        for (field, text) in [
            ("resource type", &self.resource_type),
            ("id", &self.id),
            ("version id", &self.version_id),
        ] {
            let length = u16::try_from(text.len()).map_err(|_| LeafDataError::FieldTooLong {
                field,
                length: text.len(),
            })?;
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes.extend_from_slice(&self.content_sha256);
        bytes.extend_from_slice(&self.recorded_micros.to_be_bytes());
        bytes.extend_from_slice(&self.salt);
        Ok(bytes)
    }

    /// Reads a leaf back from its encoding, refusing anything that
    /// [`Self::encode`] would not have produced.
    pub fn decode(bytes: &[u8]) -> Result<LeafData, LeafDataError> {
        let mut reader = Reader { rest: bytes };
        let [version] = reader
            .array::<1>("format version")
            .map_err(|_| LeafDataError::Empty)?;
        if version != LEAF_FORMAT_VERSION {
            return Err(LeafDataError::UnknownVersion(version));
        }
        let [kind] = reader.array::<1>("kind")?;
        let kind = LeafKind::from_code(kind).ok_or(LeafDataError::UnknownKind(kind))?;
        let resource_type = reader.text("resource type")?;
        let id = reader.text("id")?;
        let version_id = reader.text("version id")?;
        let content_sha256 = reader.array::<32>("content SHA-256")?;
        let recorded_micros = i64::from_be_bytes(reader.array::<8>("recorded time")?);
        let salt = reader.array::<32>("salt")?;
        if !reader.rest.is_empty() {
            return Err(LeafDataError::TrailingBytes(reader.rest.len()));
        }
        Ok(LeafData {
            kind,
            resource_type,
            id,
            version_id,
            content_sha256,
            recorded_micros,
            salt,
        })
    }

    /// The leaf's hash in the log: [`Hasher::leaf_hash`] of [`Self::encode`].
    pub fn leaf_hash<H: Hasher + ?Sized>(&self, hasher: &H) -> Result<Hash, LeafDataError> {
        Ok(hasher.leaf_hash(&self.encode()?))
    }
}

/// Reads fields off the front of a byte slice without ever indexing past it.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], LeafDataError> {
        if self.rest.len() < needed {
            return Err(LeafDataError::Truncated {
                field,
                needed,
                available: self.rest.len(),
            });
        }
        let (taken, rest) = self.rest.split_at(needed);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], LeafDataError> {
        let taken = self.take(field, N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(taken);
        Ok(array)
    }

    fn text(&mut self, field: &'static str) -> Result<String, LeafDataError> {
        let length = u16::from_be_bytes(self.array::<2>(field)?);
        let bytes = self.take(field, usize::from(length))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| LeafDataError::NotUtf8 { field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hasher::Keccak256Hasher;
    use proptest::prelude::*;

    /// The crate documentation's worked example.
    fn example() -> LeafData {
        let mut content_sha256 = [0u8; 32];
        let mut salt = [0u8; 32];
        for i in 0..32u8 {
            content_sha256[usize::from(i)] = i;
            salt[usize::from(i)] = 0xa0 + i;
        }
        LeafData {
            kind: LeafKind::ConsentVersion,
            resource_type: "Consent".into(),
            id: "example-1".into(),
            version_id: "3".into(),
            content_sha256,
            recorded_micros: 1_767_225_600_123_456,
            salt,
        }
    }

    /// Expected values computed outside this crate, with Python and
    /// pycryptodome (`Crypto.Hash.keccak`, digest_bits=256) over bytes built
    /// by `struct.pack`.
    #[test]
    fn known_answer_encoding_and_keccak_leaf_hash() {
        let encoded = example().encode().unwrap();
        assert_eq!(
            hex::encode(&encoded),
            "01010007436f6e73656e7400096578616d706c652d31000133\
             000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
             0006474846222240\
             a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        );
        let leaf_hash = example().leaf_hash(&Keccak256Hasher).unwrap();
        assert_eq!(
            hex::encode(leaf_hash),
            "baf24cdaa9bfebbb9707406b1f7d10906c518677d4c966b7f8ca0b7d1102f35b"
        );
        assert_eq!(
            hex::encode(Keccak256Hasher.node_hash(&leaf_hash, &leaf_hash)),
            "12a924ce249a3a4a0b09d7096982317606c5a5df349acf9783032ed2d6e7b3b9"
        );
    }

    #[test]
    fn time_is_signed_big_endian() {
        let before_epoch = LeafData {
            recorded_micros: -2,
            ..example()
        };
        let encoded = before_epoch.encode().unwrap();
        let time = &encoded[encoded.len() - 40..encoded.len() - 32];
        assert_eq!(time, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(LeafData::decode(&encoded), Ok(before_epoch));
    }

    #[test]
    fn decode_refuses_what_encode_never_produces() {
        let encoded = example().encode().unwrap();
        assert_eq!(LeafData::decode(&[]), Err(LeafDataError::Empty));

        let mut other_version = encoded.clone();
        other_version[0] = 0x02;
        assert_eq!(
            LeafData::decode(&other_version),
            Err(LeafDataError::UnknownVersion(2))
        );

        for kind in [0u8, 3, 0xff] {
            let mut other_kind = encoded.clone();
            other_kind[1] = kind;
            assert_eq!(
                LeafData::decode(&other_kind),
                Err(LeafDataError::UnknownKind(kind))
            );
        }

        let mut trailing = encoded.clone();
        trailing.push(0);
        assert_eq!(
            LeafData::decode(&trailing),
            Err(LeafDataError::TrailingBytes(1))
        );

        for length in 1..encoded.len() {
            assert!(
                matches!(
                    LeafData::decode(&encoded[..length]),
                    Err(LeafDataError::Truncated { .. })
                ),
                "a leaf cut to {length} bytes"
            );
        }

        // The resource type's length claims more bytes than there are.
        let mut overlong = encoded.clone();
        overlong[2] = 0xff;
        assert!(matches!(
            LeafData::decode(&overlong),
            Err(LeafDataError::Truncated { .. })
        ));

        let mut not_utf8 = encoded.clone();
        not_utf8[4] = 0xff;
        assert_eq!(
            LeafData::decode(&not_utf8),
            Err(LeafDataError::NotUtf8 {
                field: "resource type"
            })
        );
    }

    #[test]
    fn encode_refuses_text_its_length_prefix_cannot_hold() {
        let too_long = LeafData {
            id: "x".repeat(usize::from(u16::MAX) + 1),
            ..example()
        };
        assert_eq!(
            too_long.encode(),
            Err(LeafDataError::FieldTooLong {
                field: "id",
                length: 65_536
            })
        );
        let longest = LeafData {
            id: "x".repeat(usize::from(u16::MAX)),
            ..example()
        };
        let encoded = longest.encode().unwrap();
        assert_eq!(LeafData::decode(&encoded), Ok(longest));
    }

    fn any_leaf() -> impl Strategy<Value = LeafData> {
        (
            prop_oneof![Just(LeafKind::ConsentVersion), Just(LeafKind::AuditEvent)],
            "\\PC{0,20}",
            "\\PC{0,40}",
            "[0-9]{0,5}",
            any::<[u8; 32]>(),
            any::<i64>(),
            any::<[u8; 32]>(),
        )
            .prop_map(
                |(kind, resource_type, id, version_id, content_sha256, recorded_micros, salt)| {
                    LeafData {
                        kind,
                        resource_type,
                        id,
                        version_id,
                        content_sha256,
                        recorded_micros,
                        salt,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn encoding_round_trips(leaf in any_leaf()) {
            let encoded = leaf.encode().unwrap();
            prop_assert_eq!(
                encoded.len(),
                80 + leaf.resource_type.len() + leaf.id.len() + leaf.version_id.len()
            );
            prop_assert_eq!(LeafData::decode(&encoded), Ok(leaf));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(leaf) = LeafData::decode(&bytes) {
                prop_assert_eq!(leaf.encode().unwrap(), bytes);
            }
        }
    }
}
