//! What can go wrong when talking to the chain.
//!
//! Text that came from the node (JSON-RPC error messages) passes through
//! [`untrusted`] first: bounded in length, control characters replaced. The
//! key never appears in any of these.

use crate::types::{Address, TxHash};

/// Why a chain operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The configuration cannot work (bad RPC URL, bad key file); nothing was sent.
    #[error("chain adapter misconfigured: {0}")]
    Config(String),

    /// The node did not answer in time, refused the connection, or answered
    /// with a JSON-RPC error. Worth retrying later.
    #[error("chain node RPC failed ({method}): {reason}")]
    Rpc {
        method: &'static str,
        reason: String,
    },

    /// The node's chain id is not the configured one (another network).
    #[error("chain id mismatch: configured {configured}, the node reports {actual}")]
    ChainIdMismatch { configured: u64, actual: u64 },

    /// No code at the contract address: a reset chain, or the wrong address.
    #[error("no contract code at {0} (chain reset or wrong address?)")]
    NoContract(Address),

    /// The contract refused the call (checked by a dry run before sending).
    #[error("the contract refused the call: {0}")]
    Rejected(Rejection),

    /// A mined transaction of ours failed (status 0).
    #[error("transaction {0} was mined but failed")]
    TxFailed(TxHash),

    /// The node accepted a transaction under another hash than the one we signed.
    #[error("the node reports transaction hash {reported}, we signed {signed}")]
    HashMismatch { signed: TxHash, reported: TxHash },

    /// The node refused a transaction because another one of this account
    /// already holds (or has used) its nonce: another process signing with
    /// the same key (the anchoring worker while an operator runs `chain
    /// add-writer` with the owner key that is also the writer key) got there
    /// between reading the pending nonce and sending. Nothing was spent;
    /// sending again with a fresh nonce is safe.
    #[error("nonce {nonce} is already taken by another transaction of this account: {reason}")]
    NonceTaken { nonce: u64, reason: String },

    /// A transaction was not mined (or not confirmed) within the time allowed.
    #[error("transaction {0} not confirmed in time")]
    Timeout(TxHash),

    /// The node's answer makes no sense (e.g. a deployment receipt without a contract address).
    #[error("unexpected answer from the chain node: {0}")]
    Unexpected(String),
}

/// A revert of `AuditAnchor`, decoded from its custom errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("the sender is not the contract's owner")]
    NotOwner,
    #[error("the sender is not a writer")]
    NotWriter,
    #[error("zero address")]
    ZeroAddress,
    #[error("zero root")]
    ZeroRoot,
    /// The size is not above the last anchored one (already anchored, or out of order).
    #[error("tree size {tree_size} is not above the last anchored size {latest_size}")]
    SizeNotIncreasing { tree_size: u64, latest_size: u64 },
    /// A revert that is none of the above (e.g. out of gas), as the node worded it.
    #[error("reverted: {0}")]
    Other(String),
}

/// Whether a node's refusal of `eth_sendRawTransaction` means the nonce is
/// taken. The wording differs between nodes: geth and anvil say "nonce too
/// low" and "replacement transaction underpriced"; Besu says "Nonce too low"
/// and "Replacement transaction underpriced" (its `NONCE_TOO_LOW` and
/// `TRANSACTION_REPLACEMENT_UNDERPRICED`). "already known" is left out on
/// purpose: that is the very same signed transaction, sent twice.
pub(crate) fn is_nonce_taken(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "nonce too low",
        "replacement transaction underpriced",
        "nonce_too_low",
        "replacement_underpriced",
    ]
    .iter()
    .any(|phrase| reason.contains(phrase))
}

/// Text from the network, fit for a log line: at most 300 characters, no
/// control characters.
pub(crate) fn untrusted(text: &str) -> String {
    const MAX: usize = 300;
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_nonce_taken;

    #[test]
    fn nonce_conflicts_are_recognised_in_each_nodes_wording() {
        for taken in [
            "(code: -32003, message: replacement transaction underpriced, data: None)",
            "nonce too low: next nonce 7, tx nonce 6",
            "Replacement transaction underpriced",
            "Nonce too low",
            "TRANSACTION_REPLACEMENT_UNDERPRICED",
            "NONCE_TOO_LOW",
        ] {
            assert!(is_nonce_taken(taken), "{taken}");
        }
        for other in [
            "already known",
            "Known transaction",
            "insufficient funds for gas * price + value",
            "Transaction nonce is too distant from current sender nonce",
            "no answer within 2000 ms",
        ] {
            assert!(!is_nonce_taken(other), "{other}");
        }
    }
}
