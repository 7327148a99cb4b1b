//! The chain as the anchoring worker sees it ([`AnchorChain`], owned by the
//! FHIR service) over the chain adapter's `AnchorClient` (ethers), and the
//! chain settings turned into the adapter's configuration.

use std::time::Duration;

use anyhow::Context;
use fhirledger_chain::{
    AnchorClient, AnchorReader, ChainConfig, ChainError, Fees, Key, Rejection, TxHash,
};
use fhirledger_service::anchoring::{AnchorChain, ChainFault, ChainReceipt, ChainRoots, Hash32};
use tokio::sync::OnceCell;

use crate::config::ChainSettings;

impl ChainSettings {
    /// Whether anchoring is configured at all (any of its four settings).
    pub fn any_set(&self) -> bool {
        self.rpc_url.is_some()
            || self.chain_id.is_some()
            || self.contract.is_some()
            || self.key_file.is_some()
    }

    /// The fees of every transaction: EIP-1559 when a max fee is set, else
    /// legacy at the gas price (0 by default, for free-gas networks).
    pub fn fees(&self) -> Fees {
        match self.max_fee {
            Some(max_fee) => Fees::Eip1559 {
                max_fee,
                max_priority_fee: self.max_priority_fee,
            },
            None => Fees::Legacy {
                gas_price: self.gas_price,
            },
        }
    }

    pub fn rpc_url(&self) -> anyhow::Result<&str> {
        self.rpc_url
            .as_deref()
            .context("the chain's RPC URL is needed (--rpc-url or FHIRLEDGER_CHAIN_RPC_URL)")
    }

    pub fn chain_id(&self) -> anyhow::Result<u64> {
        self.chain_id
            .context("the chain id is needed (--chain-id or FHIRLEDGER_CHAIN_ID)")
    }

    pub fn key(&self) -> anyhow::Result<Key> {
        let path = self
            .key_file
            .as_ref()
            .context("the writer's key file is needed (--key-file or FHIRLEDGER_CHAIN_KEY_FILE)")?;
        Ok(Key::from_file(path)?)
    }

    pub fn contract(&self) -> anyhow::Result<fhirledger_chain::Address> {
        let text = self
            .contract
            .as_deref()
            .context("the contract address is needed (--contract or FHIRLEDGER_ANCHOR_CONTRACT)")?;
        text.parse()
            .map_err(|e: String| anyhow::anyhow!("FHIRLEDGER_ANCHOR_CONTRACT: {e}"))
    }

    /// The adapter's configuration; every setting must be present.
    pub fn client_config(&self) -> anyhow::Result<ChainConfig> {
        let mut config = ChainConfig::new(
            self.rpc_url()?,
            self.chain_id()?,
            self.contract()?,
            self.key()?,
        );
        config.fees = self.fees();
        config.confirmations = self.confirmations;
        config.rpc_timeout = Duration::from_secs(self.rpc_timeout_seconds.clamp(1, 600));
        Ok(config)
    }
}

/// [`AnchorChain`] over the adapter. The connection (which checks the chain
/// id and the contract's code) is made on first use and retried until it
/// succeeds, so a node that is down at start-up only delays anchoring.
pub struct ChainAnchor {
    config: ChainConfig,
    client: OnceCell<AnchorClient>,
}

impl ChainAnchor {
    pub fn new(config: ChainConfig) -> ChainAnchor {
        ChainAnchor {
            config,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&AnchorClient, ChainError> {
        self.client
            .get_or_try_init(|| AnchorClient::connect(self.config.clone()))
            .await
    }
}

/// [`ChainRoots`] over the adapter's key-less [`AnchorReader`], connected
/// on first use (and again after a failed connect), for the portal's proof
/// pages.
#[derive(Debug)]
pub struct ChainRootReader {
    rpc_url: String,
    chain_id: u64,
    contract: fhirledger_chain::Address,
    rpc_timeout: Duration,
    reader: OnceCell<AnchorReader>,
}

impl ChainRootReader {
    pub fn new(config: &ChainConfig) -> ChainRootReader {
        ChainRootReader {
            rpc_url: config.rpc_url.clone(),
            chain_id: config.chain_id,
            contract: config.contract,
            rpc_timeout: config.rpc_timeout,
            reader: OnceCell::new(),
        }
    }
}

impl ChainRoots for ChainRootReader {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn contract(&self) -> [u8; 20] {
        self.contract.0
    }

    fn root_at(
        &self,
        tree_size: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Hash32, ChainFault>> + Send + '_>>
    {
        Box::pin(async move {
            let reader = self
                .reader
                .get_or_try_init(|| {
                    AnchorReader::connect(
                        &self.rpc_url,
                        Some(self.chain_id),
                        self.contract,
                        self.rpc_timeout,
                    )
                })
                .await
                .map_err(fault)?;
            reader.root_at(tree_size).await.map_err(fault)
        })
    }
}

/// The adapter's errors in the worker's terms.
pub fn fault(e: ChainError) -> ChainFault {
    match e {
        ChainError::ChainIdMismatch { .. } | ChainError::NoContract(_) => {
            ChainFault::Mismatch(e.to_string())
        }
        ChainError::Rejected(Rejection::SizeNotIncreasing { .. }) => {
            ChainFault::AlreadyAnchored(e.to_string())
        }
        ChainError::Rejected(_) | ChainError::TxFailed(_) | ChainError::Config(_) => {
            ChainFault::Refused(e.to_string())
        }
        _ => ChainFault::Unavailable(e.to_string()),
    }
}

impl AnchorChain for ChainAnchor {
    fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    fn contract(&self) -> [u8; 20] {
        self.config.contract.0
    }

    async fn has_code(&self) -> Result<bool, ChainFault> {
        let client = match self.client().await {
            Ok(client) => client,
            Err(ChainError::NoContract(_)) => return Ok(false),
            Err(e) => return Err(fault(e)),
        };
        client.check_chain_id().await.map_err(fault)?;
        Ok(!client
            .code_at(self.config.contract)
            .await
            .map_err(fault)?
            .is_empty())
    }

    async fn latest(&self) -> Result<(u64, Hash32), ChainFault> {
        self.client()
            .await
            .map_err(fault)?
            .latest()
            .await
            .map_err(fault)
    }

    async fn root_at(&self, tree_size: u64) -> Result<Hash32, ChainFault> {
        self.client()
            .await
            .map_err(fault)?
            .root_at(tree_size)
            .await
            .map_err(fault)
    }

    async fn nonces(&self) -> Result<(u64, u64), ChainFault> {
        let client = self.client().await.map_err(fault)?;
        let confirmed = client.confirmed_nonce().await.map_err(fault)?;
        let pending = client.pending_nonce().await.map_err(fault)?;
        Ok((confirmed, pending.max(confirmed)))
    }

    async fn send_checkpoint(
        &self,
        tree_size: u64,
        root: Hash32,
        nonce: u64,
    ) -> Result<Hash32, ChainFault> {
        let client = self.client().await.map_err(fault)?;
        let sent = client
            .send_checkpoint_with_nonce(tree_size, root, nonce)
            .await
            .map_err(fault)?;
        Ok(sent.hash.0)
    }

    async fn receipt(&self, tx: Hash32) -> Result<Option<ChainReceipt>, ChainFault> {
        let client = self.client().await.map_err(fault)?;
        Ok(client
            .receipt(TxHash(tx))
            .await
            .map_err(fault)?
            .map(|r| ChainReceipt {
                block_number: r.block_number,
                block_hash: r.block_hash,
                success: r.status,
            }))
    }

    async fn find_checkpoint(
        &self,
        tree_size: u64,
        from_block: u64,
    ) -> Result<Option<Hash32>, ChainFault> {
        let client = self.client().await.map_err(fault)?;
        let events = client.checkpoints(from_block, None).await.map_err(fault)?;
        Ok(events
            .into_iter()
            .find(|e| e.tree_size == tree_size)
            .map(|e| e.tx.0))
    }
}
