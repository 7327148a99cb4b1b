//! Proofs built from stored perfect nodes equal RFC 9162's reference proofs
//! and verify; any change to what a verifier is given makes them fail.

use std::collections::HashMap;

use fhirledger_merkle::{
    consistency_nodes, frontier_nodes, inclusion_nodes, reference, verify_consistency,
    verify_inclusion, Frontier, FrontierError, Hash, Hasher, Keccak256Hasher, NodeId, ProofError,
    Sha256Hasher,
};
use proptest::prelude::*;

/// A log of `size` leaves as the service would have it: the leaves (for the
/// reference), every perfect node the frontier reported (the store), and
/// the root at every size (what signed tree heads would say).
struct Log<H> {
    hasher: H,
    leaves: Vec<Hash>,
    store: HashMap<NodeId, Hash>,
    roots: Vec<Hash>,
}

impl<H: Hasher + Clone> Log<H> {
    fn new(hasher: H, size: u64, seed: u64) -> Self {
        let leaves: Vec<Hash> = (0..size)
            .map(|index| {
                let mut data = seed.to_be_bytes().to_vec();
                data.extend_from_slice(&index.to_be_bytes());
                hasher.leaf_hash(&data)
            })
            .collect();
        let mut frontier = Frontier::new(hasher.clone());
        let mut store = HashMap::new();
        let mut roots = vec![frontier.root()];
        for leaf in &leaves {
            frontier
                .append_with(*leaf, |node| {
                    assert!(
                        store.insert(node.id, node.hash).is_none(),
                        "{:?} twice",
                        node.id
                    );
                })
                .unwrap();
            roots.push(frontier.root());
        }
        Log {
            hasher,
            leaves,
            store,
            roots,
        }
    }

    fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The stored hashes of `ids`, checking that a proof about a tree of
    /// `tree_size` leaves reads only nodes complete at that size (the store
    /// also has later ones).
    fn fetch(&self, ids: &[NodeId], tree_size: u64) -> Vec<Hash> {
        ids.iter()
            .map(|id| {
                let (_, end) = id.leaf_range().expect("a real level");
                assert!(
                    end <= u128::from(tree_size),
                    "{id:?} is not complete at {tree_size}"
                );
                self.store[id]
            })
            .collect()
    }

    fn root(&self, size: u64) -> Hash {
        self.roots[size as usize]
    }

    fn prefix(&self, size: u64) -> &[Hash] {
        &self.leaves[..size as usize]
    }
}

/// The sequence of "proof entry on the left" choices RFC 9162's inclusion
/// verification makes for (index, size): two (index, size) pairs with the
/// same sequence compute the same root from the same path, so an RFC 9162
/// proof cannot tell them apart (tree heads bind the size to the root).
fn inclusion_shape(leaf_index: u64, tree_size: u64) -> Option<Vec<bool>> {
    let length = inclusion_nodes(leaf_index, tree_size).ok()?.path_len();
    let (mut fnode, mut snode) = (leaf_index, tree_size - 1);
    let mut shape = Vec::new();
    for _ in 0..length {
        let left = fnode & 1 == 1 || fnode == snode;
        shape.push(left);
        if left && fnode & 1 == 0 {
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
    }
    Some(shape)
}

/// The same for consistency: which edge cases apply, whether the old root
/// is the first node, and for each further entry whether it enters both
/// roots or only the new one.
#[derive(PartialEq, Eq, Debug)]
enum ConsistencyShape {
    Invalid,
    FromEmpty,
    Equal,
    Proper {
        old_root_first: bool,
        both: Vec<bool>,
    },
}

fn consistency_shape(size1: u64, size2: u64) -> ConsistencyShape {
    let Ok(nodes) = consistency_nodes(size1, size2) else {
        return ConsistencyShape::Invalid;
    };
    if size1 == size2 {
        return ConsistencyShape::Equal;
    }
    if size1 == 0 {
        return ConsistencyShape::FromEmpty;
    }
    let old_root_first = size1.is_power_of_two();
    let entries = nodes.path_len() + usize::from(old_root_first) - 1;
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut both = Vec::new();
    for _ in 0..entries {
        let into_both = fnode & 1 == 1 || fnode == snode;
        both.push(into_both);
        if into_both && fnode & 1 == 0 {
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
    }
    ConsistencyShape::Proper {
        old_root_first,
        both,
    }
}

fn flip(hash: &Hash, bit: u64) -> Hash {
    let mut flipped = *hash;
    flipped[(bit / 8 % 32) as usize] ^= 1 << (bit % 8);
    flipped
}

/// A small deterministic generator for choosing bits, so that every entry
/// of every proof gets its own random bit without proptest generating (and
/// shrinking) thousands of values.
struct Bits(u64);
impl Bits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 256
    }
}

fn check_inclusion<H: Hasher + Clone>(
    log: &Log<H>,
    leaf_index: u64,
    tree_size: u64,
    bits: &mut Bits,
) {
    let hasher = &log.hasher;
    let nodes = inclusion_nodes(leaf_index, tree_size).unwrap();
    let path = nodes
        .assemble(hasher, &log.fetch(nodes.ids(), tree_size))
        .unwrap();
    let expected = reference::inclusion_proof(hasher, log.prefix(tree_size), leaf_index).unwrap();
    assert_eq!(path, expected, "inclusion of {leaf_index} in {tree_size}");
    assert_eq!(nodes.path_len(), path.len());

    let leaf = log.leaves[leaf_index as usize];
    let root = log.root(tree_size);
    assert_eq!(
        verify_inclusion(hasher, leaf_index, tree_size, &leaf, &path, &root),
        Ok(())
    );

    let fails = |index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash| {
        verify_inclusion(hasher, index, size, leaf, path, root).is_err()
    };
    assert!(fails(
        leaf_index,
        tree_size,
        &flip(&leaf, bits.next()),
        &path,
        &root
    ));
    assert!(fails(
        leaf_index,
        tree_size,
        &leaf,
        &path,
        &flip(&root, bits.next())
    ));
    for entry in 0..path.len() {
        let mut tampered = path.clone();
        tampered[entry] = flip(&tampered[entry], bits.next());
        assert!(
            fails(leaf_index, tree_size, &leaf, &tampered, &root),
            "entry {entry}"
        );
    }
    let mut longer = path.clone();
    longer.push(leaf);
    assert!(fails(leaf_index, tree_size, &leaf, &longer, &root));
    if !path.is_empty() {
        assert!(fails(leaf_index, tree_size, &leaf, &path[1..], &root));
    }

    let shape = inclusion_shape(leaf_index, tree_size);
    let others = [
        (leaf_index.wrapping_sub(1), tree_size),
        (leaf_index + 1, tree_size),
        (leaf_index, tree_size - 1),
        (leaf_index, tree_size + 1),
        (leaf_index, 2 * tree_size),
        (tree_size, tree_size),
    ];
    for (index, size) in others {
        let accepted = !fails(index, size, &leaf, &path, &root);
        assert_eq!(
            accepted,
            inclusion_shape(index, size) == shape,
            "proof of {leaf_index} in {tree_size} checked as {index} in {size}"
        );
    }
}

fn check_consistency<H: Hasher + Clone>(log: &Log<H>, size1: u64, size2: u64, bits: &mut Bits) {
    let hasher = &log.hasher;
    let nodes = consistency_nodes(size1, size2).unwrap();
    let path = nodes
        .assemble(hasher, &log.fetch(nodes.ids(), size2))
        .unwrap();
    let expected = reference::consistency_proof(hasher, log.prefix(size2), size1).unwrap();
    assert_eq!(path, expected, "consistency of {size1} with {size2}");

    let (root1, root2) = (log.root(size1), log.root(size2));
    assert_eq!(
        verify_consistency(hasher, size1, size2, &root1, &root2, &path),
        Ok(())
    );

    let fails = |size1: u64, size2: u64, root1: &Hash, root2: &Hash, path: &[Hash]| {
        verify_consistency(hasher, size1, size2, root1, root2, path).is_err()
    };
    assert!(fails(
        size1,
        size2,
        &flip(&root1, bits.next()),
        &root2,
        &path
    ));
    // A tree of no leaves proves nothing about the other root.
    if size1 > 0 {
        assert!(fails(
            size1,
            size2,
            &root1,
            &flip(&root2, bits.next()),
            &path
        ));
    }
    for entry in 0..path.len() {
        let mut tampered = path.clone();
        tampered[entry] = flip(&tampered[entry], bits.next());
        assert!(
            fails(size1, size2, &root1, &root2, &tampered),
            "entry {entry}"
        );
    }
    let mut longer = path.clone();
    longer.push(root1);
    assert!(fails(size1, size2, &root1, &root2, &longer));
    if !path.is_empty() {
        assert!(fails(size1, size2, &root1, &root2, &path[1..]));
    }

    let shape = consistency_shape(size1, size2);
    let others = [
        (size1.wrapping_sub(1), size2),
        (size1 + 1, size2),
        (size1, size2.wrapping_sub(1)),
        (size1, size2 + 1),
        (size2 + 1, size2),
    ];
    let empty = hasher.empty_root();
    for (other1, other2) in others {
        let accepted = !fails(other1, other2, &root1, &root2, &path);
        // Empty proofs check roots only; the others accept exactly when the
        // verifier does the same computation.
        let expected = match consistency_shape(other1, other2) {
            ConsistencyShape::Invalid => false,
            ConsistencyShape::FromEmpty => path.is_empty() && root1 == empty,
            ConsistencyShape::Equal => {
                path.is_empty() && root1 == root2 && (other1 != 0 || root1 == empty)
            }
            proper => proper == shape,
        };
        assert_eq!(
            accepted, expected,
            "proof of {size1} → {size2} checked as {other1} → {other2}"
        );
    }
}

/// Every index and size pair of small trees, where the right-edge cases are
/// dense.
#[test]
fn every_proof_of_small_trees() {
    let log = Log::new(Sha256Hasher, 40, 7);
    let mut bits = Bits(0x9e37_79b9_7f4a_7c15);
    for tree_size in 1..=log.size() {
        for leaf_index in 0..tree_size {
            check_inclusion(&log, leaf_index, tree_size, &mut bits);
        }
    }
    for size2 in 0..=log.size() {
        for size1 in 0..=size2 {
            check_consistency(&log, size1, size2, &mut bits);
        }
    }
}

#[test]
fn frontier_reports_every_perfect_node_once() {
    let size = 1000u64;
    let log = Log::new(Sha256Hasher, size, 1);
    let perfect_nodes: u64 = (0..64).map(|level| size >> level).sum();
    assert_eq!(log.store.len() as u64, perfect_nodes);
    for size in 0..=size {
        let hashes = frontier_nodes(size)
            .iter()
            .map(|id| log.store[id])
            .collect();
        let frontier = Frontier::restore(Sha256Hasher, size, hashes).unwrap();
        assert_eq!(
            frontier.root(),
            reference::root(&Sha256Hasher, log.prefix(size))
        );
    }
}

#[test]
fn nonsense_is_refused_without_panicking() {
    let hasher = Sha256Hasher;
    let hash = [7u8; 32];
    assert!(matches!(
        verify_inclusion(&hasher, 0, 0, &hash, &[], &hash),
        Err(ProofError::IndexBeyondSize { .. })
    ));
    assert!(matches!(
        verify_inclusion(&hasher, u64::MAX, u64::MAX, &hash, &[], &hash),
        Err(ProofError::IndexBeyondSize { .. })
    ));
    let last = inclusion_nodes(u64::MAX - 1, u64::MAX).unwrap();
    assert_eq!(last.path_len(), 63);
    assert!(matches!(
        verify_inclusion(&hasher, u64::MAX - 1, u64::MAX, &hash, &[hash; 63], &hash),
        Err(ProofError::RootMismatch { .. })
    ));
    assert!(matches!(
        verify_inclusion(&hasher, 5, u64::MAX, &hash, &[hash; 3], &hash),
        Err(ProofError::WrongPathLength {
            expected: 64,
            actual: 3
        })
    ));
    assert!(matches!(
        verify_consistency(&hasher, 3, 2, &hash, &hash, &[]),
        Err(ProofError::SizesOutOfOrder { .. })
    ));
    assert!(matches!(
        verify_consistency(&hasher, 3, 7, &hash, &hash, &[]),
        Err(ProofError::WrongPathLength { actual: 0, .. })
    ));
    assert!(matches!(
        verify_consistency(&hasher, 5, 5, &hash, &[8u8; 32], &[]),
        Err(ProofError::EqualSizesDifferentRoots { .. })
    ));
    assert!(matches!(
        verify_consistency(&hasher, 0, 5, &hash, &hash, &[]),
        Err(ProofError::FirstRootMismatch { .. })
    ));
    assert_eq!(
        verify_consistency(&hasher, 0, 5, &hasher.empty_root(), &hash, &[]),
        Ok(())
    );
    for size1 in [1, u64::MAX / 2, u64::MAX - 1] {
        let length = consistency_nodes(size1, u64::MAX).unwrap().path_len();
        assert!(length <= 128);
        assert!(
            verify_consistency(&hasher, size1, u64::MAX, &hash, &hash, &vec![hash; length])
                .is_err()
        );
    }
    assert!(matches!(
        inclusion_nodes(3, 3),
        Err(ProofError::IndexBeyondSize { .. })
    ));
    let nodes = inclusion_nodes(2, 7).unwrap();
    assert!(matches!(
        nodes.assemble(&hasher, &[hash]),
        Err(ProofError::WrongNodeCount { .. })
    ));
    assert!(matches!(
        reference::inclusion_proof(&hasher, &[hash; 3], 3),
        Err(ProofError::IndexBeyondSize { .. })
    ));
    assert!(matches!(
        reference::consistency_proof(&hasher, &[hash; 3], 4),
        Err(ProofError::SizesOutOfOrder { .. })
    ));
    assert_eq!(
        Frontier::restore(Sha256Hasher, 7, vec![hash; 2]),
        Err(FrontierError::WrongNodeCount {
            size: 7,
            expected: 3,
            actual: 2
        })
    );
    let mut full = Frontier::restore(Sha256Hasher, u64::MAX, vec![hash; 64]).unwrap();
    assert_eq!(full.append(hash), Err(FrontierError::Full));
    assert_eq!(full.extend(&[hash]), Err(FrontierError::Full));
}

/// Sizes drawn towards both small trees and ones of a few thousand leaves.
fn log_size() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..64, 64u64..3000]
}

fn check_sampled<H: Hasher + Clone>(log: &Log<H>, samples: &[(u64, u64)], bits: &mut Bits) {
    let size = log.size();
    for &(a, b) in samples {
        let tree_size = 1 + a % size;
        check_inclusion(log, b % tree_size, tree_size, bits);
        let size2 = a % (size + 1);
        check_consistency(log, b % (size2 + 1), size2, bits);
    }
    // The whole tree's first, last and middle leaves, and consistency from
    // the frontier's own sizes, where the right edge is longest.
    for leaf_index in [0, size / 2, size - 1] {
        check_inclusion(log, leaf_index, size, bits);
    }
    for size1 in [1, size / 2, size - 1] {
        check_consistency(log, size1, size, bits);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sha256_proofs_from_stored_nodes(
        size in log_size(),
        seed in any::<u64>(),
        samples in proptest::collection::vec((any::<u64>(), any::<u64>()), 8),
        bit_seed in 1u64..,
    ) {
        let log = Log::new(Sha256Hasher, size, seed);
        check_sampled(&log, &samples, &mut Bits(bit_seed));
    }

    /// Appending in batches and restoring from stored nodes midway give the
    /// same nodes and roots as appending one by one.
    #[test]
    fn frontier_batches_and_restores(
        size in log_size(),
        cuts in proptest::collection::vec(any::<u64>(), 1..6),
        restore_at in any::<u64>(),
    ) {
        let log = Log::new(Sha256Hasher, size, 3);
        let restore_at = restore_at % (size + 1);
        let hashes = frontier_nodes(restore_at).iter().map(|id| log.store[id]).collect();
        let mut frontier = Frontier::restore(Sha256Hasher, restore_at, hashes).unwrap();
        let mut cuts: Vec<u64> = cuts.iter().map(|cut| restore_at + cut % (size - restore_at + 1)).collect();
        cuts.push(size);
        cuts.sort_unstable();
        let mut start = restore_at;
        for end in cuts {
            let batch = &log.leaves[start as usize..end as usize];
            for node in frontier.extend(batch).unwrap() {
                prop_assert_eq!(log.store.get(&node.id), Some(&node.hash));
            }
            prop_assert_eq!(frontier.size(), end);
            prop_assert_eq!(frontier.root(), log.root(end));
            start = end;
        }
        let nodes = frontier.nodes();
        prop_assert_eq!(nodes.len(), size.count_ones() as usize);
        for node in nodes {
            prop_assert_eq!(log.store.get(&node.id), Some(&node.hash));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn keccak256_proofs_from_stored_nodes(
        size in log_size(),
        seed in any::<u64>(),
        samples in proptest::collection::vec((any::<u64>(), any::<u64>()), 4),
        bit_seed in 1u64..,
    ) {
        let log = Log::new(Keccak256Hasher, size, seed);
        check_sampled(&log, &samples, &mut Bits(bit_seed));
    }
}
