//! AuditAnchor against a real anvil: deployment, checkpoints, writers, fees,
//! and the checks a worker relies on (chain id, contract code, nonces).

mod common;

use std::time::Duration;

use common::{key, root, Anvil};
use fhirledger_chain::{
    deploy, Address, AnchorClient, ChainConfig, ChainError, Fees, Rejection, CHECKPOINT_GAS_LIMIT,
};

const CHAIN_ID: u64 = 48_879;
const WAIT: Duration = Duration::from_secs(30);

async fn deployed(anvil: &Anvil) -> (AnchorClient, fhirledger_chain::Deployed) {
    let owner = key(0);
    let deployed = deploy(&anvil.url(), CHAIN_ID, &owner, Fees::default())
        .await
        .expect("deploy");
    println!(
        "deployed AuditAnchor: contract {} tx {} block {}",
        deployed.contract, deployed.tx, deployed.block
    );
    let config = ChainConfig::new(anvil.url(), CHAIN_ID, deployed.contract, owner);
    let client = AnchorClient::connect(config).await.expect("connect");
    (client, deployed)
}

fn client_as(client: &AnchorClient, index: usize) -> ChainConfig {
    let mut config = client.config().clone();
    config.key = key(index);
    config
}

#[tokio::test]
async fn deploy_then_checkpoints_read_back_with_events() {
    let anvil = Anvil::start(CHAIN_ID);
    let (client, deployed) = deployed(&anvil).await;
    assert!(deployed.block >= 1);
    assert_eq!(client.owner().await.unwrap(), key(0).address());
    assert!(client.is_writer(key(0).address()).await.unwrap());
    assert_eq!(client.latest().await.unwrap(), (0, [0; 32]));

    let mut gas = Vec::new();
    for (size, n) in [(5u64, 1u8), (9, 2), (100, 3)] {
        let sent = client.send_checkpoint(size, root(n)).await.unwrap();
        let receipt = client.wait_receipt(sent.hash, WAIT).await.unwrap();
        assert!(receipt.status, "checkpoint {size} failed");
        assert!(receipt.gas_used < CHECKPOINT_GAS_LIMIT);
        gas.push(receipt.gas_used);
        assert_eq!(client.latest().await.unwrap(), (size, root(n)));
    }
    println!("gas used per checkpoint call (first, second, third): {gas:?}");
    assert_eq!(client.root_at(5).await.unwrap(), root(1));
    assert_eq!(client.root_at(9).await.unwrap(), root(2));
    assert_eq!(client.root_at(7).await.unwrap(), [0; 32]);

    let events = client.checkpoints(deployed.block, None).await.unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.tree_size, e.root, e.previous_root))
        .collect();
    assert_eq!(
        seen,
        vec![
            (5, root(1), [0; 32]),
            (9, root(2), root(1)),
            (100, root(3), root(2)),
        ]
    );
    assert!(events
        .windows(2)
        .all(|w| w[0].block_number < w[1].block_number));
}

#[tokio::test]
async fn non_increasing_sizes_and_zero_roots_are_refused() {
    let anvil = Anvil::start(CHAIN_ID);
    let (client, _) = deployed(&anvil).await;
    let sent = client.send_checkpoint(10, root(1)).await.unwrap();
    client.wait_receipt(sent.hash, WAIT).await.unwrap();
    let nonce = client.pending_nonce().await.unwrap();

    for size in [10, 3, 0] {
        match client.send_checkpoint(size, root(2)).await {
            Err(ChainError::Rejected(Rejection::SizeNotIncreasing {
                tree_size,
                latest_size: 10,
            })) => assert_eq!(tree_size, size),
            other => panic!("size {size}: expected SizeNotIncreasing, got {other:?}"),
        }
    }
    assert!(matches!(
        client.send_checkpoint(11, [0; 32]).await,
        Err(ChainError::Rejected(Rejection::ZeroRoot))
    ));
    // Refused by the dry run: nothing was sent, no nonce spent.
    assert_eq!(client.pending_nonce().await.unwrap(), nonce);
    assert_eq!(client.latest().await.unwrap(), (10, root(1)));
}

#[tokio::test]
async fn only_writers_anchor_and_the_owner_manages_them() {
    let anvil = Anvil::start(CHAIN_ID);
    let (owner, _) = deployed(&anvil).await;
    let other = AnchorClient::connect(client_as(&owner, 1)).await.unwrap();
    let other_address = key(1).address();

    assert!(!owner.is_writer(other_address).await.unwrap());
    assert!(matches!(
        other.send_checkpoint(1, root(1)).await,
        Err(ChainError::Rejected(Rejection::NotWriter))
    ));
    // Writers are the owner's to manage.
    assert!(matches!(
        other.add_writer(other_address).await,
        Err(ChainError::Rejected(Rejection::NotOwner))
    ));

    let sent = owner.add_writer(other_address).await.unwrap();
    assert!(owner.wait_receipt(sent.hash, WAIT).await.unwrap().status);
    assert!(owner.is_writer(other_address).await.unwrap());
    let sent = other.send_checkpoint(1, root(1)).await.unwrap();
    assert!(other.wait_receipt(sent.hash, WAIT).await.unwrap().status);
    assert_eq!(owner.latest().await.unwrap(), (1, root(1)));

    let sent = owner.remove_writer(other_address).await.unwrap();
    assert!(owner.wait_receipt(sent.hash, WAIT).await.unwrap().status);
    assert!(!owner.is_writer(other_address).await.unwrap());
    assert!(matches!(
        other.send_checkpoint(2, root(2)).await,
        Err(ChainError::Rejected(Rejection::NotWriter))
    ));
    assert!(matches!(
        owner.add_writer(Address([0; 20])).await,
        Err(ChainError::Rejected(Rejection::ZeroAddress))
    ));

    // Handing the contract over: the old owner can no longer manage writers.
    let sent = owner.transfer_ownership(other_address).await.unwrap();
    assert!(owner.wait_receipt(sent.hash, WAIT).await.unwrap().status);
    assert_eq!(owner.owner().await.unwrap(), other_address);
    assert!(matches!(
        owner.add_writer(key(2).address()).await,
        Err(ChainError::Rejected(Rejection::NotOwner))
    ));
}

#[tokio::test]
async fn legacy_transactions_at_gas_price_zero_cost_nothing() {
    let anvil = Anvil::start(CHAIN_ID);
    let before = balance(&anvil, key(0).address());
    let (client, _) = deployed(&anvil).await;
    assert_eq!(
        client.config().fees,
        Fees::Legacy { gas_price: 0 },
        "the default fees"
    );
    let sent = client.send_checkpoint(1, root(1)).await.unwrap();
    let receipt = client.wait_receipt(sent.hash, WAIT).await.unwrap();
    assert!(receipt.status);
    let tx = common::rpc(
        anvil.addr,
        "eth_getTransactionByHash",
        &format!("[\"{}\"]", sent.hash),
    )
    .unwrap();
    assert!(
        tx.contains("\"type\":\"0x0\""),
        "not a legacy transaction: {tx}"
    );
    assert!(tx.contains("\"gasPrice\":\"0x0\""), "{tx}");
    assert!(
        tx.contains(&format!("\"chainId\":\"0x{CHAIN_ID:x}\"")),
        "{tx}"
    );
    assert!(
        tx.contains(&format!("\"gas\":\"0x{CHECKPOINT_GAS_LIMIT:x}\"")),
        "{tx}"
    );
    assert_eq!(balance(&anvil, key(0).address()), before, "gas was charged");
}

#[tokio::test]
async fn eip1559_fees_work_on_a_chain_with_a_base_fee() {
    // anvil's defaults: a base fee, so fees are paid from the account's balance.
    let anvil = Anvil::start_with(CHAIN_ID, &[]);
    let owner = key(0);
    let fees = Fees::Eip1559 {
        max_fee: 100_000_000_000,
        max_priority_fee: 1_000_000_000,
    };
    let deployed = deploy(&anvil.url(), CHAIN_ID, &owner, fees).await.unwrap();
    let mut config = ChainConfig::new(anvil.url(), CHAIN_ID, deployed.contract, owner);
    config.fees = fees;
    let client = AnchorClient::connect(config).await.unwrap();
    let sent = client.send_checkpoint(3, root(3)).await.unwrap();
    assert!(client.wait_receipt(sent.hash, WAIT).await.unwrap().status);
    assert_eq!(client.latest().await.unwrap(), (3, root(3)));
}

#[tokio::test]
async fn nonces_show_a_transaction_in_flight_and_receipts_wait_for_confirmations() {
    // No automine: transactions stay in the pool until a block is mined.
    let anvil = Anvil::start_with(CHAIN_ID, &["--gas-price", "0", "--base-fee", "0"]);
    let (client, deployed) = deployed(&anvil).await;
    mine(&anvil, false);
    assert_eq!(
        client.confirmed_nonce().await.unwrap(),
        client.pending_nonce().await.unwrap()
    );
    let sent = client.send_checkpoint(4, root(4)).await.unwrap();
    // In flight: the pool has it, no block does.
    assert_eq!(client.confirmed_nonce().await.unwrap(), sent.nonce);
    assert_eq!(client.pending_nonce().await.unwrap(), sent.nonce + 1);
    assert_eq!(client.receipt(sent.hash).await.unwrap(), None);
    // Sending the same checkpoint with the same nonce again signs the same
    // transaction: the node takes it as the one it has, or says it knows it.
    match client
        .send_checkpoint_with_nonce(4, root(4), sent.nonce)
        .await
    {
        Ok(again) => assert_eq!(again, sent),
        Err(ChainError::Rpc { reason, .. }) => {
            assert!(reason.contains("already"), "{reason}")
        }
        Err(other) => panic!("resending: {other:?}"),
    }
    // Another transaction on that nonce (another process signing with the
    // same key) is refused as a taken nonce, in the pool and once mined:
    // the owner's commands send again with a fresh one on that error.
    match client
        .send_checkpoint_with_nonce(5, root(5), sent.nonce)
        .await
    {
        Err(ChainError::NonceTaken { nonce, .. }) => assert_eq!(nonce, sent.nonce),
        other => panic!("a second transaction on a pooled nonce: {other:?}"),
    }
    mine(&anvil, true);
    let receipt = client.receipt(sent.hash).await.unwrap().expect("mined");
    assert!(receipt.status);
    assert_eq!(client.confirmed_nonce().await.unwrap(), sent.nonce + 1);
    match client
        .send_checkpoint_with_nonce(5, root(5), sent.nonce)
        .await
    {
        Err(ChainError::NonceTaken { nonce, .. }) => assert_eq!(nonce, sent.nonce),
        other => panic!("a transaction on a mined nonce: {other:?}"),
    }

    // With 2 confirmations the receipt appears only 2 blocks later.
    let mut config = client.config().clone();
    config.confirmations = 2;
    let confirming = AnchorClient::connect(config).await.unwrap();
    assert_eq!(confirming.receipt(sent.hash).await.unwrap(), None);
    mine(&anvil, true);
    assert_eq!(confirming.receipt(sent.hash).await.unwrap(), None);
    mine(&anvil, true);
    assert_eq!(confirming.receipt(sent.hash).await.unwrap(), Some(receipt));
    let _ = deployed;
}

#[tokio::test]
async fn wrong_chain_id_and_missing_contract_are_detected() {
    let anvil = Anvil::start(CHAIN_ID);
    let (client, deployed) = deployed(&anvil).await;
    assert_eq!(client.chain_id().await.unwrap(), CHAIN_ID);

    let mut config = client.config().clone();
    config.chain_id = CHAIN_ID + 1;
    match AnchorClient::connect(config).await {
        Err(ChainError::ChainIdMismatch { configured, actual }) => {
            assert_eq!((configured, actual), (CHAIN_ID + 1, CHAIN_ID));
        }
        other => panic!("expected ChainIdMismatch, got {other:?}"),
    }
    assert!(matches!(
        deploy(&anvil.url(), 1, &key(0), Fees::default()).await,
        Err(ChainError::ChainIdMismatch { .. })
    ));

    // An address without code: an account, or a contract on a reset chain.
    let mut config = client.config().clone();
    config.contract = key(2).address();
    match AnchorClient::connect(config).await {
        Err(ChainError::NoContract(address)) => assert_eq!(address, key(2).address()),
        other => panic!("expected NoContract, got {other:?}"),
    }
    assert!(client.code_at(key(2).address()).await.unwrap().is_empty());
    assert!(!client.code_at(deployed.contract).await.unwrap().is_empty());

    // A node that is not there: an RPC error, not a hang.
    let mut config = client.config().clone();
    drop(anvil);
    config.rpc_timeout = Duration::from_secs(5);
    assert!(matches!(
        AnchorClient::connect(config).await,
        Err(ChainError::Rpc { .. })
    ));
}

#[tokio::test]
async fn https_urls_are_refused_without_echoing_them() {
    let err = deploy(
        "https://user:secret@node.example:8545",
        CHAIN_ID,
        &key(0),
        Fees::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ChainError::Config(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");
}

fn balance(anvil: &Anvil, account: Address) -> String {
    let body = common::rpc(
        anvil.addr,
        "eth_getBalance",
        &format!("[\"{account}\",\"latest\"]"),
    )
    .unwrap();
    body.split("\"result\":")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Test-only control of anvil's mining (anvil_*/evm_* methods stay out of the crate).
fn mine(anvil: &Anvil, block: bool) {
    if block {
        let body = common::rpc(anvil.addr, "evm_mine", "[]").unwrap();
        assert!(body.contains("\"result\""), "{body}");
    } else {
        let body = common::rpc(anvil.addr, "evm_setAutomine", "[false]").unwrap();
        assert!(body.contains("\"result\""), "{body}");
    }
}
