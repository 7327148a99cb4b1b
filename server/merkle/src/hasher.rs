//! The tree's two hash functions, over any 32-byte digest.
//!
//! The domain-separation prefixes (0x00 for leaves, 0x01 for interior nodes)
//! are what RFC 9162 §2.1.1 prescribes: without them a leaf whose data is the
//! concatenation of two child hashes could stand in for an interior node (a
//! second-preimage attack on the tree).

use sha2::Digest;

/// A node or leaf hash. Both hashes the log uses produce 32 bytes, which also
/// is one EVM word, so the contract handles each as a `bytes32`.
pub type Hash = [u8; 32];

/// The prefix of a leaf hash's input: `leaf_hash(d) = H(0x00 ‖ d)`.
pub const LEAF_PREFIX: u8 = 0x00;
/// The prefix of an interior node hash's input: `node_hash(l, r) = H(0x01 ‖ l ‖ r)`.
pub const NODE_PREFIX: u8 = 0x01;

/// The hash function of a Merkle tree, per RFC 9162 §2.1.1.
///
/// Everything in this crate is generic over it so that one body of code is
/// checked against the RFC 6962 test vectors (SHA-256) and runs the
/// production log (Keccak-256).
pub trait Hasher {
    /// `H(0x00 ‖ leaf_data)`: the hash of a leaf from its data.
    fn leaf_hash(&self, leaf_data: &[u8]) -> Hash;
    /// `H(0x01 ‖ left ‖ right)`: the hash of an interior node from its children's.
    fn node_hash(&self, left: &Hash, right: &Hash) -> Hash;
    /// `H("")`: the root of the tree with no leaves.
    fn empty_root(&self) -> Hash;
}

/// Keccak-256 (the original Keccak padding, as Ethereum's `keccak256` — not
/// the standardised SHA3-256, whose padding differs). The production log uses
/// it so that an EVM contract can check a proof with the cheap KECCAK256
/// opcode rather than the SHA-256 precompile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keccak256Hasher;

/// SHA-256, the hash of RFC 6962/9162's own test vectors (and of Certificate
/// Transparency logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sha256Hasher;

fn leaf_hash_with<D: Digest>(leaf_data: &[u8]) -> Hash
where
    sha2::digest::Output<D>: Into<Hash>,
{
    let mut digest = D::new();
    digest.update([LEAF_PREFIX]);
    digest.update(leaf_data);
    digest.finalize().into()
}

fn node_hash_with<D: Digest>(left: &Hash, right: &Hash) -> Hash
where
    sha2::digest::Output<D>: Into<Hash>,
{
    let mut digest = D::new();
    digest.update([NODE_PREFIX]);
    digest.update(left);
    digest.update(right);
    digest.finalize().into()
}

impl Hasher for Keccak256Hasher {
    fn leaf_hash(&self, leaf_data: &[u8]) -> Hash {
        leaf_hash_with::<sha3::Keccak256>(leaf_data)
    }
    fn node_hash(&self, left: &Hash, right: &Hash) -> Hash {
        node_hash_with::<sha3::Keccak256>(left, right)
    }
    fn empty_root(&self) -> Hash {
        sha3::Keccak256::digest([]).into()
    }
}

impl Hasher for Sha256Hasher {
    fn leaf_hash(&self, leaf_data: &[u8]) -> Hash {
        leaf_hash_with::<sha2::Sha256>(leaf_data)
    }
    fn node_hash(&self, left: &Hash, right: &Hash) -> Hash {
        node_hash_with::<sha2::Sha256>(left, right)
    }
    fn empty_root(&self) -> Hash {
        sha2::Sha256::digest([]).into()
    }
}

/// Bytes as `0x` and lowercase hex: how the chain, the proofs' Parameters
/// and the README write hashes, addresses and leaf data.
pub fn hex_0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_roots_are_the_well_known_digests_of_nothing() {
        assert_eq!(
            hex::encode(Sha256Hasher.empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // keccak256("") as Ethereum knows it; SHA3-256("") would be a7ffc6f8….
        assert_eq!(
            hex::encode(Keccak256Hasher.empty_root()),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
