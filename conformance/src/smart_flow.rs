//! Driving the SMART authorization code flow the way a person's browser and
//! an app do: the app sends the browser to `/auth/authorize`, the browser
//! (a cookie jar, redirects followed by hand) signs in, picks a patient and
//! approves on the server's HTML pages, and the app exchanges the code it
//! was sent back for tokens. Also: user accounts and app clients made with
//! the admin commands, the token-endpoint calls apps make, and tokens forged
//! with the server's own signing key for the negative tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use reqwest::Url;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::server::TestServer;
use crate::smart::Site;

/// Where the app is sent back to (never fetched: the test reads `Location`).
pub const REDIRECT_URI: &str = "https://app.example.org/smart/callback";

/// A unique, plausible email address.
pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.org", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------- accounts

/// A user account with a local password, made with `fhirledger user add`.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub user_id: String,
    pub email: String,
    pub password: String,
    pub role: String,
    /// `Type/id`, when the account has a FHIR identity.
    pub fhir_user: Option<String>,
    pub org: Option<String>,
}

impl TestUser {
    /// `fhirledger user add --role ROLE [--org ORG] [--fhir-user REF] --email … --password …`.
    pub fn create(
        server: &impl Site,
        role: &str,
        org: Option<&str>,
        fhir_user: Option<&str>,
    ) -> TestUser {
        let email = unique_email(role);
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let mut args = vec![
            "user",
            "add",
            "--role",
            role,
            "--email",
            &email,
            "--password",
            &password,
        ];
        if let Some(org) = org {
            args.extend(["--org", org]);
        }
        if let Some(f) = fhir_user {
            args.extend(["--fhir-user", f]);
        }
        let out = server.deployment().cli(&args);
        TestUser {
            user_id: out["user_id"]
                .as_str()
                .unwrap_or_else(|| panic!("user add printed no user_id: {out}"))
                .to_string(),
            email,
            password,
            role: role.to_string(),
            fhir_user: fhir_user.map(str::to_string),
            org: org.map(str::to_string),
        }
    }

    /// The id of the account's FHIR identity (`Patient/abc` → `abc`).
    pub fn fhir_id(&self) -> &str {
        self.fhir_user
            .as_deref()
            .and_then(|f| f.split_once('/'))
            .map(|(_, id)| id)
            .expect("the user has a FHIR identity")
    }
}

// ------------------------------------------------------------- app clients

/// How an app client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: `client_id` in the form.
    None,
    /// `Authorization: Basic` (client_secret_basic).
    Basic,
    /// `client_id` and `client_secret` in the form (client_secret_post).
    Post,
}

/// A registered app (public or confidential symmetric).
#[derive(Debug, Clone)]
pub struct AppClient {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
    pub auth: ClientAuth,
    pub token_url: String,
    pub public_base: String,
    pub fhir_base: String,
}

impl AppClient {
    /// `fhirledger client add --kind public|confidential --redirect-uri … [--scope …]`.
    pub fn register(server: &impl Site, kind: &str, scope: Option<&str>) -> AppClient {
        let server = server.deployment();
        let mut args = vec![
            "client",
            "add",
            "--name",
            "Conformance App",
            "--kind",
            kind,
            "--redirect-uri",
            REDIRECT_URI,
        ];
        if let Some(s) = scope {
            args.extend(["--scope", s]);
        }
        let out = server.cli(&args);
        let secret = out["client_secret"].as_str().map(str::to_string);
        assert_eq!(
            secret.is_some(),
            kind == "confidential",
            "only confidential clients get a secret: {out}"
        );
        AppClient {
            client_id: out["client_id"]
                .as_str()
                .unwrap_or_else(|| panic!("client add printed no client_id: {out}"))
                .to_string(),
            auth: if secret.is_some() {
                ClientAuth::Basic
            } else {
                ClientAuth::None
            },
            secret,
            redirect_uri: REDIRECT_URI.to_string(),
            token_url: format!("{}/auth/token", server.public_base),
            fhir_base: server.fhir_base(),
            public_base: server.public_base,
        }
    }

    /// The same client authenticating another way.
    pub fn authenticating(&self, auth: ClientAuth) -> AppClient {
        AppClient {
            auth,
            ..self.clone()
        }
    }

    /// A well-formed authorization request for `scope` (fresh state and PKCE).
    pub fn request(&self, scope: &str) -> AuthRequest {
        AuthRequest::new(&self.client_id, &self.redirect_uri, &self.fhir_base, scope)
    }

    /// Exchanges a code (with its PKCE verifier) at the token endpoint.
    pub fn exchange(&self, code: &str, verifier: &str) -> TokenAnswer {
        self.call(
            &self.token_url,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
            ],
        )
    }

    /// A refresh, optionally asking for `scope`.
    pub fn refresh(&self, refresh_token: &str, scope: Option<&str>) -> TokenAnswer {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.call(&self.token_url, &form)
    }

    /// RFC 7662 introspection.
    pub fn introspect(&self, token: &str) -> TokenAnswer {
        self.call(
            &format!("{}/auth/introspect", self.public_base),
            &[("token", token)],
        )
    }

    /// RFC 7009 revocation.
    pub fn revoke(&self, token: &str) -> TokenAnswer {
        self.call(
            &format!("{}/auth/revoke", self.public_base),
            &[("token", token)],
        )
    }

    /// POSTs `form` to `url` with this client's authentication.
    pub fn call(&self, url: &str, form: &[(&str, &str)]) -> TokenAnswer {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let mut basic = None;
        match self.auth {
            ClientAuth::None => form.push(("client_id", &self.client_id)),
            ClientAuth::Post => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.secret.as_deref().unwrap_or("")));
            }
            ClientAuth::Basic => {
                basic = Some((
                    self.client_id.as_str(),
                    self.secret.as_deref().unwrap_or(""),
                ))
            }
        }
        form_post(url, &form, basic)
    }
}

/// An answer of the token, introspection or revocation endpoint.
#[derive(Debug)]
pub struct TokenAnswer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TokenAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts 200 and returns the body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "expected 200, got {self:?}");
        &self.body
    }

    /// Asserts an RFC 6749 error answer: its status and `error` code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(error)),
            "expected {status} {error}, got {self:?}"
        );
        assert_eq!(
            self.header("cache-control"),
            Some("no-store"),
            "error answers are not cached: {self:?}"
        );
    }

    /// A string field of a successful answer.
    #[track_caller]
    pub fn field(&self, name: &str) -> String {
        self.ok()[name]
            .as_str()
            .unwrap_or_else(|| panic!("no string {name} in {self:?}"))
            .to_string()
    }

    pub fn access_token(&self) -> String {
        self.field("access_token")
    }

    /// The granted scopes, as a sorted list.
    pub fn scopes(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .field("scope")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        s.sort();
        s
    }
}

/// POSTs a form (optionally with Basic credentials); any JSON answer.
pub fn form_post(url: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> TokenAnswer {
    let mut req = crate::http::client().post(url).form(form);
    if let Some((id, secret)) = basic {
        // RFC 6749 §2.3.1: both parts form-encoded before Basic.
        let enc = crate::fhir::url_encode;
        req = req.basic_auth(enc(id), Some(enc(secret)));
    }
    let resp = req
        .send()
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().unwrap_or_default();
    TokenAnswer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

// ------------------------------------------------------------------- PKCE

/// A PKCE verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

// ------------------------------------------------- authorization requests

/// The parameters of an authorization request; each may be changed or
/// removed to make a bad request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub params: Vec<(String, String)>,
    pub pkce: Pkce,
}

impl AuthRequest {
    pub fn new(client_id: &str, redirect_uri: &str, aud: &str, scope: &str) -> AuthRequest {
        let pkce = Pkce::new();
        let params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", &format!("st-{}", uuid::Uuid::new_v4().simple())),
            ("aud", aud),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        AuthRequest { params, pkce }
    }

    /// Sets (or adds) a parameter.
    pub fn set(mut self, name: &str, value: &str) -> AuthRequest {
        match self.params.iter_mut().find(|(k, _)| k == name) {
            Some(p) => p.1 = value.to_string(),
            None => self.params.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// Removes a parameter.
    pub fn without(mut self, name: &str) -> AuthRequest {
        self.params.retain(|(k, _)| k != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn state(&self) -> &str {
        self.get("state").unwrap_or_default()
    }

    pub fn verifier(&self) -> &str {
        &self.pkce.verifier
    }

    /// `{public_base}/auth/authorize?…`.
    pub fn url(&self, public_base: &str) -> String {
        let mut url = Url::parse(&format!("{public_base}/auth/authorize")).expect("a URL");
        url.query_pairs_mut().extend_pairs(&self.params);
        url.to_string()
    }
}

// ---------------------------------------------------------------- browser

/// One answer the browser got.
#[derive(Debug, Clone)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Where the app was sent back to, with its query parameters decoded.
#[derive(Debug, Clone)]
pub struct Callback {
    pub location: String,
    pub params: Vec<(String, String)>,
}

impl Callback {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The code of a successful callback (asserts there is no error).
    #[track_caller]
    pub fn code(&self) -> String {
        assert!(
            self.get("error").is_none(),
            "the app got an error back: {self:?}"
        );
        self.get("code")
            .unwrap_or_else(|| panic!("the callback has no code: {self:?}"))
            .to_string()
    }

    /// Asserts an error callback with this code and state, and no code.
    #[track_caller]
    pub fn assert_error(&self, error: &str, state: &str) {
        assert_eq!(self.get("error"), Some(error), "{self:?}");
        assert_eq!(self.get("state"), Some(state), "{self:?}");
        assert!(
            self.get("code").is_none(),
            "an error carries no code: {self:?}"
        );
    }
}

/// Where the flow stands after the browser's last request.
#[derive(Debug, Clone)]
pub enum Step {
    /// The sign-in page.
    Login { request: String, page: Page },
    /// The patient picker: the ids offered, in order.
    Picker {
        request: String,
        patients: Vec<String>,
        page: Page,
    },
    /// The approval page: the value of each scope checkbox, in order.
    Approval {
        request: String,
        scopes: Vec<String>,
        page: Page,
    },
    /// Back at the app's redirect URI.
    Callback(Callback),
    /// Any other page (an error page).
    Other(Page),
}

impl Step {
    fn what(&self) -> String {
        match self {
            Step::Login { page, .. } => format!("the sign-in page ({})", page.url),
            Step::Picker { page, .. } => format!("the patient picker ({})", page.url),
            Step::Approval { scopes, .. } => format!("the approval page (scopes {scopes:?})"),
            Step::Callback(c) => format!("a callback to the app: {}", c.location),
            Step::Other(p) => format!(
                "another page: {} {} {}",
                p.status,
                p.url,
                crate::http::snippet(p.body.as_bytes(), 600)
            ),
        }
    }

    #[track_caller]
    pub fn login(self) -> String {
        match self {
            Step::Login { request, .. } => request,
            other => panic!("expected the sign-in page, got {}", other.what()),
        }
    }

    #[track_caller]
    pub fn picker(self) -> (String, Vec<String>, Page) {
        match self {
            Step::Picker {
                request,
                patients,
                page,
            } => (request, patients, page),
            other => panic!("expected the patient picker, got {}", other.what()),
        }
    }

    #[track_caller]
    pub fn approval(self) -> (String, Vec<String>, Page) {
        match self {
            Step::Approval {
                request,
                scopes,
                page,
            } => (request, scopes, page),
            other => panic!("expected the approval page, got {}", other.what()),
        }
    }

    #[track_caller]
    pub fn callback(self) -> Callback {
        match self {
            Step::Callback(c) => c,
            other => panic!("expected a redirect back to the app, got {}", other.what()),
        }
    }

    #[track_caller]
    pub fn page(self) -> Page {
        match self {
            Step::Other(p) => p,
            other => panic!("expected an error page, got {}", other.what()),
        }
    }
}

/// A browser: its own cookie jar, redirects inside the authorization server
/// followed, redirects to the app stopped at.
pub struct Browser {
    client: Client,
    public_base: String,
}

impl Browser {
    pub fn new(server: &impl Site) -> Browser {
        Browser {
            client: Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("the browser's client builds"),
            public_base: server.deployment().public_base,
        }
    }

    fn auth_url(&self, path: &str) -> String {
        format!("{}/auth/{path}", self.public_base)
    }

    fn fetch(&self, builder: reqwest::blocking::RequestBuilder, url: &str) -> Page {
        let resp = builder
            .send()
            .unwrap_or_else(|e| panic!("the browser's request to {url} failed: {e}"));
        Page {
            url: url.to_string(),
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().unwrap_or_default(),
        }
    }

    /// GETs a URL; the raw answer, no redirect followed.
    pub fn get_page(&self, url: &str) -> Page {
        self.fetch(self.client.get(url), url)
    }

    /// POSTs a form; the raw answer, no redirect followed.
    pub fn post_page(&self, url: &str, form: &[(&str, &str)]) -> Page {
        self.fetch(self.client.post(url).form(form), url)
    }

    /// Follows redirects inside the authorization server and says where the flow is.
    pub fn follow(&self, mut page: Page) -> Step {
        let auth_prefix = self.auth_url("");
        for _ in 0..10 {
            if !(300..400).contains(&page.status) {
                return classify(page);
            }
            let Some(location) = page.header("location") else {
                return Step::Other(page);
            };
            let target = Url::parse(&page.url)
                .and_then(|u| u.join(location))
                .unwrap_or_else(|e| panic!("Location {location:?} does not resolve: {e}"));
            if !target.as_str().starts_with(&auth_prefix) {
                return Step::Callback(Callback {
                    location: target.to_string(),
                    params: target
                        .query_pairs()
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect(),
                });
            }
            page = self.get_page(target.as_str());
        }
        panic!("more than 10 redirects inside the authorization server");
    }

    /// Opens the authorization URL (GET).
    pub fn authorize(&self, request: &AuthRequest) -> Step {
        let url = request.url(&self.public_base);
        let page = self.get_page(&url);
        self.follow(page)
    }

    /// Submits the authorization request as a form (POST).
    pub fn authorize_post(&self, request: &AuthRequest) -> Step {
        let form: Vec<(&str, &str)> = request
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let page = self.post_page(&self.auth_url("authorize"), &form);
        self.follow(page)
    }

    /// Signs in on the sign-in page with a local password.
    pub fn login(&self, request: &str, user: &TestUser) -> Step {
        let page = self.post_page(
            &self.auth_url("login"),
            &[
                ("request", request),
                ("email", &user.email),
                ("password", &user.password),
            ],
        );
        self.follow(page)
    }

    /// Chooses a patient on the picker.
    pub fn pick(&self, request: &str, patient: &str) -> Step {
        let page = self.post_page(
            &self.auth_url("patient"),
            &[("request", request), ("patient", patient)],
        );
        self.follow(page)
    }

    /// Approves with these checkbox values ticked.
    pub fn approve(&self, request: &str, ticked: &[String]) -> Step {
        let mut form = vec![("request", request), ("decision", "approve")];
        form.extend(ticked.iter().map(|s| ("scope", s.as_str())));
        let page = self.post_page(&self.auth_url("approve"), &form);
        self.follow(page)
    }

    /// Denies.
    pub fn deny(&self, request: &str) -> Step {
        let page = self.post_page(
            &self.auth_url("approve"),
            &[("request", request), ("decision", "deny")],
        );
        self.follow(page)
    }

    /// Authorize, sign in as `user`, approve everything offered: the callback.
    /// Panics when a patient picker comes up.
    pub fn sign_in_and_approve(&self, request: &AuthRequest, user: &TestUser) -> Callback {
        let login = self.authorize(request).login();
        let (req, scopes, _) = self.login(&login, user).approval();
        self.approve(&req, &scopes).callback()
    }
}

/// The whole flow for `user` with `client`: the token endpoint's answer to
/// the code (asserted 200).
pub fn tokens_for(
    server: &impl Site,
    client: &AppClient,
    user: &TestUser,
    scope: &str,
) -> TokenAnswer {
    let request = client.request(scope);
    let callback = Browser::new(server).sign_in_and_approve(&request, user);
    assert_eq!(callback.get("state"), Some(request.state()));
    let answer = client.exchange(&callback.code(), request.verifier());
    answer.ok();
    answer
}

/// What the page is, by the form it shows.
fn classify(page: Page) -> Step {
    if page.status != 200 {
        return Step::Other(page);
    }
    let inputs = inputs(&page.body);
    let hidden = |name: &str| {
        inputs
            .iter()
            .find(|i| i.attr("type") == Some("hidden") && i.attr("name") == Some(name))
            .and_then(|i| i.attr("value"))
            .map(str::to_string)
    };
    let actions = form_actions(&page.body);
    let request = hidden("request");
    match request {
        Some(request) if actions.iter().any(|a| a == "approve") => Step::Approval {
            request,
            scopes: inputs
                .iter()
                .filter(|i| i.attr("type") == Some("checkbox") && i.attr("name") == Some("scope"))
                .filter_map(|i| i.attr("value").map(str::to_string))
                .collect(),
            page,
        },
        Some(request) if actions.iter().any(|a| a == "patient") => Step::Picker {
            request,
            patients: inputs
                .iter()
                .filter(|i| i.attr("type") == Some("radio") && i.attr("name") == Some("patient"))
                .filter_map(|i| i.attr("value").map(str::to_string))
                .collect(),
            page,
        },
        Some(request) if actions.iter().any(|a| a == "login") => Step::Login { request, page },
        // A picker with no patient to offer has only its search form.
        Some(request) if actions.iter().any(|a| a == "continue") => Step::Picker {
            request,
            patients: Vec::new(),
            page,
        },
        _ => Step::Other(page),
    }
}

// ------------------------------------------------------------------- HTML

/// An HTML start tag's attributes.
#[derive(Debug, Clone)]
pub struct Tag {
    pub attrs: Vec<(String, Option<String>)>,
}

impl Tag {
    /// An attribute's value (`""` for a bare attribute), entities decoded.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    pub fn has(&self, name: &str) -> bool {
        self.attrs.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }
}

/// Every `<{name} …>` start tag of a document.
pub fn tags(html: &str, name: &str) -> Vec<Tag> {
    let open = format!("<{name}");
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find(&open) {
        let start = at + found + open.len();
        at = start;
        // `<inputx` is another tag.
        if !html[start..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/') {
            continue;
        }
        let (attrs, end) = parse_attrs(&html[start..]);
        at = start + end;
        out.push(Tag { attrs });
    }
    out
}

/// Every `<input>` of a document.
pub fn inputs(html: &str) -> Vec<Tag> {
    tags(html, "input")
}

/// The `action` of every form.
pub fn form_actions(html: &str) -> Vec<String> {
    tags(html, "form")
        .iter()
        .filter_map(|t| t.attr("action").map(str::to_string))
        .collect()
}

/// Attributes up to the tag's `>`; returns them and the bytes consumed.
fn parse_attrs(s: &str) -> (Vec<(String, Option<String>)>, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' {
            return (attrs, (i + 1).min(b.len()));
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = s[name_start..i].to_string();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let quote = b[i];
                let v_start = i + 1;
                i = v_start;
                while i < b.len() && b[i] != quote {
                    i += 1;
                }
                let v = &s[v_start..i.min(b.len())];
                i += 1;
                v
            } else {
                let v_start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                &s[v_start..i]
            };
            attrs.push((name, Some(decode_entities(value))));
        } else {
            attrs.push((name, None));
        }
    }
}

/// Decodes the character references an HTML serialiser writes.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

// --------------------------------------------------------------- JWTs

/// The claims of a JWT, unverified.
pub fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url payload"))
        .expect("a JSON payload")
}

/// The header of a JWT, unverified.
pub fn jwt_header(jwt: &str) -> Value {
    let header = jwt.split('.').next().expect("a JWT has a header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url header"))
        .expect("a JSON header")
}

/// Verifies a JWT of ours against the published JWK Set (`/auth/jwks`):
/// RS256, a published `kid`, a valid signature, and `aud`; returns the claims.
pub fn verify_with_jwks(server: &TestServer, jwt: &str, audience: &str) -> Value {
    let resp = crate::http::client()
        .get(format!("{}/auth/jwks", server.public_base))
        .send()
        .expect("GET /auth/jwks");
    assert_eq!(resp.status().as_u16(), 200);
    let jwks: jsonwebtoken::jwk::JwkSet = resp.json().expect("a JWK Set");
    let header = jsonwebtoken::decode_header(jwt).expect("a JWT header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256, "{header:?}");
    let kid = header.kid.expect("the JWT names its key (kid)");
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not published at /auth/jwks"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("a usable JWK");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[format!("{}/auth", server.public_base)]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap_or_else(|e| panic!("the JWT does not verify with /auth/jwks: {e}"))
        .claims
}

/// Signs `claims` as an access token with the server's own current key
/// (read from its database), for expired / wrong-issuer / wrong-audience tokens.
pub fn forge_token(server: &TestServer, claims: &Value) -> String {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let store = fhirledger_postgres::PgStore::connect(
        &server.database_url,
        &fhirledger_postgres::PoolConfig {
            max_size: 1,
            ..Default::default()
        },
    )
    .expect("connecting to the test database");
    let keys = store.signing_keys().expect("reading the signing keys");
    let key = keys
        .iter()
        .find(|k| k.retired_at.is_none())
        .or(keys.first())
        .expect("the server has a signing key");
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(&key.private_pem)
        .or_else(|_| {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::RsaPrivateKey::from_pkcs1_pem(&key.private_pem)
        })
        .expect("the stored key is an RSA PEM");
    let der = private.to_pkcs1_der().expect("PKCS#1");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .expect("signing")
}

/// Claims like those of a live token the server issued, for forging.
pub fn access_claims_like(server: &TestServer, issued: &str) -> Value {
    let mut claims = jwt_claims(issued);
    let now = crate::smart::chrono_now();
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 600);
    claims["jti"] = json!(uuid::Uuid::new_v4().simple().to_string());
    claims["iss"] = json!(format!("{}/auth", server.public_base));
    claims["aud"] = json!(server.fhir_base);
    claims
}

// ------------------------------------------------------------ FHIR records

/// A new Organization (a hospital); returns its id. Made with the server's
/// system token.
pub fn new_hospital() -> String {
    crate::fhir::id_of(&crate::fhir::create(&crate::fhir::organization(
        &crate::fhir::uid(),
    )))
}

/// A new Patient managed by `org`, with this family name; returns its id.
pub fn new_patient_in(org: &str, family: &str) -> String {
    let mut p = crate::fhir::patient(&crate::fhir::uid());
    p["name"] = json!([{ "family": family, "given": ["Test"] }]);
    p["managingOrganization"] = json!({ "reference": format!("Organization/{org}") });
    crate::fhir::id_of(&crate::fhir::create(&p))
}

/// A new Practitioner; returns its id.
pub fn new_practitioner() -> String {
    crate::fhir::id_of(&crate::fhir::create(&crate::fhir::practitioner(
        &crate::fhir::uid(),
    )))
}

/// A DocumentReference about `patient` with one category code (system
/// `http://example.org/doc-category`), not yet created.
pub fn document(patient: &str, category: &str) -> Value {
    let mut d = crate::fhir::document_reference(patient, &crate::fhir::uid());
    d["category"] =
        json!([{ "coding": [{ "system": "http://example.org/doc-category", "code": category }] }]);
    d
}

/// A patient account (with its Patient in `org`).
pub fn new_patient_user(server: &TestServer, org: &str) -> TestUser {
    let patient = new_patient_in(org, &format!("Pat{}", &crate::fhir::uid()[..8]));
    TestUser::create(
        server,
        "patient",
        Some(org),
        Some(&format!("Patient/{patient}")),
    )
}

/// A doctor account of `org` (with a Practitioner).
pub fn new_doctor(server: &TestServer, org: &str) -> TestUser {
    let practitioner = new_practitioner();
    TestUser::create(
        server,
        "doctor",
        Some(org),
        Some(&format!("Practitioner/{practitioner}")),
    )
}
