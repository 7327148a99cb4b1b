//! Talking to the node: deployment, reads, signed transactions, receipts.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ethers::contract::{ContractCall, ContractError};
use ethers::providers::{Http, Middleware, Provider};
use ethers::types::transaction::eip2718::TypedTransaction;
use ethers::types::{
    BlockNumber, Bytes, Eip1559TransactionRequest, TransactionRequest, H160, H256, U256,
};
use ethers::utils::keccak256;
use tracing::{debug, info, warn};

use crate::bindings::{AuditAnchorContract, AuditAnchorContractErrors, CheckpointFilter};
use crate::error::{is_nonce_taken, untrusted, ChainError, Rejection};
use crate::key::Key;
use crate::types::{
    Address, ChainConfig, CheckpointEvent, Deployed, Fees, Receipt, SentTx, TxHash,
    ADMIN_GAS_LIMIT, CHECKPOINT_GAS_LIMIT,
};

type Contract = AuditAnchorContract<Provider<Http>>;

/// How often [`AnchorClient::wait_receipt`] and [`deploy`] ask for a receipt.
const RECEIPT_POLL: Duration = Duration::from_millis(100);
/// How long [`deploy`] waits for its transaction to be mined.
const DEPLOY_WAIT: Duration = Duration::from_secs(120);
/// Longest wait for one JSON-RPC answer during [`deploy`].
const DEPLOY_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Deploys `AuditAnchor` (the committed bytecode) from `key`'s account, which
/// becomes its owner and first writer, and waits until it is mined. The
/// node's chain id must be `chain_id`.
pub async fn deploy(
    rpc_url: &str,
    chain_id: u64,
    key: &Key,
    fees: Fees,
) -> Result<Deployed, ChainError> {
    let node = Node::new(rpc_url, DEPLOY_RPC_TIMEOUT)?;
    node.check_chain_id(chain_id).await?;
    let code = ethers::utils::hex::decode(crate::AUDIT_ANCHOR_BIN.trim())
        .map_err(|_| ChainError::Unexpected("the bundled contract bytecode is not hex".into()))?;
    let data = Bytes::from(code);
    let from = key.address();
    let estimate = node
        .call(
            "eth_estimateGas",
            node.provider.estimate_gas(
                &build_tx(from, None, data.clone(), None, None, fees, chain_id),
                None,
            ),
        )
        .await?;
    let estimate = to_u64(estimate, "gas estimate")?;
    // Headroom over the estimate, as nodes' estimates can be exact to the unit.
    let gas = estimate.saturating_add(estimate / 4);
    let nonce = node.nonce(from, BlockNumber::Pending).await?;
    let sent = node
        .send(key, chain_id, fees, None, data, gas, nonce)
        .await?;
    let receipt = node.wait_receipt(sent.hash, 0, DEPLOY_WAIT).await?;
    if !receipt.status {
        return Err(ChainError::TxFailed(sent.hash));
    }
    let contract = receipt.contract_address.ok_or_else(|| {
        ChainError::Unexpected("the deployment's receipt names no contract address".into())
    })?;
    if node.code(contract).await?.is_empty() {
        return Err(ChainError::NoContract(contract));
    }
    info!(%contract, tx = %sent.hash, block = receipt.block_number, gas_used = receipt.gas_used, "deployed AuditAnchor");
    Ok(Deployed {
        contract,
        tx: sent.hash,
        block: receipt.block_number,
    })
}

/// A writer's connection to one `AuditAnchor` contract.
pub struct AnchorClient {
    node: Node,
    contract: Contract,
    config: ChainConfig,
}

impl std::fmt::Debug for AnchorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AnchorClient {
    /// Connects to the node and checks it: the chain id must be the
    /// configured one ([`ChainError::ChainIdMismatch`]) and the contract
    /// address must hold code ([`ChainError::NoContract`]: a reset chain or a
    /// wrong address).
    pub async fn connect(config: ChainConfig) -> Result<AnchorClient, ChainError> {
        let node = Node::new(&config.rpc_url, config.rpc_timeout)?;
        let contract = AuditAnchorContract::new(H160(config.contract.0), node.provider.clone());
        let client = AnchorClient {
            node,
            contract,
            config,
        };
        client.node.check_chain_id(client.config.chain_id).await?;
        if client.code_at(client.config.contract).await?.is_empty() {
            return Err(ChainError::NoContract(client.config.contract));
        }
        info!(contract = %client.config.contract, chain_id = client.config.chain_id, account = %client.account(), "connected to the anchor contract");
        Ok(client)
    }

    /// The configuration this client was connected with.
    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// The account this client signs for.
    pub fn account(&self) -> Address {
        self.config.key.address()
    }

    /// The node's chain id.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        self.node.chain_id().await
    }

    /// Fails with [`ChainError::ChainIdMismatch`] unless the node is on the configured chain.
    pub async fn check_chain_id(&self) -> Result<(), ChainError> {
        self.node.check_chain_id(self.config.chain_id).await
    }

    /// The code at `address` (empty: no contract there).
    pub async fn code_at(&self, address: Address) -> Result<Vec<u8>, ChainError> {
        self.node.code(address).await
    }

    /// The current block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.node.block_number().await
    }

    /// The last anchored checkpoint: `(0, [0; 32])` before the first.
    pub async fn latest(&self) -> Result<(u64, [u8; 32]), ChainError> {
        let call = self.contract.latest();
        self.contract_call("latest", call.call()).await
    }

    /// The root anchored for `tree_size`, or zero when none was.
    pub async fn root_at(&self, tree_size: u64) -> Result<[u8; 32], ChainError> {
        let call = self.contract.root_at(tree_size);
        self.contract_call("rootAt", call.call()).await
    }

    /// Whether `account` may anchor checkpoints.
    pub async fn is_writer(&self, account: Address) -> Result<bool, ChainError> {
        let call = self.contract.is_writer(H160(account.0));
        self.contract_call("isWriter", call.call()).await
    }

    /// The contract's owner.
    pub async fn owner(&self) -> Result<Address, ChainError> {
        let call = self.contract.owner();
        let owner = self.contract_call("owner", call.call()).await?;
        Ok(Address(owner.0))
    }

    /// The next nonce counting transactions still in the node's pool.
    pub async fn pending_nonce(&self) -> Result<u64, ChainError> {
        self.node.nonce(self.account(), BlockNumber::Pending).await
    }

    /// The next nonce counting mined transactions only. Below
    /// [`pending_nonce`](Self::pending_nonce): a transaction of ours is in flight.
    pub async fn confirmed_nonce(&self) -> Result<u64, ChainError> {
        self.node.nonce(self.account(), BlockNumber::Latest).await
    }

    /// Signs and sends `checkpoint(tree_size, root)` at the account's pending
    /// nonce. See [`send_checkpoint_with_nonce`](Self::send_checkpoint_with_nonce).
    pub async fn send_checkpoint(
        &self,
        tree_size: u64,
        root: [u8; 32],
    ) -> Result<SentTx, ChainError> {
        let nonce = self.pending_nonce().await?;
        self.send_checkpoint_with_nonce(tree_size, root, nonce)
            .await
    }

    /// Signs and sends `checkpoint(tree_size, root)` with this nonce, gas
    /// limit [`CHECKPOINT_GAS_LIMIT`], the configured chain id and fees. A dry
    /// run first turns the contract's refusals into
    /// [`ChainError::Rejected`] without spending a nonce
    /// ([`Rejection::SizeNotIncreasing`] after a restart means it is already
    /// anchored). Signing is deterministic: sending the same checkpoint with
    /// the same nonce again gives the same hash.
    pub async fn send_checkpoint_with_nonce(
        &self,
        tree_size: u64,
        root: [u8; 32],
        nonce: u64,
    ) -> Result<SentTx, ChainError> {
        let call = self
            .contract
            .checkpoint(tree_size, root)
            .from(H160(self.account().0));
        let sent = self
            .send_call("checkpoint", call, CHECKPOINT_GAS_LIMIT, nonce)
            .await?;
        info!(tree_size, tx = %sent.hash, nonce, "sent checkpoint");
        Ok(sent)
    }

    /// Owner only: lets `account` anchor checkpoints.
    pub async fn add_writer(&self, account: Address) -> Result<SentTx, ChainError> {
        let call = self
            .contract
            .add_writer(H160(account.0))
            .from(H160(self.account().0));
        let sent = self.send_admin_call("addWriter", call).await?;
        info!(writer = %account, tx = %sent.hash, "sent addWriter");
        Ok(sent)
    }

    /// Owner only: stops `account` from anchoring checkpoints.
    pub async fn remove_writer(&self, account: Address) -> Result<SentTx, ChainError> {
        let call = self
            .contract
            .remove_writer(H160(account.0))
            .from(H160(self.account().0));
        let sent = self.send_admin_call("removeWriter", call).await?;
        info!(writer = %account, tx = %sent.hash, "sent removeWriter");
        Ok(sent)
    }

    /// Owner only: hands the contract to `new_owner` (one step).
    pub async fn transfer_ownership(&self, new_owner: Address) -> Result<SentTx, ChainError> {
        let call = self
            .contract
            .transfer_ownership(H160(new_owner.0))
            .from(H160(self.account().0));
        let sent = self.send_admin_call("transferOwnership", call).await?;
        info!(%new_owner, tx = %sent.hash, "sent transferOwnership");
        Ok(sent)
    }

    /// The transaction's receipt once it is mined and followed by the
    /// configured number of confirmations; `None` before (or when the node
    /// does not know it: dropped, or a chain reset).
    pub async fn receipt(&self, hash: TxHash) -> Result<Option<Receipt>, ChainError> {
        self.node.receipt(hash, self.config.confirmations).await
    }

    /// Asks for [`receipt`](Self::receipt) until there is one, up to `timeout`.
    pub async fn wait_receipt(
        &self,
        hash: TxHash,
        timeout: Duration,
    ) -> Result<Receipt, ChainError> {
        self.node
            .wait_receipt(hash, self.config.confirmations, timeout)
            .await
    }

    /// The contract's `Checkpoint` events from block `from_block` to
    /// `to_block` (the latest block when `None`).
    pub async fn checkpoints(
        &self,
        from_block: u64,
        to_block: Option<u64>,
    ) -> Result<Vec<CheckpointEvent>, ChainError> {
        let mut query = self
            .contract
            .event::<CheckpointFilter>()
            .from_block(from_block);
        if let Some(to_block) = to_block {
            query = query.to_block(to_block);
        }
        let logs = self
            .contract_call("eth_getLogs", query.query_with_meta())
            .await?;
        Ok(logs
            .into_iter()
            .map(|(event, meta)| CheckpointEvent {
                tree_size: event.tree_size,
                root: event.root,
                previous_root: event.previous_root,
                block_number: meta.block_number.as_u64(),
                tx: TxHash(meta.transaction_hash.0),
            })
            .collect())
    }

    /// Sends an owner's call with the pending nonce, and again with a fresh
    /// one when another transaction of this account took it in between: the
    /// owner key is often the anchoring key too (`chain deploy` makes the
    /// deployer the first writer), so the worker of a running server can
    /// send a checkpoint at the same moment. The worker itself needs no such
    /// loop: its next pass reconciles.
    async fn send_admin_call<T: ethers::abi::Detokenize>(
        &self,
        method: &'static str,
        call: ContractCall<Provider<Http>, T>,
    ) -> Result<SentTx, ChainError> {
        const ATTEMPTS: u32 = 5;
        let mut attempt = 1;
        loop {
            let nonce = self.pending_nonce().await?;
            match self
                .send_call(method, call.clone(), ADMIN_GAS_LIMIT, nonce)
                .await
            {
                Err(ChainError::NonceTaken { nonce, reason }) if attempt < ATTEMPTS => {
                    warn!(method, nonce, %reason, attempt, "nonce taken by another transaction; sending again");
                    attempt += 1;
                    tokio::time::sleep(RECEIPT_POLL * attempt).await;
                }
                other => return other,
            }
        }
    }

    /// Dry-runs `call` (eth_call: reverts come back decoded, nothing is
    /// spent), then signs and sends it.
    async fn send_call<T: ethers::abi::Detokenize>(
        &self,
        method: &'static str,
        call: ContractCall<Provider<Http>, T>,
        gas: u64,
        nonce: u64,
    ) -> Result<SentTx, ChainError> {
        self.contract_call(method, call.call()).await?;
        let data = call
            .calldata()
            .ok_or_else(|| ChainError::Unexpected(format!("no calldata for {method}")))?;
        self.node
            .send(
                &self.config.key,
                self.config.chain_id,
                self.config.fees,
                Some(self.config.contract),
                data,
                gas,
                nonce,
            )
            .await
    }

    async fn contract_call<T>(
        &self,
        method: &'static str,
        fut: impl Future<Output = Result<T, ContractError<Provider<Http>>>>,
    ) -> Result<T, ChainError> {
        match tokio::time::timeout(self.config.rpc_timeout, fut).await {
            Err(_) => Err(no_answer(method, self.config.rpc_timeout)),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(contract_error(method, error)),
        }
    }
}

pub(crate) fn contract_error(
    method: &'static str,
    error: ContractError<Provider<Http>>,
) -> ChainError {
    if let Some(decoded) = error.decode_contract_revert::<AuditAnchorContractErrors>() {
        let rejection = match decoded {
            AuditAnchorContractErrors::NotOwner(_) => Rejection::NotOwner,
            AuditAnchorContractErrors::NotWriter(_) => Rejection::NotWriter,
            AuditAnchorContractErrors::ZeroAddress(_) => Rejection::ZeroAddress,
            AuditAnchorContractErrors::ZeroRoot(_) => Rejection::ZeroRoot,
            AuditAnchorContractErrors::SizeNotIncreasing(e) => Rejection::SizeNotIncreasing {
                tree_size: e.tree_size,
                latest_size: e.latest_size,
            },
            AuditAnchorContractErrors::RevertString(reason) => Rejection::Other(untrusted(&reason)),
        };
        debug!(method, %rejection, "the contract refused the call");
        return ChainError::Rejected(rejection);
    }
    if error.is_revert() {
        return ChainError::Rejected(Rejection::Other(untrusted(&error.to_string())));
    }
    ChainError::Rpc {
        method,
        reason: untrusted(&error.to_string()),
    }
}

pub(crate) fn no_answer(method: &'static str, timeout: Duration) -> ChainError {
    ChainError::Rpc {
        method,
        reason: format!("no answer within {} ms", timeout.as_millis()),
    }
}

fn to_u64(value: U256, what: &str) -> Result<u64, ChainError> {
    u64::try_from(value)
        .map_err(|_| ChainError::Unexpected(format!("{what} does not fit in 64 bits")))
}

/// An unsigned transaction from `from` to `to` (a creation when `None`).
fn build_tx(
    from: Address,
    to: Option<Address>,
    data: Bytes,
    gas: Option<u64>,
    nonce: Option<u64>,
    fees: Fees,
    chain_id: u64,
) -> TypedTransaction {
    match fees {
        Fees::Legacy { gas_price } => {
            let mut tx = TransactionRequest::new()
                .from(H160(from.0))
                .data(data)
                .gas_price(U256::from(gas_price))
                .chain_id(chain_id);
            tx.to = to.map(|to| H160(to.0).into());
            tx.gas = gas.map(U256::from);
            tx.nonce = nonce.map(U256::from);
            TypedTransaction::Legacy(tx)
        }
        Fees::Eip1559 {
            max_fee,
            max_priority_fee,
        } => {
            let mut tx = Eip1559TransactionRequest::new()
                .from(H160(from.0))
                .data(data)
                .max_fee_per_gas(U256::from(max_fee))
                .max_priority_fee_per_gas(U256::from(max_priority_fee))
                .chain_id(chain_id);
            tx.to = to.map(|to| H160(to.0).into());
            tx.gas = gas.map(U256::from);
            tx.nonce = nonce.map(U256::from);
            TypedTransaction::Eip1559(tx)
        }
    }
}

/// The JSON-RPC endpoint, every call bounded by a timeout.
pub(crate) struct Node {
    pub(crate) provider: Arc<Provider<Http>>,
    timeout: Duration,
}

impl Node {
    pub(crate) fn new(rpc_url: &str, timeout: Duration) -> Result<Node, ChainError> {
        if !rpc_url
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
        {
            return Err(ChainError::Config(
                "the RPC URL must be plain http:// (no TLS in this adapter: a local proxy terminates TLS to a remote node)"
                    .into(),
            ));
        }
        // Credentials in the URL would reach logs through the HTTP client's
        // error messages: the local proxy adds them instead.
        let authority = rpc_url["http://".len()..]
            .split('/')
            .next()
            .unwrap_or_default();
        if authority.contains('@') {
            return Err(ChainError::Config(
                "credentials in the RPC URL are not supported (they would reach logs): let the local proxy add them"
                    .into(),
            ));
        }
        // The error names the problem only, not the URL.
        let provider = Provider::<Http>::try_from(rpc_url)
            .map_err(|e| ChainError::Config(format!("invalid RPC URL: {e}")))?;
        Ok(Node {
            provider: Arc::new(provider),
            timeout,
        })
    }

    async fn call<T, E: Display>(
        &self,
        method: &'static str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ChainError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(no_answer(method, self.timeout)),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(ChainError::Rpc {
                method,
                reason: untrusted(&error.to_string()),
            }),
        }
    }

    pub(crate) async fn chain_id(&self) -> Result<u64, ChainError> {
        let id = self
            .call("eth_chainId", self.provider.get_chainid())
            .await?;
        to_u64(id, "the chain id")
    }

    pub(crate) async fn check_chain_id(&self, configured: u64) -> Result<(), ChainError> {
        let actual = self.chain_id().await?;
        if actual != configured {
            warn!(configured, actual, "the node is on another chain");
            return Err(ChainError::ChainIdMismatch { configured, actual });
        }
        Ok(())
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        let n = self
            .call("eth_blockNumber", self.provider.get_block_number())
            .await?;
        Ok(n.as_u64())
    }

    pub(crate) async fn code(&self, address: Address) -> Result<Vec<u8>, ChainError> {
        let code = self
            .call("eth_getCode", self.provider.get_code(H160(address.0), None))
            .await?;
        Ok(code.to_vec())
    }

    async fn nonce(&self, account: Address, block: BlockNumber) -> Result<u64, ChainError> {
        let n = self
            .call(
                "eth_getTransactionCount",
                self.provider
                    .get_transaction_count(H160(account.0), Some(block.into())),
            )
            .await?;
        to_u64(n, "the nonce")
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        key: &Key,
        chain_id: u64,
        fees: Fees,
        to: Option<Address>,
        data: Bytes,
        gas: u64,
        nonce: u64,
    ) -> Result<SentTx, ChainError> {
        let tx = build_tx(
            key.address(),
            to,
            data,
            Some(gas),
            Some(nonce),
            fees,
            chain_id,
        );
        let signature = key
            .wallet()
            .sign_transaction_sync(&tx)
            .map_err(|_| ChainError::Unexpected("signing the transaction failed".into()))?;
        let raw = tx.rlp_signed(&signature);
        let hash = TxHash(keccak256(&raw));
        debug!(tx = %hash, nonce, gas, "sending a signed transaction");
        let pending = self
            .call(
                "eth_sendRawTransaction",
                self.provider.send_raw_transaction(raw),
            )
            .await
            .map_err(|e| match e {
                ChainError::Rpc { reason, .. } if is_nonce_taken(&reason) => {
                    ChainError::NonceTaken { nonce, reason }
                }
                other => other,
            })?;
        let reported = TxHash(pending.tx_hash().0);
        if reported != hash {
            return Err(ChainError::HashMismatch {
                signed: hash,
                reported,
            });
        }
        Ok(SentTx { hash, nonce })
    }

    async fn receipt(
        &self,
        hash: TxHash,
        confirmations: u64,
    ) -> Result<Option<Receipt>, ChainError> {
        let Some(r) = self
            .call(
                "eth_getTransactionReceipt",
                self.provider.get_transaction_receipt(H256(hash.0)),
            )
            .await?
        else {
            return Ok(None);
        };
        let (Some(block_number), Some(block_hash)) = (r.block_number, r.block_hash) else {
            return Ok(None);
        };
        let block_number = block_number.as_u64();
        if confirmations > 0 {
            let head = self.block_number().await?;
            if head < block_number.saturating_add(confirmations) {
                return Ok(None);
            }
        }
        Ok(Some(Receipt {
            block_number,
            block_hash: block_hash.0,
            status: r.status.is_some_and(|s| s.as_u64() == 1),
            gas_used: match r.gas_used {
                Some(gas) => to_u64(gas, "gas used")?,
                None => 0,
            },
            contract_address: r.contract_address.map(|a| Address(a.0)),
        }))
    }

    async fn wait_receipt(
        &self,
        hash: TxHash,
        confirmations: u64,
        timeout: Duration,
    ) -> Result<Receipt, ChainError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(receipt) = self.receipt(hash, confirmations).await? {
                return Ok(receipt);
            }
            if Instant::now() >= deadline {
                return Err(ChainError::Timeout(hash));
            }
            tokio::time::sleep(RECEIPT_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The worker runs these on a multi-threaded runtime (`tokio::spawn`).
    #[allow(dead_code)]
    fn futures_are_send(client: &AnchorClient, key: &Key) {
        assert_send(&deploy("", 0, key, Fees::default()));
        assert_send(&client.send_checkpoint(1, [1; 32]));
        assert_send(&client.receipt(TxHash::default()));
        assert_send(&client.latest());
        assert_send(&client.checkpoints(0, None));
        assert_send(&AnchorClient::connect(client.config().clone()));
    }

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AnchorClient>();
    }

    #[tokio::test]
    async fn rpc_urls_must_be_plain_http_without_credentials() {
        for url in [
            "https://node.example",
            "ws://127.0.0.1:8546",
            "http://user:secret@127.0.0.1:8545",
            "127.0.0.1:8545",
        ] {
            match Node::new(url, Duration::from_secs(1)) {
                Err(ChainError::Config(reason)) => assert!(!reason.contains("secret"), "{reason}"),
                Err(other) => panic!("{url}: {other:?}"),
                Ok(_) => panic!("{url} accepted"),
            }
        }
        assert!(Node::new("http://127.0.0.1:8545", Duration::from_secs(1)).is_ok());
        assert!(Node::new("HTTP://localhost:8545/rpc?x=a@b", Duration::from_secs(1)).is_ok());
    }
}
