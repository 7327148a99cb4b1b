//! Reading the contract without a key: what an auditor needs
//! (`fhirledger audit verify`), who holds no writer account and should not
//! have to.

use std::future::Future;
use std::time::Duration;

use ethers::contract::ContractError;
use ethers::providers::{Http, Provider};
use ethers::types::H160;
use tracing::info;

use crate::bindings::AuditAnchorContract;
use crate::client::{contract_error, no_answer, Node};
use crate::error::ChainError;
use crate::types::Address;

/// A read-only connection to one `AuditAnchor` contract: `latest`, `root_at`,
/// the node's chain id. It holds no key and can send nothing.
pub struct AnchorReader {
    node: Node,
    contract: AuditAnchorContract<Provider<Http>>,
    address: Address,
    chain_id: u64,
    rpc_timeout: Duration,
}

impl std::fmt::Debug for AnchorReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorReader")
            .field("contract", &self.address)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

impl AnchorReader {
    /// Connects to the node (plain `http://`, as [`crate::AnchorClient`]) and
    /// checks it: when `chain_id` is given the node must report it
    /// ([`ChainError::ChainIdMismatch`]), and `contract` must hold code
    /// ([`ChainError::NoContract`]).
    pub async fn connect(
        rpc_url: &str,
        chain_id: Option<u64>,
        contract: Address,
        rpc_timeout: Duration,
    ) -> Result<AnchorReader, ChainError> {
        let node = Node::new(rpc_url, rpc_timeout)?;
        let actual = node.chain_id().await?;
        if let Some(configured) = chain_id {
            node.check_chain_id(configured).await?;
        }
        if node.code(contract).await?.is_empty() {
            return Err(ChainError::NoContract(contract));
        }
        let bound = AuditAnchorContract::new(H160(contract.0), node.provider.clone());
        info!(%contract, chain_id = actual, "reading the anchor contract");
        Ok(AnchorReader {
            node,
            contract: bound,
            address: contract,
            chain_id: actual,
            rpc_timeout,
        })
    }

    /// The contract read.
    pub fn contract(&self) -> Address {
        self.address
    }

    /// The chain id the node reported at connect.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The last anchored checkpoint: `(0, [0; 32])` before the first.
    pub async fn latest(&self) -> Result<(u64, [u8; 32]), ChainError> {
        let call = self.contract.latest();
        self.call("latest", call.call()).await
    }

    /// The root anchored for `tree_size`, or zero when none was.
    pub async fn root_at(&self, tree_size: u64) -> Result<[u8; 32], ChainError> {
        let call = self.contract.root_at(tree_size);
        self.call("rootAt", call.call()).await
    }

    /// The code at `address` (empty: no contract there).
    pub async fn code_at(&self, address: Address) -> Result<Vec<u8>, ChainError> {
        self.node.code(address).await
    }

    async fn call<T>(
        &self,
        method: &'static str,
        fut: impl Future<Output = Result<T, ContractError<Provider<Http>>>>,
    ) -> Result<T, ChainError> {
        match tokio::time::timeout(self.rpc_timeout, fut).await {
            Err(_) => Err(no_answer(method, self.rpc_timeout)),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(contract_error(method, error)),
        }
    }
}
