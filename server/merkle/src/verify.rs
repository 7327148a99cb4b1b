//! Checking proofs, step by step as RFC 9162 writes the algorithms.
//!
//! The expected path length is checked first so that a proof of the wrong
//! shape is reported as such rather than as a root mismatch; the RFC's own
//! length checks (`sn` reaching 0 too early or not at all) stay in place.

use crate::error::ProofError;
use crate::hasher::{Hash, Hasher};
use crate::proof::{consistency_path_len, inclusion_path_len};

/// Checks that `leaf_hash` is the leaf at `leaf_index` of the tree of
/// `tree_size` leaves whose root is `root`, given its audit `path`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion<H: Hasher + ?Sized>(
    hasher: &H,
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // Step 1.
    if leaf_index >= tree_size {
        return Err(ProofError::IndexBeyondSize {
            leaf_index,
            tree_size,
        });
    }
    let expected = inclusion_path_len(leaf_index, tree_size);
    let wrong_length = ProofError::WrongPathLength {
        expected,
        actual: path.len(),
    };
    if path.len() != expected {
        return Err(wrong_length);
    }
    // Steps 2 and 3.
    let mut fnode = leaf_index;
    let mut snode = tree_size - 1;
    let mut computed = *leaf_hash;
    // Step 4.
    for entry in path {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            computed = hasher.node_hash(entry, &computed);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            computed = hasher.node_hash(&computed, entry);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    if snode != 0 {
        return Err(wrong_length);
    }
    if computed != *root {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of
/// the tree of `size2` leaves with root `root2`, given the consistency
/// `path` (RFC 9162 §2.1.4.2).
///
/// The RFC's algorithm is for `0 < size1 < size2`. At the edges, as its
/// definition of the proof implies, the path must be empty, and: an old size
/// of 0 needs the empty tree's root as `root1` (the empty tree is a prefix of
/// every tree, so `root2` is not checked); equal sizes need equal roots (the
/// same tree).
pub fn verify_consistency<H: Hasher + ?Sized>(
    hasher: &H,
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    path: &[Hash],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == size2 || size1 == 0 {
        if !path.is_empty() {
            return Err(ProofError::WrongPathLength {
                expected: 0,
                actual: path.len(),
            });
        }
        if size1 == 0 {
            let empty = hasher.empty_root();
            if *root1 != empty {
                return Err(ProofError::FirstRootMismatch {
                    computed: empty,
                    expected: *root1,
                });
            }
        }
        if size1 == size2 && root1 != root2 {
            return Err(ProofError::EqualSizesDifferentRoots {
                size: size1,
                root1: *root1,
                root2: *root2,
            });
        }
        return Ok(());
    }
    // Step 1 (an empty path) is one case of a wrong length.
    let expected = consistency_path_len(size1, size2);
    let wrong_length = ProofError::WrongPathLength {
        expected,
        actual: path.len(),
    };
    if path.len() != expected {
        return Err(wrong_length);
    }
    // Step 2: for a power-of-two old size, the old root is the first node.
    let (first, rest) = if size1.is_power_of_two() {
        (root1, path)
    } else {
        match path.split_first() {
            Some(split) => split,
            None => return Err(wrong_length),
        }
    };
    // Steps 3 and 4.
    let mut fnode = size1 - 1;
    let mut snode = size2 - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let mut first_root = *first;
    let mut second_root = *first;
    // Step 6.
    for entry in rest {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            first_root = hasher.node_hash(entry, &first_root);
            second_root = hasher.node_hash(entry, &second_root);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            second_root = hasher.node_hash(&second_root, entry);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(wrong_length);
    }
    if first_root != *root1 {
        return Err(ProofError::FirstRootMismatch {
            computed: first_root,
            expected: *root1,
        });
    }
    if second_root != *root2 {
        return Err(ProofError::SecondRootMismatch {
            computed: second_root,
            expected: *root2,
        });
    }
    Ok(())
}
