//! Hostile input, category by category: at least 10,000 generated requests,
//! each category with a known count — broken JSON and XML, deep nesting,
//! huge numbers, invalid UTF-8, oversize bodies, wrong content types, path
//! traversal in ids, SQL injection, header injection, forged and replayed
//! tokens, oversized search parameter lists and hostile token requests —
//! built from one seed (`StdRng`) and sent from several threads.
//!
//! For every request: an answer within [`BOUND`], never a 5xx (a 503 neither:
//! the server is healthy), and on the FHIR API every 4xx carries an
//! OperationOutcome (JSON or XML, as negotiated; HEAD has no body) whose
//! issues each have a severity and a code. The token endpoint answers every
//! hostile form with a 4xx and a JSON OAuth error (`error`,
//! `error_description`; a 429 also `Retry-After`). Some categories check
//! more: searches carrying SQL never find more than the honest search would
//! (the payloads are chosen so that the honest search finds nothing, or one
//! resource), a conditional create, update or delete whose criteria carry
//! SQL matches nothing, forged tokens get 401 with `WWW-Authenticate` and
//! never data, an id that is not a FHIR id is never served, oversize bodies
//! get 413, and nothing echoes `/etc/passwd`, an SQL error or a panic.
//! Afterwards the server process is alive, answers `metadata`, and creates
//! and reads a Patient. All failures are gathered per category and reported
//! together, with an example of each kind.
//!
//! # Answers allowed without an OperationOutcome
//!
//! Only requests that the HTTP layer cannot take as an HTTP/1.1 request may
//! be answered by it (actix-http, before any route or middleware of ours
//! runs) with a bodiless status, or have their connection closed. Each such
//! case is marked where it is built ([`Case::unparseable`],
//! [`Case::head_too_large`], [`Case::uri_too_long`]); it may still get a FHIR
//! answer instead, which is then checked like any other:
//!
//! - field values with control characters (a lone CR, NUL, DEL, ESC, BS),
//!   field names that are not tokens (a space, a parenthesis, a quote,
//!   non-ASCII, an empty name, whitespace before the colon), a line without
//!   a colon, obs-fold (RFC 9112 §5.2 lets the server reject it), a bare LF
//!   (§2.2 lets the server reject it), a request line that is not
//!   `method SP request-target SP HTTP-version` or whose target holds bytes
//!   outside RFC 3986 (non-ASCII, a space, a quote, a backslash), a method
//!   that is not a token, leading empty lines, random bytes, an empty
//!   request, an HTTP/2 preface, a missing, repeated or malformed `Host`
//!   (§3.2: the server MUST answer 400): a 400 without a body, or the
//!   connection closed;
//! - framing attacks (§6.3): conflicting, repeated, listed or invalid
//!   `Content-Length`, `Content-Length` beside `Transfer-Encoding`, unknown or
//!   repeated transfer codings, broken chunk framing: likewise;
//! - a head larger than actix-http's 128 KiB read buffer or with more than
//!   its 96 fields: a bodiless 431, or the connection closed while the
//!   client is still writing;
//! - a request-target longer than 65,534 bytes, the `http` crate's limit for
//!   a URI (actix-http parses the request line with it; reqwest cannot even
//!   send one, so these go out as bytes): a bodiless 400 (or 414/431), or
//!   the connection closed.
//!
//! Everything else, however hostile, gets a FHIR answer: CR LF that forms
//! well-formed extra fields or ends the head early, obs-text bytes (invalid
//! UTF-8) in values, garbage `X-Forwarded-For`, `Prefer`, `If-Match`,
//! `Accept` or `X-Request-Id`, long values and many fields within the limits,
//! an absurd but valid `Content-Length` (413 where a body is read), odd
//! method tokens, absolute-form targets, `Expect: 100-continue`.
//!
//! `conformance::raw::RawRequest` sends the oversize bodies; header injection
//! needs exact bytes (raw bytes in values, framing of our choosing, HEAD,
//! stopping at the first answer of a connection that stays open), so this
//! file writes those to a socket itself ([`exchange`]).

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use conformance::raw::{Framing, RawRequest};
use conformance::smart::{chrono_now, post_form, BackendClient, SigningKey, ALL_SYSTEM_SCOPES};
use conformance::smart_flow::{access_claims_like, forge_token, jwt_claims, jwt_header};
use conformance::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const SEED: u64 = 0x4057_11E5_5EED_0001;
/// Every request must be answered within this.
const BOUND: Duration = Duration::from_secs(15);
/// Threads sending requests.
const WORKERS: usize = 8;
/// Past this, no new request is started (the run has failed anyway).
const RUN_LIMIT: Duration = Duration::from_secs(600);
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// ------------------------------------------------------------- categories

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cat {
    Json,
    Xml,
    Nesting,
    Numbers,
    Utf8,
    Oversize,
    ContentType,
    Traversal,
    Sql,
    Headers,
    Tokens,
    BigSearch,
    TokenEndpoint,
}

impl Cat {
    const ALL: [Cat; 13] = [
        Cat::Json,
        Cat::Xml,
        Cat::Nesting,
        Cat::Numbers,
        Cat::Utf8,
        Cat::Oversize,
        Cat::ContentType,
        Cat::Traversal,
        Cat::Sql,
        Cat::Headers,
        Cat::Tokens,
        Cat::BigSearch,
        Cat::TokenEndpoint,
    ];

    fn name(self) -> &'static str {
        match self {
            Cat::Json => "broken JSON",
            Cat::Xml => "broken XML",
            Cat::Nesting => "deep nesting",
            Cat::Numbers => "huge numbers",
            Cat::Utf8 => "invalid UTF-8",
            Cat::Oversize => "oversize bodies",
            Cat::ContentType => "wrong content types",
            Cat::Traversal => "path traversal and odd ids",
            Cat::Sql => "SQL injection",
            Cat::Headers => "header injection",
            Cat::Tokens => "forged and replayed tokens",
            Cat::BigSearch => "oversized search parameters",
            Cat::TokenEndpoint => "hostile token requests",
        }
    }

    /// How many requests the category sends.
    fn planned(self) -> usize {
        match self {
            Cat::Json => 1100,
            Cat::Xml => 1100,
            Cat::Nesting => 200,
            Cat::Numbers => 500,
            Cat::Utf8 => 1100,
            Cat::Oversize => 100,
            Cat::ContentType => 1000,
            Cat::Traversal => 1100,
            Cat::Sql => 1600,
            Cat::Headers => 500,
            Cat::Tokens => 1100,
            Cat::BigSearch => 300,
            Cat::TokenEndpoint => 500,
        }
    }
}

// ------------------------------------------------------------- requests

/// A body, generated when sent when it is large.
#[derive(Clone)]
enum Payload {
    Eager(Vec<u8>),
    Lazy(Arc<dyn Fn() -> Vec<u8> + Send + Sync>),
}

impl Payload {
    fn lazy(f: impl Fn() -> Vec<u8> + Send + Sync + 'static) -> Payload {
        Payload::Lazy(Arc::new(f))
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Eager(b) => b.clone(),
            Payload::Lazy(f) => f(),
        }
    }
}

/// A request sent through the conformance HTTP client.
struct Http {
    on: &'static TestServer,
    method: &'static str,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Payload>,
    no_auth: bool,
}

impl Http {
    fn new(method: &'static str, path: impl Into<String>) -> Http {
        Http {
            on: server(),
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
            no_auth: false,
        }
    }

    fn h(mut self, name: &str, value: impl AsRef<[u8]>) -> Http {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    fn ct(self, value: impl AsRef<[u8]>) -> Http {
        self.h("Content-Type", value)
    }

    fn accept(self, value: &str) -> Http {
        self.h("Accept", value)
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Http {
        self.body = Some(Payload::Eager(body.into()));
        self
    }

    fn no_auth(mut self) -> Http {
        self.no_auth = true;
        self
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The format an error answer must be in, when it is plain: `_format`
    /// absent, then `Accept` (reqwest sends `*/*` when we set none), then the
    /// body's FHIR format, then JSON.
    fn negotiated(&self) -> Option<&'static str> {
        if self.path.contains("_format") || self.path.contains("_pretty") {
            return None;
        }
        if self.headers.iter().filter(|(k, _)| k == "Accept").count() > 1 {
            return None;
        }
        if let Some(accept) = self.header("Accept") {
            return match accept {
                b"application/fhir+json" => Some(FHIR_JSON),
                b"application/fhir+xml" => Some(FHIR_XML),
                _ => None,
            };
        }
        let Some(ct) = self.header("Content-Type") else {
            return Some(FHIR_JSON);
        };
        let ct = std::str::from_utf8(ct).ok()?;
        let binary = self.path.starts_with("Binary");
        match body_family(ct) {
            Some(Family::Xml) if binary && !is_fhir_mime(ct) => Some(FHIR_JSON),
            Some(Family::Xml) => Some(FHIR_XML),
            _ => Some(FHIR_JSON),
        }
    }
}

/// How a request goes out.
enum Wire {
    /// Through the conformance HTTP client (reqwest).
    Http(Http),
    /// Through `conformance::raw` (a connection of its own).
    Raw {
        on: &'static TestServer,
        method: &'static str,
        target: String,
        headers: Vec<(String, String)>,
        body: Payload,
        framing: Framing,
    },
    /// Exactly these bytes on a fresh connection; with `half_close` the
    /// write side is shut once they are written.
    Bytes {
        on: &'static TestServer,
        bytes: Payload,
        head: bool,
        half_close: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Fhir,
    OAuth,
}

/// What a category checks beyond the common assertions.
#[derive(Clone)]
enum Rule {
    Any,
    /// 401 with a `WWW-Authenticate: Bearer` challenge.
    Unauthorized,
    /// 401 with a challenge, or 403 (for a batch, a 200 whose every entry
    /// is refused): a token of ours that grants nothing.
    Denied,
    /// One of these statuses.
    Status(&'static [u16]),
    /// A 4xx.
    Refused,
    /// A 2xx is a searchset Bundle with no match and a total of 0.
    NoMatches,
    /// A 2xx is a searchset Bundle with at most this many matches.
    AtMost(usize),
    /// A conditional create or update whose criteria match nothing: never
    /// 200 (an existing resource) or 412 (several).
    NotMatched,
    /// A conditional delete (with `Prefer: return=OperationOutcome`) whose
    /// criteria match nothing.
    NothingDeleted,
    /// An id that is not a FHIR id: never a 2xx.
    NotServed,
    /// A 201's first identifier value is exactly this.
    Echo(String),
    /// No field of the answer was injected by the request.
    NoSplit,
    /// The answer never contains this text.
    Lacks(&'static str),
    /// A created resource keeps the number it was sent (numerically):
    /// at this JSON pointer, or in this XML element's `value`.
    Number {
        pointer: &'static str,
        element: &'static str,
        sent: String,
    },
}

struct Case {
    cat: Cat,
    /// What makes it hostile, for the report.
    what: String,
    wire: Wire,
    api: Api,
    rule: Rule,
    head: bool,
    /// Statuses the HTTP layer may give without an OperationOutcome.
    bare: &'static [u16],
    /// Whether the connection may be closed without an answer.
    may_close: bool,
    /// The media type an OperationOutcome must be in.
    want: Option<&'static str>,
}

impl Case {
    fn http(cat: Cat, what: impl Into<String>, h: Http) -> Case {
        Case {
            cat,
            what: what.into(),
            head: h.method == "HEAD",
            want: h.negotiated(),
            wire: Wire::Http(h),
            api: Api::Fhir,
            rule: Rule::Any,
            bare: &[],
            may_close: false,
        }
    }

    fn bytes(cat: Cat, what: impl Into<String>, on: &'static TestServer, bytes: Vec<u8>) -> Case {
        let head = bytes.starts_with(b"HEAD ");
        Case {
            cat,
            what: what.into(),
            wire: Wire::Bytes {
                on,
                bytes: Payload::Eager(bytes),
                head,
                half_close: false,
            },
            api: Api::Fhir,
            rule: Rule::Any,
            head,
            bare: &[],
            may_close: false,
            want: None,
        }
    }

    fn rule(mut self, rule: Rule) -> Case {
        self.rule = rule;
        self
    }

    fn oauth(mut self) -> Case {
        self.api = Api::OAuth;
        self.want = None;
        self
    }

    /// Not parseable HTTP/1.1: a bodiless 400 or a closed connection is
    /// acceptable (see the module documentation).
    fn unparseable(mut self) -> Case {
        self.bare = &[400];
        self.may_close = true;
        self
    }

    /// A head over actix-http's limits: a bodiless 431 (or 414), or the
    /// connection closed while the client still writes.
    fn head_too_large(mut self) -> Case {
        self.bare = &[414, 431];
        self.may_close = true;
        self
    }

    /// A request-target over 65,534 bytes: actix-http reads it with the
    /// `http` crate, whose URIs end there, and answers a bodiless 400 (or
    /// 414/431, or closes) before routing. (reqwest cannot send it at all.)
    fn uri_too_long(mut self) -> Case {
        self.bare = &[400, 414, 431];
        self.may_close = true;
        self
    }

    fn half_close(mut self) -> Case {
        if let Wire::Bytes { half_close, .. } = &mut self.wire {
            *half_close = true;
        }
        self
    }

    fn want(mut self, media_type: Option<&'static str>) -> Case {
        self.want = media_type;
        self
    }

    /// The request, for the report.
    fn describe(&self) -> String {
        match &self.wire {
            Wire::Http(h) => {
                let mut s = format!("{} {}", h.method, cut(&h.path, 240));
                for (k, v) in &h.headers {
                    s.push_str(&format!(" [{k}: {}]", snippet(v, 100)));
                }
                if h.no_auth {
                    s.push_str(" [no Authorization]");
                }
                if let Some(body) = &h.body {
                    let body = body.bytes();
                    s.push_str(&format!(
                        " body {} bytes: {}",
                        body.len(),
                        snippet(&body, 200)
                    ));
                }
                s
            }
            Wire::Raw {
                method,
                target,
                headers,
                body,
                framing,
                ..
            } => {
                let mut s = format!("(raw) {method} {}", cut(target, 240));
                for (k, v) in headers {
                    s.push_str(&format!(" [{k}: {}]", cut(v, 100)));
                }
                s.push_str(&format!(
                    " {:?} body of {} bytes",
                    framing,
                    body.bytes().len()
                ));
                s
            }
            Wire::Bytes { bytes, .. } => {
                let bytes = bytes.bytes();
                format!("(bytes) {} bytes: {}", bytes.len(), snippet(&bytes, 400))
            }
        }
    }
}

// ------------------------------------------------------------- answers

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn media_type(&self) -> String {
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

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn send(wire: &Wire) -> Result<Answer, String> {
    match wire {
        Wire::Http(h) => {
            let mut r = Request::on(h.on, h.method, &h.path);
            for (k, v) in &h.headers {
                r = r.header(k, v);
            }
            if h.no_auth {
                r = r.no_auth();
            }
            if let Some(body) = &h.body {
                r = r.bytes(body.bytes());
            }
            let resp = r.try_send()?;
            Ok(Answer {
                status: resp.status,
                headers: resp
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: resp.body,
            })
        }
        Wire::Raw {
            on,
            method,
            target,
            headers,
            body,
            framing,
        } => {
            let mut r = RawRequest::new(method, target);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            let resp = r.body(body.bytes(), *framing).send(on)?;
            Ok(Answer {
                status: resp.status,
                headers: resp.headers,
                body: resp.body,
            })
        }
        Wire::Bytes {
            on,
            bytes,
            head,
            half_close,
        } => exchange(on, bytes.bytes(), *head, *half_close),
    }
}

/// Writes `wire` on a fresh connection (from another thread, so an early
/// answer is read even when the server stops reading) and reads until the
/// first complete final answer, the end of the connection, or the bound.
fn exchange(
    on: &TestServer,
    wire: Vec<u8>,
    head: bool,
    half_close: bool,
) -> Result<Answer, String> {
    let deadline = Instant::now() + BOUND + Duration::from_secs(5);
    let mut stream =
        TcpStream::connect(&on.bind).map_err(|e| format!("cannot connect to {}: {e}", on.bind))?;
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    writer
        .set_write_timeout(Some(BOUND))
        .map_err(|e| e.to_string())?;
    let writing = std::thread::spawn(move || {
        let _ = writer.write_all(&wire);
        let _ = writer.flush();
        if half_close {
            let _ = writer.shutdown(Shutdown::Write);
        }
    });
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = loop {
        if let Some(answer) = parse_answer(&received, head, false) {
            break Ok(answer);
        }
        if Instant::now() > deadline {
            break Err(format!(
                "no complete answer in time ({} bytes received)",
                received.len()
            ));
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                break parse_answer(&received, head, true).ok_or_else(|| {
                    format!(
                        "the connection was closed without a complete answer ({} bytes: {})",
                        received.len(),
                        snippet(&received, 200)
                    )
                })
            }
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                break parse_answer(&received, head, true).ok_or_else(|| {
                    format!(
                        "the connection failed without a complete answer ({e}; {} bytes: {})",
                        received.len(),
                        snippet(&received, 200)
                    )
                })
            }
        }
    };
    let _ = stream.shutdown(Shutdown::Both);
    let _ = writing.join();
    outcome
}

/// The first final (non-1xx) answer in `data`, if complete.
fn parse_answer(data: &[u8], head: bool, eof: bool) -> Option<Answer> {
    let mut rest = data;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let text = String::from_utf8_lossy(&rest[..end]);
        let mut lines = text.split("\r\n");
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let after = &rest[end + 4..];
        if (100..200).contains(&status) {
            rest = after;
            continue;
        }
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body = if head || status == 204 || status == 304 {
            Vec::new()
        } else if find("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            dechunk(after)?
        } else if let Some(len) = find("content-length") {
            let len: usize = len.parse().ok()?;
            if after.len() < len {
                return None;
            }
            after[..len].to_vec()
        } else if eof {
            after.to_vec()
        } else {
            return None;
        };
        return Some(Answer {
            status,
            headers,
            body,
        });
    }
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ------------------------------------------------------------- judging

/// Text no answer may ever contain: `/etc/passwd`, an SQL error, a panic.
const LEAKS: &[&str] = &[
    "root:x:0:0",
    "SQLSTATE",
    "syntax error at or near",
    "unterminated quoted string",
    "panicked at",
    "stack backtrace",
];

/// The problems of one exchange: (kind, detail).
fn judge(case: &Case, result: &Result<Answer, String>, elapsed: Duration) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if elapsed > BOUND {
        problems.push((
            format!("no answer within {BOUND:?}"),
            format!("took {elapsed:?}"),
        ));
    }
    let answer = match result {
        Ok(a) => a,
        Err(e) => {
            let timed_out = e.contains("in time") || e.contains("timed out");
            if !case.may_close || timed_out {
                // The request is described already: keep what went wrong.
                let why = e
                    .find("failed in transport")
                    .map(|at| &e[at..])
                    .unwrap_or(e);
                problems.push(("a transport error".into(), cut(why, 900)));
            }
            return problems;
        }
    };
    let text = answer.text();
    if answer.status >= 500 {
        problems.push((
            format!("HTTP {}", answer.status),
            format!("=> {}", snippet(&answer.body, 600)),
        ));
        return problems;
    }
    for leak in LEAKS {
        if text.contains(leak) {
            problems.push((
                format!("the answer leaks '{leak}'"),
                format!("=> {} {}", answer.status, snippet(&answer.body, 600)),
            ));
        }
    }
    let client_error = (400..500).contains(&answer.status);
    match case.api {
        Api::Fhir if client_error && !case.head => {
            let bare =
                case.bare.contains(&answer.status) && outcome_problem(answer, None).is_some();
            if !bare {
                if let Some(why) = outcome_problem(answer, case.want) {
                    problems.push((
                        format!("{} without a clear OperationOutcome", answer.status),
                        format!(
                            "{why}\n=> Content-Type {:?}: {}",
                            answer.header("content-type"),
                            snippet(&answer.body, 400)
                        ),
                    ));
                }
            }
        }
        Api::OAuth => {
            if let Some(why) = oauth_problem(answer) {
                problems.push((
                    format!("{} is not a clear OAuth error", answer.status),
                    format!(
                        "{why}\n=> Content-Type {:?}: {}",
                        answer.header("content-type"),
                        snippet(&answer.body, 400)
                    ),
                ));
            }
        }
        _ => {}
    }
    if let Some((kind, detail)) = rule_problem(&case.rule, answer) {
        problems.push((
            kind,
            format!(
                "{detail}\n=> {} {}",
                answer.status,
                snippet(&answer.body, 500)
            ),
        ));
    }
    problems
}

/// Why the answer is not an OperationOutcome (in `want`, when given) with
/// at least one issue, each with a severity and a code.
fn outcome_problem(a: &Answer, want: Option<&str>) -> Option<String> {
    let media = a.media_type();
    if let Some(want) = want {
        if media != want {
            return Some(format!(
                "expected an OperationOutcome in {want}, got {media:?}"
            ));
        }
    }
    match media.as_str() {
        "application/fhir+json" => {
            let v: Value = match serde_json::from_slice(&a.body) {
                Ok(v) => v,
                Err(e) => return Some(format!("the body is not JSON: {e}")),
            };
            if v["resourceType"] != "OperationOutcome" {
                return Some("the body is not an OperationOutcome".into());
            }
            let issues = v["issue"].as_array().cloned().unwrap_or_default();
            if issues.is_empty() {
                return Some("the OperationOutcome has no issue".into());
            }
            for issue in &issues {
                let severity = issue["severity"].as_str().unwrap_or("");
                if !matches!(severity, "fatal" | "error" | "warning" | "information") {
                    return Some(format!("an issue has no valid severity: {issue}"));
                }
                if issue["code"].as_str().is_none_or(str::is_empty) {
                    return Some(format!("an issue has no code: {issue}"));
                }
            }
            None
        }
        "application/fhir+xml" => xml_outcome_problem(&a.text()),
        other => Some(format!(
            "the body is {other:?}, not a FHIR OperationOutcome"
        )),
    }
}

fn xml_outcome_problem(text: &str) -> Option<String> {
    let Some(root) = text.find("<OperationOutcome") else {
        return Some("no <OperationOutcome> root".into());
    };
    let tag_end = text[root..]
        .find('>')
        .map(|i| root + i)
        .unwrap_or(text.len());
    if !text[root..tag_end].contains("xmlns=\"http://hl7.org/fhir\"") {
        return Some("the OperationOutcome is not in the FHIR namespace".into());
    }
    let issues: Vec<&str> = text
        .split("<issue>")
        .skip(1)
        .map(|s| s.split("</issue>").next().unwrap_or(""))
        .collect();
    if issues.is_empty() {
        return Some("the OperationOutcome has no issue".into());
    }
    let value = |issue: &str, element: &str| -> String {
        let open = format!("<{element} value=\"");
        issue
            .find(&open)
            .map(|i| &issue[i + open.len()..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("")
            .to_string()
    };
    for issue in issues {
        if !matches!(
            value(issue, "severity").as_str(),
            "fatal" | "error" | "warning" | "information"
        ) {
            return Some(format!(
                "an issue has no valid severity: {}",
                cut(issue, 200)
            ));
        }
        if value(issue, "code").is_empty() {
            return Some(format!("an issue has no code: {}", cut(issue, 200)));
        }
    }
    None
}

/// Why a token endpoint answer is not a 4xx with a JSON OAuth error.
fn oauth_problem(a: &Answer) -> Option<String> {
    if !(400..500).contains(&a.status) {
        return Some("a hostile token request must be refused with a 4xx".into());
    }
    if !a.media_type().starts_with("application/json") {
        return Some(format!("the body is {:?}, not JSON", a.media_type()));
    }
    let v: Value = match serde_json::from_slice(&a.body) {
        Ok(v) => v,
        Err(e) => return Some(format!("the body is not JSON: {e}")),
    };
    if v["error"].as_str().is_none_or(str::is_empty) {
        return Some("no 'error'".into());
    }
    if v["error_description"].as_str().is_none_or(str::is_empty) {
        return Some("no 'error_description'".into());
    }
    if a.status == 429 && a.header("retry-after").is_none() {
        return Some("a 429 without Retry-After".into());
    }
    None
}

/// Whether two number literals mean the same value (as far as `f64` tells;
/// enough to see a sign flip or a wrapped integer).
fn same_number(sent: &str, got: &str) -> bool {
    match (sent.trim().parse::<f64>(), got.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) if a.is_infinite() || b.is_infinite() => a == b,
        (Ok(a), Ok(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => true,
    }
}

/// A `batch-response` Bundle whose every entry was refused with a 4xx.
fn is_refused_batch(a: &Answer) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(&a.body) else {
        return false;
    };
    let entries = v["entry"].as_array().cloned().unwrap_or_default();
    v["type"] == "batch-response"
        && !entries.is_empty()
        && entries.iter().all(|e| {
            e["response"]["status"]
                .as_str()
                .is_some_and(|s| s.starts_with('4'))
                && e.get("resource").is_none()
        })
}

/// (search.mode = match entries, total) of a JSON Bundle.
fn bundle_matches(a: &Answer) -> Result<(usize, Option<u64>), String> {
    let v: Value = serde_json::from_slice(&a.body)
        .map_err(|e| format!("a successful search answer is not JSON: {e}"))?;
    if v["resourceType"] != "Bundle" {
        return Err("a successful search answer is not a Bundle".into());
    }
    let matches = v["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"].as_str().unwrap_or("match") == "match")
        .count();
    Ok((matches, v["total"].as_u64()))
}

fn rule_problem(rule: &Rule, a: &Answer) -> Option<(String, String)> {
    let ok = (200..300).contains(&a.status);
    let fail = |kind: &str, detail: String| Some((kind.to_string(), detail));
    match rule {
        Rule::Any => None,
        Rule::Unauthorized => {
            if a.status != 401 {
                return fail(
                    "a forged token was not refused with 401",
                    format!("HTTP {}", a.status),
                );
            }
            match a.header("www-authenticate") {
                Some(c) if c.starts_with("Bearer") => None,
                other => fail(
                    "a 401 without a Bearer challenge",
                    format!("WWW-Authenticate: {other:?}"),
                ),
            }
        }
        Rule::Denied if a.status == 403 => None,
        Rule::Denied if a.status == 200 && is_refused_batch(a) => None,
        Rule::Denied => rule_problem(&Rule::Unauthorized, a),
        Rule::Status(expected) => (!expected.contains(&a.status)).then(|| {
            (
                format!("expected HTTP {expected:?}"),
                format!("got {}", a.status),
            )
        }),
        Rule::Refused => (!(400..500).contains(&a.status)).then(|| {
            (
                "not refused with a 4xx".to_string(),
                format!("got {}", a.status),
            )
        }),
        Rule::NoMatches | Rule::AtMost(_) if ok => {
            let most = match rule {
                Rule::AtMost(n) => *n,
                _ => 0,
            };
            match bundle_matches(a) {
                Err(e) => fail("a successful search is not a Bundle", e),
                Ok((matches, total))
                    if matches > most || total.is_some_and(|t| t > most as u64) =>
                {
                    fail(
                        "an injected search found more than the honest one",
                        format!("{matches} matches, total {total:?}, honest at most {most}"),
                    )
                }
                Ok(_) => None,
            }
        }
        Rule::NoMatches | Rule::AtMost(_) => None,
        Rule::NotMatched => matches!(a.status, 200 | 412).then(|| {
            (
                "injected conditional criteria matched existing resources".to_string(),
                format!("HTTP {}", a.status),
            )
        }),
        Rule::NothingDeleted if ok => {
            let text = a.text();
            if a.header("etag").is_some()
                || (text.contains("deleted ") && !text.contains("nothing to delete"))
            {
                fail(
                    "an injected conditional delete deleted something",
                    String::new(),
                )
            } else {
                None
            }
        }
        Rule::NothingDeleted => None,
        Rule::NotServed => ok.then(|| {
            (
                "an id that is not a FHIR id was served".to_string(),
                format!("HTTP {}", a.status),
            )
        }),
        Rule::Echo(expected) if a.status == 201 && a.media_type() == FHIR_JSON => {
            let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
            let got = v["identifier"][0]["value"].as_str().unwrap_or("");
            (got != expected).then(|| {
                (
                    "an identifier carrying SQL was not stored as sent".to_string(),
                    format!("sent {expected:?}, stored {got:?}"),
                )
            })
        }
        Rule::Echo(_) => None,
        Rule::NoSplit => {
            let injected = a.headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("x-injected")
                    || (k.eq_ignore_ascii_case("set-cookie") && v.contains("admin="))
            });
            injected.then(|| {
                (
                    "a header of the request was injected into the answer".to_string(),
                    format!("{:?}", a.headers),
                )
            })
        }
        Rule::Number {
            pointer,
            element,
            sent,
        } if ok => {
            let got = match a.media_type().as_str() {
                "application/fhir+json" => serde_json::from_slice::<Value>(&a.body)
                    .ok()
                    .and_then(|v| v.pointer(pointer).map(Value::to_string)),
                "application/fhir+xml" => {
                    let text = a.text();
                    let open = format!("<{element} value=\"");
                    text.find(&open).and_then(|at| {
                        text[at + open.len()..]
                            .split('"')
                            .next()
                            .map(str::to_string)
                    })
                }
                _ => None,
            };
            match got {
                Some(got) if !same_number(sent, &got) => fail(
                    "a number was stored as another number",
                    format!("sent {sent}, stored {got}"),
                ),
                _ => None,
            }
        }
        Rule::Number { .. } => None,
        Rule::Lacks(text) => a
            .text()
            .contains(text)
            .then(|| (format!("the answer contains '{text}'"), String::new())),
    }
}

// ------------------------------------------------------------- the run's record

#[derive(Default)]
struct Tally {
    sent: BTreeMap<Cat, usize>,
    statuses: BTreeMap<Cat, BTreeMap<String, usize>>,
    slowest: Option<(Duration, Cat, String)>,
    slowest_by_cat: BTreeMap<Cat, Duration>,
    /// Requests allowed to end without an answer that did, by what they were.
    closed: BTreeMap<Cat, BTreeMap<String, usize>>,
    /// (category, kind) → (count, first example)
    findings: BTreeMap<(Cat, String), (usize, String)>,
}

impl Tally {
    fn record(
        &mut self,
        case: &Case,
        result: &Result<Answer, String>,
        elapsed: Duration,
        problems: Vec<(String, String)>,
    ) {
        *self.sent.entry(case.cat).or_default() += 1;
        let status = match result {
            Ok(a) => a.status.to_string(),
            Err(_) => {
                let what: String = case.what.chars().take(60).collect();
                *self
                    .closed
                    .entry(case.cat)
                    .or_default()
                    .entry(what)
                    .or_default() += 1;
                "no answer".to_string()
            }
        };
        *self
            .statuses
            .entry(case.cat)
            .or_default()
            .entry(status)
            .or_default() += 1;
        let by_cat = self.slowest_by_cat.entry(case.cat).or_default();
        *by_cat = (*by_cat).max(elapsed);
        if self.slowest.as_ref().is_none_or(|(d, _, _)| elapsed > *d) {
            self.slowest = Some((elapsed, case.cat, cut(&case.describe(), 200)));
        }
        for (kind, detail) in problems {
            // Where the labels are few, each is a kind of its own.
            let kind = match case.cat {
                Cat::Tokens
                | Cat::Traversal
                | Cat::BigSearch
                | Cat::Headers
                | Cat::TokenEndpoint => {
                    format!("{kind}: {}", case.what)
                }
                _ => kind,
            };
            let entry = self.findings.entry((case.cat, kind)).or_insert_with(|| {
                (
                    0,
                    format!("[{}] {}\n      {detail}", case.what, case.describe()),
                )
            });
            entry.0 += 1;
        }
    }
}

// ------------------------------------------------------------- the world

/// What the run works on: live resources of every hosted type, and tokens.
struct World {
    patient: String,
    patient_identifier: String,
    /// A patient the raw PUTs update.
    put_patient: String,
    /// A patient only forged tokens would delete.
    victim: String,
    consent_patient: String,
    document: String,
    consent: String,
    practitioner: String,
    organization: String,
    role: String,
    binary: String,
    /// `Authorization` values (none, one, or several headers) that must get 401.
    forged: Vec<(String, Vec<Vec<u8>>)>,
    /// A registered backend client (for forged client assertions).
    backend_client: String,
    /// Client assertions that must not authenticate it.
    bad_assertions: Vec<(String, String)>,
}

impl World {
    fn target(&self, ty: &str) -> String {
        match ty {
            "Patient" => self.patient.clone(),
            "DocumentReference" => self.document.clone(),
            "Consent" => self.consent.clone(),
            "Practitioner" => self.practitioner.clone(),
            "Organization" => self.organization.clone(),
            "PractitionerRole" => self.role.clone(),
            "Binary" => self.binary.clone(),
            _ => "not-there".to_string(),
        }
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).expect("signing")
}

/// `token` with its payload edited and its signature kept.
fn edited(token: &str, edit: impl Fn(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = jwt_claims(token);
    edit(&mut claims);
    format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
}

fn setup() -> World {
    let s = server();
    // The second server (small body limit) starts now, not in the middle of the run.
    assert!(small_limit_server().is_running());
    let patient_identifier = uid();
    let patient_id = id_of(&create(&patient(&patient_identifier)));
    let put_patient = new_patient();
    let victim = new_patient();
    let consent_patient = new_patient();
    let document = id_of(&create(&document_reference(&patient_id, &uid())));
    let consent_id = id_of(&create(&consent(&consent_patient, &uid())));
    let practitioner_id = id_of(&create(&practitioner(&uid())));
    let organization_id = id_of(&create(&organization(&uid())));
    let role = id_of(&create(&json!({
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": format!("Practitioner/{practitioner_id}")},
        "active": true
    })));
    let resp = post("Binary")
        .content_type("application/pdf")
        .bytes(b"%PDF-1.4 hostile".to_vec())
        .send();
    resp.assert_status(201);
    let binary = resp
        .required_header("location")
        .rsplit("/Binary/")
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    for _ in 0..3 {
        new_patient();
    }
    // The honest searches the injected ones are held to: the known
    // identifier finds its patient, and there are patients to leak.
    let found = get(&format!(
        "Patient?identifier={}&_total=accurate",
        url_encode(&token(&patient_identifier))
    ))
    .send();
    found.assert_status(200);
    assert_eq!(found.json()["total"], 1, "{:?}", found);
    let all = get("Patient?_total=accurate&_count=1").send();
    all.assert_status(200);
    assert!(all.json()["total"].as_u64().unwrap_or(0) >= 6, "{all:?}");

    let main_token = s.token().to_string();
    let kid = jwt_header(&main_token)["kid"]
        .as_str()
        .expect("the token names its key")
        .to_string();

    // A token limited to Organizations, whose payload is then "escalated".
    let narrow_client = BackendClient::register(s, "system/Organization.rs", SigningKey::es384());
    let narrow = narrow_client.token("system/Organization.rs");
    get(&format!("Organization/{organization_id}"))
        .bearer(&narrow)
        .send()
        .assert_status(200);

    // A token that worked, revoked through the revocation endpoint.
    let revoking = BackendClient::register(s, ALL_SYSTEM_SCOPES, SigningKey::es384());
    let revoked = revoking.token("system/*.rs");
    get(&format!("Patient/{patient_id}"))
        .bearer(&revoked)
        .send()
        .assert_status(200);
    let (status, body) = post_form(
        &format!("{}/auth/revoke", s.public_base),
        &[
            ("token", revoked.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &revoking.assertion()),
        ],
    );
    assert_eq!(status, 200, "revoking: {body}");
    get(&format!("Patient/{patient_id}"))
        .bearer(&revoked)
        .send()
        .assert_outcome(401);

    // A token of another server (the small-limit one: another issuer and audience).
    let other_server = small_limit_server().token().to_string();

    // Tokens signed with the server's own key: the unedited one works, so
    // the refusals of the edited ones are about what was edited.
    let base_claims = access_claims_like(s, &main_token);
    get(&format!("Patient/{patient_id}"))
        .bearer(&forge_token(s, &base_claims))
        .send()
        .assert_status(200);
    let now = chrono_now();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = base_claims.clone();
        edit(&mut c);
        forge_token(s, &c)
    };
    let server_signed: Vec<(&str, String)> = vec![
        (
            "expired a minute ago",
            with(&|c| c["exp"] = json!(now - 60)),
        ),
        (
            "expired long ago",
            with(&|c| {
                c["exp"] = json!(1);
                c["iat"] = json!(0);
            }),
        ),
        (
            "not valid for an hour (nbf)",
            with(&|c| c["nbf"] = json!(now + 3600)),
        ),
        (
            "another issuer",
            with(&|c| c["iss"] = json!("https://evil.example/auth")),
        ),
        (
            "another audience",
            with(&|c| c["aud"] = json!("https://evil.example/fhir")),
        ),
        (
            "the small server's audience",
            with(&|c| c["aud"] = json!(small_limit_server().fhir_base)),
        ),
        (
            "an audience list",
            with(&|c| c["aud"] = json!([s.fhir_base, "https://evil.example/fhir"])),
        ),
        (
            "no exp",
            with(&|c| {
                if let Some(o) = c.as_object_mut() {
                    o.remove("exp");
                }
            }),
        ),
        (
            "no sub",
            with(&|c| {
                if let Some(o) = c.as_object_mut() {
                    o.remove("sub");
                }
            }),
        ),
        ("exp as text", with(&|c| c["exp"] = json!("99999999999"))),
        (
            "an unknown scope",
            with(&|c| c["scope"] = json!("root admin *")),
        ),
        ("an unknown role", with(&|c| c["role"] = json!("superuser"))),
    ];

    // Keys that are not the server's.
    let foreign = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("an RSA key");
    let foreign_der = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        foreign.to_pkcs1_der().expect("PKCS#1").as_bytes().to_vec()
    };
    let foreign_key = EncodingKey::from_rsa_der(&foreign_der);
    let rs384 = SigningKey::rs384();
    let es384 = SigningKey::es384();
    let jwks: Value = conformance::http::client()
        .get(format!("{}/auth/jwks", s.public_base))
        .send()
        .and_then(|r| r.json())
        .expect("the JWK Set");
    let modulus = jwks["keys"][0]["n"].as_str().unwrap_or("n").to_string();

    let claims = jwt_claims(&main_token);
    let alg_none = |alg: &str, sig: &str| {
        format!(
            "{}.{}.{sig}",
            b64(&json!({"alg": alg, "typ": "JWT", "kid": kid})),
            b64(&claims)
        )
    };
    let hs256 = |secret: &[u8]| {
        sign(
            Algorithm::HS256,
            Some(&kid),
            &claims,
            &EncodingKey::from_secret(secret),
        )
    };
    let mut with_jwk = Header::new(Algorithm::RS384);
    with_jwk.kid = Some(rs384.kid.clone());
    with_jwk.jwk = serde_json::from_value(rs384.public_jwk.clone()).ok();
    with_jwk.jku = Some("http://127.0.0.1:9/jwks".into());
    let embedded_jwk = {
        // Signed with the key the header carries.
        let signed = rs384.sign(&claims);
        let parts: Vec<&str> = signed.split('.').collect();
        let header = serde_json::to_value(&with_jwk).expect("a header");
        // The signature covers the original header; the edited header makes it invalid too.
        format!("{}.{}.{}", b64(&header), parts[1], parts[2])
    };
    let parts: Vec<&str> = main_token.split('.').collect();
    let mut flipped_sig = parts[2].as_bytes().to_vec();
    flipped_sig[5] = if flipped_sig[5] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8_lossy(&flipped_sig)
    );

    let bearer = |t: &str| vec![format!("Bearer {t}").into_bytes()];
    let mut forged: Vec<(String, Vec<Vec<u8>>)> = vec![
        ("no Authorization header".into(), vec![]),
        ("garbage 'x'".into(), bearer("x")),
        ("garbage 'null'".into(), bearer("null")),
        ("garbage 'undefined'".into(), bearer("undefined")),
        ("three dots".into(), bearer("...")),
        ("a.b.c".into(), bearer("a.b.c")),
        ("eyJ.eyJ.eyJ".into(), bearer("eyJ.eyJ.eyJ")),
        (
            "five parts (JWE-like)".into(),
            bearer(&format!(
                "{}.{}.{}.{}.{}",
                parts[0], parts[1], "a", "b", "c"
            )),
        ),
        (
            "the token reversed".into(),
            bearer(&main_token.chars().rev().collect::<String>()),
        ),
        (
            "the token upper-cased".into(),
            bearer(&main_token.to_uppercase()),
        ),
        (
            "no signature".into(),
            bearer(&format!("{}.{}.", parts[0], parts[1])),
        ),
        (
            "only a signature".into(),
            bearer(&format!("..{}", parts[2])),
        ),
        ("a fourth part".into(), bearer(&format!("{main_token}.x"))),
        ("a flipped signature byte".into(), bearer(&flipped)),
        (
            "a space inside".into(),
            bearer(&format!("{} {}", &main_token[..20], &main_token[20..])),
        ),
        (
            "obs-text bytes".into(),
            vec![[b"Bearer ".as_slice(), &[0xFF, 0xFE, 0xC0, 0xAF]].concat()],
        ),
        ("alg none".into(), bearer(&alg_none("none", ""))),
        ("alg None".into(), bearer(&alg_none("None", ""))),
        (
            "alg NONE with a signature".into(),
            bearer(&alg_none("NONE", "x")),
        ),
        ("alg nOnE".into(), bearer(&alg_none("nOnE", ""))),
        ("HS256 'secret'".into(), bearer(&hs256(b"secret"))),
        ("HS256 empty secret".into(), bearer(&hs256(b""))),
        (
            "HS256 with the public modulus".into(),
            bearer(&hs256(modulus.as_bytes())),
        ),
        (
            "HS256 with the JWK Set".into(),
            bearer(&hs256(jwks.to_string().as_bytes())),
        ),
        ("HS256 with the kid".into(), bearer(&hs256(kid.as_bytes()))),
        ("HS256 'fhirledger'".into(), bearer(&hs256(b"fhirledger"))),
        (
            "RS256 by a foreign key, the server's kid".into(),
            bearer(&sign(Algorithm::RS256, Some(&kid), &claims, &foreign_key)),
        ),
        (
            "RS256 by a foreign key, a foreign kid".into(),
            bearer(&sign(
                Algorithm::RS256,
                Some("attacker"),
                &claims,
                &foreign_key,
            )),
        ),
        (
            "RS256 by a foreign key, no kid".into(),
            bearer(&sign(Algorithm::RS256, None, &claims, &foreign_key)),
        ),
        (
            "RS384 by a foreign key".into(),
            bearer(&rs384.sign(&claims)),
        ),
        (
            "ES384 by a foreign key".into(),
            bearer(&es384.sign(&claims)),
        ),
        ("an embedded jwk and jku".into(), bearer(&embedded_jwk)),
        (
            "kid path traversal, HS256".into(),
            bearer(&sign(
                Algorithm::HS256,
                Some("../../../../../../dev/null"),
                &claims,
                &EncodingKey::from_secret(b""),
            )),
        ),
        (
            "kid SQL injection, HS256".into(),
            bearer(&sign(
                Algorithm::HS256,
                Some("x' UNION SELECT 'secret'--"),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )),
        ),
        (
            "scope escalated after signing".into(),
            bearer(&edited(&narrow, |c| c["scope"] = json!(ALL_SYSTEM_SCOPES))),
        ),
        (
            "another patient put in after signing".into(),
            bearer(&edited(&main_token, |c| {
                c["patient"] = json!(patient_id.clone())
            })),
        ),
        (
            "subject changed after signing".into(),
            bearer(&edited(&main_token, |c| c["sub"] = json!("admin"))),
        ),
        (
            "expiry extended after signing".into(),
            bearer(&edited(&main_token, |c| {
                c["exp"] = json!(now + 10 * 365 * 86400)
            })),
        ),
        (
            "60 KB of claims added after signing".into(),
            bearer(&edited(&main_token, |c| {
                c["junk"] = json!("j".repeat(60_000))
            })),
        ),
        ("the revoked token".into(), bearer(&revoked)),
        ("another server's token".into(), bearer(&other_server)),
        ("8 KB of garbage".into(), bearer(&"A".repeat(8 * 1024))),
        ("64 KB of garbage".into(), bearer(&"eyJ".repeat(22_000))),
        (
            "the token padded with 60 KB".into(),
            bearer(&format!("{main_token}{}", "A".repeat(60_000))),
        ),
        ("Bearer without a token".into(), vec![b"Bearer".to_vec()]),
        ("Bearer and spaces".into(), vec![b"Bearer    ".to_vec()]),
        ("Bearer and a tab".into(), vec![b"Bearer\t".to_vec()]),
        (
            "Bearer glued to the token".into(),
            vec![format!("Bearer{main_token}").into_bytes()],
        ),
        (
            "the token without a scheme".into(),
            vec![main_token.clone().into_bytes()],
        ),
        (
            "two tokens".into(),
            bearer(&format!("{main_token} {main_token}")),
        ),
        (
            "Basic".into(),
            vec![format!("Basic {}", STANDARD.encode("admin:admin")).into_bytes()],
        ),
        (
            "Basic with the client".into(),
            vec![format!(
                "Basic {}",
                STANDARD.encode(format!("{}:x", revoking.client_id))
            )
            .into_bytes()],
        ),
        (
            "Digest".into(),
            vec![b"Digest username=\"admin\", realm=\"fhir\", response=\"x\"".to_vec()],
        ),
        (
            "Token scheme with a real token".into(),
            vec![format!("Token {main_token}").into_bytes()],
        ),
        (
            "JWT scheme with a real token".into(),
            vec![format!("JWT {main_token}").into_bytes()],
        ),
        ("Negotiate".into(), vec![b"Negotiate YIIB".to_vec()]),
        (
            "two Authorization headers, both garbage".into(),
            vec![b"Bearer x".to_vec(), b"Bearer y".to_vec()],
        ),
        (
            "two Authorization headers, garbage first".into(),
            vec![
                b"Bearer x".to_vec(),
                format!("Bearer {main_token}").into_bytes(),
            ],
        ),
    ];
    for (label, t) in server_signed {
        forged.push((format!("server-signed, {label}"), bearer(&t)));
    }

    // Client assertions for a registered backend client that must not authenticate it.
    let client_id = revoking.client_id.clone();
    let token_url = format!("{}/auth/token", s.public_base);
    let assertion_claims = json!({
        "iss": client_id, "sub": client_id, "aud": token_url,
        "exp": now + 240, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
    });
    let bad_assertions = vec![
        (
            "alg none".to_string(),
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&assertion_claims)
            ),
        ),
        (
            "HS256 'secret'".to_string(),
            sign(
                Algorithm::HS256,
                None,
                &assertion_claims,
                &EncodingKey::from_secret(b"secret"),
            ),
        ),
        ("a foreign key".to_string(), rs384.sign(&assertion_claims)),
        ("garbage".to_string(), "x.y.z".to_string()),
        (
            "the client's key, edited after signing".to_string(),
            edited(&revoking.assertion(), |c| c["sub"] = json!("someone-else")),
        ),
    ];

    World {
        patient: patient_id,
        patient_identifier,
        put_patient,
        victim,
        consent_patient,
        document,
        consent: consent_id,
        practitioner: practitioner_id,
        organization: organization_id,
        role,
        binary,
        forged,
        backend_client: client_id,
        bad_assertions,
    }
}

// ------------------------------------------------------------- fixtures

/// The hosted types that take a FHIR body from clients.
const WRITABLE: &[&str] = &[
    "Patient",
    "DocumentReference",
    "Consent",
    "Practitioner",
    "Organization",
    "PractitionerRole",
    "Binary",
];

/// Types with an `identifier` search parameter.
const IDENTIFIED: &[&str] = &[
    "Patient",
    "Practitioner",
    "Organization",
    "DocumentReference",
    "Consent",
];

/// A valid resource of `ty` with this identifier value.
fn valid(w: &World, ty: &str, ident: &str) -> Value {
    match ty {
        "Patient" => patient(ident),
        "DocumentReference" => document_reference(&w.patient, ident),
        "Consent" => consent(&w.consent_patient, ident),
        "Practitioner" => practitioner(ident),
        "Organization" => organization(ident),
        "PractitionerRole" => json!({
            "resourceType": "PractitionerRole",
            "identifier": [{"system": ID_SYSTEM, "value": ident}],
            "practitioner": {"reference": format!("Practitioner/{}", w.practitioner)},
            "active": true
        }),
        "Binary" => {
            json!({"resourceType": "Binary", "contentType": "text/plain", "data": "aGVsbG8="})
        }
        "AuditEvent" => json!({
            "resourceType": "AuditEvent",
            "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
            "recorded": "2024-01-01T00:00:00Z",
            "agent": [{"requestor": true, "who": {"display": "hostile"}}],
            "source": {"observer": {"display": "hostile"}}
        }),
        other => panic!("no fixture for the hosted type {other}: add one to tests/hostile.rs"),
    }
}

fn with_id(mut v: Value, id: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(id));
    }
    v
}

fn xml_of(v: &Value) -> String {
    fhir_profiles::format::to_xml_string(v, false).expect("the fixture renders as XML")
}

fn transaction(resource: &Value) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{
            "fullUrl": "urn:uuid:3c9a4c4e-7a3e-4f0e-9d7e-6f2b1c0d9a11",
            "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]}
        }]
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Json,
    Xml,
}

/// The FHIR format a Content-Type names (as the server maps them).
fn body_family(ct: &str) -> Option<Family> {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/fhir+json" | "application/json" | "json" | "application/json+fhir" => {
            Some(Family::Json)
        }
        "application/fhir+xml"
        | "application/xml"
        | "text/xml"
        | "xml"
        | "application/xml+fhir" => Some(Family::Xml),
        _ => None,
    }
}

fn is_fhir_mime(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/fhir+json" || essence == "application/fhir+xml"
}

fn is_fhir_id(s: &[u8]) -> bool {
    (1..=64).contains(&s.len())
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn enc(s: &str) -> String {
    url_encode(s)
}

fn enc_bytes(b: &[u8]) -> String {
    b.iter().map(|b| format!("%{b:02X}")).collect()
}

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ...", &s[..end])
}

/// Whether `target` is a request-target RFC 3986 allows on the wire.
fn valid_target(target: &str) -> bool {
    let b = target.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

/// Exact request bytes: a start line, fields (hostile ones go right after
/// `Host`), and a body.
struct Wire1 {
    start: Vec<u8>,
    fields: Vec<Vec<u8>>,
    body: Vec<u8>,
}

impl Wire1 {
    fn new(on: &TestServer, method: &str, target: &str) -> Wire1 {
        let host = on.public_base.trim_start_matches("http://").to_string();
        Wire1 {
            start: format!("{method} {target} HTTP/1.1").into_bytes(),
            fields: vec![
                format!("Host: {host}").into_bytes(),
                format!("Authorization: Bearer {}", on.token()).into_bytes(),
                b"Connection: close".to_vec(),
                b"Accept: application/fhir+json".to_vec(),
            ],
            body: Vec::new(),
        }
    }

    fn start(mut self, line: impl AsRef<[u8]>) -> Wire1 {
        self.start = line.as_ref().to_vec();
        self
    }

    /// A hostile field, right after Host.
    fn field(mut self, line: impl AsRef<[u8]>) -> Wire1 {
        let at = 1.min(self.fields.len());
        self.fields.insert(at, line.as_ref().to_vec());
        self
    }

    fn append(mut self, line: impl AsRef<[u8]>) -> Wire1 {
        self.fields.push(line.as_ref().to_vec());
        self
    }

    /// Drops the default fields whose name is `name`.
    fn without(mut self, name: &str) -> Wire1 {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.fields.retain(|f| {
            !String::from_utf8_lossy(f)
                .to_ascii_lowercase()
                .starts_with(&prefix)
        });
        self
    }

    fn set(self, name: &str, value: impl AsRef<[u8]>) -> Wire1 {
        let line = [name.as_bytes(), b": ", value.as_ref()].concat();
        self.without(name).append(line)
    }

    /// A body with Content-Type and Content-Length.
    fn body(mut self, ct: &str, body: Vec<u8>) -> Wire1 {
        self = self
            .append(format!("Content-Type: {ct}"))
            .append(format!("Content-Length: {}", body.len()));
        self.body = body;
        self
    }

    /// A body with Content-Type, framed by the caller.
    fn raw_body(mut self, ct: &str, framing: &[&str], body: Vec<u8>) -> Wire1 {
        self = self.append(format!("Content-Type: {ct}"));
        for f in framing {
            self = self.append(f);
        }
        self.body = body;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.start.clone();
        out.extend_from_slice(b"\r\n");
        for f in &self.fields {
            out.extend_from_slice(f);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

// ------------------------------------------------------------- generation

struct Gen<'w> {
    rng: StdRng,
    w: &'w World,
    cases: Vec<Case>,
}

impl Gen<'_> {
    fn id(&mut self) -> String {
        format!("{:032x}", self.rng.gen::<u128>())
    }

    fn push(&mut self, case: Case) {
        self.cases.push(case);
    }

    /// A valid resource of `ty` with a fresh identifier.
    fn resource(&mut self, ty: &str) -> Value {
        let ident = self.id();
        valid(self.w, ty, &ident)
    }
}

// 1. Broken JSON -------------------------------------------------------------

fn broken_json(g: &mut Gen) {
    const TOP_LEVEL: &[&str] = &[
        "[]",
        "null",
        "\"Patient\"",
        "42",
        "true",
        "[{\"resourceType\":\"Patient\"}]",
        "{}",
        "\"\"",
        "-",
        "1e999",
        "{\"resourceType\":\"Patient\"",
    ];
    const JSON5: &[(&str, &str)] = &[
        ("{", "{/* comment */"),
        ("{", "{// comment\n"),
        ("\"active\":true", "\"active\":NaN"),
        ("\"active\":true", "\"active\":undefined"),
        ("\"active\":true", "\"active\":0x1"),
        ("\"active\":true", "\"active\":True"),
        ("\"resourceType\":", "resourceType:"),
        ("\"resourceType\":", "'resourceType':"),
        ("\"active\":true", "\"active\":true,"),
    ];
    let n = Cat::Json.planned();
    for i in 0..n {
        let ty = if i % 25 == 24 {
            "AuditEvent"
        } else {
            WRITABLE[i % WRITABLE.len()]
        };
        let put = i % 5 >= 3;
        let id = if put && i % 2 == 0 {
            g.w.target(ty)
        } else {
            g.id()
        };
        let mut v = g.resource(ty);
        if put {
            v = with_id(v, &id);
        }
        let text = v.to_string();
        let mut bytes = text.clone().into_bytes();
        let what: String;
        match i % 12 {
            0 => {
                let cut_at = g.rng.gen_range(0..bytes.len());
                bytes.truncate(cut_at);
                what = format!("truncated at byte {cut_at}");
            }
            1 => {
                let flips = g.rng.gen_range(1..8);
                for _ in 0..flips {
                    let at = g.rng.gen_range(0..bytes.len());
                    bytes[at] = g.rng.gen();
                }
                what = format!("{flips} bytes flipped");
            }
            2 => {
                let at = g.rng.gen_range(0..=bytes.len());
                let junk: Vec<u8> = (0..g.rng.gen_range(1..50)).map(|_| g.rng.gen()).collect();
                what = format!("{} junk bytes inserted", junk.len());
                bytes.splice(at..at, junk);
            }
            3 => {
                let mut removed = 0;
                for _ in 0..g.rng.gen_range(1..4) {
                    let positions: Vec<usize> = bytes
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| b"{}[]:,\"".contains(b))
                        .map(|(i, _)| i)
                        .collect();
                    if let Some(&at) = positions.choose(&mut g.rng) {
                        bytes.remove(at);
                        removed += 1;
                    }
                }
                what = format!("{removed} structural characters removed");
            }
            4 => {
                let replacement = match g.rng.gen_range(0..8) {
                    0 => json!([]),
                    1 => json!({}),
                    2 => Value::Null,
                    3 => json!(true),
                    4 => json!(-12.5),
                    5 => json!("\u{0}"),
                    6 => json!([[{"x": null}]]),
                    _ => json!("9".repeat(400)),
                };
                what = format!("a value somewhere replaced by {replacement}");
                let mut v2 = v.clone();
                replace_somewhere(&mut g.rng, &mut v2, replacement, 0.35);
                bytes = v2.to_string().into_bytes();
            }
            5 => {
                let top = TOP_LEVEL[(i / 12) % TOP_LEVEL.len()];
                what = format!("top level {top}");
                bytes = top.as_bytes().to_vec();
            }
            6 => {
                let tail = match (i / 12) % 6 {
                    0 => "{}".to_string(),
                    1 => " x".to_string(),
                    2 => "]".to_string(),
                    3 => ",".to_string(),
                    4 => text.clone(),
                    _ => "\n{\"resourceType\":\"Patient\"}".to_string(),
                };
                what = format!("trailing {}", cut(&tail, 20));
                bytes.extend_from_slice(tail.as_bytes());
            }
            7 => {
                let (from, to) = JSON5[(i / 12) % JSON5.len()];
                let body = if text.contains(from) {
                    text.replacen(from, to, 1)
                } else {
                    text.replacen('{', "{/* comment */", 1)
                };
                what = format!("not JSON: {to}");
                bytes = body.into_bytes();
            }
            8 => {
                let dup = match (i / 12) % 4 {
                    0 => "\"resourceType\":\"Observation\",".to_string(),
                    1 => format!("\"resourceType\":\"{ty}\","),
                    2 => "\"id\":\"other\",".to_string(),
                    _ => "\"identifier\":[],".to_string(),
                };
                what = format!("duplicate key {dup}");
                let mut body = String::from("{");
                body.push_str(&dup);
                body.push_str(&text[1..]);
                bytes = body.into_bytes();
            }
            9 => {
                let mut v2 = v.clone();
                let change = (i / 12) % 7;
                match change {
                    0 => {
                        if let Some(o) = v2.as_object_mut() {
                            o.remove("resourceType");
                        }
                    }
                    1 => v2["resourceType"] = json!(ty.to_lowercase()),
                    2 => v2["resourceType"] = json!("Observation"),
                    3 => v2["resourceType"] = json!(1),
                    4 => v2["resourceType"] = Value::Null,
                    5 => v2["resourceType"] = json!([ty]),
                    _ => {
                        v2["resourceType"] = json!(if ty == "Patient" {
                            "Practitioner"
                        } else {
                            "Patient"
                        })
                    }
                }
                what = format!("resourceType became {}", v2["resourceType"]);
                bytes = v2.to_string().into_bytes();
            }
            10 => {
                let body: Vec<u8> = match (i / 12) % 8 {
                    0 => Vec::new(),
                    1 => b" ".to_vec(),
                    2 => b"\n\n\t".to_vec(),
                    3 => b"{".to_vec(),
                    4 => b"}".to_vec(),
                    5 => b"{\"\":\"\"}".to_vec(),
                    6 => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
                    _ => b"\0".to_vec(),
                };
                what = format!("body {}", snippet(&body, 20));
                bytes = body;
            }
            _ => {
                let fields: &[(&str, Value)] = &[
                    ("active", json!("yes")),
                    ("active", json!(1)),
                    ("id", json!(5)),
                    ("id", json!({})),
                    ("meta", json!([])),
                    ("meta", json!({"versionId": 7, "lastUpdated": "yesterday"})),
                    ("text", json!(1)),
                    ("extension", json!({"url": 1})),
                    ("extension", json!([{"url": 1, "valueString": []}])),
                    ("contained", json!({})),
                    ("contained", json!(["x"])),
                    ("identifier", json!({"value": 1})),
                    ("identifier", json!([{"system": 1, "value": ["a"]}])),
                    ("birthDate", json!(19800229)),
                    ("gender", json!(["female"])),
                    ("name", json!("Conformance")),
                    ("status", json!(["current"])),
                    ("subject", json!("Patient/x")),
                    ("content", json!({"attachment": "x"})),
                    ("patient", json!([])),
                    ("provision", json!("permit")),
                    ("practitioner", json!({"reference": 7})),
                    ("data", json!(12)),
                    ("contentType", json!(false)),
                ];
                let (field, value) = &fields[(i / 12) % fields.len()];
                what = format!("{field} of the wrong type: {value}");
                let mut v2 = v.clone();
                v2[*field] = value.clone();
                bytes = v2.to_string().into_bytes();
            }
        }
        let (method, path) = if put {
            ("PUT", format!("{ty}/{id}"))
        } else {
            ("POST", ty.to_string())
        };
        let mut h = Http::new(method, path).ct(FHIR_JSON).body(bytes);
        if i % 3 == 0 {
            h = h.accept(FHIR_JSON);
        }
        g.push(Case::http(Cat::Json, what, h));
    }
}

// 2. Broken XML --------------------------------------------------------------

fn broken_xml(g: &mut Gen) {
    let bind = server().bind.clone();
    let n = Cat::Xml.planned();
    for i in 0..n {
        let ty = WRITABLE[i % WRITABLE.len()];
        let bundle = i % 17 == 16;
        let put = !bundle && i % 5 >= 3;
        let id = if put && i % 2 == 0 {
            g.w.target(ty)
        } else {
            g.id()
        };
        let mut v = g.resource(ty);
        if put {
            v = with_id(v, &id);
        }
        if bundle {
            v = transaction(&v);
        }
        let xml = xml_of(&v);
        let root = v["resourceType"].as_str().unwrap_or("Patient").to_string();
        let open = format!("<{root} xmlns=\"http://hl7.org/fhir\">");
        let inner = xml.strip_prefix(&open).unwrap_or(&xml).to_string();
        let round = i / 14;
        let mut rule = Rule::Any;
        let (what, body): (String, Vec<u8>) = match i % 14 {
            0 => {
                let at = g.rng.gen_range(0..xml.len());
                (
                    format!("truncated at byte {at}"),
                    xml.as_bytes()[..at].to_vec(),
                )
            }
            1 => {
                let mut b = xml.clone().into_bytes();
                let flips = g.rng.gen_range(1..8);
                for _ in 0..flips {
                    let at = g.rng.gen_range(0..b.len());
                    b[at] = g.rng.gen();
                }
                (format!("{flips} bytes flipped"), b)
            }
            2 => {
                let mut b = xml.clone().into_bytes();
                let at = g.rng.gen_range(0..=b.len());
                let junk = [
                    b"<".as_slice(),
                    b"&",
                    b">",
                    b"</",
                    b"<!",
                    b"<?",
                    b"\"",
                    b"&#",
                ][round % 8];
                b.splice(at..at, junk.iter().copied());
                (format!("{} inserted", String::from_utf8_lossy(junk)), b)
            }
            3 => {
                let close = format!("</{root}>");
                let body = xml.replacen(&close, "", 1);
                let body = match round % 3 {
                    0 => body,
                    1 => body.replacen("/>", ">", 1),
                    _ => format!("{body}<{root}>"),
                };
                ("an unclosed element".into(), body.into_bytes())
            }
            4 => {
                let close = format!("</{root}>");
                let body = match round % 3 {
                    0 => xml.replacen(&close, &format!("</{root}s>"), 1),
                    1 => xml.replacen("</identifier>", "</identifiers>", 1),
                    _ => xml.replacen("<identifier>", "<identifier><identifier>", 1),
                };
                ("mismatched tags".into(), body.into_bytes())
            }
            5 => {
                let ns = [
                    "",
                    "http://hl7.org/fhir/",
                    "http://hl7.org/fhir2",
                    "urn:evil",
                    "HTTP://HL7.ORG/FHIR",
                    "http://www.w3.org/1999/xhtml",
                ];
                let body = match round % 8 {
                    k @ 0..=5 => xml.replacen(
                        "xmlns=\"http://hl7.org/fhir\"",
                        &format!("xmlns=\"{}\"", ns[k]),
                        1,
                    ),
                    6 => xml.replacen(" xmlns=\"http://hl7.org/fhir\"", "", 1),
                    _ => format!("<f:{root} xmlns:f=\"http://hl7.org/fhir\">{inner}"),
                };
                ("a wrong namespace".into(), body.into_bytes())
            }
            6 => {
                let levels = 4 + round % 6;
                let mut doctype = String::from("<!DOCTYPE lolz [<!ENTITY lol0 \"lol\">");
                for l in 1..=levels {
                    let refs = format!("&lol{};", l - 1).repeat(10);
                    doctype.push_str(&format!("<!ENTITY lol{l} \"{refs}\">"));
                }
                doctype.push_str("]>");
                let body = format!(
                    "<?xml version=\"1.0\"?>{doctype}{}",
                    xml.replacen("value=\"Conformance\"", &format!("value=\"&lol{levels};\""), 1)
                        .replacen("<identifier>", &format!("<text><status value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\">&lol{levels};</div></text><identifier>"), 1)
                );
                (format!("billion laughs, 10^{levels}"), body.into_bytes())
            }
            7 => {
                let big = "a".repeat(50_000);
                let refs = "&a;".repeat(2_000);
                let body = format!(
                    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"{big}\">]>{}",
                    xml.replacen("value=\"Conformance\"", &format!("value=\"{refs}\""), 1)
                        .replacen(
                            "<identifier><system",
                            &format!("<identifier><use value=\"{refs}\"/><system"),
                            1
                        )
                );
                ("quadratic blowup".into(), body.into_bytes())
            }
            8 => {
                let sources = [
                    "file:///etc/passwd".to_string(),
                    "file:///proc/self/environ".to_string(),
                    format!("http://{bind}/fhir/metadata"),
                    "http://169.254.169.254/latest/meta-data/".to_string(),
                    "file:///etc/passwd\" NDATA x".to_string(),
                ];
                let source = &sources[round % sources.len()];
                rule = Rule::Lacks("fhirVersion");
                let body = if round % 7 == 6 {
                    format!(
                        "<?xml version=\"1.0\"?><!DOCTYPE p [<!ENTITY % x SYSTEM \"{source}\"> %x;]>{xml}"
                    )
                } else {
                    let with_ref = xml
                        .replacen("value=\"Conformance\"", "value=\"&xxe;\"", 1)
                        .replacen(
                            "<identifier><system",
                            "<identifier><use value=\"&xxe;\"/><system",
                            1,
                        );
                    format!(
                        "<?xml version=\"1.0\"?><!DOCTYPE {root} [<!ENTITY xxe SYSTEM \"{source}\">]>{with_ref}"
                    )
                };
                (format!("XXE {source}"), body.into_bytes())
            }
            9 => {
                let doctype = match round % 4 {
                    0 => format!("<!DOCTYPE {root}>"),
                    1 => format!("<!DOCTYPE {root} SYSTEM \"http://127.0.0.1:9/evil.dtd\">"),
                    2 => {
                        format!("<!DOCTYPE {root} PUBLIC \"-//EVIL//DTD\" \"file:///etc/passwd\">")
                    }
                    _ => format!(
                        "<!DOCTYPE {root} [<!ELEMENT {root} ANY><!ATTLIST {root} x CDATA \"y\">]>"
                    ),
                };
                (
                    format!("a DOCTYPE: {doctype}"),
                    format!("{doctype}{xml}").into_bytes(),
                )
            }
            10 => {
                let (what, body): (&str, Vec<u8>) = match round % 8 {
                    0 => (
                        "XML 2.0",
                        format!("<?xml version=\"2.0\"?>{xml}").into_bytes(),
                    ),
                    1 => (
                        "declared UTF-16",
                        format!("<?xml version=\"1.0\" encoding=\"UTF-16\"?>{xml}").into_bytes(),
                    ),
                    2 => (
                        "declared EBCDIC",
                        format!("<?xml version=\"1.0\" encoding=\"EBCDIC-US\"?>{xml}").into_bytes(),
                    ),
                    3 => {
                        let mut b = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>".to_vec();
                        match xml.find("Conformance") {
                            Some(at) => {
                                b.extend_from_slice(&xml.as_bytes()[..at]);
                                b.extend_from_slice(b"Conf\xE9rence");
                                b.extend_from_slice(&xml.as_bytes()[at + "Conformance".len()..]);
                            }
                            None => b.extend_from_slice(format!("<!-- \u{e9} -->{xml}").as_bytes()),
                        }
                        ("declared Latin-1 with Latin-1 bytes", b)
                    }
                    4 => (
                        "standalone=maybe",
                        format!("<?xml version=\"1.0\" standalone=\"maybe\"?>{xml}").into_bytes(),
                    ),
                    5 => ("a PI", format!("<?php system('id'); ?>{xml}").into_bytes()),
                    6 => (
                        "a stylesheet PI",
                        format!("<?xml-stylesheet href=\"file:///etc/passwd\"?>{xml}").into_bytes(),
                    ),
                    _ => (
                        "a declaration after whitespace",
                        format!("  \n<?xml version=\"1.0\"?>{xml}").into_bytes(),
                    ),
                };
                (what.to_string(), body)
            }
            11 => {
                let refs = [
                    "&#0;",
                    "&#xD800;",
                    "&#x110000;",
                    "&#99999999999;",
                    "&amp",
                    "&undefined;",
                    "&#x;",
                    "&#-1;",
                ];
                let r = refs[round % refs.len()];
                let body = xml
                    .replacen(
                        "value=\"Conformance\"",
                        &format!("value=\"Con{r}formance\""),
                        1,
                    )
                    .replacen(
                        "<identifier><system",
                        &format!("<identifier><use value=\"{r}\"/><system"),
                        1,
                    );
                (format!("the character reference {r}"), body.into_bytes())
            }
            12 => {
                let body = match round % 5 {
                    0 => format!("{xml}<!-- unclosed"),
                    1 => format!("<!-- -- -->{xml}"),
                    2 => xml.replacen("<identifier>", "<identifier><![CDATA[", 1),
                    3 => xml.replacen("<identifier>", "<identifier><![CDATA[x]]>", 1),
                    _ => xml.replacen("value=\"true\"", "value=\"<![CDATA[true]]>\"", 1),
                };
                ("broken comments or CDATA".into(), body.into_bytes())
            }
            _ => {
                let body = match round % 10 {
                    0 => xml.replacen("value=\"true\"", "value=true", 1),
                    1 => xml.replacen("value=\"true\"", "value=\"true\" value=\"false\"", 1),
                    2 => xml.replacen("value=\"true\"", "value", 1),
                    3 => format!("<{xml}"),
                    4 => format!("{xml}{xml}"),
                    5 => format!("text before{xml}"),
                    6 => String::new(),
                    7 => " \n ".to_string(),
                    8 => xml.replacen(
                        "<identifier>",
                        &format!("<identifier {}=\"x\">", "a".repeat(10_000)),
                        1,
                    ),
                    _ => xml.replacen(
                        "value=\"true\"",
                        &format!("value=\"{}\"", "t".repeat(100_000)),
                        1,
                    ),
                };
                ("broken attributes or roots".into(), body.into_bytes())
            }
        };
        let (method, path) = if bundle {
            ("POST", base())
        } else if put {
            ("PUT", format!("{ty}/{id}"))
        } else {
            ("POST", ty.to_string())
        };
        let ct = match i % 9 {
            7 => "application/xml",
            8 => "text/xml",
            _ => FHIR_XML,
        };
        let mut h = Http::new(method, path).ct(ct).body(body);
        if i % 4 == 0 {
            h = h.accept(FHIR_JSON);
        }
        g.push(Case::http(Cat::Xml, what, h).rule(rule));
    }
}

// 3. Deep nesting ------------------------------------------------------------

fn deep_nesting(g: &mut Gen) {
    const SHAPES: usize = 10;
    let depths = Cat::Nesting.planned() / SHAPES;
    let patient_id = g.w.patient.clone();
    for k in 0..depths {
        let depth = (100.0 * 1000f64.powf(k as f64 / (depths - 1) as f64)).round() as usize;
        for shape in 0..SHAPES {
            let (what, path, ct, body): (&str, String, &str, Payload) = match shape {
                0 => (
                    "a JSON array",
                    "Patient".into(),
                    FHIR_JSON,
                    Payload::lazy(move || {
                        format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
                    }),
                ),
                1 => (
                    "arrays in a Patient",
                    "Patient".into(),
                    FHIR_JSON,
                    Payload::lazy(move || {
                        format!(
                            "{{\"resourceType\":\"Patient\",\"extension\":{}{}}}",
                            "[".repeat(depth),
                            "]".repeat(depth)
                        )
                        .into_bytes()
                    }),
                ),
                2 => (
                    "objects in a Patient",
                    "Patient".into(),
                    FHIR_JSON,
                    Payload::lazy(move || {
                        format!(
                            "{{\"resourceType\":\"Patient\",\"a\":{}1{}}}",
                            "{\"a\":".repeat(depth),
                            "}".repeat(depth)
                        )
                        .into_bytes()
                    }),
                ),
                3 => (
                    "nested extensions",
                    "Patient".into(),
                    FHIR_JSON,
                    Payload::lazy(move || {
                        format!(
                        "{{\"resourceType\":\"Patient\",\"extension\":{}{{\"url\":\"http://example.org/x\",\"valueString\":\"x\"}}{}}}",
                        "[{\"url\":\"http://example.org/x\",\"extension\":[".repeat(depth),
                        "]}]".repeat(depth)
                    ).into_bytes()
                    }),
                ),
                4 => (
                    "nested narrative divs in JSON",
                    "Patient".into(),
                    FHIR_JSON,
                    Payload::lazy(move || {
                        let div = format!(
                            "<div xmlns=\"http://www.w3.org/1999/xhtml\">{}x{}</div>",
                            "<div>".repeat(depth),
                            "</div>".repeat(depth)
                        );
                        json!({"resourceType": "Patient", "text": {"status": "generated", "div": div}}).to_string().into_bytes()
                    }),
                ),
                5 => (
                    "Bundles in Bundles",
                    base(),
                    FHIR_JSON,
                    Payload::lazy(move || {
                        let open = "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"fullUrl\":\"urn:uuid:3c9a4c4e-7a3e-4f0e-9d7e-6f2b1c0d9a11\",\"request\":{\"method\":\"POST\",\"url\":\"Bundle\"},\"resource\":";
                        format!(
                            "{}{{\"resourceType\":\"Patient\"}}{}",
                            open.repeat(depth),
                            "}]}".repeat(depth)
                        )
                        .into_bytes()
                    }),
                ),
                6 => (
                    "nested XML extensions",
                    "Patient".into(),
                    FHIR_XML,
                    Payload::lazy(move || {
                        format!(
                        "<Patient xmlns=\"http://hl7.org/fhir\">{}<valueString value=\"x\"/>{}</Patient>",
                        "<extension url=\"http://example.org/x\">".repeat(depth),
                        "</extension>".repeat(depth)
                    ).into_bytes()
                    }),
                ),
                7 => (
                    "nested XML elements",
                    "Patient".into(),
                    FHIR_XML,
                    Payload::lazy(move || {
                        format!(
                            "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
                            "<a>".repeat(depth),
                            "</a>".repeat(depth)
                        )
                        .into_bytes()
                    }),
                ),
                8 => (
                    "nested XML narrative",
                    format!("Patient/{patient_id}"),
                    FHIR_XML,
                    {
                        let id = patient_id.clone();
                        Payload::lazy(move || {
                            format!(
                            "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"{id}\"/><text><status value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\">{}x{}</div></text></Patient>",
                            "<div>".repeat(depth),
                            "</div>".repeat(depth)
                        ).into_bytes()
                        })
                    },
                ),
                _ => (
                    "mixed arrays and objects",
                    "Organization".into(),
                    FHIR_JSON,
                    Payload::lazy(move || {
                        format!(
                            "{{\"resourceType\":\"Organization\",\"name\":{}1{}}}",
                            "[{\"a\":".repeat(depth),
                            "}]".repeat(depth)
                        )
                        .into_bytes()
                    }),
                ),
            };
            let method = if shape == 8 { "PUT" } else { "POST" };
            let mut h = Http::new(method, path).ct(ct);
            h.body = Some(body);
            g.push(Case::http(Cat::Nesting, format!("{what}, {depth} deep"), h));
        }
    }
}

// 4. Huge numbers ------------------------------------------------------------

fn huge_numbers(g: &mut Gen) {
    let nines = "9".repeat(400);
    let numbers: Vec<String> = vec![
        "1e999999".into(),
        "-1e999999".into(),
        "1e-999999".into(),
        "-0".into(),
        "18446744073709551615".into(),
        "4294967296".into(),
        nines.clone(),
        format!("-{nines}"),
        format!("1{}.5", "0".repeat(400)),
        "2147483648".into(),
        "-2147483649".into(),
        "9223372036854775808".into(),
        "-9223372036854775809".into(),
        "18446744073709551616".into(),
        "340282366920938463463374607431768211456".into(),
        "1.0".into(),
        "9223372036854775807".into(),
        "1E2".into(),
        "0.000000000000000000000000000000000000001".into(),
        "NaN".into(),
        "Infinity".into(),
        "-Infinity".into(),
        "\"12\"".into(),
        "0x10".into(),
        "+1".into(),
    ];
    const PLACES: usize = 20;
    let w = g.w;
    let p = w.patient.clone();
    let doc_xml = xml_of(&document_reference(&w.patient, "numbers"));
    for (k, n) in numbers.iter().enumerate() {
        let bare = n.trim_matches('"');
        let q = enc(bare);
        for place in 0..PLACES {
            let ident = g.id();
            let identifier =
                format!("\"identifier\":[{{\"system\":\"{ID_SYSTEM}\",\"value\":\"{ident}\"}}]");
            let xml_identifier = format!("<identifier><system value=\"{ID_SYSTEM}\"/><value value=\"{ident}\"/></identifier>");
            let ext = |t: &str| {
                format!("{{\"resourceType\":\"Patient\",\"extension\":[{{\"url\":\"http://example.org/n\",\"{t}\":{n}}}],{identifier}}}")
            };
            let (what, h) = match place {
                0 => ("Patient.multipleBirthInteger", Http::new("POST", "Patient").ct(FHIR_JSON).body(format!("{{\"resourceType\":\"Patient\",{identifier},\"multipleBirthInteger\":{n}}}"))),
                1 => ("Attachment.size", Http::new("POST", "DocumentReference").ct(FHIR_JSON).body(format!(
                    "{{\"resourceType\":\"DocumentReference\",{identifier},\"status\":\"current\",\"subject\":{{\"reference\":\"Patient/{p}\"}},\"content\":[{{\"attachment\":{{\"contentType\":\"text/plain\",\"data\":\"aGk=\",\"size\":{n}}}}}]}}"
                ))),
                2 => ("valueDecimal", Http::new("POST", "Patient").ct(FHIR_JSON).body(ext("valueDecimal"))),
                3 => ("valueInteger", Http::new("POST", "Patient").ct(FHIR_JSON).body(ext("valueInteger"))),
                4 => ("valuePositiveInt", Http::new("POST", "Patient").ct(FHIR_JSON).body(ext("valuePositiveInt"))),
                5 => ("valueUnsignedInt", Http::new("POST", "Patient").ct(FHIR_JSON).body(ext("valueUnsignedInt"))),
                6 => ("a number for a boolean", Http::new("POST", "Patient").ct(FHIR_JSON).body(format!("{{\"resourceType\":\"Patient\",{identifier},\"active\":{n}}}"))),
                7 => ("a number for a string (PUT)", Http::new("PUT", format!("Organization/{}", w.organization)).ct(FHIR_JSON).body(format!("{{\"resourceType\":\"Organization\",\"id\":\"{}\",{identifier},\"name\":{n}}}", w.organization))),
                8 => ("XML multipleBirthInteger", Http::new("POST", "Patient").ct(FHIR_XML).body(format!("<Patient xmlns=\"http://hl7.org/fhir\">{xml_identifier}<multipleBirthInteger value=\"{bare}\"/></Patient>"))),
                9 => ("XML valueDecimal", Http::new("POST", "Patient").ct(FHIR_XML).body(format!("<Patient xmlns=\"http://hl7.org/fhir\"><extension url=\"http://example.org/n\"><valueDecimal value=\"{bare}\"/></extension>{xml_identifier}</Patient>"))),
                10 => ("XML Attachment.size", Http::new("POST", "DocumentReference").ct(FHIR_XML).body(doc_xml.replacen("<size value=\"11\"/>", &format!("<size value=\"{bare}\"/>"), 1).replacen("value=\"numbers\"", &format!("value=\"{ident}\""), 1))),
                11 => ("_count", Http::new("GET", format!("Patient?_count={q}"))),
                12 => ("birthdate", Http::new("GET", format!("Patient?birthdate={q}"))),
                13 => ("date", Http::new("GET", format!("DocumentReference?date={q}"))),
                14 => ("_since", Http::new("GET", format!("Patient/_history?_since={q}"))),
                15 => ("a version id", Http::new("GET", format!("Patient/{p}/_history/{q}"))),
                16 => ("_cursor", Http::new("GET", format!("Patient?_cursor={q}"))),
                17 => ("AuditEvent date", Http::new("GET", format!("AuditEvent?date=gt{q}"))),
                18 => ("birthdate ge", Http::new("GET", format!("Patient?birthdate=ge{q}"))),
                _ => ("history _count", Http::new("GET", format!("Patient/{p}/_history?_count={q}"))),
            };
            let h = if (k + place) % 3 == 0 {
                h.accept(FHIR_JSON)
            } else {
                h
            };
            // What is stored must be what was sent; a number for a boolean
            // or a string is refused.
            let kept = |pointer: &'static str, element: &'static str| Rule::Number {
                pointer,
                element,
                sent: bare.to_string(),
            };
            let rule = match place {
                0 | 8 => kept("/multipleBirthInteger", "multipleBirthInteger"),
                1 | 10 => kept("/content/0/attachment/size", "size"),
                2 | 9 => kept("/extension/0/valueDecimal", "valueDecimal"),
                3 => kept("/extension/0/valueInteger", "valueInteger"),
                4 => kept("/extension/0/valuePositiveInt", "valuePositiveInt"),
                5 => kept("/extension/0/valueUnsignedInt", "valueUnsignedInt"),
                // A number in quotes is a string: fine for Organization.name.
                7 if n.starts_with('"') => Rule::Any,
                6 | 7 => Rule::Refused,
                _ => Rule::Any,
            };
            g.push(Case::http(Cat::Numbers, format!("{what} = {}", cut(n, 40)), h).rule(rule));
        }
    }
}

// 5. Invalid UTF-8 -----------------------------------------------------------

const BAD_UTF8: [&[u8]; 12] = [
    b"\xFF\xFE",
    b"\xC0\xAF",
    b"\xE0\x80\xAF",
    b"\xED\xA0\x80",
    b"\xED\xBF\xBF",
    b"\xF8\x88\x80\x80\x80",
    b"\xF4\x90\x80\x80",
    b"\xE2\x82",
    b"\x80",
    b"\xC3",
    b"\xFE",
    b"\xC3\x28",
];

fn invalid_utf8(g: &mut Gen) {
    const POSITIONS: usize = 23;
    const QUERY: &[&str] = &[
        "name",
        "identifier",
        "_id",
        "_sort",
        "_elements",
        "_format",
        "_count",
        "_cursor",
        "_summary",
        "subject",
        "_include",
        "family",
    ];
    const HEADERS: &[&str] = &[
        "Accept",
        "Content-Type",
        "If-Match",
        "If-None-Exist",
        "Prefer",
        "Authorization",
        "X-Request-Id",
        "X-Forwarded-For",
        "X-Security-Context",
        "Origin",
    ];
    let n = Cat::Utf8.planned();
    for i in 0..n {
        let pos = i % POSITIONS;
        let round = i / POSITIONS;
        let seq = BAD_UTF8[(round + pos) % BAD_UTF8.len()];
        let seq_text = enc_bytes(seq);
        let ty = WRITABLE[(round + pos) % (WRITABLE.len() - 1)];
        let target = g.w.target(ty);
        let v = g.resource(ty);
        let json_text = v.to_string();
        let splice = |text: &str, at: &str| -> Vec<u8> {
            match text.find(at) {
                Some(i) => [
                    &text.as_bytes()[..i + at.len()],
                    seq,
                    &text.as_bytes()[i + at.len()..],
                ]
                .concat(),
                None => [seq, text.as_bytes()].concat(),
            }
        };
        let mut rule = Rule::Any;
        let (what, h): (String, Http) = match pos {
            0 => ("in a string value".into(), Http::new("POST", ty).ct(FHIR_JSON).body(splice(&json_text, "\"value\":\""))),
            1 => ("in the resourceType".into(), Http::new("POST", ty).ct(FHIR_JSON).body(splice(&json_text, "\"resourceType\":\""))),
            2 => ("in a key".into(), Http::new("POST", ty).ct(FHIR_JSON).body(splice(&json_text, ",\""))),
            3 => ("before the body".into(), Http::new("POST", ty).ct(FHIR_JSON).body(splice(&json_text, ""))),
            4 => ("in a narrative".into(), Http::new("POST", "Patient").ct(FHIR_JSON).body(
                [br#"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">"#.as_slice(), seq, br#"</div>"}}"#].concat())),
            5 => ("in the id of a PUT".into(), Http::new("PUT", format!("{ty}/{target}")).ct(FHIR_JSON).body(
                splice(&with_id(v.clone(), &target).to_string(), "\"id\":\""))),
            6 => ("in an XML attribute".into(), Http::new("POST", ty).ct(FHIR_XML).body(splice(&xml_of(&v), "value=\""))),
            7 => ("in an XML element name".into(), Http::new("POST", ty).ct(FHIR_XML).body(splice(&xml_of(&v), "<identifier"))),
            8 => ("after the XML declaration".into(), Http::new("POST", ty).ct(FHIR_XML).body(
                [b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>".as_slice(), seq, xml_of(&v).as_bytes()].concat())),
            9 => {
                let esc = ["\\ud800", "\\udfff", "\\ud800\\u0041", "\\udc00\\ud800"][round % 4];
                (format!("the JSON escape {esc}"), Http::new("POST", "Patient").ct(FHIR_JSON).body(
                    format!("{{\"resourceType\":\"Patient\",\"name\":[{{\"family\":\"a{esc}b\"}}]}}")))
            }
            10 => ("in a read id".into(), Http::new("GET", format!("{ty}/{seq_text}"))),
            11 => ("in an updated id".into(), Http::new("PUT", format!("{ty}/x{seq_text}")).ct(FHIR_JSON).body(json_text.clone())),
            12 => ("in a deleted id".into(), Http::new("DELETE", format!("{ty}/{seq_text}x"))),
            13 => ("in the type".into(), Http::new("GET", format!("{seq_text}{ty}"))),
            14 => ("in a version id".into(), Http::new("GET", format!("{ty}/{target}/_history/{seq_text}"))),
            15 => {
                let param = QUERY[round % QUERY.len()];
                (format!("in the {param} value"), Http::new("GET", format!("{ty}?{param}={seq_text}")))
            }
            16 => ("in a parameter name".into(), Http::new("GET", format!("{ty}?x{seq_text}=1"))),
            17 => {
                let name = HEADERS[round % HEADERS.len()];
                let value = [b"x".as_slice(), seq, b"y"].concat();
                let h = match name {
                    "Content-Type" => Http::new("POST", ty).ct([b"application/fhir+json; x=".as_slice(), seq].concat()).body(json_text.clone()),
                    "If-Match" => Http::new("PUT", format!("Patient/{}", g.w.put_patient)).h(name, [b"W/\"1".as_slice(), seq, b"\""].concat()).ct(FHIR_JSON)
                        .body(with_id(patient(&uid_like(&mut g.rng)), &g.w.put_patient).to_string()),
                    "If-None-Exist" => Http::new("POST", ty).h(name, [b"identifier=".as_slice(), seq].concat()).ct(FHIR_JSON).body(json_text.clone()),
                    "Prefer" => Http::new("POST", ty).h(name, [b"return=".as_slice(), seq].concat()).ct(FHIR_JSON).body(json_text.clone()),
                    "Authorization" => {
                        rule = Rule::Unauthorized;
                        Http::new("GET", format!("Patient/{}", g.w.patient)).h(name, [b"Bearer ".as_slice(), seq].concat())
                    }
                    "X-Security-Context" => Http::new("POST", "Binary").ct("text/plain").h(name, value).body(b"hello".to_vec()),
                    _ => Http::new("GET", format!("{ty}/{target}")).h(name, value),
                };
                (format!("in the {name} header"), h)
            }
            18 => ("in If-None-Exist, percent-encoded".into(), Http::new("POST", ty).h("If-None-Exist", format!("identifier={seq_text}")).ct(FHIR_JSON).body(json_text.clone())),
            19 => ("in a _search form".into(), Http::new("POST", format!("{ty}/_search")).ct("application/x-www-form-urlencoded")
                .body([b"identifier=".as_slice(), seq].concat())),
            20 => ("in a _search form, percent-encoded".into(), Http::new("POST", format!("{ty}/_search")).ct("application/x-www-form-urlencoded")
                .body(format!("name={seq_text}&_count=1"))),
            21 => ("in a Bundle".into(), Http::new("POST", base()).ct(FHIR_JSON).body(splice(&transaction(&v).to_string(), "\"value\":\""))),
            _ => ("in a Binary text upload".into(), Http::new("POST", "Binary").ct("text/plain; charset=utf-8").body([b"text ".as_slice(), seq].concat())),
        };
        let h = if round % 3 == 1 {
            h.accept(FHIR_JSON)
        } else {
            h
        };
        g.push(Case::http(Cat::Utf8, format!("{} {what}", snippet(seq, 20)), h).rule(rule));
    }
}

fn uid_like(rng: &mut StdRng) -> String {
    format!("{:032x}", rng.gen::<u128>())
}

// 6. Oversize bodies ---------------------------------------------------------

fn oversize(g: &mut Gen) {
    let small = small_limit_server();
    let limit = SMALL_BODY_LIMIT as usize;
    let sizes = [limit + 1, limit + 100, 2 * limit, 10 * limit, 40 * limit];
    let framings = [Framing::Length, Framing::Chunked(16 * 1024)];
    let patient_id = g.w.patient.clone();
    let binary = g.w.binary.clone();
    let targets: Vec<(&'static str, String, &'static str, &'static str)> = vec![
        ("POST", "Patient".into(), FHIR_JSON, "json"),
        ("POST", "Patient".into(), FHIR_XML, "xml"),
        (
            "PUT",
            format!("Patient/{patient_id}"),
            FHIR_JSON,
            "json-put",
        ),
        ("POST", "DocumentReference".into(), FHIR_JSON, "json"),
        ("POST", "Binary".into(), "application/octet-stream", "raw"),
        ("PUT", format!("Binary/{binary}"), "application/pdf", "raw"),
        ("POST", "/fhir".into(), FHIR_JSON, "bundle"),
        (
            "POST",
            "Patient/_search".into(),
            "application/x-www-form-urlencoded",
            "form",
        ),
        ("POST", "Consent".into(), FHIR_JSON, "json"),
        ("POST", "Practitioner".into(), FHIR_JSON, "json"),
    ];
    for (method, target, ct, kind) in targets {
        for size in sizes {
            for framing in framings {
                let id = patient_id.clone();
                let body = Payload::lazy(move || {
                    let pad = "x".repeat(size);
                    match kind {
                        "json" => format!("{{\"resourceType\":\"Patient\",\"text\":{{\"status\":\"generated\",\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">{pad}</div>\"}}}}").into_bytes(),
                        "json-put" => format!("{{\"resourceType\":\"Patient\",\"id\":\"{id}\",\"text\":{{\"status\":\"generated\",\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">{pad}</div>\"}}}}").into_bytes(),
                        "xml" => format!("<Patient xmlns=\"http://hl7.org/fhir\"><text><status value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\">{pad}</div></text></Patient>").into_bytes(),
                        "bundle" => format!("{{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{{\"request\":{{\"method\":\"GET\",\"url\":\"Patient?name={pad}\"}}}}]}}").into_bytes(),
                        "form" => format!("name={pad}").into_bytes(),
                        _ => vec![7u8; size],
                    }
                });
                let what = format!("{size} bytes ({:?})", framing);
                g.push(Case {
                    cat: Cat::Oversize,
                    what,
                    wire: Wire::Raw {
                        on: small,
                        method,
                        target: target.clone(),
                        headers: vec![
                            ("Content-Type".into(), ct.into()),
                            ("Accept".into(), FHIR_JSON.into()),
                        ],
                        body,
                        framing,
                    },
                    api: Api::Fhir,
                    rule: Rule::Status(&[413]),
                    head: false,
                    bare: &[],
                    may_close: false,
                    want: Some(FHIR_JSON),
                });
            }
        }
    }
}

// 7. Wrong content types -----------------------------------------------------

fn content_types(g: &mut Gen) {
    let long = format!("application/fhir+json; x={}", "y".repeat(4000));
    let cts: Vec<Option<String>> = [
        "text/plain",
        "application/pdf",
        "multipart/form-data; boundary=xyz",
        "multipart/mixed; boundary=b",
        "application/fhir+json; charset=latin1",
        "application/fhir+json; charset=iso-8859-1",
        "application/fhir+json; charset=utf-16",
        "application/fhir+json; fhirVersion=3.0",
        "application/fhir+json; fhirVersion=1.0.2",
        "application/fhir+xml; fhirVersion=3.0",
        "",
        "garbage",
        ";;;",
        "/",
        "application/",
        "/json",
        "*/*",
        "application/*",
        "application/x-www-form-urlencoded",
        "text/html",
        "image/png",
        "application/octet-stream",
        "application/json-patch+json",
        "application/fhir+jsonx",
        "application/fhir+json+xml",
        "application/fhir+xml; charset=utf-8; charset=latin1",
        "APPLICATION/FHIR+JSON",
        "application/fhir+json;;;;",
        "application/fhir+json, application/fhir+xml",
        "text/xml",
        "application/xml",
        "application/json",
        "application/fhir+json\t",
    ]
    .iter()
    .map(|s| Some(s.to_string()))
    .chain([None, Some(long)])
    .collect();
    let n = Cat::ContentType.planned();
    let non_binary: Vec<&str> = WRITABLE
        .iter()
        .copied()
        .filter(|t| *t != "Binary")
        .collect();
    for i in 0..n {
        let ct = cts[i % cts.len()].clone();
        let round = i / cts.len();
        let ty = if round % 9 == 8 {
            "Binary"
        } else {
            non_binary[(round + i) % non_binary.len()]
        };
        let xml_body = round % 2 == 1;
        let v = g.resource(ty);
        let kind = round % 8;
        let family = ct.as_deref().and_then(body_family);
        let (method, path, body, is_search) = match kind {
            0..=3 => ("POST", ty.to_string(), v.clone(), false),
            4 | 5 => {
                let id = if kind == 4 { g.w.target(ty) } else { g.id() };
                ("PUT", format!("{ty}/{id}"), with_id(v.clone(), &id), false)
            }
            6 => ("POST", base(), transaction(&v), false),
            _ => ("POST", format!("{ty}/_search"), v.clone(), true),
        };
        let bytes = if is_search {
            b"identifier=x&_count=1".to_vec()
        } else if xml_body {
            xml_of(&body).into_bytes()
        } else {
            body.to_string().into_bytes()
        };
        let mut h = Http::new(method, path).body(bytes);
        if let Some(ct) = &ct {
            h = h.ct(ct);
        }
        if i % 4 == 0 {
            h = h.accept(FHIR_JSON);
        }
        let shown = ct
            .as_deref()
            .map(|c| cut(c, 40))
            .unwrap_or_else(|| "(none)".into());
        let body_kind = if is_search {
            "form"
        } else if xml_body {
            "XML"
        } else {
            "JSON"
        };
        // Not a FHIR format (nor a form for _search): refused, except raw Binary content.
        let refused = if is_search {
            ct.as_deref().map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            }) != Some("application/x-www-form-urlencoded".into())
        } else {
            family.is_none() && ty != "Binary"
        };
        let case = Case::http(Cat::ContentType, format!("{body_kind} body as {shown}"), h);
        g.push(if refused {
            case.rule(Rule::Refused)
        } else {
            case
        });
    }
}

// 8. Path traversal and odd ids ----------------------------------------------

fn traversal(g: &mut Gen) {
    let ids: Vec<String> = [
        "..",
        "../",
        "..%2f",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "%2e%2e%2f",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "%252e%252e%252f",
        "..%252f..%252fetc%252fpasswd",
        "....//....//etc/passwd",
        "..;",
        "..;/x",
        "..%5c..%5cwindows%5cwin.ini",
        "..\\..\\windows",
        "%c0%ae%c0%ae%c0%af",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "etc/passwd%00.json",
        "%00",
        "a%00b",
        "x%00",
        "%00../",
        "%20",
        "%09",
        "a%20b",
        "a+b",
        "a%2Bb",
        "%0d%0aSet-Cookie:%20x=1",
        "%E2%80%AE",
        "%F0%9F%92%A9",
        "%C3%A9t%C3%A9",
        "%EF%BC%8E%EF%BC%8E%EF%BC%8F",
        "*",
        "$everything",
        "_search",
        "_history",
        "metadata",
        ".",
        "%2e",
        "~root",
        "%7e",
        ";jsessionid=1",
        "%3F_format=xml",
        "%23frag",
        "id?x=1",
        "file:%2F%2F%2Fetc%2Fpasswd",
        "http:%2F%2Fevil.example%2F",
        "%u002e%u002e",
        "%%32%65",
        "%",
        "%zz",
        "%2",
        "Patient%2f1",
        "..%00/",
        "%2e%2e%5c",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "a".repeat(64),
        "a".repeat(65),
        "a".repeat(1000),
        "b".repeat(10_000),
        format!("{}%2f..", "a".repeat(64)),
    ])
    .collect();
    const TYPES: &[&str] = &[
        "Patient",
        "DocumentReference",
        "Binary",
        "Consent",
        "Practitioner",
        "Organization",
    ];
    const SPECIAL: &[&str] = &[
        "_history",
        "_search",
        "metadata",
        "$ledger-status",
        "$consistency",
    ];
    let s = server();
    let n = Cat::Traversal.planned();
    for i in 0..n {
        let odd = &ids[i % ids.len()];
        let op = (i / ids.len()) % 9;
        let ty = TYPES[(i + i / ids.len()) % TYPES.len()];
        let target = g.w.target(ty);
        // The id as the server reads it: up to a query or fragment, decoded once.
        let decoded = percent_decode(odd.split(['?', '#']).next().unwrap_or(""));
        let special = SPECIAL.iter().any(|sp| decoded == sp.as_bytes());
        let fhir_id = is_fhir_id(&decoded);
        let (method, path, body): (&'static str, String, Option<(String, Vec<u8>)>) = match op {
            0 => ("GET", format!("{ty}/{odd}"), None),
            1 => ("HEAD", format!("{ty}/{odd}"), None),
            2 => {
                let body_id = if fhir_id {
                    String::from_utf8_lossy(&decoded).into_owned()
                } else {
                    "x".into()
                };
                let v = with_id(g.resource(ty), &body_id);
                let ct = FHIR_JSON.to_string();
                (
                    "PUT",
                    format!("{ty}/{odd}"),
                    Some((ct, v.to_string().into_bytes())),
                )
            }
            3 => ("DELETE", format!("{ty}/{odd}"), None),
            4 => ("GET", format!("{ty}/{odd}/_history"), None),
            5 => ("GET", format!("{ty}/{odd}/_history/1"), None),
            6 => ("GET", format!("{ty}/{target}/_history/{odd}"), None),
            7 => ("GET", odd.to_string(), None),
            _ => ("GET", format!("{odd}/{target}"), None),
        };
        // Never served: a segment that is not a FHIR id (except the
        // interactions' own names) in the place of an id or a type.
        let rule = match op {
            6 => {
                let vid_ok = std::str::from_utf8(&decoded)
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some();
                if vid_ok {
                    Rule::Any
                } else {
                    Rule::NotServed
                }
            }
            7 | 8 if special => Rule::Any,
            7 | 8 => Rule::NotServed,
            _ if special && op != 2 && op != 3 => Rule::Any,
            _ if fhir_id => Rule::Any,
            _ => Rule::NotServed,
        };
        let wire_target = format!("/fhir/{path}");
        let full = s.url(&path);
        let kept = reqwest::Url::parse(&full).ok().is_some_and(|u| {
            let mut got = u.path().to_string();
            if let Some(q) = u.query() {
                got.push('?');
                got.push_str(q);
            }
            got == wire_target && u.fragment().is_none()
        });
        let what = format!("{method} with the id {}", cut(odd, 60));
        let case = if kept {
            let mut h = Http::new(method, path);
            if let Some((ct, b)) = body {
                h = h.ct(&ct).body(b);
            }
            Case::http(Cat::Traversal, what, h)
        } else {
            // The URL parser would resolve or re-encode it: sent as written.
            let mut w = Wire1::new(s, method, &wire_target);
            if let Some((ct, b)) = body {
                w = w.body(&ct, b);
            }
            let mut case =
                Case::bytes(Cat::Traversal, format!("{what} (as written)"), s, w.bytes())
                    .want(Some(FHIR_JSON));
            if !valid_target(&wire_target) {
                case = case.unparseable();
            }
            case
        };
        g.push(case.rule(rule));
    }
}

// 9. SQL injection -----------------------------------------------------------

fn sql_injection(g: &mut Gen) {
    let payloads: &[&str] = &[
        "' OR '1'='1",
        "' OR 1=1--",
        "\" OR \"\"=\"",
        "1 OR 1=1",
        "1' OR '1'='1' --",
        "') OR ('1'='1",
        "')) OR (('1'='1",
        "'; DROP TABLE resources; --",
        "1; DROP TABLE resource_versions--",
        "'; DELETE FROM resources WHERE ''='",
        "' UNION SELECT NULL--",
        "' UNION SELECT content FROM resources--",
        "x' UNION ALL SELECT usename, passwd, NULL FROM pg_shadow--",
        "1; SELECT pg_sleep(20)--",
        "'||pg_sleep(20)||'",
        "' AND (SELECT 1 FROM pg_sleep(20)) IS NOT NULL--",
        "' AND 1=CAST((SELECT current_user) AS int)--",
        "'||(SELECT version())||'",
        "%",
        "%%",
        "_",
        "%' OR '%'='",
        "\\",
        "\\'",
        "''",
        "'",
        "$$ OR 1=1 $$",
        "E'\\x27 OR 1=1",
        "1::text",
        "$1",
        "*/ OR /* ",
        "admin'--",
    ];
    const POSITIONS: usize = 26;
    let w = g.w;
    let n = Cat::Sql.planned();
    for i in 0..n {
        let pos = i % POSITIONS;
        let k = (i / POSITIONS) % payloads.len();
        let sweep = i / (POSITIONS * payloads.len());
        let p = payloads[k];
        let e = enc(p);
        let ty = IDENTIFIED[(pos + k + sweep) % IDENTIFIED.len()];
        let target = w.target(ty);
        let nothing = format!("identifier={}", enc(&token(&format!("none-{}", g.id()))));
        let (what, h, rule): (&str, Http, Rule) = match pos {
            0 => (
                "in a read id",
                Http::new("GET", format!("{ty}/{e}")),
                Rule::NotServed,
            ),
            1 => (
                "in identifier",
                Http::new("GET", format!("{ty}?identifier={e}")),
                Rule::NoMatches,
            ),
            2 => (
                "in an identifier value",
                Http::new("GET", format!("{ty}?identifier={}", enc(&token(p)))),
                Rule::NoMatches,
            ),
            3 => (
                "in an identifier system",
                Http::new("GET", format!("{ty}?identifier={e}%7Cx")),
                Rule::NoMatches,
            ),
            4 => (
                "in _id",
                Http::new("GET", format!("{ty}?_id={e}")),
                Rule::NoMatches,
            ),
            5 => (
                "in an _id list",
                Http::new("GET", format!("{ty}?_id={target},{e}")),
                Rule::AtMost(1),
            ),
            6 => (
                "in subject",
                Http::new("GET", format!("DocumentReference?subject={e}")),
                Rule::NoMatches,
            ),
            7 => (
                "in a subject id",
                Http::new("GET", format!("DocumentReference?subject=Patient/{e}")),
                Rule::NoMatches,
            ),
            8 => (
                "in patient",
                Http::new("GET", format!("DocumentReference?patient={e}")),
                Rule::NoMatches,
            ),
            9 => (
                "in date",
                Http::new("GET", format!("DocumentReference?date={e}")),
                Rule::NoMatches,
            ),
            10 => (
                "in name",
                Http::new("GET", format!("Patient?name={e}")),
                Rule::NoMatches,
            ),
            11 => (
                "in family:exact",
                Http::new("GET", format!("Patient?family:exact={e}")),
                Rule::NoMatches,
            ),
            12 => (
                "in _sort",
                Http::new("GET", format!("{ty}?_sort={e}&{nothing}")),
                Rule::NoMatches,
            ),
            13 => (
                "in _include",
                Http::new("GET", format!("{ty}?_include={e}&{nothing}")),
                Rule::NoMatches,
            ),
            14 => (
                "in _elements",
                Http::new("GET", format!("{ty}?_elements={e}&{nothing}")),
                Rule::NoMatches,
            ),
            15 => (
                "in _count",
                Http::new("GET", format!("{ty}?_count={e}&{nothing}")),
                Rule::NoMatches,
            ),
            16 => (
                "in _cursor",
                Http::new("GET", format!("{ty}?_cursor={e}&{nothing}")),
                Rule::NoMatches,
            ),
            17 => (
                "as a parameter name",
                Http::new("GET", format!("{ty}?{e}=x&{nothing}")),
                Rule::NoMatches,
            ),
            18 => (
                "in a chain",
                Http::new(
                    "GET",
                    format!("DocumentReference?subject:Patient.identifier={e}"),
                ),
                Rule::NoMatches,
            ),
            19 => (
                "in _has",
                Http::new(
                    "GET",
                    format!("Patient?_has:DocumentReference:subject:identifier={e}"),
                ),
                Rule::NoMatches,
            ),
            20 => {
                let v = g.resource(ty);
                (
                    "in If-None-Exist",
                    Http::new("POST", ty)
                        .h("If-None-Exist", format!("identifier={e}"))
                        .ct(FHIR_JSON)
                        .body(v.to_string()),
                    Rule::NotMatched,
                )
            }
            21 => {
                let v = g.resource(ty);
                (
                    "in a conditional update",
                    Http::new("PUT", format!("{ty}?identifier={e}"))
                        .ct(FHIR_JSON)
                        .body(v.to_string()),
                    Rule::NotMatched,
                )
            }
            22 => (
                "in a conditional delete",
                Http::new("DELETE", format!("{ty}?identifier={e}")).prefer_outcome(),
                Rule::NothingDeleted,
            ),
            23 => {
                let value = format!("sqli-{}-{p}", g.id());
                let mut v = g.resource(ty);
                v["identifier"] = json!([{"system": ID_SYSTEM, "value": value}]);
                (
                    "in a stored identifier",
                    Http::new("POST", ty).ct(FHIR_JSON).body(v.to_string()),
                    Rule::Echo(value),
                )
            }
            24 => (
                "in a _search form",
                Http::new("POST", format!("{ty}/_search"))
                    .ct("application/x-www-form-urlencoded")
                    .body(format!("identifier={e}")),
                Rule::NoMatches,
            ),
            _ => (
                "in a version id",
                Http::new("GET", format!("{ty}/{target}/_history/{e}")),
                Rule::NotServed,
            ),
        };
        let h = if matches!(rule, Rule::NoMatches | Rule::AtMost(_) | Rule::Echo(_)) {
            h.accept(FHIR_JSON)
        } else {
            h
        };
        g.push(Case::http(Cat::Sql, format!("{} {what}", cut(p, 40)), h).rule(rule));
    }
}

impl Http {
    fn prefer_outcome(self) -> Http {
        self.h("Prefer", "return=OperationOutcome")
    }
}

// 10. Header injection and hostile headers ------------------------------------

fn header_injection(g: &mut Gen) {
    const VARIANTS: usize = 49;
    let s = server();
    let w = g.w;
    let host = s.public_base.trim_start_matches("http://").to_string();
    let n = Cat::Headers.planned();
    for i in 0..n {
        let v = i % VARIANTS;
        let round = i / VARIANTS;
        let t = (round + v) % 5;
        let ident = g.id();
        let json_body = patient(&ident).to_string().into_bytes();
        let put_body = with_id(patient(&ident), &w.put_patient)
            .to_string()
            .into_bytes();
        let (method, target, body): (&str, String, Option<Vec<u8>>) = match t {
            0 => ("GET", format!("/fhir/Patient/{}", w.patient), None),
            1 => (
                "GET",
                format!(
                    "/fhir/Patient?identifier={}",
                    enc(&token(&w.patient_identifier))
                ),
                None,
            ),
            2 => ("POST", "/fhir/Patient".into(), Some(json_body.clone())),
            3 => (
                "PUT",
                format!("/fhir/Patient/{}", w.put_patient),
                Some(put_body.clone()),
            ),
            _ => ("GET", "/fhir/metadata".into(), None),
        };
        let base = Wire1::new(s, method, &target);
        let with_body = |w1: Wire1| match &body {
            Some(b) => w1.body(FHIR_JSON, b.clone()),
            None => w1,
        };
        let body_or_small = body.clone().unwrap_or_else(|| b"{}".to_vec());
        let pick = |items: &[&'static str]| items[round % items.len()];
        // (what, bytes, parseable?, extra rule, half-close)
        let (what, bytes, parseable, rule, half): (String, Vec<u8>, bool, Rule, bool) = match v {
            0 => (
                "CR LF forming a new field".into(),
                with_body(base.field("X-Note: a\r\nX-Injected: yes")).bytes(),
                true,
                Rule::NoSplit,
                false,
            ),
            1 => (
                "CR LF forming Set-Cookie".into(),
                with_body(base.field("X-Note: a\r\nSet-Cookie: admin=1")).bytes(),
                true,
                Rule::NoSplit,
                false,
            ),
            2 => (
                "CR LF CR LF smuggling a request".into(),
                with_body(base.field("X-Note: a\r\n\r\nGET /fhir/Patient HTTP/1.1")).bytes(),
                true,
                Rule::NoSplit,
                false,
            ),
            3 => (
                "a lone CR in a value".into(),
                with_body(base.field("X-Note: a\rX-Injected: yes")).bytes(),
                false,
                Rule::NoSplit,
                false,
            ),
            4 => (
                "a bare LF in a value".into(),
                with_body(base.field("X-Note: a\nX-Injected: yes")).bytes(),
                false,
                Rule::Any,
                false,
            ),
            5 => (
                "NUL in a value".into(),
                with_body(base.field(b"X-Note: a\0b")).bytes(),
                false,
                Rule::Any,
                false,
            ),
            6 => {
                let c = [0x01u8, 0x7F, 0x1B, 0x08][round % 4];
                (
                    format!("control byte {c:#04x} in a value"),
                    with_body(base.field([b"X-Note: a".as_slice(), &[c], b"b"].concat())).bytes(),
                    false,
                    Rule::Any,
                    false,
                )
            }
            7 => {
                let name = pick(&[
                    "X-Note",
                    "Accept",
                    "Prefer",
                    "Authorization",
                    "If-None-Exist",
                    "X-Request-Id",
                ]);
                let seq = BAD_UTF8[round % BAD_UTF8.len()];
                let w1 = if name == "Authorization" {
                    base.without("Authorization")
                } else {
                    base
                };
                let w1 = if name == "Accept" {
                    w1.without("Accept")
                } else {
                    w1
                };
                (
                    format!("obs-text (invalid UTF-8) in {name}"),
                    with_body(w1.field([name.as_bytes(), b": x", seq].concat())).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            8 => (
                "a space inside a field name".into(),
                with_body(base.field("X Bad: 1")).bytes(),
                false,
                Rule::Any,
                false,
            ),
            9 => (
                "whitespace before the colon".into(),
                with_body(base.field("X-Bad : 1")).bytes(),
                false,
                Rule::Any,
                false,
            ),
            10 => {
                let line: &[u8] = [
                    b"X(Bad): 1".as_slice(),
                    b"X\"Q\": 1",
                    b": empty-name",
                    b"X@Y: 1",
                    b"X{}: 1",
                    b"\xC3\x84: 1",
                ][round % 6];
                (
                    format!("a field name that is not a token: {}", snippet(line, 20)),
                    with_body(base.field(line)).bytes(),
                    false,
                    Rule::Any,
                    false,
                )
            }
            11 => (
                "a colon inside a field name".into(),
                with_body(base.field("X:Injected: v")).bytes(),
                true,
                Rule::Any,
                false,
            ),
            12 => (
                "a line without a colon".into(),
                with_body(base.field("JustAName")).bytes(),
                false,
                Rule::Any,
                false,
            ),
            13 => (
                "obs-fold".into(),
                with_body(base.field("X-Note: a\r\n folded")).bytes(),
                false,
                Rule::Any,
                false,
            ),
            14 => (
                "conflicting Content-Length".into(),
                base.raw_body(
                    FHIR_JSON,
                    &[
                        &format!("Content-Length: {}", body_or_small.len()),
                        &format!("Content-Length: {}", body_or_small.len() + 1),
                    ],
                    body_or_small.clone(),
                )
                .bytes(),
                false,
                Rule::Any,
                true,
            ),
            15 => (
                "a repeated Content-Length".into(),
                base.raw_body(
                    FHIR_JSON,
                    &[
                        &format!("Content-Length: {}", body_or_small.len()),
                        &format!("Content-Length: {}", body_or_small.len()),
                    ],
                    body_or_small.clone(),
                )
                .bytes(),
                false,
                Rule::Any,
                false,
            ),
            16 => (
                "a Content-Length list".into(),
                base.raw_body(
                    FHIR_JSON,
                    &[&format!("Content-Length: {0}, {0}", body_or_small.len())],
                    body_or_small.clone(),
                )
                .bytes(),
                false,
                Rule::Any,
                true,
            ),
            17 => {
                let cl = pick(&[
                    "-1",
                    "abc",
                    "1e3",
                    "99999999999999999999999",
                    " 1 2",
                    "0x10",
                    "+5",
                    "",
                ]);
                (
                    format!("Content-Length '{cl}'"),
                    base.raw_body(
                        FHIR_JSON,
                        &[&format!("Content-Length: {cl}")],
                        body_or_small.clone(),
                    )
                    .bytes(),
                    false,
                    Rule::Any,
                    true,
                )
            }
            18 => (
                "Content-Length with Transfer-Encoding".into(),
                base.raw_body(
                    FHIR_JSON,
                    &[
                        &format!("Content-Length: {}", body_or_small.len()),
                        "Transfer-Encoding: chunked",
                    ],
                    chunked(&body_or_small, 7),
                )
                .bytes(),
                false,
                Rule::Any,
                true,
            ),
            19 => {
                let te = pick(&[
                    "gzip, chunked",
                    "chunked, identity",
                    "xchunked",
                    "chunked\r\nTransfer-Encoding: chunked",
                    "identity",
                    "chunked;q=1",
                    "\tchunked",
                ]);
                (
                    format!("Transfer-Encoding '{}'", te.replace("\r\n", "\\r\\n")),
                    base.raw_body(
                        FHIR_JSON,
                        &[&format!("Transfer-Encoding: {te}")],
                        chunked(&body_or_small, 5),
                    )
                    .bytes(),
                    false,
                    Rule::Any,
                    true,
                )
            }
            20 => {
                let (label, framed): (&str, Vec<u8>) = match round % 5 {
                    0 => ("a chunk size 'zz'", b"zz\r\nabc\r\n0\r\n\r\n".to_vec()),
                    1 => (
                        "an overflowing chunk size",
                        b"ffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n".to_vec(),
                    ),
                    2 => (
                        "a chunk without its CRLF",
                        b"3\r\nabcdef\r\n0\r\n\r\n".to_vec(),
                    ),
                    3 => ("no last chunk", b"3\r\nabc\r\n".to_vec()),
                    _ => (
                        "a chunk extension with a control byte",
                        b"3;x=\"\x01\"\r\nabc\r\n0\r\n\r\n".to_vec(),
                    ),
                };
                (
                    label.into(),
                    base.raw_body(FHIR_JSON, &["Transfer-Encoding: chunked"], framed)
                        .bytes(),
                    false,
                    Rule::Any,
                    true,
                )
            }
            21 => {
                let cl = ["1000000000000", "18446744073709551615", "9007199254740993"][round % 3];
                let rule = if body.is_some() {
                    Rule::Status(&[413])
                } else {
                    Rule::Any
                };
                (
                    format!("Content-Length {cl} with a small body"),
                    base.raw_body(
                        FHIR_JSON,
                        &[&format!("Content-Length: {cl}")],
                        body_or_small.clone(),
                    )
                    .bytes(),
                    true,
                    rule,
                    true,
                )
            }
            22 => (
                "a chunked body in upper case".into(),
                base.raw_body(
                    FHIR_JSON,
                    &["Transfer-Encoding: CHUNKED"],
                    chunked(&body_or_small, 9),
                )
                .bytes(),
                true,
                Rule::Any,
                false,
            ),
            23 => {
                let hv = pick(&[
                    "evil.example",
                    "localhost:99999",
                    "[::1",
                    "a b c",
                    "../../etc/passwd",
                    "localhost@evil.example",
                    "%00",
                    "*",
                    "localhost:-1",
                ]);
                (
                    format!("Host '{hv}'"),
                    with_body(base.set("Host", hv)).bytes(),
                    false,
                    Rule::Any,
                    false,
                )
            }
            24 => (
                "no Host".into(),
                with_body(base.without("Host")).bytes(),
                false,
                Rule::Any,
                false,
            ),
            25 => (
                "two Host fields".into(),
                with_body(base.field("Host: evil.example")).bytes(),
                false,
                Rule::Any,
                false,
            ),
            26 => {
                let xff = match round % 10 {
                    0 => "' OR 1=1--".to_string(),
                    1 => "999.999.999.999".into(),
                    2 => "::::::".into(),
                    3 => "unknown".into(),
                    4 => "1.2.3.4, <script>alert(1)</script>".into(),
                    5 => "a".repeat(8000),
                    6 => "127.0.0.1\t, 10.0.0.1".into(),
                    7 => "0x7f000001".into(),
                    8 => "[::1]:80".into(),
                    _ => (0..500)
                        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                (
                    format!("X-Forwarded-For '{}'", cut(&xff, 40)),
                    with_body(base.field(format!("X-Forwarded-For: {xff}"))).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            27 => {
                let prefer = match round % 7 {
                    0 => "return=".to_string(),
                    1 => "return=minimal; return=representation".into(),
                    2 => "respond-async, wait=99999999999999999999".into(),
                    3 => "handling=strict;handling=lenient".into(),
                    4 => "=;=;=".into(),
                    5 => "return=\"minimal".into(),
                    _ => "x".repeat(10_000),
                };
                (
                    format!("Prefer '{}'", cut(&prefer, 40)),
                    with_body(base.field(format!("Prefer: {prefer}"))).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            28 => {
                let im = match round % 8 {
                    0 => "W/\"abc\"".to_string(),
                    1 => "W/\"99999999999999999999999\"".into(),
                    2 => "*".into(),
                    3 => "W/\"1\", W/\"2\"".into(),
                    4 => "\"".into(),
                    5 => "W/".into(),
                    6 => "' OR 1=1--".into(),
                    _ => "W/\"".to_string() + &"1".repeat(5000) + "\"",
                };
                (
                    format!("If-Match '{}'", cut(&im, 40)),
                    with_body(base.field(format!("If-Match: {im}"))).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            29 => {
                let accept = match round % 8 {
                    0 => "*/*;q=abc".to_string(),
                    1 => "application/fhir+json;q=2".into(),
                    2 => "text/html, */*;q=0".into(),
                    3 => ";;;".into(),
                    4 => "application/fhir+xml;q=0.0000001".into(),
                    5 => "x/y,".repeat(1000),
                    6 => "application/fhir+json; q=-1".into(),
                    _ => "\"application/fhir+json\"".into(),
                };
                (
                    format!("Accept '{}'", cut(&accept, 40)),
                    with_body(base.set("Accept", accept)).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            30 => {
                let len = [8 * 1024, 32 * 1024, 100 * 1024][round % 3];
                (
                    format!("a {len}-byte value"),
                    with_body(base.field(format!("X-Long: {}", "v".repeat(len)))).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            31 => {
                let count = [40, 85][round % 2];
                let mut w1 = base;
                for k in 0..count {
                    w1 = w1.field(format!("X-Many-{k}: {k}"));
                }
                (
                    format!("{count} extra fields"),
                    with_body(w1).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            32 => {
                let count = [100, 300][round % 2];
                let mut w1 = base;
                for k in 0..count {
                    w1 = w1.field(format!("X-Many-{k}: {k}"));
                }
                let case = Case::bytes(
                    Cat::Headers,
                    format!("{count} extra fields (over 96)"),
                    s,
                    with_body(w1).bytes(),
                )
                .head_too_large();
                g.push(case);
                continue;
            }
            33 => {
                let len = [140 * 1024, 200 * 1024][round % 2];
                let case = Case::bytes(
                    Cat::Headers,
                    format!("a {len}-byte value (head over 128 KiB)"),
                    s,
                    with_body(base.field(format!("X-Long: {}", "v".repeat(len)))).bytes(),
                )
                .head_too_large();
                g.push(case);
                continue;
            }
            34 => {
                let version = pick(&[
                    "HTTP/9.9",
                    "HTTP/1.1 extra",
                    "HTTP/1",
                    "http/1.1",
                    "HTTP/0.9",
                    "HTTP/1.1\t",
                ]);
                (
                    format!("the version '{version}'"),
                    with_body(base.start(format!("{method} {target} {version}"))).bytes(),
                    false,
                    Rule::Any,
                    false,
                )
            }
            35 => (
                "no version".into(),
                with_body(base.start(format!("{method} {target}"))).bytes(),
                false,
                Rule::Any,
                true,
            ),
            36 => {
                let bad: &[u8] = [
                    b"/fhir/Patient/\xFF\xFE".as_slice(),
                    b"/fhir/Pat ient",
                    b"/fhir/Patient/\x01",
                    b"/fhir/Patient/\"x\"",
                    b"/fhir/Patient/<x>",
                    b"fhir/Patient",
                ][round % 6];
                (
                    format!("the target {}", snippet(bad, 30)),
                    with_body(base.start([method.as_bytes(), b" ", bad, b" HTTP/1.1"].concat()))
                        .bytes(),
                    false,
                    Rule::Any,
                    false,
                )
            }
            37 => {
                let m = pick(&[
                    "FOO", "get", "PROPFIND", "TRACE", "M-SEARCH", "PATCH", "OPTIONS",
                ]);
                (
                    format!("the method {m}"),
                    with_body(base.start(format!("{m} {target} HTTP/1.1"))).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            38 => {
                let m: &[u8] =
                    [b"GE(T".as_slice(), b"G\0ET", b"", b"CONNECT", b"\xC3\x84"][round % 5];
                (
                    format!("the method {}", snippet(m, 10)),
                    with_body(base.start([m, b" ", target.as_bytes(), b" HTTP/1.1"].concat()))
                        .bytes(),
                    false,
                    Rule::Any,
                    false,
                )
            }
            39 => {
                let absolute = if round.is_multiple_of(2) {
                    format!("http://{host}{target}")
                } else {
                    format!("http://evil.example{target}")
                };
                (
                    format!("the absolute target {absolute}"),
                    with_body(base.start(format!("{method} {absolute} HTTP/1.1"))).bytes(),
                    true,
                    Rule::Any,
                    false,
                )
            }
            40 => (
                "empty lines before the request".into(),
                [b"\r\n\r\n".as_slice(), &with_body(base).bytes()].concat(),
                false,
                Rule::Any,
                false,
            ),
            41 => {
                let len = g.rng.gen_range(1..500);
                let junk: Vec<u8> = (0..len).map(|_| g.rng.gen()).collect();
                (format!("{len} random bytes"), junk, false, Rule::Any, true)
            }
            42 => (
                "an empty request".into(),
                b"\r\n\r\n".to_vec(),
                false,
                Rule::Any,
                true,
            ),
            43 => (
                "an HTTP/2 preface".into(),
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
                false,
                Rule::Any,
                true,
            ),
            44 => (
                "Expect: 100-continue".into(),
                with_body(base.field("Expect: 100-continue")).bytes(),
                true,
                Rule::Any,
                false,
            ),
            45 => (
                "a second Authorization, garbage first".into(),
                with_body(base.field("Authorization: Bearer x")).bytes(),
                true,
                Rule::Any,
                false,
            ),
            46 => (
                "tabs and spaces around a value".into(),
                with_body(base.set("Accept", " \t application/fhir+json \t ")).bytes(),
                true,
                Rule::Any,
                false,
            ),
            47 => (
                "HTTP/1.0 without Host".into(),
                with_body(
                    base.without("Host")
                        .start(format!("{method} {target} HTTP/1.0")),
                )
                .bytes(),
                true,
                Rule::Any,
                false,
            ),
            _ => {
                let long = "r".repeat(300);
                let id = [
                    "abc\r\nX-Injected: 1",
                    "' OR 1=1--",
                    "<script>",
                    long.as_str(),
                ][round % 4];
                (
                    format!("X-Request-Id '{}'", cut(&id.replace("\r\n", "\\r\\n"), 30)),
                    with_body(base.field(format!("X-Request-Id: {id}"))).bytes(),
                    true,
                    Rule::NoSplit,
                    false,
                )
            }
        };
        let mut case = Case::bytes(Cat::Headers, what, s, bytes).rule(rule);
        if !parseable {
            case = case.unparseable();
        }
        if half {
            case = case.half_close();
        }
        g.push(case);
    }
}

/// A method, a path and maybe a body (Content-Type and bytes).
type Target = (&'static str, String, Option<(&'static str, Vec<u8>)>);

// 11. Forged and replayed tokens ----------------------------------------------

fn forged_tokens(g: &mut Gen) {
    let w = g.w;
    let p = &w.patient;
    let targets: Vec<Target> = vec![
        ("GET", format!("Patient/{p}"), None),
        ("GET", format!("DocumentReference/{}", w.document), None),
        ("GET", format!("Patient?identifier={}", enc(&token(&w.patient_identifier))), None),
        ("GET", format!("DocumentReference?patient={p}"), None),
        ("GET", "Patient".into(), None),
        ("GET", "_history".into(), None),
        ("GET", format!("Patient/{p}/_history"), None),
        ("HEAD", format!("Patient/{p}"), None),
        ("POST", "Patient/_search".into(), Some(("application/x-www-form-urlencoded", b"_count=5".to_vec()))),
        ("GET", format!("Consent?patient={}", w.consent_patient), None),
        ("GET", format!("Binary/{}", w.binary), None),
        ("GET", "AuditEvent?_count=5".into(), None),
        ("GET", format!("Organization/{}", w.organization), None),
        ("GET", "$ledger-status".into(), None),
        ("GET", format!("Patient/{p}/_history/1"), None),
        ("GET", "Practitioner?_count=1".into(), None),
        ("GET", format!("DocumentReference/{}/$access?actor=Practitioner/{}", w.document, w.practitioner), None),
        ("GET", format!("Patient/{p}?_format=xml"), None),
        ("GET", "Patient?_summary=count".into(), None),
        ("GET", format!("PractitionerRole/{}", w.role), None),
        ("GET", format!("Consent/{}", w.consent), None),
        ("POST", "Patient".into(), Some((FHIR_JSON, patient("forged-create").to_string().into_bytes()))),
        ("PUT", format!("Patient/{}", w.put_patient), Some((FHIR_JSON, with_id(patient("forged-update"), &w.put_patient).to_string().into_bytes()))),
        ("DELETE", format!("Patient/{}", w.victim), None),
        ("POST", base(), Some((FHIR_JSON, json!({"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": format!("Patient/{p}")}}]}).to_string().into_bytes()))),
    ];
    let n = Cat::Tokens.planned();
    for i in 0..n {
        let (label, values) = &w.forged[i % w.forged.len()];
        let (method, path, body) = &targets[(i + i / w.forged.len()) % targets.len()];
        let mut h = Http::new(method, path.clone());
        if values.is_empty() {
            h = h.no_auth();
        }
        for v in values {
            h = h.h("Authorization", v);
        }
        if let Some((ct, b)) = body {
            h = h.ct(ct).body(b.clone());
        }
        let want = if path.contains("_format=xml") {
            Some(FHIR_XML)
        } else {
            h.negotiated()
        };
        // A token signed by the server itself whose scopes mean nothing is a
        // valid token that permits nothing: 403 is as right as 401.
        let rule = if label.contains("an unknown scope") {
            Rule::Denied
        } else {
            Rule::Unauthorized
        };
        g.push(
            Case::http(Cat::Tokens, label.clone(), h)
                .rule(rule)
                .want(want),
        );
    }
}

// 12. Oversized search parameter lists ----------------------------------------

fn big_search(g: &mut Gen) {
    const VARIANTS: usize = 20;
    const TYPES: &[&str] = &[
        "Patient",
        "DocumentReference",
        "Practitioner",
        "Organization",
    ];
    let n = Cat::BigSearch.planned();
    for i in 0..n {
        let v = i % VARIANTS;
        let round = i / VARIANTS;
        let ty = TYPES[round % TYPES.len()];
        let scale = [1usize, 2, 5][round % 3];
        let list =
            |count: usize, f: &dyn Fn(usize) -> String| (0..count).map(f).collect::<Vec<_>>();
        let (what, h, too_large): (String, Http, bool) = match v {
            0 => (
                format!("{} distinct unknown parameters", 1000 * scale),
                Http::new(
                    "GET",
                    format!(
                        "{ty}?{}",
                        list(1000 * scale, &|k| format!("p{k}=x")).join("&")
                    ),
                ),
                false,
            ),
            1 => (
                format!("identifier repeated {} times", 1000 * scale),
                Http::new(
                    "GET",
                    format!(
                        "{ty}?{}",
                        list(1000 * scale, &|k| format!("identifier=v{k}")).join("&")
                    ),
                ),
                false,
            ),
            2 => (
                format!("_id repeated {} times", 1500 * scale),
                Http::new(
                    "GET",
                    format!(
                        "{ty}?{}",
                        list(1500 * scale, &|k| format!("_id=i{k}")).join("&")
                    ),
                ),
                false,
            ),
            3 => (
                "10,000 identifier values".into(),
                Http::new(
                    "GET",
                    format!(
                        "{ty}?identifier={}",
                        list(10_000, &|k| format!("v{k}")).join(",")
                    ),
                ),
                false,
            ),
            4 => (
                "10,000 _id values".into(),
                Http::new(
                    "GET",
                    format!("{ty}?_id={}", list(10_000, &|k| format!("i{k}")).join(",")),
                ),
                false,
            ),
            5 => (
                "10,000 name values".into(),
                Http::new(
                    "GET",
                    format!(
                        "Patient?name={}",
                        list(10_000, &|k| format!("n{k}")).join(",")
                    ),
                ),
                false,
            ),
            6 => (
                "_include repeated 1,000 times".into(),
                Http::new(
                    "GET",
                    format!(
                        "DocumentReference?{}",
                        list(1000, &|_| "_include=DocumentReference:subject".to_string()).join("&")
                    ),
                ),
                false,
            ),
            7 => (
                "_revinclude repeated 1,000 times".into(),
                Http::new(
                    "GET",
                    format!(
                        "Patient?{}",
                        list(1000, &|_| "_revinclude=DocumentReference:subject"
                            .to_string())
                        .join("&")
                    ),
                ),
                false,
            ),
            8 => (
                "_elements repeated 1,000 times".into(),
                Http::new(
                    "GET",
                    format!(
                        "{ty}?{}",
                        list(1000, &|_| "_elements=id".to_string()).join("&")
                    ),
                ),
                false,
            ),
            9 => (
                "10,000 _elements".into(),
                Http::new(
                    "GET",
                    format!(
                        "{ty}?_elements={}",
                        list(10_000, &|k| format!("e{k}")).join(",")
                    ),
                ),
                false,
            ),
            10 => (
                "1,000 _sort keys".into(),
                Http::new(
                    "GET",
                    format!(
                        "Patient?_sort={}",
                        list(1000, &|k| ["family", "-given", "birthdate", "_id"][k % 4]
                            .to_string())
                        .join(",")
                    ),
                ),
                false,
            ),
            11 => (
                format!("a {} KB URL", 150 * scale),
                Http::new(
                    "GET",
                    format!("{ty}?identifier={}", "u".repeat(150 * 1024 * scale)),
                ),
                true,
            ),
            12 => (
                "a 120 KB URL".into(),
                Http::new("GET", format!("{ty}?identifier={}", "u".repeat(120 * 1024))),
                false,
            ),
            13 => {
                let count = [
                    "99999999999999999999999999",
                    "1000000",
                    "2147483648",
                    "1000",
                ][round % 4];
                (
                    format!("_count={count}"),
                    Http::new("GET", format!("{ty}?_count={count}&_total=accurate")),
                    false,
                )
            }
            14 => (
                "a _search form of 1,000 parameters".into(),
                Http::new("POST", format!("{ty}/_search"))
                    .ct("application/x-www-form-urlencoded")
                    .body(list(1000, &|k| format!("identifier=v{k}")).join("&")),
                false,
            ),
            15 => (
                "a 300 KB _search form".into(),
                Http::new("POST", format!("{ty}/_search"))
                    .ct("application/x-www-form-urlencoded")
                    .body(format!(
                        "identifier={}",
                        list(30_000, &|k| format!("v{k:07}")).join(",")
                    )),
                false,
            ),
            16 => (
                "a chain 30 links long".into(),
                Http::new(
                    "GET",
                    format!(
                        "DocumentReference?subject:Patient.{}name=x",
                        "organization.partof.".repeat(15)
                    ),
                ),
                false,
            ),
            17 => (
                "_has nested 20 deep".into(),
                Http::new(
                    "GET",
                    format!(
                        "Patient?{}identifier=x",
                        "_has:DocumentReference:subject:".repeat(20)
                    ),
                ),
                false,
            ),
            18 => (
                "_include:iterate repeated 500 times".into(),
                Http::new(
                    "GET",
                    format!(
                        "DocumentReference?{}",
                        list(500, &|_| "_include:iterate=DocumentReference:subject"
                            .to_string())
                        .join("&")
                    ),
                ),
                false,
            ),
            _ => (
                "10,000 _id values and an accurate total".into(),
                Http::new(
                    "GET",
                    format!(
                        "{ty}?_total=accurate&_id={}",
                        list(10_000, &|k| format!("{k:x}")).join(",")
                    ),
                ),
                false,
            ),
        };
        let h = if round.is_multiple_of(2) {
            h.accept(FHIR_JSON)
        } else {
            h
        };
        let s = server();
        let mut case = if s.url(&h.path).len() > 65_000 {
            // Beyond what the http crate (hence reqwest) takes as a URI: as bytes.
            let mut w1 = Wire1::new(s, h.method, &format!("/fhir/{}", h.path));
            if h.header("Accept").is_none() {
                w1 = w1.without("Accept");
            }
            if let Some(body) = &h.body {
                w1 = w1.body("application/x-www-form-urlencoded", body.bytes());
            }
            Case::bytes(Cat::BigSearch, format!("{what} (as bytes)"), s, w1.bytes())
                .want(Some(FHIR_JSON))
                .uri_too_long()
        } else {
            Case::http(Cat::BigSearch, what, h)
        };
        if too_large {
            case = case.head_too_large();
        }
        g.push(case);
    }
}

// 13. The token endpoint ------------------------------------------------------

fn token_endpoint(g: &mut Gen) {
    const VARIANTS: usize = 50;
    const SQL: &[&str] = &[
        "' OR '1'='1",
        "'; DROP TABLE clients; --",
        "x' UNION SELECT secret_sha256 FROM clients--",
        "1; SELECT pg_sleep(20)--",
        "%",
        "\\'",
    ];
    let w = g.w;
    let url = format!("{}/auth/token", server().public_base);
    let form = "application/x-www-form-urlencoded";
    let n = Cat::TokenEndpoint.planned();
    for i in 0..n {
        let v = i % VARIANTS;
        let round = i / VARIANTS;
        let unknown = format!("unknown-{}", g.id());
        let cc = format!("grant_type=client_credentials&scope=system%2F*.rs&client_id={unknown}");
        let (what, ct, body): (String, Option<&str>, Vec<u8>) = match v {
            0 => ("no Content-Type".into(), None, cc.clone().into_bytes()),
            1 => ("text/plain".into(), Some("text/plain"), cc.clone().into_bytes()),
            2 => ("a JSON body".into(), Some("application/json"), json!({"grant_type": "client_credentials", "client_id": unknown}).to_string().into_bytes()),
            3 => ("a multipart body".into(), Some("multipart/form-data; boundary=b"), b"--b\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--b--\r\n".to_vec()),
            4 => ("charset=latin1".into(), Some("application/x-www-form-urlencoded; charset=latin1"), cc.clone().into_bytes()),
            5 => ("a garbage Content-Type".into(), Some(";;;/"), cc.clone().into_bytes()),
            6 => ("an XML body".into(), Some("application/xml"), b"<grant_type>client_credentials</grant_type>".to_vec()),
            7 => ("broken percent-encoding %ZZ".into(), Some(form), format!("grant_type=client%ZZcredentials&client_id={unknown}").into_bytes()),
            8 => ("a lone %".into(), Some(form), b"%".to_vec()),
            9 => ("%%%".into(), Some(form), b"grant_type=%%%&client_id=%".to_vec()),
            10 => ("a truncated escape".into(), Some(form), format!("grant_type=client_credentials&client_id={unknown}%E0%A4%A").into_bytes()),
            11 => ("only separators".into(), Some(form), b"=&=&=&&&&==".to_vec()),
            12 => ("a name without a value".into(), Some(form), b"grant_type".to_vec()),
            13 => ("a=b=c".into(), Some(form), format!("grant_type=client_credentials=x&client_id={unknown}").into_bytes()),
            14 => ("raw invalid UTF-8 in a value".into(), Some(form), [b"grant_type=client_credentials&client_id=".as_slice(), BAD_UTF8[round % 12]].concat()),
            15 => ("percent-encoded invalid UTF-8".into(), Some(form), format!("grant_type=client_credentials&client_id={}", enc_bytes(BAD_UTF8[round % 12])).into_bytes()),
            16 => ("overlong / in client_id".into(), Some(form), b"grant_type=client_credentials&client_id=%C0%AF%C0%AF".to_vec()),
            17 => ("invalid UTF-8 in a name".into(), Some(form), [b"grant_type=client_credentials&".as_slice(), BAD_UTF8[round % 12], b"=x"].concat()),
            18 => ("grant_type twice, different".into(), Some(form), format!("grant_type=client_credentials&grant_type=password&client_id={unknown}").into_bytes()),
            19 => ("grant_type twice, the same".into(), Some(form), format!("grant_type=client_credentials&grant_type=client_credentials&client_id={unknown}").into_bytes()),
            20 => ("client_id twice".into(), Some(form), format!("{cc}&client_id={}", w.backend_client).into_bytes()),
            21 => ("scope 1,000 times".into(), Some(form), format!("{cc}{}", "&scope=system%2F*.rs".repeat(1000)).into_bytes()),
            22 => ("a 100 KB client_id".into(), Some(form), format!("grant_type=client_credentials&client_id={}", "c".repeat(100 * 1024)).into_bytes()),
            23 => ("a 200 KB scope".into(), Some(form), format!("grant_type=client_credentials&client_id={unknown}&scope={}", "system%2F*.rs+".repeat(200 * 1024 / 15)).into_bytes()),
            24 => ("a 250 KB client_assertion".into(), Some(form), format!("grant_type=client_credentials&client_assertion_type={}&client_assertion={}", enc(ASSERTION_TYPE), "e".repeat(250 * 1024)).into_bytes()),
            25 => {
                let size = [300 * 1024, 1024 * 1024][round % 2];
                (format!("a {size}-byte body"), Some(form), format!("grant_type=client_credentials&client_id={unknown}&scope={}", "s".repeat(size)).into_bytes())
            }
            26..=35 => {
                let gt = ["password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:device_code",
                    "client_credentials ", "CLIENT_CREDENTIALS", "authorization_code%00", "urn:ietf:params:oauth:grant-type:token-exchange", "refresh_token", "authorization_code"][v - 26];
                (format!("grant_type {gt}"), Some(form), format!("grant_type={}&client_id={unknown}&code=x&refresh_token=y", enc(gt).replace("%2500", "%00")).into_bytes())
            }
            36 | 37 => {
                let sql = SQL[(round + v) % SQL.len()];
                (format!("SQL in client_id: {sql}"), Some(form), format!("grant_type=client_credentials&client_id={}&client_secret=x", enc(sql)).into_bytes())
            }
            38 => {
                let sql = SQL[round % SQL.len()];
                (format!("SQL in a refresh token: {sql}"), Some(form), format!("grant_type=refresh_token&refresh_token={}", enc(sql)).into_bytes())
            }
            39 => {
                let sql = SQL[round % SQL.len()];
                (format!("SQL in a code: {sql}"), Some(form), format!("grant_type=authorization_code&code={}&client_id={unknown}&code_verifier={}&redirect_uri=x", enc(sql), "v".repeat(10_000)).into_bytes())
            }
            40..=44 => {
                let (label, assertion) = &w.bad_assertions[(v - 40) % w.bad_assertions.len()];
                (format!("a forged client assertion: {label}"), Some(form), format!(
                    "grant_type=client_credentials&scope=system%2F*.rs&client_assertion_type={}&client_assertion={}",
                    enc(ASSERTION_TYPE), enc(assertion)
                ).into_bytes())
            }
            45 => ("a garbage client_assertion_type".into(), Some(form), format!("grant_type=client_credentials&client_assertion_type=' OR 1=1&client_assertion=x.y.z&client_id={}", w.backend_client).into_bytes()),
            46 => ("an unknown client with a secret".into(), Some(form), format!("{cc}&client_secret={}", g.id()).into_bytes()),
            47 => ("a client assertion and a secret".into(), Some(form), format!("grant_type=client_credentials&client_id={}&client_secret=x&client_assertion_type={}&client_assertion=x.y.z", w.backend_client, enc(ASSERTION_TYPE)).into_bytes()),
            48 => ("an empty body".into(), Some(form), Vec::new()),
            _ => ("NUL bytes".into(), Some(form), b"grant_type=client_credentials\0&client_id=\0".to_vec()),
        };
        let mut h = Http::new("POST", url.clone()).body(body);
        if let Some(ct) = ct {
            h = h.ct(ct);
        }
        // Authorization: Basic garbage on some.
        h = match round % 5 {
            1 => h.h("Authorization", "Basic !!!"),
            2 => h.h(
                "Authorization",
                format!("Basic {}", STANDARD.encode(format!("{unknown}:x"))),
            ),
            3 => h.h("Authorization", format!("Basic {}", STANDARD.encode(":"))),
            4 => h.h(
                "Authorization",
                [b"Basic ".as_slice(), b"\xFF\xFE"].concat(),
            ),
            _ => h,
        };
        g.push(Case::http(Cat::TokenEndpoint, what, h).oauth());
    }
}

// ------------------------------------------------------------- the test

/// What is wrong with the servers after the run: dead, not answering
/// `metadata`, or no longer creating and reading.
fn still_serving(world: &World) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, s) in [
        ("the server", server()),
        ("the small-limit server", small_limit_server()),
    ] {
        if !s.is_running() {
            failures.push(format!("{name} process died during the run"));
            continue;
        }
        match Request::on(s, "GET", "metadata").try_send() {
            Ok(r) if r.status == 200 && r.json()["resourceType"] == "CapabilityStatement" => {}
            Ok(r) => failures.push(format!(
                "{name} no longer answers metadata: HTTP {} {}",
                r.status,
                snippet(&r.body, 300)
            )),
            Err(e) => failures.push(format!(
                "{name} no longer answers metadata: {}",
                cut(&e, 500)
            )),
        }
    }
    let fresh = patient(&uid());
    match post("Patient").json(&fresh).try_send() {
        Ok(r) if r.status == 201 => {
            let created = r.json();
            let id = created["id"].as_str().unwrap_or_default().to_string();
            match get(&format!("Patient/{id}")).try_send() {
                Ok(r) if r.status == 200 && r.json() == created => {}
                Ok(r) => failures.push(format!(
                    "a Patient created after the run does not read back: HTTP {} {}",
                    r.status,
                    snippet(&r.body, 300)
                )),
                Err(e) => failures.push(format!(
                    "reading a Patient after the run failed: {}",
                    cut(&e, 500)
                )),
            }
        }
        Ok(r) => failures.push(format!(
            "creating a Patient after the run failed: HTTP {} {}",
            r.status,
            snippet(&r.body, 300)
        )),
        Err(e) => failures.push(format!(
            "creating a Patient after the run failed: {}",
            cut(&e, 500)
        )),
    }
    for (what, path) in [
        ("the known Patient", format!("Patient/{}", world.patient)),
        (
            "the Patient only forged tokens would delete",
            format!("Patient/{}", world.victim),
        ),
        (
            "the known DocumentReference",
            format!("DocumentReference/{}", world.document),
        ),
    ] {
        match get(&path).try_send() {
            Ok(r) if r.status == 200 => {}
            Ok(r) => failures.push(format!(
                "{what} is gone after the run: HTTP {} {}",
                r.status,
                snippet(&r.body, 300)
            )),
            Err(e) => failures.push(format!(
                "reading {what} after the run failed: {}",
                cut(&e, 500)
            )),
        }
    }
    failures
}

#[test]
fn hostile_requests_get_clear_answers() {
    let started = Instant::now();
    let world = setup();
    let mut g = Gen {
        rng: StdRng::seed_from_u64(SEED),
        w: &world,
        cases: Vec::new(),
    };
    broken_json(&mut g);
    broken_xml(&mut g);
    deep_nesting(&mut g);
    huge_numbers(&mut g);
    invalid_utf8(&mut g);
    oversize(&mut g);
    content_types(&mut g);
    traversal(&mut g);
    sql_injection(&mut g);
    header_injection(&mut g);
    forged_tokens(&mut g);
    big_search(&mut g);
    token_endpoint(&mut g);
    let mut cases = g.cases;
    let mut built: BTreeMap<Cat, usize> = BTreeMap::new();
    for c in &cases {
        *built.entry(c.cat).or_default() += 1;
    }
    for cat in Cat::ALL {
        assert_eq!(
            built.get(&cat).copied().unwrap_or(0),
            cat.planned(),
            "the {} category built a different number of requests",
            cat.name()
        );
    }
    // Categories interleave, so no one kind of load piles up.
    cases.shuffle(&mut StdRng::seed_from_u64(SEED ^ 0xC0FFEE));
    let setup_took = started.elapsed();

    let run_started = Instant::now();
    let next = AtomicUsize::new(0);
    let tally = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                if run_started.elapsed() > RUN_LIMIT {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else {
                    break;
                };
                let sent_at = Instant::now();
                let result = send(&case.wire);
                let elapsed = sent_at.elapsed();
                let problems = judge(case, &result, elapsed);
                tally
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(case, &result, elapsed, problems);
            });
        }
    });
    let run_took = run_started.elapsed();
    let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());

    // The server is still there and still serving.
    let after = still_serving(&world);

    let total: usize = tally.sent.values().sum();
    let per_cat: Vec<String> = Cat::ALL
        .iter()
        .map(|c| format!("{} {}", c.name(), tally.sent.get(c).copied().unwrap_or(0)))
        .collect();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for by in tally.statuses.values() {
        for (s, n) in by {
            *statuses.entry(s.clone()).or_default() += n;
        }
    }
    let slowest = tally
        .slowest
        .as_ref()
        .map(|(d, c, what)| format!("{d:?} ({}: {what})", c.name()))
        .unwrap_or_default();
    eprintln!(
        "hostile: {total} requests in {run_took:?} (setup {setup_took:?}, {WORKERS} threads): {}; statuses {statuses:?}; slowest {slowest}",
        per_cat.join(", ")
    );
    for cat in Cat::ALL {
        eprintln!(
            "hostile:   {:<30} {:>5} slowest {:>8.3?} {:?}",
            cat.name(),
            tally.sent.get(&cat).copied().unwrap_or(0),
            tally.slowest_by_cat.get(&cat).copied().unwrap_or_default(),
            tally.statuses.get(&cat).cloned().unwrap_or_default()
        );
    }

    for (cat, closed) in &tally.closed {
        eprintln!("hostile:   no answer ({}): {closed:?}", cat.name());
    }
    let mut failures = after;
    for cat in Cat::ALL {
        let sent = tally.sent.get(&cat).copied().unwrap_or(0);
        if sent != cat.planned() {
            failures.push(format!(
                "{}: sent {sent} of {} requests (the run stopped after {RUN_LIMIT:?})",
                cat.name(),
                cat.planned()
            ));
        }
    }
    if total < 10_000 {
        failures.push(format!("only {total} requests were sent (at least 10,000)"));
    }
    if let Some((d, c, what)) = &tally.slowest {
        if *d > BOUND {
            failures.push(format!(
                "the slowest request took {d:?} (bound {BOUND:?}): {}: {what}",
                c.name()
            ));
        }
    }
    if !tally.findings.is_empty() || !failures.is_empty() {
        let mut report = failures;
        let mut last = None;
        for ((cat, kind), (count, example)) in &tally.findings {
            if last != Some(*cat) {
                report.push(format!("== {} ==", cat.name()));
                last = Some(*cat);
            }
            report.push(format!("- {kind} (x{count}), e.g.\n      {example}"));
        }
        panic!(
            "{} kinds of bad answers in {total} hostile requests (seed {SEED:#x}):\n{}\n--- server log ---\n{}",
            tally.findings.len(),
            report.join("\n"),
            server().log_tail(30)
        );
    }
}
