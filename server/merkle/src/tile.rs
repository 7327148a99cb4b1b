//! Tiles: the tree's lowest levels kept together, a run of leaves at a time.
//!
//! A random leaf's proof needs one node at each of its path's levels, and the
//! lowest levels are where those nodes are many and scattered: stored one by
//! one, they cost a store a row probe each. A tile is every node of the
//! lowest [`TILE_HEIGHT`] levels over one aligned run of [`TILE_WIDTH`]
//! leaves (tile `t` covers leaves `[t·TILE_WIDTH, (t+1)·TILE_WIDTH)`): its
//! leaf hashes and the perfect nodes above them, up to but not including the
//! tile's root. Every perfect node below [`TILE_HEIGHT`] lies inside exactly
//! one tile. A store keeps full tiles and perfect nodes only from
//! [`TILE_HEIGHT`] up, as transparency-dev's tlog tiles and Trillian's
//! subtrees do: a proof reads one tile instead of six nodes, and the log
//! keeps about 64 bytes a leaf for its lower levels where a row and an index
//! entry per node cost well over a hundred.
//!
//! A tile on the log's right edge is partial: [`Tile::from_leaves`] builds
//! what its leaves so far complete.

use crate::hasher::{Hash, Hasher};
use crate::node::NodeId;

/// Levels a tile spans: nodes at levels `0..TILE_HEIGHT` are kept in tiles,
/// nodes from `TILE_HEIGHT` up on their own.
pub const TILE_HEIGHT: u8 = 6;

/// Leaves a full tile covers: `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// Bytes of an encoded full tile: the `2·TILE_WIDTH − 2` hashes of its
/// levels (4,032 bytes, so that a tile row fits a PostgreSQL page as is).
pub const TILE_BYTES: usize = (2 * TILE_WIDTH as usize - 2) * 32;

/// The tile holding the leaves under `id`, for a node below
/// [`TILE_HEIGHT`]; `None` for a node kept on its own.
pub fn tile_of(id: NodeId) -> Option<u64> {
    (id.level < TILE_HEIGHT).then(|| id.index >> (TILE_HEIGHT - id.level))
}

/// The nodes of one tile known so far: `levels[l]` holds the perfect nodes
/// at level `l` its leaves complete, from the tile's left edge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tile {
    index: u64,
    levels: Vec<Vec<Hash>>,
}

impl Tile {
    /// Tile `index` from the hashes of its first leaves (all
    /// [`TILE_WIDTH`] for a full tile, fewer on the right edge): the nodes
    /// above them are computed, one hash per completed node.
    pub fn from_leaves<H: Hasher + ?Sized>(hasher: &H, index: u64, leaf_hashes: &[Hash]) -> Tile {
        let width = leaf_hashes.len().min(TILE_WIDTH as usize);
        let mut levels = vec![leaf_hashes[..width].to_vec()];
        for _ in 1..TILE_HEIGHT {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let level: Vec<Hash> = below
                .chunks_exact(2)
                .map(|pair| hasher.node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(level);
        }
        Tile { index, levels }
    }

    /// Which tile this is.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The hashes of its leaves known so far.
    pub fn leaf_hashes(&self) -> &[Hash] {
        self.levels.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// How many of its leaves are known.
    pub fn leaves(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether every leaf of the tile is known.
    pub fn is_full(&self) -> bool {
        self.leaves() == TILE_WIDTH as usize
    }

    /// The hash of `id`, a node of this tile whose leaves are all known;
    /// `None` otherwise.
    pub fn node(&self, id: NodeId) -> Option<Hash> {
        if tile_of(id)? != self.index {
            return None;
        }
        let offset = id.index - (self.index << (TILE_HEIGHT - id.level));
        self.levels
            .get(usize::from(id.level))?
            .get(usize::try_from(offset).ok()?)
            .copied()
    }

    /// A full tile as a store keeps it: its levels from the leaves up, each
    /// from the left, [`TILE_BYTES`] in all. `None` for a partial tile.
    pub fn encode(&self) -> Option<Vec<u8>> {
        self.is_full()
            .then(|| self.levels.iter().flatten().flatten().copied().collect())
    }

    /// Tile `index` from [`Tile::encode`]'s bytes; `None` unless they are
    /// exactly a full tile's.
    pub fn decode(index: u64, bytes: &[u8]) -> Option<Tile> {
        if bytes.len() != TILE_BYTES {
            return None;
        }
        let mut hashes = bytes
            .chunks_exact(32)
            .map(|chunk| <Hash>::try_from(chunk).ok());
        let mut levels = Vec::with_capacity(usize::from(TILE_HEIGHT));
        for level in 0..TILE_HEIGHT {
            let width = (TILE_WIDTH >> level) as usize;
            levels.push(hashes.by_ref().take(width).collect::<Option<Vec<Hash>>>()?);
        }
        Some(Tile { index, levels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{reference, Frontier, Keccak256Hasher, Sha256Hasher};

    fn leaf_hashes<H: Hasher>(hasher: &H, n: u64) -> Vec<Hash> {
        (0..n).map(|i| hasher.leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn every_node_below_the_tile_height_is_the_one_the_frontier_completed() {
        let hasher = Keccak256Hasher;
        let hashes = leaf_hashes(&hasher, 3 * TILE_WIDTH + 37);
        let mut frontier = Frontier::new(hasher);
        let mut checked = 0;
        for (i, leaf) in hashes.iter().enumerate() {
            for node in frontier.append(*leaf).expect("append") {
                if node.id.level >= TILE_HEIGHT {
                    assert_eq!(tile_of(node.id), None);
                    continue;
                }
                let tile = tile_of(node.id).expect("a node below the tile height has a tile");
                let start = (tile * TILE_WIDTH) as usize;
                let end = (start + TILE_WIDTH as usize).min(hashes.len());
                // From the tile as it ends up, as it was then, and through
                // its encoding when full.
                let whole = Tile::from_leaves(&hasher, tile, &hashes[start..end]);
                let then = Tile::from_leaves(&hasher, tile, &hashes[start..=i]);
                assert_eq!(whole.node(node.id), Some(node.hash));
                assert_eq!(then.node(node.id), Some(node.hash));
                if let Some(bytes) = whole.encode() {
                    let decoded = Tile::decode(tile, &bytes).expect("a tile");
                    assert_eq!(decoded, whole);
                    assert_eq!(decoded.node(node.id), Some(node.hash));
                }
                checked += 1;
            }
        }
        assert!(checked > 3 * TILE_WIDTH as usize);
    }

    #[test]
    fn a_node_outside_the_tile_or_beyond_its_known_leaves_is_not_given() {
        let hasher = Sha256Hasher;
        let hashes = leaf_hashes(&hasher, 10);
        let tile = Tile::from_leaves(&hasher, 0, &hashes);
        // Leaves 8..12 are not all known; tile 0 does not hold leaf 64 nor
        // its own root.
        assert_eq!(tile.node(NodeId::new(2, 2)), None);
        assert_eq!(tile.node(NodeId::leaf(TILE_WIDTH)), None);
        assert_eq!(tile.node(NodeId::new(TILE_HEIGHT, 0)), None);
        assert_eq!(
            tile.node(NodeId::new(3, 0)),
            Some(reference::root(&hasher, &hashes[..8]))
        );
        assert!(!tile.is_full());
        assert_eq!(tile.encode(), None);
    }

    #[test]
    fn only_a_full_tile_s_bytes_decode() {
        let hasher = Keccak256Hasher;
        let tile = Tile::from_leaves(&hasher, 5, &leaf_hashes(&hasher, TILE_WIDTH));
        let bytes = tile.encode().expect("a full tile");
        assert_eq!(bytes.len(), TILE_BYTES);
        assert_eq!(TILE_BYTES, 4032);
        assert_eq!(Tile::decode(5, &bytes), Some(tile));
        assert_eq!(Tile::decode(5, &bytes[1..]), None);
        assert_eq!(
            Tile::decode(5, &[bytes.clone(), vec![0; 32]].concat()),
            None
        );
    }
}
