//! The anchoring worker against a real anvil and a real PostgreSQL: `chain
//! deploy`, `add-writer`/`remove-writer`, checkpoints recorded with their
//! transaction and block, leadership handed over when the leader dies, the
//! node down and back (catching up with no gap and no double anchor), and
//! chains that do not hold our checkpoints (no contract code; a reset chain)
//! reported as `chain-mismatch` and never written to.
//!
//! The Merkle log grows here as the sequencer would grow it (leaves, perfect
//! nodes and the head written with fhirledger-merkle), so these tests do not
//! depend on how leaves get there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use conformance::anvil::{Anvil, DEV_KEY_0};
use conformance::server::{fresh_database, server_binary, start_server_on};
use conformance::TestServer;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea};
use fhirledger_chain::{Address, AnchorClient, ChainConfig, Key};
use fhirledger_merkle::hex_0x;
use fhirledger_postgres::{PgStore, PoolConfig};
use serde_json::Value;

const CHAIN_ID: u64 = 48879;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fhirledger-anchoring-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn key_file(dir: &Path, name: &str, hex: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{hex}\n")).expect("key file");
    path
}

/// A key nobody funded: 32 bytes of the kernel's randomness.
fn random_key_hex() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("urandom");
    bytes[0] = 0x11; // far below the curve order, never zero
    hex_0x(&bytes)
}

fn fhirledger(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = Command::new(server_binary())
        .args(args)
        .envs(env.iter().copied())
        .env("FHIRLEDGER_LOG", "warn")
        .output()
        .expect("run fhirledger");
    assert!(
        out.status.success(),
        "fhirledger {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "fhirledger {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn deploy(anvil: &Anvil, key: &Path) -> Value {
    fhirledger(
        &[
            "chain",
            "deploy",
            "--rpc-url",
            &anvil.url(),
            "--key-file",
            &key.to_string_lossy(),
            "--chain-id",
            &CHAIN_ID.to_string(),
        ],
        &[],
    )
}

fn client(anvil: &Anvil, contract: &str) -> (tokio::runtime::Runtime, AnchorClient) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let key = Key::from_hex(DEV_KEY_0).expect("key");
    let contract: Address = contract.parse().expect("address");
    let client = rt
        .block_on(AnchorClient::connect(ChainConfig::new(
            anvil.url(),
            CHAIN_ID,
            contract,
            key,
        )))
        .expect("connect to the contract");
    (rt, client)
}

/// The log's head (size, root) as the server's sequencer left it.
fn head(database_url: &str) -> (u64, [u8; 32]) {
    let store = PgStore::connect(database_url, &PoolConfig::default()).expect("a pool");
    let head = store.log_head().expect("the log's head");
    (head.tree_size, head.root)
}

/// Grows the Merkle log through the API: batches of audited searches on
/// `server` (each entry records an AuditEvent, so does the batch, each
/// AuditEvent is a leaf) until the sequencer has given at least `more` new
/// leaves their index. Returns the head then; it moves on with every later
/// audited request (the status calls of these tests included).
fn grow_log(server: &TestServer, more: u64) -> (u64, [u8; 32]) {
    let (start, _) = head(&server.database_url);
    let client = reqwest::blocking::Client::new();
    let searches: Vec<Value> = (0..more.min(100))
        .map(|_| {
            serde_json::json!({
                "request": { "method": "GET", "url": "Organization?_count=1" }
            })
        })
        .collect();
    let batch = serde_json::json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": searches,
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = client
            .post(&server.fhir_base)
            .bearer_auth(server.token())
            .header("Content-Type", "application/fhir+json")
            .body(batch.to_string())
            .send()
            .expect("a batch of audited searches");
        assert_eq!(resp.status().as_u16(), 200);
        let now = head(&server.database_url);
        if now.0 >= start + more {
            return now;
        }
        assert!(Instant::now() < deadline, "the log did not grow");
    }
}

/// Our root over the first `size` leaves (from the stored tree).
fn root_at(database_url: &str, size: u64) -> [u8; 32] {
    PgStore::connect(database_url, &PoolConfig::default())
        .expect("a pool")
        .log_root_at(size)
        .expect("the log")
        .expect("a size the log has")
}

/// The size of the last recorded checkpoint (0 when none).
fn anchored(database_url: &str) -> u64 {
    checkpoints(database_url).last().map_or(0, |c| c.0)
}

/// A recorded checkpoint: (size, root, tx hash, block number, block hash).
type Recorded = (u64, Vec<u8>, Vec<u8>, u64, Vec<u8>);

/// The recorded checkpoints, by size.
fn checkpoints(database_url: &str) -> Vec<Recorded> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        tree_size: i64,
        #[diesel(sql_type = Bytea)]
        root: Vec<u8>,
        #[diesel(sql_type = Bytea)]
        tx_hash: Vec<u8>,
        #[diesel(sql_type = BigInt)]
        block_number: i64,
        #[diesel(sql_type = Bytea)]
        block_hash: Vec<u8>,
    }
    let mut conn = PgConnection::establish(database_url).expect("connect");
    diesel::sql_query(
        "SELECT tree_size, root, tx_hash, block_number, block_hash FROM merkle_checkpoints ORDER BY tree_size",
    )
    .load::<Row>(&mut conn)
    .expect("checkpoints")
    .into_iter()
    .map(|r| {
        (
            r.tree_size as u64,
            r.root,
            r.tx_hash,
            r.block_number as u64,
            r.block_hash,
        )
    })
    .collect()
}

fn chain_env(anvil: &Anvil, contract: &str, key: &Path) -> Vec<(String, String)> {
    vec![
        ("FHIRLEDGER_CHAIN_RPC_URL".into(), anvil.url()),
        ("FHIRLEDGER_CHAIN_ID".into(), CHAIN_ID.to_string()),
        ("FHIRLEDGER_ANCHOR_CONTRACT".into(), contract.to_string()),
        (
            "FHIRLEDGER_CHAIN_KEY_FILE".into(),
            key.to_string_lossy().into_owned(),
        ),
        ("FHIRLEDGER_ANCHOR_INTERVAL".into(), "300ms".into()),
        ("FHIRLEDGER_CHAIN_RPC_TIMEOUT".into(), "2".into()),
    ]
}

/// `$ledger-status` as name → value, with how long it took.
fn status(server: &TestServer) -> (serde_json::Map<String, Value>, Duration) {
    let started = Instant::now();
    let response = reqwest::blocking::Client::new()
        .get(server.url("$ledger-status"))
        .bearer_auth(server.token())
        .header("Accept", "application/fhir+json")
        .send()
        .expect("GET $ledger-status");
    let took = started.elapsed();
    assert_eq!(response.status().as_u16(), 200, "$ledger-status");
    let body: Value = response.json().expect("JSON");
    assert_eq!(body["resourceType"], "Parameters");
    let mut map = serde_json::Map::new();
    for p in body["parameter"].as_array().expect("parameter") {
        let name = p["name"].as_str().expect("name").to_string();
        let value = p
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        map.insert(name, value);
    }
    (map, took)
}

fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.to_string().parse().ok())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kill(server: &TestServer, signal: libc::c_int) {
    // SAFETY: signalling a server this test started, by its pid.
    unsafe {
        libc::kill(server.pid() as libc::pid_t, signal);
    }
    wait_for("the server to exit", Duration::from_secs(40), || {
        !server.is_running()
    });
}

#[test]
fn deploy_and_writer_management_print_json() {
    let dir = temp_dir("cli");
    let anvil = Anvil::start(CHAIN_ID, None);
    let owner = key_file(&dir, "owner.key", DEV_KEY_0);
    let deployed = deploy(&anvil, &owner);
    let contract = deployed["contract"].as_str().expect("contract");
    assert!(
        contract.starts_with("0x") && contract.len() == 42,
        "{deployed}"
    );
    assert!(
        deployed["tx"].as_str().is_some_and(|t| t.len() == 66),
        "{deployed}"
    );
    assert!(deployed["block"].as_u64().is_some(), "{deployed}");

    let (rt, client) = client(&anvil, contract);
    let writer: Address = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
        .parse()
        .unwrap();
    assert!(!rt.block_on(client.is_writer(writer)).unwrap());
    let args = |verb: &str| {
        vec![
            "chain".to_string(),
            verb.to_string(),
            writer.to_string(),
            "--rpc-url".into(),
            anvil.url(),
            "--key-file".into(),
            owner.to_string_lossy().into_owned(),
            "--chain-id".into(),
            CHAIN_ID.to_string(),
            "--contract".into(),
            contract.to_string(),
        ]
    };
    let added = fhirledger(
        &args("add-writer")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(added["writer"], writer.to_string(), "{added}");
    assert!(rt.block_on(client.is_writer(writer)).unwrap());
    let removed = fhirledger(
        &args("remove-writer")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(removed["writer"], writer.to_string(), "{removed}");
    assert!(!rt.block_on(client.is_writer(writer)).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn anchors_hands_over_catches_up_and_refuses_foreign_chains() {
    let dir = temp_dir("lifecycle");
    let mut anvil = Anvil::start(CHAIN_ID, Some(dir.join("anvil-state.json")));
    // A writer key nobody funded: gas price 0 needs no balance.
    let writer_hex = random_key_hex();
    let writer = key_file(&dir, "writer.key", &writer_hex);
    let writer_address = Key::from_hex(&writer_hex)
        .expect("key")
        .address()
        .to_string();
    let deployed = deploy(&anvil, &writer);
    let contract = deployed["contract"].as_str().expect("contract").to_string();

    // 1. The worker anchors the head and records the checkpoint with its tx and block.
    let env = chain_env(&anvil, &contract, &writer);
    let own_db = fresh_database("anchoring_lifecycle");
    let first = start_server_on(&own_db, |_| env.clone());
    let db = first.database_url.clone();
    let (grown, _) = grow_log(&first, 5);
    wait_for(
        "a checkpoint of the grown log",
        Duration::from_secs(60),
        || anchored(&db) >= grown,
    );
    let recorded = checkpoints(&db);
    let (size, root, tx, block, block_hash) = recorded.last().cloned().expect("a checkpoint");
    assert_eq!(
        root,
        root_at(&db, size).to_vec(),
        "the head's root is anchored"
    );
    assert_eq!((tx.len(), block_hash.len()), (32, 32));
    let (rt, client) = client(&anvil, &contract);
    let (chain_size, chain_root) = rt.block_on(client.latest()).unwrap();
    assert!(chain_size >= size);
    assert_eq!(chain_root.to_vec(), root_at(&db, chain_size).to_vec());
    let receipt = rt
        .block_on(client.receipt(fhirledger_chain::TxHash(tx.clone().try_into().unwrap())))
        .unwrap()
        .expect("receipt");
    assert_eq!(
        (receipt.block_number, receipt.block_hash.to_vec()),
        (block, block_hash)
    );
    let (st, _) = status(&first);
    assert_eq!(st["worker"], "anchoring", "{st:?}");
    assert!(number(&st["treeSize"]) >= number(&st["anchoredSize"]));
    assert_eq!(
        number(&st["lagLeaves"]),
        number(&st["treeSize"]) - number(&st["anchoredSize"])
    );
    assert_eq!(number(&st["chainId"]), CHAIN_ID);
    let last = checkpoints(&db).last().cloned().expect("a checkpoint");
    assert!(number(&st["anchoredSize"]) >= size);
    assert_eq!(st["contract"], contract);
    assert_eq!(
        (number(&st["anchoredSize"]), st["anchoredRoot"].clone()),
        (last.0, Value::from(hex_0x(&last.1)))
    );

    // 2. A second process stands by. The leader dies (SIGKILL) right after
    // sending a checkpoint, before its receipt: the standby takes over,
    // reconciles with latest() and the transaction in flight, and that
    // checkpoint ends up anchored and recorded exactly once.
    let leads = |s: &TestServer| {
        s.log_tail(400)
            .contains("this process anchors the Merkle log")
    };
    let second = start_server_on(&own_db, |_| env.clone());
    assert!(leads(&first) && !leads(&second), "the first server leads");
    let sent_before = first.log_tail(2000).matches("checkpoint sent").count();
    grow_log(&second, 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.log_tail(2000).matches("checkpoint sent").count() == sent_before {
        assert!(Instant::now() < deadline, "no checkpoint was sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(&first, libc::SIGKILL);
    let sent: u64 = first
        .log_tail(2000)
        .rsplit("checkpoint sent")
        .next()
        .and_then(|line| line.split("tree_size=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the size of the checkpoint sent");
    let crashed_before_receipt = !checkpoints(&db).iter().any(|c| c.0 == sent);
    eprintln!("the leader died before recording checkpoint {sent}: {crashed_before_receipt}");
    wait_for(
        "the standby to take over and record the checkpoint sent",
        Duration::from_secs(30),
        || checkpoints(&db).iter().any(|c| c.0 == sent),
    );
    wait_for("the standby to lead", Duration::from_secs(10), || {
        leads(&second)
    });
    let anchored_sent = rt
        .block_on(client.checkpoints(0, None))
        .unwrap()
        .into_iter()
        .filter(|e| e.tree_size == sent)
        .count();
    assert_eq!(anchored_sent, 1, "checkpoint {sent} anchored once");

    // 3. The node goes down: the API keeps its speed, the log keeps growing,
    // and the worker waits for the chain.
    anvil.stop();
    wait_for("waiting-for-chain", Duration::from_secs(30), || {
        status(&second).0["worker"] == "waiting-for-chain"
    });
    let during_outage = anchored(&db);
    let (grown, _) = grow_log(&second, 5);
    for _ in 0..5 {
        let (st, took) = status(&second);
        assert!(
            took < Duration::from_millis(500),
            "$ledger-status took {took:?}"
        );
        assert!(number(&st["treeSize"]) >= grown);
        assert_eq!(number(&st["anchoredSize"]), during_outage);
        assert_eq!(
            number(&st["lagLeaves"]),
            number(&st["treeSize"]) - during_outage
        );
        let started = Instant::now();
        let metadata = reqwest::blocking::get(second.url("metadata")).expect("metadata");
        assert_eq!(metadata.status().as_u16(), 200);
        assert!(started.elapsed() < Duration::from_millis(500));
        // A write (with its AuditEvent) keeps its speed too.
        let started = Instant::now();
        let created = reqwest::blocking::Client::new()
            .post(second.url("Organization"))
            .bearer_auth(second.token())
            .header("Content-Type", "application/fhir+json")
            .body(r#"{"resourceType":"Organization","name":"Anchoring test hospital"}"#)
            .send()
            .expect("create");
        assert_eq!(created.status().as_u16(), 201);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "a create took {took:?} with the chain down"
        );
    }
    assert_eq!(
        anchored(&db),
        during_outage,
        "nothing anchored without a chain"
    );

    // 4. The node returns: anchoring catches up, with no gap and no double anchor.
    let (outage_size, _) = head(&db);
    anvil.restart();
    wait_for("catching up", Duration::from_secs(60), || {
        anchored(&db) >= outage_size
    });
    let (rt, client) = self::client(&anvil, &contract);
    let (chain_size, chain_root) = rt.block_on(client.latest()).unwrap();
    assert_eq!(chain_root, root_at(&db, chain_size));
    let events = rt.block_on(client.checkpoints(0, None)).unwrap();
    let on_chain: Vec<u64> = events.iter().map(|e| e.tree_size).collect();
    wait_for(
        "the last checkpoint recorded",
        Duration::from_secs(30),
        || anchored(&db) >= chain_size,
    );
    let recorded: Vec<u64> = checkpoints(&db)
        .iter()
        .map(|c| c.0)
        .filter(|size| *size <= chain_size)
        .collect();
    assert_eq!(
        on_chain, recorded,
        "every anchored checkpoint is recorded, once"
    );
    assert!(on_chain.windows(2).all(|w| w[0] < w[1]));
    for event in &events {
        let row = checkpoints(&db)
            .into_iter()
            .find(|c| c.0 == event.tree_size)
            .expect("recorded");
        assert_eq!(row.1, event.root.to_vec());
        assert_eq!(row.1, root_at(&db, event.tree_size).to_vec());
        assert_eq!(row.2, event.tx.0.to_vec());
    }
    assert_eq!(status(&second).0["worker"], "anchoring");

    // 4b. The key is no longer a writer: the contract refuses (checked by a
    // dry run, nothing spent), the worker says so and waits; once it is a
    // writer again, anchoring resumes.
    let writer_args = |verb: &str| {
        vec![
            "chain".to_string(),
            verb.to_string(),
            writer_address.clone(),
            "--rpc-url".into(),
            anvil.url(),
            "--key-file".into(),
            writer.to_string_lossy().into_owned(),
            "--chain-id".into(),
            CHAIN_ID.to_string(),
            "--contract".into(),
            contract.clone(),
        ]
    };
    let run =
        |args: Vec<String>| fhirledger(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    run(writer_args("remove-writer"));
    let refused_from = anchored(&db);
    let (grown, _) = grow_log(&second, 2);
    wait_for("the refusal to show", Duration::from_secs(30), || {
        let (st, _) = status(&second);
        st["worker"] == "waiting-for-chain"
            && st
                .get("lastError")
                .and_then(Value::as_str)
                .is_some_and(|e| e.contains("writer"))
    });
    assert!(
        anchored(&db) < grown,
        "nothing above {refused_from} anchored by a key that is no writer"
    );
    run(writer_args("add-writer"));
    wait_for("anchoring to resume", Duration::from_secs(30), || {
        anchored(&db) >= grown
    });
    kill(&second, libc::SIGTERM);
    let recorded_before = checkpoints(&db);

    // 5. A chain without our contract (a fresh node): chain-mismatch, nothing written.
    let fresh = Anvil::start(CHAIN_ID, None);
    let third = start_server_on(&own_db, |_| chain_env(&fresh, &contract, &writer));
    grow_log(&third, 1);
    wait_for("chain-mismatch (no code)", Duration::from_secs(30), || {
        status(&third).0["worker"] == "chain-mismatch"
    });
    assert!(third.log_tail(400).contains("CHAIN MISMATCH"));
    kill(&third, libc::SIGTERM);
    drop(fresh);

    // 6. A reset chain: the same contract address again (same key, nonce 0)
    // but none of our checkpoints: chain-mismatch, nothing written.
    let reset = Anvil::start(CHAIN_ID, None);
    let redeployed = deploy(&reset, &writer);
    assert_eq!(redeployed["contract"], contract, "same deployer and nonce");
    let fourth = start_server_on(&own_db, |_| chain_env(&reset, &contract, &writer));
    wait_for(
        "chain-mismatch (reset chain)",
        Duration::from_secs(30),
        || status(&fourth).0["worker"] == "chain-mismatch",
    );
    std::thread::sleep(Duration::from_secs(2));
    let (rt, client) = self::client(&reset, &contract);
    assert_eq!(
        rt.block_on(client.latest()).unwrap(),
        (0, [0; 32]),
        "never written"
    );
    assert_eq!(checkpoints(&db), recorded_before, "nothing recorded");
    let (st, _) = status(&fourth);
    assert_eq!(
        number(&st["anchoredSize"]),
        recorded_before.last().map_or(0, |c| c.0)
    );
    assert!(number(&st["treeSize"]) > number(&st["anchoredSize"]));
    kill(&fourth, libc::SIGTERM);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ledger_status_is_for_audit_readers_only() {
    use conformance::smart::{BackendClient, SigningKey};
    let server = conformance::server();
    let ask = |token: &str| {
        reqwest::blocking::Client::new()
            .get(server.url("$ledger-status"))
            .bearer_auth(token)
            .send()
            .expect("GET $ledger-status")
            .status()
            .as_u16()
    };
    // A system/ client with AuditEvent read (here: every scope) may ask.
    assert_eq!(ask(server.token()), 200);
    let audit_reader = BackendClient::register(server, "system/AuditEvent.rs", SigningKey::rs384());
    assert_eq!(ask(&audit_reader.token("system/AuditEvent.rs")), 200);
    // A system/ client without AuditEvent read may not: the AuditEvent
    // search decision refuses it.
    let other = BackendClient::register(server, "system/Patient.rs", SigningKey::rs384());
    assert_eq!(ask(&other.token("system/Patient.rs")), 403);
    // Without a token, 401.
    let anonymous = reqwest::blocking::get(server.url("$ledger-status")).expect("GET");
    assert_eq!(anonymous.status().as_u16(), 401);
}

/// Runs `node conformance/chain/merkle.mjs <command>` (the independent
/// checker: Keccak-256 and JSON-RPC from ethers, RFC 9162 written out).
fn independent(command: &str, input: &Value) -> Value {
    use std::io::Write;
    let node = std::env::var("FHIRLEDGER_NODE").unwrap_or_else(|_| "node".into());
    let script = conformance::server::workspace_root().join("conformance/chain/merkle.mjs");
    let mut child = Command::new(node)
        .arg(&script)
        .arg(command)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs merkle.mjs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("merkle.mjs ends");
    assert!(
        out.status.success(),
        "merkle.mjs {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// GETs `path` on `server` with its token until it answers 200 (a proof
/// answers 409 until its leaf is anchored), bounded in time.
fn proof_of(server: &TestServer, path: &str) -> Value {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = client
            .get(server.url(path))
            .bearer_auth(server.token())
            .header("Accept", "application/fhir+json")
            .send()
            .expect("GET a proof");
        let status = resp.status().as_u16();
        let body: Value = resp.json().expect("JSON");
        match status {
            200 => return body,
            409 => {
                assert_eq!(body["resourceType"], "OperationOutcome");
                let said = body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
                assert!(said.contains("expected by"), "{said}");
            }
            other => panic!("{path}: {other} {body}"),
        }
        assert!(Instant::now() < deadline, "{path} was not anchored in time");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads `path` on `server` under a fresh `X-Request-Id` and returns the id
/// of the AuditEvent that read recorded.
fn read_event(server: &TestServer, store: &PgStore, path: &str) -> String {
    let request_id = format!("read-{}", conformance::uid());
    let resp = reqwest::blocking::Client::new()
        .get(server.url(path))
        .bearer_auth(server.token())
        .header("X-Request-Id", &request_id)
        .send()
        .expect("a read");
    assert_eq!(resp.status().as_u16(), 200);
    let event = store
        .audit_events_with(&format!("entity:identifier=|{request_id}"))
        .expect("the trail")
        .into_iter()
        .next()
        .expect("the read's AuditEvent");
    let event: Value = serde_json::from_str(&event).expect("JSON");
    event["id"].as_str().expect("id").to_string()
}

fn parameter<'a>(parameters: &'a Value, name: &str) -> &'a Value {
    parameters["parameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| p.get("valueString").unwrap_or(&p["valueDecimal"]))
        .unwrap_or_else(|| panic!("no {name} in {parameters}"))
}

#[test]
fn proofs_check_out_independently_against_the_chain() {
    use sha2::Digest;
    let dir = temp_dir("proofs");
    let anvil = Anvil::start(CHAIN_ID, None);
    let writer = key_file(&dir, "writer.key", &random_key_hex());
    let deployed = deploy(&anvil, &writer);
    let contract = deployed["contract"].as_str().expect("contract").to_string();
    let server = start_server_on(&fresh_database("anchoring_proofs"), |_| {
        chain_env(&anvil, &contract, &writer)
    });
    let client = reqwest::blocking::Client::new();
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = client
            .request(method, server.url(path))
            .bearer_auth(server.token())
            .header("Accept", "application/fhir+json");
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/fhir+json")
                .body(body.to_string());
        }
        req.send().expect("a request")
    };
    let created = |resp: reqwest::blocking::Response| -> Value {
        assert_eq!(resp.status().as_u16(), 201);
        resp.json().expect("JSON")
    };
    let patient = created(send(
        reqwest::Method::POST,
        "Patient",
        Some(conformance::patient("proofs")),
    ));
    let patient_id = patient["id"].as_str().expect("id").to_string();
    let consent = created(send(
        reqwest::Method::POST,
        "Consent",
        Some(conformance::consent(&patient_id, "proofs")),
    ));
    let consent_id = consent["id"].as_str().expect("id").to_string();
    let store = PgStore::connect(&server.database_url, &PoolConfig::default()).expect("pool");
    let patient_path = format!("Patient/{patient_id}");
    let event_id = read_event(&server, &store, &patient_path);

    for (path, read) in [
        (
            format!("AuditEvent/{event_id}/$proof"),
            format!("AuditEvent/{event_id}"),
        ),
        (
            format!("Consent/{consent_id}/_history/1/$proof"),
            format!("Consent/{consent_id}/_history/1"),
        ),
    ] {
        let proof = proof_of(&server, &path);
        let checked = independent(
            "inclusion",
            &serde_json::json!({ "parameters": proof, "rpcUrl": anvil.url() }),
        );
        assert_eq!(checked["leafHashOk"], true, "{path}: {checked}");
        assert_eq!(checked["pathOk"], true, "{path}: {checked}");
        assert_eq!(checked["rootOnChain"], true, "{path}: {checked}");
        assert_eq!(
            parameter(&proof, "contract"),
            &Value::from(contract.clone())
        );
        assert_eq!(number(parameter(&proof, "chainId")), CHAIN_ID);
        // The leaf commits to exactly the bytes a compact JSON read returns.
        let body = send(reqwest::Method::GET, &read, None)
            .bytes()
            .expect("bytes");
        let leaf = independent(
            "leaf",
            &serde_json::json!({ "leafData": parameter(&proof, "leafData") }),
        );
        assert_eq!(
            leaf["contentSha256"],
            hex_0x(&sha2::Sha256::digest(&body)),
            "{path}"
        );
        assert_eq!(leaf["salt"], *parameter(&proof, "salt"));
        // One flipped bit in the path and the independent check fails.
        let mut forged = proof.clone();
        if let Some(entry) = forged["parameter"]
            .as_array_mut()
            .and_then(|ps| ps.iter_mut().find(|p| p["name"] == "path"))
        {
            let original = entry["valueString"].as_str().expect("hex").to_string();
            let flipped = if original.ends_with('0') { "1" } else { "0" };
            entry["valueString"] =
                Value::from(format!("{}{flipped}", &original[..original.len() - 1]));
            let checked = independent(
                "inclusion",
                &serde_json::json!({ "parameters": forged, "rpcUrl": anvil.url() }),
            );
            assert_eq!(checked["pathOk"], false, "a forged path fails");
        }
    }

    // A proof is one access, recorded once: the `$proof` operation's event,
    // naming the event proven and the rule that let the caller read it.
    let proof_request = format!("proof-{}", conformance::uid());
    let resp = client
        .get(server.url(&format!("AuditEvent/{event_id}/$proof")))
        .bearer_auth(server.token())
        .header("X-Request-Id", &proof_request)
        .send()
        .expect("a proof");
    assert_eq!(resp.status().as_u16(), 200);
    let recorded = store
        .audit_events_with(&format!("entity:identifier=|{proof_request}"))
        .expect("the trail");
    assert_eq!(recorded.len(), 1, "one event for one proof: {recorded:?}");
    let recorded: Value = serde_json::from_str(&recorded[0]).expect("JSON");
    let subtypes: Vec<&str> = recorded["subtype"]
        .as_array()
        .expect("subtype")
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert_eq!(subtypes, ["operation", "$proof"], "{recorded}");
    assert_eq!(recorded["outcome"], "0");
    let text = recorded.to_string();
    assert!(
        text.contains(&format!("AuditEvent/{event_id}/_history/1")),
        "{text}"
    );
    assert!(text.contains("system-scope"), "{text}");

    // Two anchored sizes: the later log extends the earlier one.
    grow_log(&server, 3);
    let first = checkpoints(&server.database_url)
        .first()
        .map(|c| c.0)
        .expect("a checkpoint");
    wait_for("a later checkpoint", Duration::from_secs(30), || {
        anchored(&server.database_url) > first
    });
    let last = anchored(&server.database_url);
    let proof = proof_of(&server, &format!("$consistency?from={first}&to={last}"));
    let checked = independent(
        "consistency",
        &serde_json::json!({ "parameters": proof, "rpcUrl": anvil.url() }),
    );
    assert_eq!(checked["pathOk"], true, "{checked}");
    assert_eq!(checked["fromOnChain"], true, "{checked}");
    assert_eq!(checked["toOnChain"], true, "{checked}");
    // A size that is not anchored is no checkpoint to prove from. (Not
    // simply `first + 1`: the worker anchors every second, and the requests
    // of this test are leaves too, so that size may have been anchored.)
    let anchored_sizes: Vec<u64> = checkpoints(&server.database_url)
        .iter()
        .map(|c| c.0)
        .collect();
    let unanchored = (first + 1..last)
        .chain(1..first)
        .find(|size| !anchored_sizes.contains(size))
        .expect("a size below the log's that was never anchored");
    let resp = send(
        reqwest::Method::GET,
        &format!("$consistency?from={unanchored}&to={last}"),
        None,
    );
    assert_eq!(resp.status().as_u16(), 404);
    // Past 256 leaves a path has nodes from level 8 up, which the server
    // keeps in memory once read (a node never changes): after the first of
    // these proofs, the others take the level-8 node over leaves 0-255 from
    // there. Every one, asked twice, checks out independently.
    let mut deep = Vec::new();
    for _ in 0..2 {
        grow_log(&server, 300);
        deep.push(read_event(&server, &store, &patient_path));
    }
    for id in &deep {
        for _ in 0..2 {
            let proof = proof_of(&server, &format!("AuditEvent/{id}/$proof"));
            assert!(number(parameter(&proof, "leafIndex")) >= 256, "{proof}");
            let checked = independent(
                "inclusion",
                &serde_json::json!({ "parameters": proof, "rpcUrl": anvil.url() }),
            );
            assert_eq!(checked["pathOk"], true, "{id}: {checked}");
            assert_eq!(checked["rootOnChain"], true, "{id}: {checked}");
        }
    }

    // Proofs are for those who read the trail: not for a client that may
    // only read Patients.
    use conformance::smart::{BackendClient, SigningKey};
    let other = BackendClient::register(&server, "system/Patient.rs", SigningKey::rs384());
    let resp = client
        .get(server.url(&format!("AuditEvent/{event_id}/$proof")))
        .bearer_auth(other.token("system/Patient.rs"))
        .send()
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 403);
    let _ = std::fs::remove_dir_all(&dir);
}
