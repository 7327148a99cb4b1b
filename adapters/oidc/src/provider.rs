//! One discovered provider: starting logins and finishing them.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier,
    CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, JsonWebKeySetUrl, LocalizedClaim,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, SubjectIdentifier, TokenResponse,
    UserInfoError,
};
use tracing::{debug, info, warn};

use crate::config::ProviderConfig;
use crate::discovery::{self, transport};
use crate::error::{chain, untrusted, OidcError};
use crate::identity::Identity;
use crate::pending::PendingLogin;

/// openidconnect's client once discovery has set the token endpoint (the
/// authorization code flow needs it); the userinfo endpoint is optional.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// An id_token naming an unknown key makes us fetch the key set again (the
/// provider rotated its keys), but not more often than this.
const MIN_KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// A discovered external OpenID Connect provider. Cheap to clone (shared).
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProviderConfig,
    http: reqwest::Client,
    client: Client,
    issuer: IssuerUrl,
    jwks_uri: JsonWebKeySetUrl,
    /// Replaced when the provider rotates its keys.
    keys: RwLock<CoreJsonWebKeySet>,
    /// When the key set was last fetched again after discovery.
    keys_refreshed: Mutex<Option<Instant>>,
    /// What the provider says it signs id_tokens with; nothing else is accepted.
    signing_algs: Vec<CoreJwsSigningAlgorithm>,
    /// Besides `openid`, which openidconnect always adds.
    scopes: Vec<Scope>,
    /// RFC 9207: authorization responses must carry `iss`.
    iss_parameter_supported: bool,
}

impl Provider {
    /// Discovers the provider: checks the configuration, fetches the metadata
    /// document (whose issuer must equal the configured one) and the key set.
    ///
    /// Holds no state between calls, so a server whose provider was down at
    /// start-up simply calls it again later (see [`OidcError::is_transient`]);
    /// each call costs the two requests and a fresh HTTP client.
    pub async fn discover(config: ProviderConfig) -> Result<Provider, OidcError> {
        config.validate()?;
        if config.issuer_is_insecure() {
            warn!(provider = %config.name, issuer = %config.issuer,
                "OpenID Connect provider uses plain http off loopback: codes and tokens cross the network unencrypted");
        }
        let http = crate::http::client(&config.name)?;
        let metadata = discovery::discover(&http, &config).await?;
        let token_url = discovery::code_flow_token_url(&metadata, &config)?;
        let redirect_url =
            RedirectUrl::new(config.redirect_url.clone()).map_err(|e| OidcError::Config {
                provider: config.name.clone(),
                reason: format!("the redirect URL {:?}: {e}", config.redirect_url),
            })?;
        let issuer = metadata.issuer().clone();
        let jwks_uri = metadata.jwks_uri().clone();
        let keys = metadata.jwks().clone();
        let signing_algs = discovery::id_token_algs(&metadata);
        let iss_parameter_supported = metadata.additional_metadata().iss_parameter_supported();
        let auth_type = discovery::token_auth_type(&metadata);
        let scopes = config
            .scopes
            .iter()
            .filter(|s| s.as_str() != "openid")
            .map(|s| Scope::new(s.clone()))
            .collect();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            config.client_secret.clone().map(ClientSecret::new),
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect_url)
        .set_auth_type(auth_type);
        info!(provider = %config.name, issuer = %config.issuer, keys = keys.keys().len(),
            "discovered OpenID Connect provider");
        Ok(Provider {
            inner: Arc::new(Inner {
                config,
                http,
                client,
                issuer,
                jwks_uri,
                keys: RwLock::new(keys),
                keys_refreshed: Mutex::new(None),
                signing_algs,
                scopes,
                iss_parameter_supported,
            }),
        })
    }

    /// The configured name (URL-safe id).
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The label for the login page.
    pub fn label(&self) -> &str {
        &self.inner.config.label
    }

    /// The issuer identifier (equal to the configured one).
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// The configuration it was discovered from.
    pub fn config(&self) -> &ProviderConfig {
        &self.inner.config
    }

    /// Starts a login: the URL to send the browser to (authorization code
    /// flow, PKCE S256, a nonce, our scopes), and the secrets to keep on the
    /// server until the callback.
    pub fn begin(&self) -> (String, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.inner.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.inner.scopes {
            request = request.add_scope(scope.clone());
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        };
        (url.to_string(), pending)
    }

    /// Checks the `iss` parameter of the authorization response (RFC 9207),
    /// which defends against mix-up between providers: when present it must be
    /// this provider's issuer, and it must be present when the provider says
    /// it sends it. Call it with the callback's `iss` before [`finish`](Self::finish).
    pub fn check_callback_issuer(&self, iss: Option<&str>) -> Result<(), OidcError> {
        let problem = match iss {
            Some(iss) if iss == self.issuer() => return Ok(()),
            Some(other) => format!(
                "names issuer `{}`, not `{}`",
                untrusted(other),
                self.issuer()
            ),
            None if self.inner.iss_parameter_supported => {
                "lacks the `iss` parameter the provider promises (RFC 9207)".to_string()
            }
            None => return Ok(()),
        };
        Err(OidcError::CallbackIssuer {
            provider: self.name().to_string(),
            problem,
        })
    }

    /// Finishes a login: redeems `code` with the PKCE verifier, validates the
    /// id_token (signature with the provider's keys and advertised algorithms,
    /// issuer, audience, expiry, nonce) and returns who signed in. Email and
    /// name come from the id_token, or from the userinfo endpoint when the
    /// provider keeps them there (as the spec prefers when it issues an access
    /// token).
    ///
    /// The caller has already checked the callback's `state`
    /// ([`PendingLogin::matches_state`]) and `iss` ([`Self::check_callback_issuer`]).
    pub async fn finish(&self, code: &str, pending: &PendingLogin) -> Result<Identity, OidcError> {
        let token = self.redeem(code, pending).await?;
        let id_token = token.id_token().ok_or_else(|| OidcError::MissingIdToken {
            provider: self.name().to_string(),
        })?;
        let claims = self.verified_claims(id_token, &pending.nonce).await?;
        let mut identity = identity_of(&claims);
        if (identity.email.is_none() || identity.name.is_none())
            && self.inner.client.user_info_url().is_some()
        {
            self.add_user_info(&mut identity, token.access_token())
                .await?;
        }
        debug!(provider = %self.name(), "OpenID Connect login finished");
        Ok(identity)
    }

    /// The id_token half of [`finish`](Self::finish): validates a raw
    /// id_token against this provider and `nonce` and returns the identity it
    /// states (without asking the userinfo endpoint). Public so that the
    /// validation can be tested with tokens the token endpoint never issued.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<Identity, OidcError> {
        let id_token = CoreIdToken::from_str(id_token).map_err(|e| OidcError::InvalidIdToken {
            provider: self.name().to_string(),
            reason: format!("not a signed JWT: {}", untrusted(&e.to_string())),
        })?;
        let claims = self.verified_claims(&id_token, nonce).await?;
        Ok(identity_of(&claims))
    }

    /// The token endpoint exchange.
    async fn redeem(
        &self,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<CoreTokenResponse, OidcError> {
        self.inner
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.inner.http)
            .await
            .map_err(|e| {
                let provider = self.name().to_string();
                match e {
                    RequestTokenError::ServerResponse(response) => OidcError::TokenRejected {
                        provider,
                        error: untrusted(response.error().as_ref()),
                        description: response.error_description().map(|d| untrusted(d)),
                    },
                    RequestTokenError::Request(e) => OidcError::Unreachable {
                        provider,
                        url: self.inner.client.token_uri().to_string(),
                        reason: transport(&e),
                    },
                    // The body is not shown: it may hold tokens.
                    RequestTokenError::Parse(e, _body) => OidcError::TokenResponse {
                        provider,
                        reason: chain(&e),
                    },
                    RequestTokenError::Other(reason) => OidcError::TokenResponse {
                        provider,
                        reason: untrusted(&reason),
                    },
                }
            })
    }

    /// Validates an id_token; when it names a key we do not have, fetches the
    /// key set again (rotation) and retries once.
    async fn verified_claims(
        &self,
        id_token: &CoreIdToken,
        nonce: &str,
    ) -> Result<CoreIdTokenClaims, OidcError> {
        let nonce = Nonce::new(nonce.to_string());
        let mut result = self.check(id_token, &nonce);
        if matches!(
            result,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
            ))
        ) && self.refresh_keys().await
        {
            result = self.check(id_token, &nonce);
        }
        result.map_err(|e| {
            let provider = self.name().to_string();
            match e {
                ClaimsVerificationError::InvalidNonce(reason) => OidcError::NonceMismatch {
                    provider,
                    reason: untrusted(&reason),
                },
                other => OidcError::InvalidIdToken {
                    provider,
                    reason: chain(&other),
                },
            }
        })
    }

    fn check(
        &self,
        id_token: &CoreIdToken,
        nonce: &Nonce,
    ) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
        let inner = &self.inner;
        let keys = inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let client_id = ClientId::new(inner.config.client_id.clone());
        let verifier = match &inner.config.client_secret {
            // A confidential client may also receive id_tokens MACed with its secret (HS256),
            // if the provider advertises such an algorithm.
            Some(secret) => CoreIdTokenVerifier::new_confidential_client(
                client_id,
                ClientSecret::new(secret.clone()),
                inner.issuer.clone(),
                keys,
            ),
            None => CoreIdTokenVerifier::new_public_client(client_id, inner.issuer.clone(), keys),
        }
        .set_allowed_algs(inner.signing_algs.iter().cloned());
        id_token.claims(&verifier, nonce).cloned()
    }

    /// Fetches the key set again unless that was done very recently; whether
    /// there is a new one. The first time is never "recently": a provider may
    /// rotate its keys right after we discovered it.
    async fn refresh_keys(&self) -> bool {
        {
            let mut refreshed = self
                .inner
                .keys_refreshed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if refreshed.is_some_and(|at| at.elapsed() < MIN_KEY_REFRESH_INTERVAL) {
                return false;
            }
            *refreshed = Some(Instant::now());
        }
        match discovery::fetch_keys(&self.inner.http, &self.inner.config, &self.inner.jwks_uri)
            .await
        {
            Ok(keys) => {
                info!(provider = %self.name(), keys = keys.keys().len(),
                    "fetched the OpenID Connect provider's keys again (an id_token named an unknown key)");
                *self
                    .inner
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = keys;
                true
            }
            Err(e) => {
                warn!(provider = %self.name(), error = %e, "fetching the provider's keys again failed");
                false
            }
        }
    }

    /// Fills in email and name from the userinfo endpoint; its answer must be
    /// about the id_token's subject.
    async fn add_user_info(
        &self,
        identity: &mut Identity,
        access_token: &AccessToken,
    ) -> Result<(), OidcError> {
        let provider = || self.name().to_string();
        // openidconnect panics on an access token that cannot be a header value.
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {}", access_token.secret()))
            .is_err()
        {
            return Err(OidcError::TokenResponse {
                provider: provider(),
                reason: "the access token has characters an HTTP header cannot carry".into(),
            });
        }
        let request = self
            .inner
            .client
            .user_info(
                access_token.clone(),
                Some(SubjectIdentifier::new(identity.subject.clone())),
            )
            .map_err(|e| OidcError::UserInfo {
                provider: provider(),
                reason: chain(&e),
            })?;
        let url = self
            .inner
            .client
            .user_info_url()
            .map(|u| u.to_string())
            .unwrap_or_default();
        let info: CoreUserInfoClaims =
            request
                .request_async(&self.inner.http)
                .await
                .map_err(|e| match e {
                    UserInfoError::Request(e) => OidcError::Unreachable {
                        provider: provider(),
                        url,
                        reason: transport(&e),
                    },
                    UserInfoError::Response(status, _, message) => OidcError::UserInfo {
                        provider: provider(),
                        reason: format!("{} (HTTP status {status})", untrusted(&message)),
                    },
                    other => OidcError::UserInfo {
                        provider: provider(),
                        reason: chain(&other),
                    },
                })?;
        if identity.email.is_none() {
            identity.email = info.email().map(|e| e.to_string());
            identity.email_verified = info.email_verified();
        }
        if identity.name.is_none() {
            identity.name = localized(info.name());
        }
        Ok(())
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name())
            .field("issuer", &self.issuer())
            .finish_non_exhaustive()
    }
}

/// The identity an id_token states.
fn identity_of(claims: &CoreIdTokenClaims) -> Identity {
    Identity {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified(),
        name: localized(claims.name()),
    }
}

/// A localised claim in its default language, else in any language.
fn localized<T: std::ops::Deref<Target = String>>(
    claim: Option<&LocalizedClaim<T>>,
) -> Option<String> {
    let claim = claim?;
    claim
        .get(None)
        .or_else(|| claim.iter().next().map(|(_, value)| value))
        .map(|value| value.to_string())
}
