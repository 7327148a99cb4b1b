//! A small request/response layer over reqwest's blocking client, with
//! failure messages that show the exchange and the server's recent log.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;

use crate::server::{server, TestServer};

pub const FHIR_JSON: &str = "application/fhir+json";
pub const FHIR_XML: &str = "application/fhir+xml";

/// The shared HTTP client (no redirects followed, generous timeout).
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(32)
            // Well under the server's keep-alive (actix's 5 s): a connection the server
            // is closing for idleness is never picked for the next request, which would
            // fail with "IncompleteMessage" (a POST cannot be retried blindly).
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("the reqwest client builds")
    })
}

/// The FHIR base of the shared server, e.g. `http://localhost:PORT/fhir`.
pub fn base() -> String {
    server().fhir_base.clone()
}

/// `path` resolved against the shared server's FHIR base.
pub fn url(path: &str) -> String {
    server().url(path)
}

/// A request being built.
#[must_use]
pub struct Request {
    server: &'static TestServer,
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    /// Send the server's default token unless another Authorization is set.
    default_auth: bool,
}

pub fn request(method: &str, path: &str) -> Request {
    Request::on(server(), method, path)
}
pub fn get(path: &str) -> Request {
    request("GET", path)
}
pub fn head(path: &str) -> Request {
    request("HEAD", path)
}
pub fn post(path: &str) -> Request {
    request("POST", path)
}
pub fn put(path: &str) -> Request {
    request("PUT", path)
}
pub fn delete(path: &str) -> Request {
    request("DELETE", path)
}

impl Request {
    /// A request to a given server (`path` relative to its FHIR base, or absolute).
    pub fn on(server: &'static TestServer, method: &str, path: &str) -> Request {
        Request {
            server,
            method: Method::from_bytes(method.as_bytes())
                .unwrap_or_else(|e| panic!("'{method}' is not an HTTP method: {e}")),
            url: server.url(path),
            headers: Vec::new(),
            body: None,
            default_auth: true,
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    /// Sends no Authorization header at all.
    pub fn no_auth(mut self) -> Request {
        self.default_auth = false;
        self
    }

    /// Sends this bearer token instead of the default one.
    pub fn bearer(self, token: &str) -> Request {
        self.header("Authorization", format!("Bearer {token}"))
    }

    pub fn accept(self, value: &str) -> Request {
        self.header("Accept", value)
    }

    pub fn content_type(self, value: &str) -> Request {
        self.header("Content-Type", value)
    }

    pub fn if_match(self, value: &str) -> Request {
        self.header("If-Match", value)
    }

    pub fn prefer(self, value: &str) -> Request {
        self.header("Prefer", value)
    }

    /// A FHIR JSON body (`Content-Type: application/fhir+json`).
    pub fn json(self, resource: &Value) -> Request {
        self.content_type(FHIR_JSON)
            .bytes(resource.to_string().into_bytes())
    }

    /// A FHIR XML body (`Content-Type: application/fhir+xml`).
    pub fn xml(self, xml: impl Into<String>) -> Request {
        self.content_type(FHIR_XML).bytes(xml.into().into_bytes())
    }

    /// A raw body; the Content-Type, if any, is set separately.
    pub fn bytes(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }

    fn describe(&self) -> String {
        let mut s = format!("{} {}", self.method, self.url);
        for (k, v) in &self.headers {
            let _ = write!(s, "\n  {k}: {}", String::from_utf8_lossy(v));
        }
        if let Some(body) = &self.body {
            let _ = write!(s, "\n  [{} byte body] {}", body.len(), snippet(body, 300));
        }
        s
    }

    /// Sends the request; a transport failure panics with the server's log.
    pub fn send(self) -> Response {
        self.try_send().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends the request; a transport failure is returned as a message.
    pub fn try_send(mut self) -> Result<Response, String> {
        let has_auth = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if self.default_auth && !has_auth && self.url.contains("/fhir") {
            let token = format!("Bearer {}", self.server.token());
            self.headers
                .push(("Authorization".to_string(), token.into_bytes()));
        }
        let described = self.describe();
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("bad header name {k:?}: {e}"))?;
            let value =
                HeaderValue::from_bytes(v).map_err(|e| format!("bad header value for {k}: {e}"))?;
            headers.append(name, value);
        }
        let mut builder = client()
            .request(self.method.clone(), &self.url)
            .headers(headers);
        if let Some(body) = self.body {
            builder = builder.body(body);
        }
        let result = builder.send().and_then(|resp| {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes()?.to_vec();
            Ok((status, headers, body))
        });
        match result {
            Ok((status, headers, body)) => Ok(Response {
                status,
                headers,
                body,
                request: described,
                server: self.server,
            }),
            Err(e) => Err(format!(
                "{described}\nfailed in transport: {e:?}\nserver running: {}\nserver log:\n{}",
                self.server.is_running(),
                self.server.log_tail(40)
            )),
        }
    }
}

/// A response, with the request that produced it for failure messages.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    request: String,
    server: &'static TestServer,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Response {
    /// The exchange, for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = format!("request: {}\nresponse: {}", self.request, self.status);
        for (k, v) in &self.headers {
            let _ = write!(s, "\n  {k}: {}", String::from_utf8_lossy(v.as_bytes()));
        }
        let _ = write!(
            s,
            "\n  [{} byte body] {}",
            self.body.len(),
            snippet(&self.body, 1500)
        );
        s
    }

    /// Panics with `msg`, the exchange and the server's recent log.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n{}\n--- server log (last lines) ---\n{}",
            self.describe(),
            self.server.log_tail(15)
        )
    }

    /// Asserts the status code.
    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Response {
        if self.status != expected {
            self.fail(&format!("expected HTTP {expected}, got {}", self.status));
        }
        self
    }

    /// A header value (first occurrence) as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// A header that must be present.
    #[track_caller]
    pub fn required_header(&self, name: &str) -> String {
        self.header(name)
            .unwrap_or_else(|| self.fail(&format!("the response has no {name} header")))
    }

    /// The media type of the body, lower case, without parameters.
    pub fn media_type(&self) -> String {
        self.header("content-type")
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (asserts it parses).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| self.fail(&format!("the body is not JSON: {e}")))
    }

    /// Asserts a FHIR JSON body of the given resource type and returns it.
    #[track_caller]
    pub fn resource(&self, resource_type: &str) -> Value {
        if self.media_type() != FHIR_JSON {
            self.fail(&format!("expected Content-Type {FHIR_JSON}"));
        }
        let v = self.json();
        if v["resourceType"] != resource_type {
            self.fail(&format!("expected a {resource_type} body"));
        }
        v
    }

    /// Asserts the status and an OperationOutcome body (JSON) with at least
    /// one issue of severity error or fatal; returns the outcome.
    #[track_caller]
    pub fn assert_outcome(&self, expected: u16) -> Value {
        self.assert_status(expected);
        let oo = self.resource("OperationOutcome");
        let issues = oo["issue"].as_array().cloned().unwrap_or_default();
        if issues.is_empty() {
            self.fail("the OperationOutcome has no issue");
        }
        if !issues
            .iter()
            .any(|i| matches!(i["severity"].as_str(), Some("error") | Some("fatal")))
        {
            self.fail("the OperationOutcome has no issue of severity error or fatal");
        }
        for issue in &issues {
            if issue["code"].as_str().is_none_or(str::is_empty) {
                self.fail("an OperationOutcome issue has no code");
            }
        }
        oo
    }

    /// The `ETag` version number (`W/"3"` → 3).
    #[track_caller]
    pub fn etag_version(&self) -> u64 {
        let etag = self.required_header("etag");
        parse_weak_etag(&etag)
            .unwrap_or_else(|| self.fail(&format!("ETag {etag:?} is not W/\"<n>\"")))
    }
}

/// `W/"3"` → 3.
pub fn parse_weak_etag(etag: &str) -> Option<u64> {
    etag.strip_prefix("W/\"")?.strip_suffix('"')?.parse().ok()
}

/// The first `max` bytes of a body, as text when it is text, else with
/// the odd bytes escaped.
pub fn snippet(body: &[u8], max: usize) -> String {
    let mut cut = &body[..body.len().min(max)];
    let more = if body.len() > max { " ..." } else { "" };
    // Do not call a character split by the cut binary.
    if let Err(e) = std::str::from_utf8(cut) {
        if e.error_len().is_none() {
            cut = &cut[..e.valid_up_to()];
        }
    }
    match std::str::from_utf8(cut) {
        Ok(text) if text.chars().all(|c| !c.is_control() || c.is_whitespace()) => {
            format!("{text}{more}")
        }
        _ => {
            let escaped: String = cut
                .iter()
                .flat_map(|b| std::ascii::escape_default(*b))
                .map(char::from)
                .collect();
            format!("b\"{escaped}\"{more}")
        }
    }
}
