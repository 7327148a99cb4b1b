//! The hashing and proofs of fhirledger's append-only Merkle log (pure: no
//! I/O, no clock).
//!
//! The tree is RFC 9162's (Certificate Transparency v2): a leaf's hash is
//! `H(0x00 ‖ leaf data)`, an interior node's `H(0x01 ‖ left ‖ right)`, a tree
//! of `n > 1` leaves splits at the largest power of two below `n` (left
//! subtree perfect), and the empty tree's root is `H("")`. The log hashes
//! with Keccak-256 ([`Keccak256Hasher`]) so that an EVM contract can check
//! its proofs with the KECCAK256 opcode; everything is generic over
//! [`Hasher`], and the same code passes RFC 6962's SHA-256 test vectors
//! ([`Sha256Hasher`]).
//!
//! - [`hasher`]: the [`Hasher`] trait and its two implementations.
//! - [`node`]: perfect-subtree addresses ([`NodeId`]: level and index), the
//!   nodes covering a range or making up the right edge of a tree of a given
//!   size ([`frontier_nodes`]), and the fold of such nodes ([`range_hash`]).
//! - [`proof`]: which stored nodes an inclusion or consistency proof needs
//!   ([`inclusion_nodes`], [`consistency_nodes`]: O(log n) each) and the proof
//!   from their hashes ([`ProofNodes::assemble`]).
//! - [`frontier`]: [`Frontier`], the right edge of the growing tree: appends
//!   report each newly completed perfect node for the store, and give the
//!   root.
//! - [`tile`]: every node of the lowest [`TILE_HEIGHT`] levels over a run
//!   of [`TILE_WIDTH`] leaves as one [`Tile`], so that a store reads one
//!   row for them where it would probe a node per level.
//! - [`verify`]: [`verify_inclusion`] and [`verify_consistency`], RFC 9162
//!   §2.1.3.2 and §2.1.4.2 step by step, with a [`ProofError`] saying what
//!   failed; no input makes them panic.
//! - [`reference`](mod@reference): RFC 9162's recursive definitions over all the leaves in
//!   memory ([`reference::root`], [`reference::inclusion_proof`],
//!   [`reference::consistency_proof`]), for tests and full rebuilds.
//! - [`leaf`]: [`LeafData`], the canonical encoding of what a leaf records.
//!
//! How a log and its proof service use it (a map stands in for the store):
//!
//! ```
//! use std::collections::HashMap;
//! use fhirledger_merkle::{inclusion_nodes, verify_inclusion, Frontier, Hasher, Keccak256Hasher};
//!
//! let hasher = Keccak256Hasher;
//! let mut frontier = Frontier::new(hasher);
//! let mut store = HashMap::new();
//! for record in 0u32..10 {
//!     for node in frontier.append(hasher.leaf_hash(&record.to_be_bytes()))? {
//!         store.insert(node.id, node.hash);
//!     }
//! }
//! let root = frontier.root();
//!
//! // `$proof` of leaf 3 in the tree of 10: read a few nodes, assemble, verify.
//! let nodes = inclusion_nodes(3, 10)?;
//! let fetched: Vec<_> = nodes.ids().iter().map(|id| store[id]).collect();
//! let path = nodes.assemble(&hasher, &fetched)?;
//! let leaf = hasher.leaf_hash(&3u32.to_be_bytes());
//! verify_inclusion(&hasher, 3, 10, &leaf, &path, &root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Leaf format, version 1
//!
//! A leaf is the record of one resource version (a Consent version written,
//! an AuditEvent recorded). Its encoding is a byte string of
//! `80 + R + I + V` bytes, where `R`, `I` and `V` are the lengths in bytes
//! of the resource type, the id and the version id as UTF-8. Multi-byte
//! integers are big-endian (most significant byte first). Fields follow one
//! another with no padding, separators or terminators:
//!
//! | offset | length | field |
//! |---|---|---|
//! | 0 | 1 | format version: `0x01` |
//! | 1 | 1 | kind: `0x01` a Consent version, `0x02` an AuditEvent |
//! | 2 | 2 | `R`, unsigned 16-bit |
//! | 4 | `R` | the FHIR resource type, UTF-8 (e.g. `Consent`) |
//! | 4 + R | 2 | `I`, unsigned 16-bit |
//! | 6 + R | `I` | the resource's logical id, UTF-8 |
//! | 6 + R + I | 2 | `V`, unsigned 16-bit |
//! | 8 + R + I | `V` | the version id (`meta.versionId`), UTF-8 |
//! | 8 + R + I + V | 32 | SHA-256 of the version's stored content |
//! | 40 + R + I + V | 8 | the time it was recorded: signed 64-bit two's complement, microseconds since 1970-01-01T00:00:00Z (Unix time, UTC) |
//! | 48 + R + I + V | 32 | the salt: 32 random bytes kept with the record |
//!
//! The text is taken byte for byte as stored (no Unicode normalisation, no
//! trimming). A decoder refuses any other version or kind byte, a length
//! that runs past the end, text that is not UTF-8, and bytes after the salt,
//! so each leaf has exactly one encoding.
//!
//! The leaf's hash in the log is `Keccak-256(0x00 ‖ encoding)`: one zero
//! byte, then the encoding. Interior nodes are `Keccak-256(0x01 ‖ left ‖
//! right)` over the two 32-byte child hashes, and the empty log's root is
//! `Keccak-256("")` =
//! `c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470`.
//! Keccak-256 is the original Keccak with 256-bit output and Keccak's
//! padding (domain byte `0x01`), as Ethereum's `keccak256` and
//! pycryptodome's `keccak.new(digest_bits=256)` compute it; it is **not**
//! FIPS 202 SHA3-256 (`hashlib.sha3_256`), whose padding differs and gives
//! other digests.
//!
//! A worked example, which the crate's known-answer test checks against
//! digests computed independently (Python, pycryptodome's Keccak):
//!
//! - kind `0x01` (Consent version), resource type `Consent`, id
//!   `example-1`, version id `3`;
//! - content SHA-256: the 32 bytes `00 01 02 … 1f`;
//! - recorded `1767225600123456` µs (2026-01-01T00:00:00.123456Z);
//! - salt: the 32 bytes `a0 a1 a2 … bf`.
//!
//! Its encoding is these 97 bytes (hex):
//!
//! ```text
//! 01 01 0007 436f6e73656e74 0009 6578616d706c652d31 0001 33
//! 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
//! 0006474846222240
//! a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
//! ```
//!
//! and its leaf hash, `Keccak-256(0x00 ‖ those bytes)`, is
//! `baf24cdaa9bfebbb9707406b1f7d10906c518677d4c966b7f8ca0b7d1102f35b`
//! (SHA3-256 would give `43f0edc4…`: the wrong function). A tree of that
//! leaf twice has the root `Keccak-256(0x01 ‖ leaf hash ‖ leaf hash)` =
//! `12a924ce249a3a4a0b09d7096982317606c5a5df349acf9783032ed2d6e7b3b9`.

pub mod error;
pub mod frontier;
pub mod hasher;
pub mod leaf;
pub mod node;
pub mod proof;
pub mod reference;
pub mod tile;
pub mod verify;

pub use error::ProofError;
pub use frontier::{Frontier, FrontierError};
pub use hasher::{hex_0x, Hash, Hasher, Keccak256Hasher, Sha256Hasher};
pub use leaf::{LeafData, LeafDataError, LeafKind, LEAF_FORMAT_VERSION};
pub use node::{frontier_nodes, range_hash, range_nodes, NodeId, PerfectNode};
pub use proof::{consistency_nodes, inclusion_nodes, ProofNodes};
pub use tile::{tile_of, Tile, TILE_BYTES, TILE_HEIGHT, TILE_WIDTH};
pub use verify::{verify_consistency, verify_inclusion};
