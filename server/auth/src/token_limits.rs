//! Token requests are limited per client, so one runaway or hostile client
//! cannot monopolise the authorization server (every token request signs a
//! token and writes a grant and a security event). Past the limit within a
//! minute, the client's requests are refused with 429, `Retry-After` (the
//! seconds left of the minute) and `temporarily_unavailable`, and every
//! refusal is a security event naming the client.
//!
//! The count is per authenticated client: a confidential or backend
//! client's quota can only be spent by whoever holds its secret or key. A
//! public client cannot be authenticated (anyone may send its id), so its
//! count is per client and address: one address naming a public app cannot
//! lock the app out for its other users. Counted in the database, so every
//! replica sees one count.

use crate::client_auth::{AuthenticatedClient, ClientAuthMethod};
use crate::oauth_error::OAuthError;
use crate::AuthServer;

/// The fixed window requests are counted in.
const WINDOW_SECONDS: i64 = 60;

/// Counts this token request of `client`; refuses it when the client is
/// over its limit. `address` is the caller's address (behind trusted
/// balancers, the client's), which keys a public client's count.
pub(crate) async fn admit(
    server: &AuthServer,
    client: &AuthenticatedClient,
    address: Option<&str>,
) -> Result<(), OAuthError> {
    let Some(limit) = server.settings.token_requests_per_client_per_minute else {
        return Ok(());
    };
    let client_id = &client.client.client_id;
    let key = match (client.method, address) {
        (ClientAuthMethod::None, Some(address)) => format!("token:{client_id}@{address}"),
        _ => format!("token:{client_id}"),
    };
    let counted = server
        .db
        .call(move |store| store.count_request(&key, WINDOW_SECONDS))
        .await??;
    if counted.requests <= limit {
        return Ok(());
    }
    Err(OAuthError::too_many_requests(
        format!(
            "client '{client_id}' made more than {limit} token requests within a minute; \
             retry after {} s",
            counted.window_left_seconds
        ),
        counted.window_left_seconds,
    ))
}
