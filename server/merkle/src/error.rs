//! What a proof, or a request for one, got wrong.

use crate::hasher::Hash;

/// Why a proof did not verify, or why one cannot be built for the sizes
/// asked. Proofs arrive from the network, so every way they can be wrong is
/// an error here rather than a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A leaf index at or past the end of the tree (including any index of
    /// the empty tree).
    #[error("leaf index {leaf_index} is not in a tree of {tree_size} leaves")]
    IndexBeyondSize { leaf_index: u64, tree_size: u64 },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("the first tree size {size1} is larger than the second {size2}")]
    SizesOutOfOrder { size1: u64, size2: u64 },
    /// The proof has more or fewer hashes than the index and sizes call for.
    #[error("the proof has {actual} hashes where {expected} are needed")]
    WrongPathLength { expected: usize, actual: usize },
    /// An inclusion proof that leads to another root than the one expected.
    #[error("the inclusion proof leads to root {} instead of {}", hex::encode(.computed), hex::encode(.expected))]
    RootMismatch { computed: Hash, expected: Hash },
    /// A consistency proof whose reconstruction of the old tree's root is not
    /// the old root given (for an old size of 0: the old root given is not
    /// the empty tree's root).
    #[error("the consistency proof leads to first root {} instead of {}", hex::encode(.computed), hex::encode(.expected))]
    FirstRootMismatch { computed: Hash, expected: Hash },
    /// A consistency proof whose reconstruction of the new tree's root is not
    /// the new root given.
    #[error("the consistency proof leads to second root {} instead of {}", hex::encode(.computed), hex::encode(.expected))]
    SecondRootMismatch { computed: Hash, expected: Hash },
    /// Two roots given for the same tree size differ: one of them is not the
    /// log's (or the log forked).
    #[error("two different roots for the same tree size {size}: {} and {}", hex::encode(.root1), hex::encode(.root2))]
    EqualSizesDifferentRoots { size: u64, root1: Hash, root2: Hash },
    /// The hashes fetched for a [`crate::ProofNodes`] are not one per node.
    #[error("{actual} node hashes for the {expected} nodes the proof is made of")]
    WrongNodeCount { expected: usize, actual: usize },
}
