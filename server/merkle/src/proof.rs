//! Which stored perfect nodes a proof is made of, and the proof from them.
//!
//! A service answering `$proof` or `$consistency` for a log of millions of
//! leaves reads O(log n) perfect nodes ([`crate::node`]) by their ids in one
//! query, then [`ProofNodes::assemble`]s the path. At most one entry of an
//! RFC 9162 path is not a perfect node: the sibling on the right edge of a
//! tree whose size is not a power of two, which is folded here from the
//! perfect nodes that cover it.

use std::ops::Range;

use crate::error::ProofError;
use crate::hasher::{Hash, Hasher};
use crate::node::{for_each_sibling, range_hash, range_nodes, sibling_count, NodeId, Sibling};

/// The stored nodes a proof is made of, in the order of the proof's entries,
/// and which run of them folds into the single right-edge entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofNodes {
    ids: Vec<NodeId>,
    /// The positions in `ids` of the nodes that fold into one entry (the
    /// imperfect right-edge subtree); empty when there is none.
    right_edge: Range<usize>,
}

impl ProofNodes {
    /// The nodes to fetch, each once; [`Self::assemble`] wants their hashes
    /// in this order.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The number of hashes in the assembled proof.
    pub fn path_len(&self) -> usize {
        self.ids.len() - self.right_edge.len().saturating_sub(1)
    }

    /// The proof path from the hashes of [`Self::ids`], fetched in that
    /// order: each perfect node is an entry as it is, and the right-edge run
    /// becomes one entry, the hash of the imperfect subtree it covers.
    pub fn assemble<H: Hasher + ?Sized>(
        &self,
        hasher: &H,
        fetched: &[Hash],
    ) -> Result<Vec<Hash>, ProofError> {
        if fetched.len() != self.ids.len() {
            return Err(ProofError::WrongNodeCount {
                expected: self.ids.len(),
                actual: fetched.len(),
            });
        }
        let mut path = Vec::with_capacity(self.path_len());
        let mut position = 0;
        while let Some(hash) = fetched.get(position) {
            if position == self.right_edge.start && !self.right_edge.is_empty() {
                let folded = fetched
                    .get(self.right_edge.clone())
                    .and_then(|run| range_hash(hasher, run))
                    .ok_or(ProofError::WrongNodeCount {
                        expected: self.ids.len(),
                        actual: fetched.len(),
                    })?;
                path.push(folded);
                position = self.right_edge.end;
            } else {
                path.push(*hash);
                position += 1;
            }
        }
        Ok(path)
    }

    fn push_siblings(&mut self, leaf: u64, tree_size: u64, from_level: u32) {
        for_each_sibling(leaf, tree_size, from_level, |sibling| match sibling {
            Sibling::Perfect(id) => self.ids.push(id),
            Sibling::RightEdge { begin } => {
                let start = self.ids.len();
                self.ids.extend(range_nodes(begin, tree_size));
                self.right_edge = start..self.ids.len();
            }
        });
    }
}

/// The nodes of the inclusion proof (RFC 9162 §2.1.3.1 `PATH(m, D[n])`) of
/// leaf `leaf_index` in the tree of `tree_size` leaves: the siblings of the
/// nodes on the way from the leaf to the root, bottom-up.
pub fn inclusion_nodes(leaf_index: u64, tree_size: u64) -> Result<ProofNodes, ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexBeyondSize {
            leaf_index,
            tree_size,
        });
    }
    let mut nodes = ProofNodes {
        ids: Vec::new(),
        right_edge: 0..0,
    };
    nodes.push_siblings(leaf_index, tree_size, 0);
    Ok(nodes)
}

/// The nodes of the consistency proof (RFC 9162 §2.1.4.1 `PROOF(m, D[n])`)
/// between the trees of `size1` and `size2` leaves.
///
/// RFC 9162's recursion descends towards the last leaf of the old tree until
/// it meets a node that ends exactly where the old tree ends: the largest
/// aligned perfect node ending there, at level = trailing zeros of `size1`.
/// The proof is that node (left out when it is the whole old tree, i.e.
/// `size1` is a power of two, since the verifier has the old root) followed
/// by its audit path in the new tree. No nodes for `size1` of 0 or equal
/// sizes, whose proofs are empty.
pub fn consistency_nodes(size1: u64, size2: u64) -> Result<ProofNodes, ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder { size1, size2 });
    }
    let mut nodes = ProofNodes {
        ids: Vec::new(),
        right_edge: 0..0,
    };
    if size1 == 0 || size1 == size2 {
        return Ok(nodes);
    }
    let level = size1.trailing_zeros();
    if !size1.is_power_of_two() {
        nodes.ids.push(NodeId {
            level: level as u8,
            index: (size1 >> level) - 1,
        });
    }
    nodes.push_siblings(size1 - 1, size2, level);
    Ok(nodes)
}

/// The length of the inclusion proof of `leaf_index` in a tree of
/// `tree_size` leaves (`leaf_index < tree_size`).
pub(crate) fn inclusion_path_len(leaf_index: u64, tree_size: u64) -> usize {
    sibling_count(leaf_index, tree_size, 0)
}

/// The length of the consistency proof for `0 < size1 < size2`.
pub(crate) fn consistency_path_len(size1: u64, size2: u64) -> usize {
    let level = size1.trailing_zeros();
    usize::from(!size1.is_power_of_two()) + sibling_count(size1.saturating_sub(1), size2, level)
}
