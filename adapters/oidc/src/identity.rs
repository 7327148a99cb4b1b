//! Who signed in, as the provider vouches for it.

use serde::{Deserialize, Serialize};

/// The person a finished login identifies.
///
/// `(issuer, subject)` is the only stable, unique key: match accounts on it.
/// An email address can change hands and, unless `email_verified` is true,
/// was never checked by the provider; use it to find an account only when
/// verified, and as a hint otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The provider's issuer identifier (the id_token's `iss`).
    pub issuer: String,
    /// The provider's identifier for the person (the id_token's `sub`).
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    /// The display name (`name`), in the default language when localised.
    pub name: Option<String>,
}
