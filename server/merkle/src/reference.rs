//! RFC 9162's definitions transcribed over all the leaves in memory.
//!
//! They read every leaf (O(n) per call), so the service never uses them for
//! a request: they are the yardstick the node-addressed proofs are tested
//! against, and what a full rebuild (an `audit verify` that rereads the
//! whole log) computes.

use crate::error::ProofError;
use crate::hasher::{Hash, Hasher};

/// `MTH(D[n])` (RFC 9162 §2.1.1) over the leaves' hashes.
pub fn root<H: Hasher + ?Sized>(hasher: &H, leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => hasher.empty_root(),
        [leaf] => *leaf,
        _ => {
            let (left, right) = leaf_hashes.split_at(split_point(leaf_hashes.len()));
            hasher.node_hash(&root(hasher, left), &root(hasher, right))
        }
    }
}

/// `PATH(m, D[n])` (RFC 9162 §2.1.3.1): the inclusion proof of leaf
/// `leaf_index` in the tree of all `leaf_hashes`, bottom-up.
pub fn inclusion_proof<H: Hasher + ?Sized>(
    hasher: &H,
    leaf_hashes: &[Hash],
    leaf_index: u64,
) -> Result<Vec<Hash>, ProofError> {
    let tree_size = leaf_hashes.len() as u64;
    let index = usize::try_from(leaf_index)
        .ok()
        .filter(|&index| index < leaf_hashes.len())
        .ok_or(ProofError::IndexBeyondSize {
            leaf_index,
            tree_size,
        })?;
    let mut path = Vec::new();
    audit_path(hasher, index, leaf_hashes, &mut path);
    Ok(path)
}

/// `PROOF(m, D[n])` (RFC 9162 §2.1.4.1): the consistency proof from the tree
/// of the first `size1` leaves to the tree of all `leaf_hashes`. Empty for
/// `size1` of 0 or of all the leaves.
pub fn consistency_proof<H: Hasher + ?Sized>(
    hasher: &H,
    leaf_hashes: &[Hash],
    size1: u64,
) -> Result<Vec<Hash>, ProofError> {
    let size2 = leaf_hashes.len() as u64;
    let old_size = usize::try_from(size1)
        .ok()
        .filter(|&size| size <= leaf_hashes.len())
        .ok_or(ProofError::SizesOutOfOrder { size1, size2 })?;
    let mut path = Vec::new();
    if old_size > 0 {
        subproof(hasher, old_size, leaf_hashes, true, &mut path);
    }
    Ok(path)
}

/// The largest power of two below `n` (for `n >= 2`): where MTH splits.
fn split_point(n: usize) -> usize {
    let below = n.saturating_sub(1).max(1);
    1 << (usize::BITS - 1 - below.leading_zeros())
}

/// `PATH(m, D[n])`, appended to `path`. `m < n`.
fn audit_path<H: Hasher + ?Sized>(hasher: &H, m: usize, leaves: &[Hash], path: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_point(leaves.len());
    let (left, right) = leaves.split_at(k);
    if m < k {
        audit_path(hasher, m, left, path);
        path.push(root(hasher, right));
    } else {
        audit_path(hasher, m - k, right, path);
        path.push(root(hasher, left));
    }
}

/// `SUBPROOF(m, D[n], b)`, appended to `path`. `0 < m <= n`.
fn subproof<H: Hasher + ?Sized>(
    hasher: &H,
    m: usize,
    leaves: &[Hash],
    whole_old_tree: bool,
    path: &mut Vec<Hash>,
) {
    if m >= leaves.len() {
        if !whole_old_tree {
            path.push(root(hasher, leaves));
        }
        return;
    }
    let k = split_point(leaves.len());
    let (left, right) = leaves.split_at(k);
    if m <= k {
        subproof(hasher, m, left, whole_old_tree, path);
        path.push(root(hasher, right));
    } else {
        subproof(hasher, m - k, right, false, path);
        path.push(root(hasher, left));
    }
}

#[cfg(test)]
mod tests {
    use super::split_point;

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        let expected = [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1025, 1024)];
        for (n, k) in expected {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }
}
