//! Anchoring fhirledger's Merkle log checkpoints on an EVM chain.
//!
//! The audit trail (Consent versions and AuditEvents) is an append-only
//! Merkle log (Keccak-256, RFC 9162 structure); its checkpoints — a tree size
//! and the root over that many leaves — are written to the `AuditAnchor`
//! contract (`contracts/AuditAnchor.sol`) on a permissioned chain: Hyperledger
//! Besu QBFT in production (free gas: legacy transactions at gas price 0),
//! anvil in development and tests. Only the size and the root go on chain.
//!
//! ```text
//! once:         deploy(rpc_url, chain_id, &key, fees)             -> Deployed { contract, tx, block }
//! start-up:     AnchorClient::connect(config)                      (chain id and contract code checked)
//!               confirmed_nonce() < pending_nonce()               -> a transaction of ours is in flight
//! each anchor:  send_checkpoint(size, root)                        -> SentTx { hash, nonce }  (persist it)
//!               receipt(hash)                                      -> None until mined + confirmations
//! reads:        latest(), root_at(size), checkpoints(from_block)
//! auditors:     AnchorReader::connect(rpc_url, chain_id?, contract)   (no key: latest, root_at)
//! ```
//!
//! Built on `ethers` (deprecated upstream), which stays inside this crate:
//! the interface is plain bytes and integers ([`Address`], [`TxHash`],
//! `[u8; 32]` roots, `u64` sizes) and [`ChainError`]. HTTP JSON-RPC only, and
//! without TLS: the node is reached on a private network or on loopback, and
//! TLS to a remote node is terminated by a local proxy.

pub mod anvil;
mod bindings;
mod client;
mod error;
mod key;
mod reader;
mod types;

pub use client::{deploy, AnchorClient};
pub use error::{ChainError, Rejection};
pub use key::Key;
pub use reader::AnchorReader;
pub use types::{
    Address, ChainConfig, CheckpointEvent, Deployed, Fees, Receipt, SentTx, TxHash,
    CHECKPOINT_GAS_LIMIT,
};

/// The contract's ABI as committed (`contracts/AuditAnchor.abi.json`), built
/// by `conformance/chain/compile.mjs`.
pub const AUDIT_ANCHOR_ABI: &str = include_str!("../contracts/AuditAnchor.abi.json");

/// The contract's creation bytecode, hex without `0x` (`contracts/AuditAnchor.bin`).
pub const AUDIT_ANCHOR_BIN: &str = include_str!("../contracts/AuditAnchor.bin");
