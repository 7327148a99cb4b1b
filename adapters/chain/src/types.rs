//! The plain types of the adapter's interface.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::key::Key;

/// Gas limit given to a `checkpoint` transaction: about twice what one
/// costs (55,512 with solc 0.8.37, paris, measured by the tests), so a change of gas schedule on
/// the chain does not make it run out, while a runaway one stays bounded.
pub const CHECKPOINT_GAS_LIMIT: u64 = 120_000;

/// Gas limit of the owner's writer changes (`addWriter`, `removeWriter`).
pub(crate) const ADMIN_GAS_LIMIT: u64 = 100_000;

/// A 20-byte account or contract address; shown as lowercase `0x` hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

/// A 32-byte transaction hash; shown as lowercase `0x` hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TxHash(pub [u8; 32]);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("0x")?;
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn parse_hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], String> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| format!("{what}: expected 0x followed by {} hex digits", N * 2))?;
    if hex.len() != N * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{what}: expected 0x followed by {} hex digits",
            N * 2
        ));
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("{what}: not hex"))?;
    }
    Ok(out)
}

macro_rules! hex_newtype {
    ($name:ident, $len:literal, $what:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                parse_hex::<$len>(s.trim(), $what).map($name)
            }
        }
    };
}
hex_newtype!(Address, 20, "address");
hex_newtype!(TxHash, 32, "transaction hash");

/// How transactions pay for gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fees {
    /// Legacy (type 0) transactions at this gas price, in wei. Besu QBFT
    /// networks with free gas take 0.
    Legacy { gas_price: u128 },
    /// EIP-1559 (type 2) transactions, in wei.
    Eip1559 {
        max_fee: u128,
        max_priority_fee: u128,
    },
}

impl Default for Fees {
    fn default() -> Self {
        Fees::Legacy { gas_price: 0 }
    }
}

/// Where the contract is and how to write to it.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC endpoint, plain HTTP (`http://127.0.0.1:8545`).
    pub rpc_url: String,
    /// The chain id the node must report; every transaction is signed for it.
    pub chain_id: u64,
    /// The `AuditAnchor` contract.
    pub contract: Address,
    /// The writer account's key ([`Key::from_file`]).
    pub key: Key,
    pub fees: Fees,
    /// Blocks that must follow the including block before [`receipt`](crate::AnchorClient::receipt)
    /// reports a transaction; 0 = as soon as it is mined (QBFT blocks are final).
    pub confirmations: u64,
    /// Longest wait for one JSON-RPC answer.
    pub rpc_timeout: Duration,
}

impl ChainConfig {
    /// A configuration with the defaults: legacy transactions at gas price
    /// 0, no extra confirmations, 10 s per RPC call.
    pub fn new(rpc_url: impl Into<String>, chain_id: u64, contract: Address, key: Key) -> Self {
        ChainConfig {
            rpc_url: rpc_url.into(),
            chain_id,
            contract,
            key,
            fees: Fees::default(),
            confirmations: 0,
            rpc_timeout: Duration::from_secs(10),
        }
    }
}

/// A contract deployed by [`deploy`](crate::deploy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployed {
    pub contract: Address,
    pub tx: TxHash,
    pub block: u64,
}

/// A signed transaction the node accepted. Persist it before waiting: after a
/// restart, [`receipt`](crate::AnchorClient::receipt) tells whether it was
/// mined, and the nonce whether a later one replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentTx {
    pub hash: TxHash,
    pub nonce: u64,
}

/// A mined (and confirmed) transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub block_number: u64,
    pub block_hash: [u8; 32],
    /// The transaction succeeded (status 1).
    pub status: bool,
    pub gas_used: u64,
    /// Set for a contract creation.
    pub contract_address: Option<Address>,
}

/// One `Checkpoint` event of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointEvent {
    pub tree_size: u64,
    pub root: [u8; 32],
    pub previous_root: [u8; 32],
    pub block_number: u64,
    pub tx: TxHash,
}
