//! What can go wrong when talking to an external OpenID Connect provider.
//!
//! Every variant names the provider (the configured `name`), because a server
//! federates to several and its operator reads these in logs. Text that came
//! from the network (error descriptions, claim values in messages) passes
//! through [`untrusted`] first: bounded in length, control characters
//! replaced, so a provider cannot flood or forge log lines.

use std::error::Error as StdError;
use std::fmt::Write as _;

/// Why discovery, a login, or a check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The [`ProviderConfig`](crate::ProviderConfig) cannot work; nothing was sent.
    #[error("OpenID Connect provider `{provider}` is misconfigured: {reason}")]
    Config { provider: String, reason: String },

    /// The HTTP client could not be built (e.g. the system's root certificates are unreadable).
    #[error("cannot build the HTTP client for OpenID Connect provider `{provider}`: {reason}")]
    HttpClient { provider: String, reason: String },

    /// No HTTP response: connection refused, DNS, TLS, timeout. Worth retrying later.
    #[error("OpenID Connect provider `{provider}` is unreachable at {url}: {reason}")]
    Unreachable {
        provider: String,
        url: String,
        reason: String,
    },

    /// The discovery document or the key set is missing or not valid.
    #[error("OpenID Connect discovery for `{provider}` failed at {url}: {reason}")]
    Discovery {
        provider: String,
        url: String,
        reason: String,
    },

    /// The discovery document names another issuer than the configured one. They
    /// must match exactly (OpenID Connect Discovery §4.3), trailing slash included.
    #[error(
        "OpenID Connect provider `{provider}`: the discovery document names issuer `{found}`, \
         but `{expected}` is configured (they must match exactly)"
    )]
    IssuerMismatch {
        provider: String,
        expected: String,
        found: String,
    },

    /// The token endpoint answered with an OAuth error (`invalid_grant` for a
    /// wrong PKCE verifier, a reused or expired code, another client's code).
    #[error("OpenID Connect provider `{provider}` refused the authorization code: {error}{}",
        .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenRejected {
        provider: String,
        error: String,
        description: Option<String>,
    },

    /// The token endpoint answered with something that is not a token response.
    #[error("the token response of OpenID Connect provider `{provider}` is not usable: {reason}")]
    TokenResponse { provider: String, reason: String },

    /// The token response has no id_token, so nobody is identified.
    #[error("OpenID Connect provider `{provider}` returned no id_token (is the `openid` scope allowed for this client?)")]
    MissingIdToken { provider: String },

    /// The id_token was not issued for this login: replayed, or from another browser session.
    #[error("the id_token from OpenID Connect provider `{provider}` does not carry this login's nonce: {reason}")]
    NonceMismatch { provider: String, reason: String },

    /// The id_token failed validation: signature, algorithm, issuer, audience, expiry.
    #[error("the id_token from OpenID Connect provider `{provider}` is not valid: {reason}")]
    InvalidIdToken { provider: String, reason: String },

    /// The userinfo endpoint failed or answered for another subject.
    #[error("the userinfo request to OpenID Connect provider `{provider}` failed: {reason}")]
    UserInfo { provider: String, reason: String },

    /// The authorization response's `iss` parameter (RFC 9207) is missing or
    /// names another issuer: the response may come from another provider (mix-up).
    #[error("the authorization response for OpenID Connect provider `{provider}` {problem}")]
    CallbackIssuer { provider: String, problem: String },
}

impl OidcError {
    /// Whether trying again later may succeed without changing the
    /// configuration: the provider was unreachable.
    pub fn is_transient(&self) -> bool {
        matches!(self, OidcError::Unreachable { .. })
    }
}

/// At most this many characters of provider-supplied text go into a message.
const MAX_UNTRUSTED: usize = 300;

/// Provider-supplied text made safe for messages and logs: control
/// characters replaced, cut at [`MAX_UNTRUSTED`] characters.
pub(crate) fn untrusted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_UNTRUSTED + 3));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_UNTRUSTED {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// An error and its sources, `outer: inner: innermost`, because the
/// libraries' top-level messages ("Request failed") say little alone.
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        source = e.source();
    }
    untrusted(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_bounded_and_single_line() {
        assert_eq!(untrusted("a\nb\u{1b}[31m"), "a b [31m");
        let long = "x".repeat(1000);
        assert_eq!(untrusted(&long).chars().count(), MAX_UNTRUSTED + 1);
    }

    #[test]
    fn token_rejection_shows_description_when_given() {
        let e = OidcError::TokenRejected {
            provider: "idp".into(),
            error: "invalid_grant".into(),
            description: Some("grant request is invalid".into()),
        };
        assert_eq!(
            e.to_string(),
            "OpenID Connect provider `idp` refused the authorization code: invalid_grant (grant request is invalid)"
        );
        let e = OidcError::TokenRejected {
            provider: "idp".into(),
            error: "invalid_grant".into(),
            description: None,
        };
        assert!(e.to_string().ends_with("code: invalid_grant"));
    }

    #[test]
    fn only_unreachable_is_transient() {
        let unreachable = OidcError::Unreachable {
            provider: "idp".into(),
            url: "https://idp.example".into(),
            reason: "connection refused".into(),
        };
        assert!(unreachable.is_transient());
        let mismatch = OidcError::IssuerMismatch {
            provider: "idp".into(),
            expected: "a".into(),
            found: "b".into(),
        };
        assert!(!mismatch.is_transient());
    }
}
