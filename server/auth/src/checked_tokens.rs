//! Access tokens this process has already checked. An app sends the same
//! token with every request until it expires; checking its RS256 signature
//! and parsing its scopes again each time would cost more than the read it
//! authorises. So a token whose signature, issuer and audience were checked
//! is kept here, by its exact text, with the caller it describes, until it
//! expires. Expiry and revocation are still checked on every request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::claims::AccessClaims;
use fhirledger_access::caller::Caller;

/// How many tokens are kept at most; past that, expired ones are dropped,
/// and if that is not enough, all of them (they are checked again on use).
const CAPACITY: usize = 20_000;

/// A checked token: its claims (for expiry and revocation) and its caller.
pub struct Checked {
    pub claims: AccessClaims,
    pub caller: Arc<Caller>,
}

/// The checked tokens of this process.
#[derive(Default)]
pub struct CheckedTokens {
    entries: RwLock<HashMap<Box<str>, Arc<Checked>>>,
}

impl CheckedTokens {
    /// The token, when it was checked before and has not expired at `now`
    /// (seconds since the epoch).
    pub fn get(&self, token: &str, now: i64) -> Option<Arc<Checked>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(token).filter(|c| c.claims.exp >= now).cloned()
    }

    /// Keeps a token whose signature, issuer and audience were checked.
    pub fn insert(&self, token: &str, checked: Arc<Checked>, now: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, c| c.claims.exp >= now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token.into(), checked);
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(exp: i64) -> Arc<Checked> {
        let claims = AccessClaims {
            iss: "https://h/auth".into(),
            sub: "client".into(),
            aud: "https://h/fhir".into(),
            exp,
            iat: exp - 300,
            jti: "jti".into(),
            client_id: "client".into(),
            scope: "system/Patient.rs".into(),
            grant: None,
            patient: None,
            fhir_user: None,
            role: None,
            org: None,
            name: None,
            org_name: None,
        };
        let caller = Arc::new(claims.caller().expect("a caller"));
        Arc::new(Checked { claims, caller })
    }

    #[test]
    fn a_token_is_served_until_it_expires() {
        let tokens = CheckedTokens::default();
        tokens.insert("t", checked(1_000), 700);
        assert!(tokens.get("t", 1_000).is_some());
        assert!(tokens.get("t", 1_001).is_none(), "expired");
        assert!(tokens.get("other", 900).is_none(), "only the exact text");
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_first() {
        let tokens = CheckedTokens::default();
        for i in 0..CAPACITY {
            tokens.insert(&format!("old{i}"), checked(10), 0);
        }
        tokens.insert("live", checked(1_000), 500);
        assert_eq!(tokens.len(), 1, "every expired token was dropped");
        assert!(tokens.get("live", 500).is_some());
    }
}
