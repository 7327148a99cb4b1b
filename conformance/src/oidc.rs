//! A real external OpenID Connect provider for tests, and a browser stand-in
//! that signs in at it.
//!
//! The provider is `conformance/smart/oidc-provider.mjs` (node-oidc-provider):
//! issuer `http://127.0.0.1:PORT`, PKCE required, any login name accepted
//! (`sub` = the name, `email` = `{name}@example.org`, verified). Each
//! [`TestOidcProvider::start`] runs one `node` child, which dies with the test
//! process like the server does (`PR_SET_PDEATHSIG`, the exit hook, and its
//! stdin closing). `npm ci` runs first when `conformance/smart/node_modules`
//! is missing or older than `package-lock.json` (`./test.sh` does it too).
//!
//! Environment: `FHIRLEDGER_NODE`, the node binary (default `node` on PATH;
//! Node.js 20 or newer).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::{json, Value};

use crate::server::{
    child_running, die_with_parent, drain, last_lines, lock, register_exit_hook,
    spawn_on_keeper_thread, stop_child, tail_of, workspace_root, CLEANUP, LOG_LINES,
};

/// How long node may take to load oidc-provider and say it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A client registered at the test provider.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub client_id: String,
    /// `None`: a public client (`token_endpoint_auth_method: none`).
    pub client_secret: Option<String>,
    pub redirect_uris: Vec<String>,
}

impl TestClient {
    /// A confidential client (`client_secret_basic`).
    pub fn confidential(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        TestClient {
            client_id: client_id.into(),
            client_secret: Some(client_secret.into()),
            redirect_uris: vec![redirect_uri.into()],
        }
    }

    /// A public client: PKCE alone protects its codes.
    pub fn public(client_id: &str, redirect_uri: &str) -> Self {
        TestClient {
            client_id: client_id.into(),
            client_secret: None,
            redirect_uris: vec![redirect_uri.into()],
        }
    }

    fn to_json(&self) -> Value {
        let mut client = json!({
            "client_id": self.client_id,
            "redirect_uris": self.redirect_uris,
        });
        if let Some(secret) = &self.client_secret {
            client["client_secret"] = json!(secret);
        }
        client
    }
}

/// How a [`TestOidcProvider`] behaves, where providers differ.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// Put `email` and `name` in the id_token too (many providers do), not
    /// only behind the userinfo endpoint as the spec prefers.
    pub claims_in_id_token: bool,
}

/// A running `oidc-provider.mjs`.
pub struct TestOidcProvider {
    /// `http://127.0.0.1:PORT` (no trailing slash), as its discovery document says.
    pub issuer: String,
    pid: u32,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl TestOidcProvider {
    /// Starts a provider with these clients; panics with its output when it
    /// does not come up.
    pub fn start(clients: &[TestClient]) -> TestOidcProvider {
        Self::start_with(clients, &ProviderOptions::default())
    }

    /// [`start`](Self::start), with options.
    pub fn start_with(clients: &[TestClient], options: &ProviderOptions) -> TestOidcProvider {
        if let Err(e) = ensure_node_modules() {
            panic!("cannot install the Node packages of the test OpenID Connect provider: {e}");
        }
        let clients = Value::Array(clients.iter().map(TestClient::to_json).collect());
        match try_start(&clients.to_string(), options) {
            Ok(provider) => provider,
            Err(e) => panic!("the test OpenID Connect provider did not start: {e}"),
        }
    }

    /// The last `n` lines it printed (stdout and stderr).
    pub fn log_tail(&self, n: usize) -> String {
        last_lines(&self.log, n)
    }

    /// How many requests like `request` (`"GET /jwks"`: method and path, no
    /// query) the provider has received, counting every request answered
    /// before this call. Exact, because the provider logs each request as it
    /// arrives and this first waits for the log line of a marker request of
    /// its own. Counts within the last [`LOG_LINES`] lines of output.
    pub fn requests(&self, request: &str) -> usize {
        let marker = format!("/fhirledger-test-marker-{:016x}", rand::random::<u64>());
        // A 404, but logged like any other request.
        if let Err(e) = reqwest::blocking::get(format!("{}{marker}", self.issuer)) {
            panic!("the test OpenID Connect provider does not answer: {e}");
        }
        let marker_line = format!("GET {marker}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.log_tail(LOG_LINES);
            if lines.lines().any(|l| l == marker_line) {
                return lines.lines().filter(|l| *l == request).count();
            }
            assert!(
                Instant::now() < deadline,
                "the provider's log never showed {marker_line:?}:\n{lines}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the node process is still alive.
    pub fn is_running(&self) -> bool {
        child_running(self.pid)
    }

    /// Stops it now (SIGTERM) rather than when the test binary exits.
    pub fn stop(&self) {
        stop_child(self.pid);
    }
}

/// `conformance/smart`, the Node package.
pub fn smart_dir() -> PathBuf {
    workspace_root().join("conformance").join("smart")
}

fn node_binary() -> String {
    std::env::var("FHIRLEDGER_NODE")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "node".to_string())
}

/// Runs `npm ci` in [`smart_dir`] unless its `node_modules` is current (its
/// `.package-lock.json` at least as new as `package-lock.json`). Once per
/// process; across processes serialised by a lock on `package-lock.json`.
pub fn ensure_node_modules() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = smart_dir();
        let lockfile = dir.join("package-lock.json");
        let guard = File::open(&lockfile)
            .map_err(|e| format!("cannot open {}: {e}", lockfile.display()))?;
        // SAFETY: flock on a descriptor we own; released when `guard` closes.
        if unsafe { libc::flock(guard.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!(
                "cannot lock {}: {}",
                lockfile.display(),
                std::io::Error::last_os_error()
            ));
        }
        if node_modules_current(&dir) {
            return Ok(());
        }
        eprintln!("conformance: running `npm ci` in {}", dir.display());
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run npm (Node.js 20 or newer and npm are needed): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`npm ci` in {} failed ({}):\n{}\n{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        drop(guard);
        Ok(())
    })
    .clone()
}

fn node_modules_current(dir: &Path) -> bool {
    let modified = |p: PathBuf| fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules").join(".package-lock.json"));
    let wanted = modified(dir.join("package-lock.json"));
    matches!((installed, wanted), (Some(i), Some(w)) if i >= w)
        && dir.join("node_modules").join("oidc-provider").is_dir()
}

fn try_start(clients_json: &str, options: &ProviderOptions) -> Result<TestOidcProvider, String> {
    register_exit_hook();
    let node = node_binary();
    let mut cmd = Command::new(&node);
    cmd.arg("oidc-provider.mjs")
        .args(["--port", "0"])
        .env("OIDC_CLIENTS", clients_json)
        .env(
            "OIDC_CLAIMS_IN_ID_TOKEN",
            if options.claims_in_id_token { "1" } else { "0" },
        )
        .current_dir(smart_dir())
        .env("NO_COLOR", "1")
        // Kept open (the pipe's write end stays in the Child): the provider
        // exits when it closes, i.e. when this process is gone.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = spawn_on_keeper_thread(cmd).map_err(|e| {
        format!("cannot run {node:?} (Node.js 20 or newer is needed; see FHIRLEDGER_NODE): {e}")
    })?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("the child has no stdout pipe")?;
    let stderr = child.stderr.take().ok_or("the child has no stderr pipe")?;
    lock(&CLEANUP).children.push(child);

    let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
    let (tx, rx) = mpsc::channel::<String>();
    for (stream, reader) in [
        ("stdout", Box::new(stdout) as Box<dyn std::io::Read + Send>),
        ("stderr", Box::new(stderr)),
    ] {
        let (log, tx) = (Arc::clone(&log), tx.clone());
        std::thread::Builder::new()
            .name(format!("oidc-provider-{pid}-{stream}"))
            .spawn(move || drain(reader, log, tx))
            .map_err(|e| format!("cannot start the output reader: {e}"))?;
    }
    drop(tx);

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let issuer = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v.get("issuer").and_then(Value::as_str).map(String::from));
                if let Some(issuer) = issuer {
                    return Ok(TestOidcProvider { issuer, pid, log });
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop_child(pid);
                return Err(format!(
                    "no ready line within {READY_TIMEOUT:?}; its output:\n{}",
                    tail_of(&log)
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = stop_child(pid);
                return Err(format!(
                    "it exited before it was ready ({status}); its output:\n{}",
                    tail_of(&log)
                ));
            }
        }
    }
}

/// Where the provider sent the browser back: our redirect URI with `code`,
/// `state` and `iss` (or `error`).
#[derive(Debug, Clone)]
pub struct AuthorizationResponse {
    /// The whole Location URL.
    pub url: String,
    pub params: Vec<(String, String)>,
}

impl AuthorizationResponse {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Signs in at the test provider the way a browser without JavaScript
/// would: follows `authorize_url`'s redirects with a fresh cookie jar,
/// submits each HTML form it is shown (the login form with `login` and any
/// `password`, then the consent form), and stops at the redirect to
/// `redirect_uri`, which it does not follow.
pub fn sign_in(
    authorize_url: &str,
    login: &str,
    redirect_uri: &str,
) -> Result<AuthorizationResponse, String> {
    let client = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the browser's HTTP client: {e}"))?;
    let mut url = Url::parse(authorize_url).map_err(|e| format!("{authorize_url:?}: {e}"))?;
    let mut form: Option<Vec<(String, String)>> = None;
    let mut trail = Vec::new();
    for _ in 0..16 {
        trail.push(format!(
            "{} {url}",
            if form.is_some() { "POST" } else { "GET" }
        ));
        let request = match form.take() {
            Some(fields) => client.post(url.clone()).form(&fields),
            None => client.get(url.clone()),
        };
        let response = request
            .send()
            .map_err(|e| format!("{url}: {e}; so far: {trail:?}"))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("{status} without a Location from {url}"))?;
            let next = url
                .join(location)
                .map_err(|e| format!("bad Location {location:?}: {e}"))?;
            if is_at(&next, redirect_uri) {
                return Ok(AuthorizationResponse {
                    params: next.query_pairs().into_owned().collect(),
                    url: next.to_string(),
                });
            }
            url = next;
            continue;
        }
        let body = response.text().unwrap_or_default();
        if !status.is_success() {
            return Err(format!(
                "{status} from {url}: {}; so far: {trail:?}",
                excerpt(&body)
            ));
        }
        let (action, fields) = html_form(&body)
            .ok_or_else(|| format!("no form at {url}: {}; so far: {trail:?}", excerpt(&body)))?;
        let fields = fields
            .into_iter()
            .map(|(name, value)| match name.as_str() {
                "login" => (name, login.to_string()),
                "password" => (name, "any password".to_string()),
                _ => (name, value),
            })
            .collect();
        url = url
            .join(&action)
            .map_err(|e| format!("bad form action {action:?}: {e}"))?;
        form = Some(fields);
    }
    Err(format!("no redirect to {redirect_uri} after {trail:?}"))
}

fn is_at(url: &Url, redirect_uri: &str) -> bool {
    let mut bare = url.clone();
    bare.set_query(None);
    bare.set_fragment(None);
    bare.as_str() == redirect_uri
        || Url::parse(redirect_uri).is_ok_and(|r| r.as_str() == bare.as_str())
}

fn excerpt(body: &str) -> String {
    body.chars().take(600).collect()
}

/// The first form of an HTML page: its action and its inputs' names and
/// values. Enough for the provider's own simple pages, not for HTML at large.
fn html_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let form = &html[start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let open_tag = &form[..form.find('>')?];
    let action = attribute(open_tag, "action").unwrap_or_default();
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(i) = rest.find("<input") {
        rest = &rest[i..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        if let Some(name) = attribute(tag, "name") {
            fields.push((name, attribute(tag, "value").unwrap_or_default()));
        }
        rest = &rest[end..];
    }
    Some((action, fields))
}

/// `name="value"` in a tag, entity-decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(
        tag[start..start + len]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&#x27;", "'")
            .replace("&#x2F;", "/")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_login_form() {
        let html = r#"<div><form autocomplete="off" action="http://127.0.0.1:1/interaction/abc" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
  <input required type="password" name="password" placeholder="and password" >
  <button type="submit">Sign-in</button></form></div>"#;
        let (action, fields) = html_form(html).unwrap();
        assert_eq!(action, "http://127.0.0.1:1/interaction/abc");
        assert_eq!(
            fields,
            [
                ("prompt".to_string(), "login".to_string()),
                ("login".to_string(), String::new()),
                ("password".to_string(), String::new()),
            ]
        );
    }

    #[test]
    fn recognises_the_redirect_uri() {
        let url = Url::parse("http://127.0.0.1:9/cb?code=x&state=y").unwrap();
        assert!(is_at(&url, "http://127.0.0.1:9/cb"));
        assert!(!is_at(&url, "http://127.0.0.1:9/cb2"));
    }
}
