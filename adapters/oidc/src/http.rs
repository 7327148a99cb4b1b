//! The HTTP client used to talk to one provider.

use std::time::Duration;

use crate::error::{chain, OidcError};

/// A provider that does not accept a connection within this is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds every exchange, so a login page never hangs on a stuck provider.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for one provider's endpoints.
///
/// Redirects are not followed: a discovery, key set, token or userinfo
/// response that redirects is an error, not an invitation to fetch whatever
/// URL it names (openidconnect's advice against SSRF). Each [`Provider`]
/// owns its client (and connection pool), which also keeps one tokio runtime's
/// connections away from another's.
///
/// [`Provider`]: crate::Provider
pub(crate) fn client(provider: &str) -> Result<reqwest::Client, OidcError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("fhirledger/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OidcError::HttpClient {
            provider: provider.to_string(),
            reason: chain(&e),
        })
}
