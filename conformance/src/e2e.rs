//! End-to-end SMART flows driven by independent clients: a SMART app built
//! on the `fhirclient` npm package (Node), a person's browser (headless
//! Chromium driven by `playwright-core`) and a backend service signing with
//! `jose` — the scripts of `conformance/smart` (`e2e.mjs`, `app.mjs`,
//! `browser.mjs`). People sign in at the external OpenID Connect provider of
//! [`crate::oidc`], never with a local password.
//!
//! [`e2e`] starts, once per test binary, that provider and a fhirledger
//! server of its own configured with it (`FHIRLEDGER_OIDC_PROVIDERS`). A test
//! creates its FHIR data and accounts here (with the server's system token
//! and the admin CLI), then [`E2e::run`]s one scenario of `e2e.mjs`, which
//! prints one JSON object of what the app, the browser and the backend
//! client saw; the test asserts on it.
//!
//! Environment: `FHIRLEDGER_NODE` (see [`crate::oidc`]), `FHIRLEDGER_CHROMIUM`
//! (default `/usr/bin/chromium`, Debian's `chromium` package, which
//! `./test.sh` installs).

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::Request;
use crate::oidc::{ensure_node_modules, smart_dir, TestClient, TestOidcProvider};
use crate::server::{die_with_parent, server_binary, start_server_with, TestServer};
use crate::smart::cli;

/// The provider's name in `FHIRLEDGER_OIDC_PROVIDERS` (part of the callback URL).
pub const PROVIDER_NAME: &str = "test-idp";
/// Its label: the sign-in pages offer "Sign in with Test IdP".
pub const PROVIDER_LABEL: &str = "Test IdP";
/// How long one scenario may run before it is killed.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

/// The provider and the server configured with it.
pub struct E2e {
    pub server: TestServer,
    pub provider: TestOidcProvider,
    /// The chain the server anchors on ([`e2e_anchored`]).
    pub chain: Option<E2eChain>,
}

/// Where [`e2e_anchored`]'s server anchors.
#[derive(Debug, Clone)]
pub struct E2eChain {
    pub rpc_url: String,
    /// The `AuditAnchor` contract, `0x`-prefixed.
    pub contract: String,
}

/// The binary's provider and server, started on first use.
pub fn e2e() -> &'static E2e {
    static E2E: OnceLock<E2e> = OnceLock::new();
    E2E.get_or_init(|| start(Vec::new(), None))
}

/// Like [`e2e`], with the server anchoring its Merkle log on a chain of
/// its own (an anvil with the `AuditAnchor` contract deployed, checkpoints
/// every second), as `fhirledger dev` and production do: access logs show
/// entries verified on chain, and proofs can be checked against it.
pub fn e2e_anchored() -> &'static E2e {
    static E2E: OnceLock<E2e> = OnceLock::new();
    E2E.get_or_init(|| {
        let (env, chain) = anchoring();
        start(env, Some(chain))
    })
}

/// The chain id of [`e2e_anchored`]'s anvil.
pub const CHAIN_ID: u64 = 48879;

/// Starts an anvil kept until the test binary exits, deploys the contract
/// with anvil's first account (its owner and first writer) and returns the
/// server's anchoring settings.
fn anchoring() -> (Vec<(String, String)>, E2eChain) {
    let url = crate::anvil::Anvil::for_the_binary(CHAIN_ID);
    let key_file =
        crate::server::scratch_dir().join(format!("e2e-chain-key-{}", std::process::id()));
    std::fs::write(&key_file, format!("{}\n", crate::anvil::DEV_KEY_0))
        .expect("writing the chain key file");
    let key_file = key_file.to_string_lossy().into_owned();
    let out = Command::new(server_binary())
        .args([
            "chain",
            "deploy",
            "--rpc-url",
            &url,
            "--key-file",
            &key_file,
        ])
        .args(["--chain-id", &CHAIN_ID.to_string()])
        .env("FHIRLEDGER_LOG", "warn")
        .output()
        .expect("running fhirledger chain deploy");
    assert!(
        out.status.success(),
        "fhirledger chain deploy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployed: Value = serde_json::from_slice(&out.stdout).expect("chain deploy prints JSON");
    let contract = deployed["contract"]
        .as_str()
        .expect("a contract address")
        .to_string();
    let chain = E2eChain {
        rpc_url: url.clone(),
        contract: contract.clone(),
    };
    let env = [
        ("FHIRLEDGER_CHAIN_RPC_URL", url),
        ("FHIRLEDGER_CHAIN_ID", CHAIN_ID.to_string()),
        ("FHIRLEDGER_ANCHOR_CONTRACT", contract),
        ("FHIRLEDGER_CHAIN_KEY_FILE", key_file),
        ("FHIRLEDGER_ANCHOR_INTERVAL", "1s".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    (env, chain)
}

/// The provider and a server configured with it and with `extra_env`.
fn start(extra_env: Vec<(String, String)>, chain: Option<E2eChain>) -> E2e {
    {
        let secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
        let mut provider = None;
        let server = start_server_with(|public_base| {
            // The provider must know the server's callback before the server
            // learns the provider's issuer, so it starts for this base URL.
            let callback = format!("{public_base}/auth/login/{PROVIDER_NAME}/callback");
            let started = TestOidcProvider::start(&[TestClient::confidential(
                "fhirledger",
                &secret,
                &callback,
            )]);
            let setting = json!([{
                "name": PROVIDER_NAME,
                "label": PROVIDER_LABEL,
                "issuer": started.issuer,
                "client_id": "fhirledger",
                "client_secret": secret,
            }]);
            if let Some(old) = provider.replace(started) {
                old.stop();
            }
            let mut env = vec![("FHIRLEDGER_OIDC_PROVIDERS".into(), setting.to_string())];
            env.extend(extra_env.iter().cloned());
            env
        });
        E2e {
            server,
            provider: provider.expect("the provider was started with the server"),
            chain,
        }
    }
}

/// An account waiting for its person to sign in once at the provider.
#[derive(Debug, Clone)]
pub struct Invitee {
    pub user_id: String,
    /// `{issuer}/invite/CODE`.
    pub invitation: String,
    /// The login name the person uses at the provider (its `sub`).
    pub login: String,
}

impl E2e {
    /// POSTs a resource with the server's system token; returns it as stored.
    #[track_caller]
    pub fn create(&'static self, resource: &Value) -> Value {
        let rt = resource["resourceType"].as_str().expect("a resourceType");
        let resp = Request::on(&self.server, "POST", rt).json(resource).send();
        resp.assert_status(201);
        resp.resource(rt)
    }

    /// Creates a resource and returns its id.
    #[track_caller]
    pub fn create_id(&'static self, resource: &Value) -> String {
        crate::fhir::id_of(&self.create(resource))
    }

    /// `fhirledger user add` without a password: the person activates the
    /// account by signing in at the provider as `login` from the invitation.
    pub fn invite(&'static self, role: &str, org: &str, fhir_user: &str) -> Invitee {
        self.invite_as(role, Some(org), Some(fhir_user))
    }

    /// [`E2e::invite`] for accounts that may have no hospital (solution
    /// admins, solution-wide compliance officers) or no FHIR record of their
    /// own (admins, compliance officers).
    pub fn invite_as(
        &'static self,
        role: &str,
        org: Option<&str>,
        fhir_user: Option<&str>,
    ) -> Invitee {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let email = format!("{role}-{tag}@e2e.example.org");
        let mut args = vec!["user", "add", "--role", role, "--email", &email];
        if let Some(org) = org {
            args.extend(["--org", org]);
        }
        if let Some(fhir_user) = fhir_user {
            args.extend(["--fhir-user", fhir_user]);
        }
        let out = cli(&self.server, &args);
        let field = |name: &str| {
            out[name]
                .as_str()
                .unwrap_or_else(|| panic!("user add printed no {name}: {out}"))
                .to_string()
        };
        Invitee {
            user_id: field("user_id"),
            invitation: field("invitation"),
            login: format!("{role}-{tag}"),
        }
    }

    /// Runs `node e2e.mjs SCENARIO` with `input` (plus where the server,
    /// provider, CLI and Chromium are) and returns the JSON it printed.
    /// Panics with its output, the server's and the provider's logs when it
    /// fails or runs longer than two minutes.
    pub fn run(&'static self, scenario: &str, input: Value) -> Value {
        self.run_script("e2e.mjs", scenario, input)
    }

    /// Runs `node SCRIPT SCENARIO` of `conformance/smart` as [`E2e::run`]
    /// does `e2e.mjs` (the portal's scenarios are `portal.mjs`).
    pub fn run_script(&'static self, script: &str, scenario: &str, mut input: Value) -> Value {
        if let Err(e) = ensure_node_modules() {
            panic!("cannot install the Node packages of conformance/smart: {e}");
        }
        let s = &self.server;
        let chromium = std::env::var("FHIRLEDGER_CHROMIUM")
            .ok()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "/usr/bin/chromium".to_string());
        assert!(
            scenario == "backend" || std::path::Path::new(&chromium).exists(),
            "{chromium} is missing: the browser tests need Debian's `chromium` package \
             (`apt-get install chromium`; ./test.sh installs it) or FHIRLEDGER_CHROMIUM"
        );
        input["server"] = json!({
            "publicBase": s.public_base,
            "fhirBase": s.fhir_base,
            "issuer": format!("{}/auth", s.public_base),
        });
        input["provider"] = json!({ "issuer": self.provider.issuer, "label": PROVIDER_LABEL });
        input["cli"] = json!({
            "bin": server_binary(),
            "databaseUrl": s.database_url,
            "publicBase": s.public_base,
        });
        input["chromium"] = json!(chromium);

        let node = std::env::var("FHIRLEDGER_NODE")
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "node".to_string());
        let mut cmd = Command::new(&node);
        cmd.arg(script)
            .arg(scenario)
            .current_dir(smart_dir())
            .env("SMART_E2E_INPUT", input.to_string())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {node:?} (Node.js 20 or newer): {e}"));
        let pid = child.id();
        let mut stdout = child.stdout.take().expect("stdout pipe");
        let mut stderr = child.stderr.take().expect("stderr pipe");
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(SCENARIO_TIMEOUT) {
            Ok(status) => Some(status.expect("waiting for node")),
            Err(_) => {
                // SAFETY: killing our own child by its pid; it has not been
                // reaped (the waiter thread is still waiting for it).
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
                let _ = rx.recv();
                None
            }
        };
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        let context = || {
            format!(
                "--- {script} stderr:\n{stderr}\n--- stdout:\n{stdout}\n--- server log:\n{}\n--- provider log:\n{}",
                s.log_tail(60),
                self.provider.log_tail(30)
            )
        };
        let Some(status) = status else {
            panic!(
                "scenario {scenario} ran longer than {SCENARIO_TIMEOUT:?}\n{}",
                context()
            );
        };
        assert!(
            status.success(),
            "scenario {scenario} failed ({status})\n{}",
            context()
        );
        let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
        let result = last
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or_else(|| panic!("scenario {scenario} printed no JSON\n{}", context()));
        // Captured by the test harness: shown when the test fails (or with
        // --nocapture).
        eprintln!(
            "e2e scenario {scenario} took {:.1}s and saw:\n{result:#}",
            started.elapsed().as_secs_f64()
        );
        result
    }
}
