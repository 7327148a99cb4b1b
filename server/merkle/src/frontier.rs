//! The right edge of a growing tree: what appending needs, and the root.

use crate::hasher::{Hash, Hasher};
use crate::node::{frontier_nodes, range_hash, NodeId, PerfectNode};

/// Why a frontier could not be restored or grown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrontierError {
    /// The stored hashes given are not one per node of
    /// [`frontier_nodes`]`(size)`.
    #[error("a frontier of {size} leaves has {expected} nodes, {actual} hashes were given")]
    WrongNodeCount {
        size: u64,
        expected: usize,
        actual: usize,
    },
    /// The tree already has `u64::MAX` leaves.
    #[error("the tree is full: it cannot grow past {} leaves", u64::MAX)]
    Full,
}

/// The hashes of the perfect nodes on the right edge of a tree of `size`
/// leaves ([`frontier_nodes`]): one per set bit of the size, O(log n) in all.
/// That is enough to append leaves and to compute the root without the rest
/// of the tree, so a log keeps it in memory, stores every perfect node it
/// reports, and after a restart reads the frontier's nodes back
/// ([`Frontier::restore`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier<H> {
    hasher: H,
    size: u64,
    /// The hashes of `frontier_nodes(size)`, in that order (largest first).
    hashes: Vec<Hash>,
}

impl<H: Hasher> Frontier<H> {
    /// The frontier of the empty tree.
    pub fn new(hasher: H) -> Self {
        Frontier {
            hasher,
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// The frontier of a tree of `size` leaves from the stored hashes of
    /// [`frontier_nodes`]`(size)`, in that order.
    pub fn restore(hasher: H, size: u64, hashes: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(FrontierError::WrongNodeCount {
                size,
                expected,
                actual: hashes.len(),
            });
        }
        Ok(Frontier {
            hasher,
            size,
            hashes,
        })
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier's nodes with their hashes, largest first: what
    /// [`Self::restore`] takes back.
    pub fn nodes(&self) -> Vec<PerfectNode> {
        frontier_nodes(self.size)
            .into_iter()
            .zip(self.hashes.iter())
            .map(|(id, hash)| PerfectNode { id, hash: *hash })
            .collect()
    }

    /// The root of the tree: `MTH` of all the leaves appended (RFC 9162
    /// §2.1.1), folded from the frontier in O(log n) hashes.
    pub fn root(&self) -> Hash {
        range_hash(&self.hasher, &self.hashes).unwrap_or_else(|| self.hasher.empty_root())
    }

    /// Appends one leaf (its hash, [`Hasher::leaf_hash`] of its data) and
    /// reports each perfect node it completes, bottom-up: the leaf itself
    /// (level 0), then every node whose last leaf it is. Those are all the
    /// nodes a store needs for any later proof.
    pub fn append_with(
        &mut self,
        leaf_hash: Hash,
        mut completed: impl FnMut(PerfectNode),
    ) -> Result<(), FrontierError> {
        if self.size == u64::MAX {
            return Err(FrontierError::Full);
        }
        let mut hash = leaf_hash;
        let mut id = NodeId::leaf(self.size);
        completed(PerfectNode { id, hash });
        // Each trailing one bit of the old size is a left sibling waiting on
        // the frontier for this leaf's subtree to complete it.
        while id.index & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                break; // unreachable: restore checks one hash per set bit
            };
            hash = self.hasher.node_hash(&left, &hash);
            id = NodeId::new(id.level + 1, id.index >> 1);
            completed(PerfectNode { id, hash });
        }
        self.hashes.push(hash);
        self.size += 1;
        Ok(())
    }

    /// [`Self::append_with`], collecting the completed nodes.
    pub fn append(&mut self, leaf_hash: Hash) -> Result<Vec<PerfectNode>, FrontierError> {
        let mut completed = Vec::new();
        self.append_with(leaf_hash, |node| completed.push(node))?;
        Ok(completed)
    }

    /// Appends a batch of leaves in order, all or none, and collects the
    /// perfect nodes they complete.
    pub fn extend(&mut self, leaf_hashes: &[Hash]) -> Result<Vec<PerfectNode>, FrontierError> {
        let room = u64::MAX - self.size;
        if leaf_hashes.len() as u64 > room {
            return Err(FrontierError::Full);
        }
        let mut completed = Vec::with_capacity(leaf_hashes.len() * 2);
        for leaf_hash in leaf_hashes {
            self.append_with(*leaf_hash, |node| completed.push(node))?;
        }
        Ok(completed)
    }
}
