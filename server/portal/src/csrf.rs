//! CSRF protection for every form the portal serves: each form carries a
//! token derived from the session's access token, which a page of another
//! site can neither read (the cookie is HttpOnly) nor guess (SHA-256 of a
//! signed token with 256 random bits in its `jti`). The session cookie is
//! also `SameSite=Lax`, so a cross-site post arrives without it; the token
//! is the second, independent defence.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The name of the hidden field every form carries.
pub const FIELD: &str = "csrf";

/// The token for a session.
pub fn token(access_token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"fhirledger portal csrf\n");
    hash.update(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// Whether a form's token is the session's.
pub fn check(access_token: &str, sent: Option<&str>) -> bool {
    sent.is_some_and(|sent| {
        fhirledger_auth::secrets::constant_time_eq(sent.as_bytes(), token(access_token).as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_checks_only_for_its_own_session() {
        let t = token("session-a");
        assert!(check("session-a", Some(&t)));
        assert!(!check("session-b", Some(&t)));
        assert!(!check("session-a", None));
        assert!(!check("session-a", Some("")));
    }
}
