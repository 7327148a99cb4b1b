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
use conformance::server::{server_binary, start_server_with};
use conformance::TestServer;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, SmallInt, Text};
use fhirledger_chain::{Address, AnchorClient, ChainConfig, Key};
use fhirledger_merkle::{Frontier, Hasher, Keccak256Hasher};
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
    let mut hex = String::from("0x");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
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

/// Grows the Merkle log to `size` leaves as the sequencer does: leaves,
/// the perfect nodes they complete, and the head, in one transaction.
fn grow_log(database_url: &str, size: u64) -> [u8; 32] {
    #[derive(QueryableByName)]
    struct Size {
        #[diesel(sql_type = BigInt)]
        tree_size: i64,
    }
    let mut conn = PgConnection::establish(database_url).expect("connect");
    let hasher = Keccak256Hasher;
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        let current = diesel::sql_query("SELECT tree_size FROM merkle_head FOR UPDATE")
            .get_result::<Size>(conn)?
            .tree_size as u64;
        assert!(size >= current, "the log only grows");
        let mut frontier = Frontier::new(hasher);
        for i in 0..size {
            let data = format!("leaf {i}").into_bytes();
            let nodes = frontier
                .append(hasher.leaf_hash(&data))
                .expect("append");
            if i < current {
                continue;
            }
            diesel::sql_query(
                "INSERT INTO merkle_leaves (leaf_index, resource_type, resource_id, version_id, leaf_data, sequenced_at) \
                 VALUES ($1, 'AuditEvent', $2, '1', $3, now())",
            )
            .bind::<BigInt, _>(i as i64)
            .bind::<Text, _>(format!("seed-{i}"))
            .bind::<Bytea, _>(&data)
            .execute(conn)?;
            for node in nodes {
                diesel::sql_query(
                    "INSERT INTO merkle_nodes (level, node_index, hash) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind::<SmallInt, _>(i16::from(node.id.level))
                .bind::<BigInt, _>(node.id.index as i64)
                .bind::<Bytea, _>(node.hash.as_slice())
                .execute(conn)?;
            }
        }
        diesel::sql_query("UPDATE merkle_head SET tree_size = $1, root = $2, updated_at = now()")
            .bind::<BigInt, _>(size as i64)
            .bind::<Bytea, _>(frontier.root().as_slice())
            .execute(conn)?;
        Ok(frontier.root())
    })
    .expect("grow the log")
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

fn hex(bytes: &[u8]) -> String {
    let mut out = String::from("0x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
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
    let first = start_server_with(|_| env.clone());
    let db = first.database_url.clone();
    let root5 = grow_log(&db, 5);
    wait_for("checkpoint 5", Duration::from_secs(60), || {
        checkpoints(&db).iter().any(|c| c.0 == 5)
    });
    let recorded = checkpoints(&db);
    let (size, root, tx, block, block_hash) = recorded.last().cloned().expect("a checkpoint");
    assert_eq!((size, root.as_slice()), (5, root5.as_slice()));
    assert_eq!((tx.len(), block_hash.len()), (32, 32));
    let (rt, client) = client(&anvil, &contract);
    assert_eq!(rt.block_on(client.latest()).unwrap(), (5, root5));
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
    assert_eq!(number(&st["treeSize"]), 5);
    assert_eq!(number(&st["anchoredSize"]), 5);
    assert_eq!(number(&st["lagLeaves"]), 0);
    assert_eq!(number(&st["chainId"]), CHAIN_ID);
    assert_eq!(st["anchoredRoot"], hex(&root5));
    assert_eq!(st["contract"], contract);
    assert_eq!(st["lastTxHash"], hex(&tx));

    // 2. A second process stands by. The leader dies (SIGKILL) right after
    // sending checkpoint 7, before its receipt: the standby takes over,
    // reconciles with latest() and the transaction in flight, and checkpoint
    // 7 ends up anchored and recorded exactly once.
    let second = start_server_with(|_| env.clone());
    std::thread::sleep(Duration::from_secs(2));
    let leads = |s: &TestServer| {
        s.log_tail(400)
            .contains("this process anchors the Merkle log")
    };
    assert!(leads(&first) && !leads(&second), "the first server leads");
    let root7 = grow_log(&db, 7);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !first.log_tail(50).contains("checkpoint sent tree_size=7") {
        assert!(Instant::now() < deadline, "checkpoint 7 was not sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(&first, libc::SIGKILL);
    let crashed_before_receipt = !checkpoints(&db).iter().any(|c| c.0 == 7);
    eprintln!("the leader died before recording checkpoint 7: {crashed_before_receipt}");
    wait_for(
        "the standby to take over and record 7",
        Duration::from_secs(30),
        || checkpoints(&db).iter().any(|c| c.0 == 7),
    );
    assert!(leads(&second));
    assert_eq!(rt.block_on(client.latest()).unwrap(), (7, root7));
    let sevens = rt
        .block_on(client.checkpoints(0, None))
        .unwrap()
        .into_iter()
        .filter(|e| e.tree_size == 7)
        .count();
    assert_eq!(sevens, 1, "checkpoint 7 anchored once");

    // 3. The node goes down: the API keeps its speed, the log keeps growing,
    // and the worker waits for the chain.
    anvil.stop();
    grow_log(&db, 9);
    wait_for("waiting-for-chain", Duration::from_secs(30), || {
        status(&second).0["worker"] == "waiting-for-chain"
    });
    let root12 = grow_log(&db, 12);
    for _ in 0..5 {
        let (st, took) = status(&second);
        assert!(
            took < Duration::from_millis(500),
            "$ledger-status took {took:?}"
        );
        assert_eq!(number(&st["treeSize"]), 12);
        assert_eq!(number(&st["anchoredSize"]), 7);
        assert_eq!(number(&st["lagLeaves"]), 5);
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

    // 4. The node returns: anchoring catches up, with no gap and no double anchor.
    anvil.restart();
    wait_for("catching up to 12", Duration::from_secs(60), || {
        checkpoints(&db).iter().any(|c| c.0 == 12)
    });
    let (rt, client) = self::client(&anvil, &contract);
    assert_eq!(rt.block_on(client.latest()).unwrap(), (12, root12));
    let events = rt.block_on(client.checkpoints(0, None)).unwrap();
    let on_chain: Vec<u64> = events.iter().map(|e| e.tree_size).collect();
    let recorded: Vec<u64> = checkpoints(&db).iter().map(|c| c.0).collect();
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
    grow_log(&db, 13);
    wait_for("the refusal to show", Duration::from_secs(30), || {
        let (st, _) = status(&second);
        st["worker"] == "waiting-for-chain"
            && st
                .get("lastError")
                .and_then(Value::as_str)
                .is_some_and(|e| e.contains("writer"))
    });
    assert!(!checkpoints(&db).iter().any(|c| c.0 == 13));
    run(writer_args("add-writer"));
    wait_for("anchoring to resume at 13", Duration::from_secs(30), || {
        checkpoints(&db).iter().any(|c| c.0 == 13)
    });
    kill(&second, libc::SIGTERM);
    let recorded_before = checkpoints(&db);

    // 5. A chain without our contract (a fresh node): chain-mismatch, nothing written.
    let fresh = Anvil::start(CHAIN_ID, None);
    let third = start_server_with(|_| chain_env(&fresh, &contract, &writer));
    grow_log(&db, 14);
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
    let fourth = start_server_with(|_| chain_env(&reset, &contract, &writer));
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
    assert_eq!(number(&st["anchoredSize"]), 13);
    assert_eq!(number(&st["treeSize"]), 14);
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
