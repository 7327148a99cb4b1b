//! What a login must remember between sending the browser to the provider
//! and the provider sending it back.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// The secrets of one login in progress. The server keeps it (in Postgres)
/// until the callback, keyed by `state`, together with the provider's name:
/// nothing in it says which provider started the login.
///
/// - `state` ties the callback to this login (CSRF): the callback's `state`
///   must equal it ([`PendingLogin::matches_state`]).
/// - `nonce` ties the id_token to this login (replay).
/// - `pkce_verifier` proves to the token endpoint that whoever redeems the
///   code started the login (PKCE S256): a stolen code is worthless.
///
/// All three are random, base64url, and must never reach the browser except
/// `state` (and the nonce and challenge derived from the verifier, inside the
/// authorization URL).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl PendingLogin {
    /// Whether the `state` of a callback is this login's, compared in
    /// constant time so that timing reveals nothing about the expected value.
    pub fn matches_state(&self, state: &str) -> bool {
        // `ct_eq` on slices of different lengths is false, and the length of
        // our own state is no secret.
        bool::from(self.state.as_bytes().ct_eq(state.as_bytes()))
    }
}

/// `state` is shown (it travels in URLs anyway); the other two are not.
impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &self.state)
            .field("nonce", &"<redacted>")
            .field("pkce_verifier", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingLogin {
        PendingLogin {
            state: "c3RhdGU".into(),
            nonce: "bm9uY2U".into(),
            pkce_verifier: "dmVyaWZpZXI".into(),
        }
    }

    #[test]
    fn state_must_match_exactly() {
        let p = pending();
        assert!(p.matches_state("c3RhdGU"));
        assert!(!p.matches_state("c3RhdGV"));
        assert!(!p.matches_state("c3RhdG"));
        assert!(!p.matches_state("c3RhdGUx"));
        assert!(!p.matches_state(""));
    }

    #[test]
    fn survives_a_round_trip_through_json() {
        let p = pending();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<PendingLogin>(&json).unwrap(), p);
    }

    #[test]
    fn debug_hides_the_secrets() {
        let printed = format!("{:?}", pending());
        assert!(printed.contains("c3RhdGU"));
        assert!(!printed.contains("bm9uY2U") && !printed.contains("dmVyaWZpZXI"));
    }
}
