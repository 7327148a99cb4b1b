//! fhirledger's own SMART on FHIR authorization server (App Launch 2.2 and
//! Backend Services): discovery, `/auth/authorize` with its sign-in,
//! patient-picker and approval pages, `/auth/token`, introspection,
//! revocation, EHR launches, and the admin endpoints for clients and users.
//! Access tokens are JWTs we sign; FHIR requests are checked against them by
//! [`bearer`].

pub mod accounts;
pub mod admin;
pub mod authorize;
pub mod bearer;
pub mod checked_tokens;
pub mod claims;
pub mod client_auth;
pub mod client_keys;
pub mod discovery;
pub mod first_party;
pub mod flow;
pub mod form;
pub mod hospitals;
pub mod introspect;
pub mod issue;
pub mod keys;
pub mod login;
pub mod logout;
pub mod maintenance;
pub mod names;
pub mod oauth_error;
pub mod pages;
pub mod passwords;
pub mod revocation;
pub mod routes;
pub mod secrets;
pub mod security;
pub mod session;
mod sign_in_limits;
pub mod token;
mod token_limits;

use std::sync::Arc;

use chrono::Duration;
use fhirledger_service::Database;

use crate::client_keys::ClientKeys;
use crate::keys::KeyRing;
use crate::revocation::RevocationList;

/// Lifetimes and addresses of the authorization server.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `{public base}/auth`: the `iss` of every token we sign.
    pub issuer: String,
    /// `{public base}/fhir`: the `aud` of every access token.
    pub fhir_base: String,
    pub public_base: String,
    /// Access tokens of apps acting for a user.
    pub access_token_lifetime: Duration,
    /// Access tokens of backend clients (SMART: at most five minutes advised).
    pub backend_token_lifetime: Duration,
    /// Refresh tokens of `offline_access` grants.
    pub offline_lifetime: Duration,
    /// Browser sign-in sessions, and refresh tokens of `online_access` grants.
    pub session_lifetime: Duration,
    /// Signing keys are replaced this often.
    pub key_rotation: Duration,
    /// Local password accounts may sign in (`fhirledger dev`).
    pub local_login: bool,
    /// The largest body accepted (a FHIR resource sent with an onboarding).
    pub max_body_bytes: u64,
    /// The deployment's access policy, for the guards of the server's own searches.
    pub policy: fhirledger_access::Policy,
    /// How failed password sign-ins are limited.
    pub sign_in_limits: SignInLimits,
    /// Token requests one client may make within a minute (`None`: no
    /// limit); see `token_limits`.
    pub token_requests_per_client_per_minute: Option<i32>,
}

/// Failed password sign-ins allowed before a lock: per account (so a
/// password cannot be guessed) and per client address (so one address
/// cannot try many accounts), counted across replicas in the database.
#[derive(Debug, Clone, Copy)]
pub struct SignInLimits {
    pub per_account: i32,
    pub per_address: i32,
    /// The window the failures are counted in, and how long a lock lasts.
    pub window: Duration,
}

impl AuthSettings {
    /// An endpoint of the authorization server: `{issuer}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.issuer)
    }

    pub fn token_url(&self) -> String {
        self.url("token")
    }

    /// The longest any token we issue lives (how long revocations and
    /// retired keys must be kept).
    pub fn longest_token(&self) -> Duration {
        self.access_token_lifetime.max(self.backend_token_lifetime)
    }
}

/// Everything the authorization server and the bearer check share.
pub struct AuthServer {
    /// The store behind the fair database slots shared with the FHIR routes.
    pub db: Arc<Database>,
    pub settings: AuthSettings,
    pub keys: KeyRing,
    pub revocations: RevocationList,
    /// Access tokens already checked by this process (see [`checked_tokens`]).
    pub checked_tokens: checked_tokens::CheckedTokens,
    pub client_keys: ClientKeys,
    /// External OpenID Connect providers people sign in with.
    pub providers: Vec<login::ProviderSlot>,
}

impl AuthServer {
    /// `caller`'s guard for the service during request `req`: what it reads
    /// and writes is decided as any FHIR request's, and recorded in the
    /// request's `Recorder` (committed before the response leaves) — the
    /// portal's pages, an admin's onboarding, the picker's search.
    pub fn guard_in(
        &self,
        req: &actix_web::HttpRequest,
        caller: Arc<fhirledger_access::Caller>,
    ) -> fhirledger_service::Guard {
        let guard = fhirledger_service::Guard::for_caller(
            caller,
            &self.settings.fhir_base,
            self.settings.policy,
        );
        match security::request_recorder(req) {
            Some(recorder) => guard.recording(recorder),
            None => guard,
        }
    }

    /// Loads (or makes) the signing keys and the revocation list.
    pub fn open(
        db: Arc<Database>,
        settings: AuthSettings,
        providers: Option<&str>,
    ) -> anyhow::Result<AuthServer> {
        let providers = login::providers_from_setting(providers, &settings.issuer)?;
        let store = db.store();
        let keys = KeyRing::open(
            store.clone(),
            settings.key_rotation,
            settings.longest_token(),
        )?;
        first_party::register_portal(store, &settings)?;
        let revocations = RevocationList::default();
        revocations.sync(store)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(AuthServer {
            db,
            settings,
            keys,
            revocations,
            checked_tokens: Default::default(),
            client_keys: ClientKeys::new(http),
            providers,
        })
    }

    /// When a revocation written now stops mattering.
    pub fn revocation_expiry(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.settings.longest_token() + Duration::minutes(1)
    }
}
