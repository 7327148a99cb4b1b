//! Login federated to external OpenID Connect providers.
//!
//! fhirledger is its own (SMART) authorization server, but people prove who
//! they are at their organisation's identity provider. This adapter is the
//! relying-party half of that: it discovers each configured provider, starts
//! logins (authorization code flow with PKCE S256, a nonce and a state), and
//! finishes them (code exchange, id_token validation, userinfo when needed),
//! ending with an [`Identity`]. Storing pending logins, matching identities
//! to accounts and issuing our own tokens are the server's business.
//!
//! ```text
//! server start:  Provider::discover(config)            (again later if it failed transiently)
//! GET  /login:   let (url, pending) = provider.begin(); store pending; redirect to url
//! GET  callback: load pending by state; pending.matches_state(state);
//!                provider.check_callback_issuer(iss); provider.finish(code, &pending) -> Identity
//! ```
//!
//! Built on the `openidconnect` crate; HTTP through reqwest with rustls and
//! the system's root certificates (no OpenSSL).

mod config;
mod discovery;
mod error;
mod http;
mod identity;
mod pending;
mod provider;

pub use config::ProviderConfig;
pub use error::OidcError;
pub use identity::Identity;
pub use pending::PendingLogin;
pub use provider::Provider;
