//! OpenID Connect Discovery: the provider's metadata document and its key set.
//!
//! The document is fetched here rather than by openidconnect's
//! `discover_async` so that the failures an operator must tell apart get their
//! own errors: unreachable (retry later), not found or malformed (fix the
//! issuer URL), or naming another issuer (fix the trailing slash, the realm).

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, DiscoveryError, HttpClientError, IssuerUrl,
    ProviderMetadata, TokenUrl,
};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::config::ProviderConfig;
use crate::error::{chain, untrusted, OidcError};

/// Metadata fields this adapter reads beyond OpenID Connect Discovery's own.
///
/// Kept as raw JSON: a provider that sends an odd value here (a string for a
/// boolean) must not fail discovery as a whole over a field that is optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct ExtraMetadata {
    /// RFC 9207: the provider puts `iss` in authorization responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<serde_json::Value>,
    /// RFC 8414: PKCE methods the provider accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_challenge_methods_supported: Option<serde_json::Value>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

impl ExtraMetadata {
    pub(crate) fn iss_parameter_supported(&self) -> bool {
        self.authorization_response_iss_parameter_supported == Some(serde_json::Value::Bool(true))
    }

    /// `Some(false)` when the provider lists its PKCE methods and S256 is not
    /// among them; `None` when it does not say (many providers that support
    /// PKCE do not advertise it).
    pub(crate) fn supports_pkce_s256(&self) -> Option<bool> {
        let methods = self.code_challenge_methods_supported.as_ref()?.as_array()?;
        Some(methods.iter().any(|m| m.as_str() == Some("S256")))
    }
}

/// The provider metadata, with [`ExtraMetadata`].
pub(crate) type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Fetches `{issuer}/.well-known/openid-configuration`, checks that it names
/// the configured issuer exactly, and fetches the key set it points to.
pub(crate) async fn discover(
    http: &reqwest::Client,
    config: &ProviderConfig,
) -> Result<Metadata, OidcError> {
    let provider = || config.name.clone();
    let issuer = IssuerUrl::new(config.issuer.clone()).map_err(|e| OidcError::Config {
        provider: provider(),
        reason: format!("the issuer {:?}: {e}", config.issuer),
    })?;
    let url = issuer
        .join(".well-known/openid-configuration")
        .map_err(|e| OidcError::Config {
            provider: provider(),
            reason: format!("the issuer {:?}: {e}", config.issuer),
        })?;
    let unreachable = |e: reqwest::Error| OidcError::Unreachable {
        provider: provider(),
        url: url.to_string(),
        reason: chain(&e),
    };
    let response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(OidcError::Discovery {
            provider: provider(),
            url: url.to_string(),
            reason: format!("HTTP status {status} (is the issuer URL right?)"),
        });
    }
    let body = response.bytes().await.map_err(unreachable)?;
    let metadata: Metadata = serde_json::from_slice(&body).map_err(|e| OidcError::Discovery {
        provider: provider(),
        url: url.to_string(),
        reason: format!(
            "not an OpenID Provider Metadata document: {}",
            untrusted(&e.to_string())
        ),
    })?;
    if metadata.issuer().as_str() != config.issuer {
        return Err(OidcError::IssuerMismatch {
            provider: provider(),
            expected: config.issuer.clone(),
            found: untrusted(metadata.issuer().as_str()),
        });
    }
    let jwks = fetch_keys(http, config, metadata.jwks_uri()).await?;
    Ok(metadata.set_jwks(jwks))
}

/// Fetches the provider's signing keys (at discovery, and again when an
/// id_token names a key we do not know: the provider rotated its keys).
pub(crate) async fn fetch_keys(
    http: &reqwest::Client,
    config: &ProviderConfig,
    jwks_uri: &openidconnect::JsonWebKeySetUrl,
) -> Result<CoreJsonWebKeySet, OidcError> {
    CoreJsonWebKeySet::fetch_async(jwks_uri, http)
        .await
        .map_err(|e| match e {
            DiscoveryError::Request(e) => OidcError::Unreachable {
                provider: config.name.clone(),
                url: jwks_uri.to_string(),
                reason: transport(&e),
            },
            DiscoveryError::Response(status, _, message) => OidcError::Discovery {
                provider: config.name.clone(),
                url: jwks_uri.to_string(),
                reason: format!("key set: {} (HTTP status {status})", untrusted(&message)),
            },
            other => OidcError::Discovery {
                provider: config.name.clone(),
                url: jwks_uri.to_string(),
                reason: format!("key set: {}", chain(&other)),
            },
        })
}

/// The token endpoint, after checking that the provider can do the
/// authorization code flow with PKCE S256.
pub(crate) fn code_flow_token_url(
    metadata: &Metadata,
    config: &ProviderConfig,
) -> Result<TokenUrl, OidcError> {
    let failed = |reason: &str| OidcError::Discovery {
        provider: config.name.clone(),
        url: config.issuer.clone(),
        reason: reason.to_string(),
    };
    match metadata.additional_metadata().supports_pkce_s256() {
        Some(false) => {
            return Err(failed(
                "the provider does not support PKCE with S256 (code_challenge_methods_supported)",
            ))
        }
        None => debug!(provider = %config.name,
            "the provider does not advertise its PKCE methods; sending S256 anyway"),
        Some(true) => {}
    }
    metadata.token_endpoint().cloned().ok_or_else(|| {
        failed("the provider has no token endpoint (the authorization code flow needs one)")
    })
}

/// The algorithms id_tokens may be signed with: those the provider
/// advertises, never `none`.
pub(crate) fn id_token_algs(metadata: &Metadata) -> Vec<CoreJwsSigningAlgorithm> {
    metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|alg| **alg != CoreJwsSigningAlgorithm::None)
        .cloned()
        .collect()
}

/// How we authenticate at the token endpoint: `client_secret_basic`, the
/// default (RFC 8414 §2), unless the provider offers only `client_secret_post`.
pub(crate) fn token_auth_type(metadata: &Metadata) -> AuthType {
    match metadata.token_endpoint_auth_methods_supported() {
        Some(methods)
            if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
        {
            AuthType::RequestBody
        }
        _ => AuthType::BasicAuth,
    }
}

/// A transport failure of openidconnect's HTTP client, sources included.
pub(crate) fn transport(e: &HttpClientError<reqwest::Error>) -> String {
    match e {
        HttpClientError::Reqwest(inner) => chain(inner.as_ref()),
        other => chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extra(json: serde_json::Value) -> ExtraMetadata {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn iss_parameter_support_needs_a_true_boolean() {
        let yes =
            extra(serde_json::json!({"authorization_response_iss_parameter_supported": true}));
        assert!(yes.iss_parameter_supported());
        let odd =
            extra(serde_json::json!({"authorization_response_iss_parameter_supported": "yes"}));
        assert!(!odd.iss_parameter_supported());
        assert!(!extra(serde_json::json!({})).iss_parameter_supported());
    }

    #[test]
    fn pkce_support_is_read_when_advertised() {
        let s256 =
            extra(serde_json::json!({"code_challenge_methods_supported": ["plain", "S256"]}));
        assert_eq!(s256.supports_pkce_s256(), Some(true));
        let plain = extra(serde_json::json!({"code_challenge_methods_supported": ["plain"]}));
        assert_eq!(plain.supports_pkce_s256(), Some(false));
        assert_eq!(extra(serde_json::json!({})).supports_pkce_s256(), None);
    }
}
