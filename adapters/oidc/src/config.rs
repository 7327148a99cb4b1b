//! How one external provider is configured, and the checks made before any
//! request is sent, so that a typo fails at start-up with a clear message
//! rather than at a user's first login.

use std::fmt;

use serde::Deserialize;

use crate::error::OidcError;

/// One external OpenID Connect provider people may sign in with.
///
/// Deserialisable so that the server can read a list of them from its
/// configuration; `scopes` defaults to [`ProviderConfig::default_scopes`].
/// Not serialisable, nor printable with its secret: it holds one.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ProviderConfig {
    /// URL-safe identifier, used in our callback path and stored with each
    /// pending login (`[A-Za-z0-9._~-]`, e.g. `hospital-idp`).
    pub name: String,
    /// Shown on the login page ("Sign in with …").
    pub label: String,
    /// The issuer identifier, exactly as the provider states it in its
    /// discovery document (`https://idp.example.org/realms/x`).
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Our callback URL, registered at the provider.
    pub redirect_url: String,
    /// Scopes asked for besides `openid`, which is always asked for.
    #[serde(default = "ProviderConfig::default_scopes")]
    pub scopes: Vec<String>,
}

impl ProviderConfig {
    /// `email profile`: what the login needs to show and match an account.
    pub fn default_scopes() -> Vec<String> {
        vec!["email".to_string(), "profile".to_string()]
    }

    /// A configuration asking for the default scopes.
    pub fn new(
        name: impl Into<String>,
        label: impl Into<String>,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<String>,
        redirect_url: impl Into<String>,
    ) -> Self {
        ProviderConfig {
            name: name.into(),
            label: label.into(),
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            redirect_url: redirect_url.into(),
            scopes: Self::default_scopes(),
        }
    }

    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), OidcError> {
        let fail = |reason: String| {
            Err(OidcError::Config {
                provider: self.name.clone(),
                reason,
            })
        };
        if self.name.is_empty() || !self.name.bytes().all(is_unreserved) {
            return fail(format!(
                "the name {:?} must be non-empty and use only letters, digits and `-._~`",
                self.name
            ));
        }
        if self.label.trim().is_empty() {
            return fail("the label is empty".to_string());
        }
        if self.client_id.is_empty() {
            return fail("the client id is empty".to_string());
        }
        if self.client_secret.as_deref() == Some("") {
            return fail("the client secret is empty (leave it out for a public client)".into());
        }
        check_url("issuer", &self.issuer, true).or_else(fail)?;
        check_url("redirect URL", &self.redirect_url, false).or_else(fail)?;
        if let Some(bad) = self
            .scopes
            .iter()
            .find(|s| s.is_empty() || !s.bytes().all(is_scope_char))
        {
            return fail(format!("the scope {bad:?} is not a valid scope token"));
        }
        Ok(())
    }

    /// Whether the issuer uses plain http on a host other than loopback:
    /// allowed (a provider on a private network in development), but then
    /// codes and tokens cross the network in clear.
    pub(crate) fn issuer_is_insecure(&self) -> bool {
        match reqwest::Url::parse(&self.issuer) {
            Ok(url) => url.scheme() == "http" && !is_loopback(&url),
            Err(_) => false,
        }
    }
}

/// The client secret is never printed.
impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("label", &self.label)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// RFC 3986 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 6749 §3.3 scope-token characters.
fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An absolute http(s) URL; an issuer also has no query or fragment
/// (OpenID Connect Core §2).
fn check_url(what: &str, value: &str, issuer: bool) -> Result<(), String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("the {what} {value:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("the {what} {value:?} is not an http(s) URL"));
    }
    if issuer && (url.query().is_some() || url.fragment().is_some()) {
        return Err(format!(
            "the {what} {value:?} must not have a query or fragment"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ProviderConfig {
        ProviderConfig::new(
            "hospital-idp",
            "Hospital",
            "https://idp.example.org/realms/h",
            "fhirledger",
            Some("s3cret".to_string()),
            "https://fhir.example.org/auth/login/hospital-idp/callback",
        )
    }

    fn reason(config: &ProviderConfig) -> String {
        match config.validate() {
            Err(OidcError::Config { reason, .. }) => reason,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn a_sound_configuration_passes() {
        config().validate().unwrap();
        let mut public = config();
        public.client_secret = None;
        public.scopes.clear();
        public.validate().unwrap();
    }

    #[test]
    fn names_must_be_url_safe() {
        let mut c = config();
        c.name = "hospital idp".into();
        assert!(reason(&c).contains("name"));
        c.name = String::new();
        assert!(reason(&c).contains("name"));
    }

    #[test]
    fn urls_are_checked() {
        let mut c = config();
        c.issuer = "idp.example.org".into();
        assert!(reason(&c).contains("issuer"));
        c.issuer = "ftp://idp.example.org".into();
        assert!(reason(&c).contains("not an http(s) URL"));
        c.issuer = "https://idp.example.org/?tenant=1".into();
        assert!(reason(&c).contains("query"));
        let mut c = config();
        c.redirect_url = "/callback".into();
        assert!(reason(&c).contains("redirect URL"));
    }

    #[test]
    fn scopes_and_secrets_are_checked() {
        let mut c = config();
        c.scopes = vec!["email profile".into()];
        assert!(reason(&c).contains("scope"));
        let mut c = config();
        c.client_secret = Some(String::new());
        assert!(reason(&c).contains("secret"));
    }

    #[test]
    fn scopes_default_when_not_configured() {
        let c: ProviderConfig = serde_json::from_value(serde_json::json!({
            "name": "idp", "label": "IdP", "issuer": "https://idp.example.org",
            "client_id": "c", "client_secret": null, "redirect_url": "https://rp.example.org/cb"
        }))
        .unwrap();
        assert_eq!(c.scopes, ["email", "profile"]);
    }

    #[test]
    fn debug_hides_the_secret() {
        let printed = format!("{:?}", config());
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn plain_http_is_insecure_off_loopback() {
        let mut c = config();
        assert!(!c.issuer_is_insecure());
        c.issuer = "http://127.0.0.1:8081".into();
        assert!(!c.issuer_is_insecure());
        c.issuer = "http://localhost:8081".into();
        assert!(!c.issuer_is_insecure());
        c.issuer = "http://keycloak:8080/realms/h".into();
        assert!(c.issuer_is_insecure());
    }
}
