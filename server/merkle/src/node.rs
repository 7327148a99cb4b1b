//! Addresses of the perfect subtrees that a store keeps.
//!
//! A tree of any size is made of perfect subtrees (2^level leaves each,
//! aligned on a multiple of their size) plus, on its right edge, the
//! imperfect subtrees that join them. Perfect subtrees never change once
//! their last leaf is appended, so they are what a store keeps: every proof
//! for every tree size is read from them, O(log n) at a time, and imperfect
//! right-edge subtrees are recomputed by folding a few of them.

use crate::hasher::{Hash, Hasher};

/// A perfect subtree: at `level` (0 = a leaf) and `index` (counted from the
/// left among the nodes of that level), it covers the leaves
/// `[index·2^level, (index+1)·2^level)`.
///
/// The pair is a stable key for a store: a node's hash depends only on the
/// leaves below it, which never change in an append-only log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves; a node at level `l` has `2^l` leaves. At
    /// most 63 for trees that fit a `u64` size.
    pub level: u8,
    /// Position among the nodes of its level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// The leaf at `index` (a level-0 node; its hash is the leaf hash).
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }

    /// The leaves the node covers as `[begin, end)`, widened to `u128` so
    /// that the rightmost nodes of the largest trees do not overflow. `None`
    /// for a level no `u64`-sized tree has.
    pub fn leaf_range(&self) -> Option<(u128, u128)> {
        if self.level > 63 {
            return None;
        }
        let width = 1u128 << self.level;
        let begin = u128::from(self.index) << self.level;
        Some((begin, begin + width))
    }
}

/// A perfect node and its hash, as a store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfectNode {
    pub id: NodeId,
    pub hash: Hash,
}

/// The perfect nodes that together cover the leaves `[begin, end)`, from left
/// to right: at each step the largest node that starts at the current leaf
/// (its size divides the position) and does not pass `end`. Empty when
/// `begin >= end`.
///
/// For `begin = 0` this is the tree's frontier ([`frontier_nodes`]); for the
/// tail of a tree after an aligned position it is the imperfect right-edge
/// subtree that some proof entries are the hash of, with levels strictly
/// decreasing.
pub fn range_nodes(begin: u64, end: u64) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    let mut position = begin;
    while position < end {
        let alignment = if position == 0 {
            63
        } else {
            position.trailing_zeros()
        };
        let fits = 63 - (end - position).leading_zeros();
        let level = alignment.min(fits);
        nodes.push(NodeId {
            level: level as u8,
            index: position >> level,
        });
        // position + 2^level <= end, so no overflow.
        position += 1u64 << level;
    }
    nodes
}

/// The perfect nodes of a tree of `size` leaves that are not inside a larger
/// perfect node: one per set bit of `size`, largest (leftmost) first.
///
/// This is all the state an append needs ([`crate::Frontier`]): a log
/// restores its frontier from these nodes after a restart, and the root of
/// any past size is the fold of that size's frontier ([`range_hash`]).
pub fn frontier_nodes(size: u64) -> Vec<NodeId> {
    range_nodes(0, size)
}

/// The hash of the leaves `[begin, end)` from the hashes of
/// [`range_nodes`]`(begin, end)`, in that order, when that range is a
/// subtree of the RFC 9162 tree (a frontier, or the tail of a tree after a
/// position aligned to a larger power of two than the tail's length): the
/// nodes are joined from the right, `H(n₀, H(n₁, … H(nₖ₋₁, nₖ)))`, which is
/// how RFC 9162's MTH splits an imperfect tree (largest power of two on the
/// left).
///
/// `None` for no hashes (the empty range, whose meaning depends on context:
/// the empty tree's root is [`Hasher::empty_root`]).
pub fn range_hash<H: Hasher + ?Sized>(hasher: &H, hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |right, left| hasher.node_hash(left, &right)),
    )
}

/// One entry of an audit path seen from a node: the sibling of the node that
/// contains the leaf, at one level.
pub(crate) enum Sibling {
    /// A perfect node, stored as is.
    Perfect(NodeId),
    /// The imperfect subtree `[begin, tree_size)` on the right edge.
    RightEdge { begin: u64 },
}

/// The siblings along the path from the node at `from_level` that contains
/// `leaf` up to the root of a tree of `tree_size` leaves, bottom-up — the
/// order of an RFC 9162 audit path. Levels where the node containing the
/// leaf has no sibling (it is the right edge and nothing lies to its right)
/// contribute nothing: RFC 9162's tree promotes such nodes unchanged.
///
/// Callers guarantee `leaf < tree_size`.
pub(crate) fn for_each_sibling(
    leaf: u64,
    tree_size: u64,
    from_level: u32,
    mut visit: impl FnMut(Sibling),
) {
    let size = u128::from(tree_size);
    for level in from_level.min(64)..64 {
        // The node containing the leaf covers the whole tree from here on.
        if (1u128 << level) >= size {
            break;
        }
        let sibling = (leaf >> level) ^ 1;
        let begin = u128::from(sibling) << level;
        if begin >= size {
            continue;
        }
        let end = begin + (1u128 << level);
        visit(if end <= size {
            Sibling::Perfect(NodeId {
                level: level as u8,
                index: sibling,
            })
        } else {
            // begin < size <= u64::MAX, so it fits.
            Sibling::RightEdge {
                begin: begin as u64,
            }
        });
    }
}

/// How many entries [`for_each_sibling`] yields.
pub(crate) fn sibling_count(leaf: u64, tree_size: u64, from_level: u32) -> usize {
    let mut count = 0;
    for_each_sibling(leaf, tree_size, from_level, |_| count += 1);
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_has_one_node_per_set_bit_largest_first() {
        assert_eq!(frontier_nodes(0), vec![]);
        assert_eq!(frontier_nodes(1), vec![NodeId::new(0, 0)]);
        assert_eq!(
            frontier_nodes(13),
            vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
        assert_eq!(frontier_nodes(u64::MAX).len(), 64);
        assert_eq!(frontier_nodes(u64::MAX)[0], NodeId::new(63, 0));
    }

    #[test]
    fn range_nodes_cover_the_range_with_aligned_nodes() {
        assert_eq!(
            range_nodes(5, 13),
            vec![
                NodeId::new(0, 5),
                NodeId::new(1, 3),
                NodeId::new(2, 2),
                NodeId::new(0, 12)
            ]
        );
        assert_eq!(range_nodes(8, 8), vec![]);
        assert_eq!(range_nodes(9, 3), vec![]);
    }

    #[test]
    fn leaf_range_of_the_largest_nodes_does_not_overflow() {
        assert_eq!(NodeId::new(63, 1).leaf_range(), Some((1 << 63, 1 << 64)));
        assert_eq!(NodeId::new(64, 0).leaf_range(), None);
    }
}
