//! Signing in through external OpenID Connect providers (several side by
//! side), and redeeming invitations. A provider is discovered when first
//! needed and again after a failure, so one that is down at start-up does
//! not keep the server from starting.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use fhirledger_oidc::{PendingLogin, Provider, ProviderConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::authorize::see_other;
use crate::flow::{continue_url, pending};
use crate::form::Params;
use crate::pages::{error_page, message_page};
use crate::secrets::digest;
use crate::security::{self, SecurityActor, SecurityEvent};
use crate::session::start;
use crate::AuthServer;
use fhirledger_postgres::auth::UserRow;

/// How long a person has to finish signing in at their provider.
const LOGIN_MINUTES: i64 = 10;

/// A configured provider, discovered on first use.
pub struct ProviderSlot {
    config: ProviderConfig,
    discovered: Mutex<Option<Provider>>,
}

/// One entry of `FHIRLEDGER_OIDC_PROVIDERS`.
#[derive(Debug, Deserialize)]
struct ProviderSetting {
    name: String,
    label: Option<String>,
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

impl ProviderSlot {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn label(&self) -> &str {
        &self.config.label
    }

    /// The discovered provider, discovering it now when needed.
    async fn provider(&self) -> Result<Provider, fhirledger_oidc::OidcError> {
        let mut slot = self.discovered.lock().await;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let p = Provider::discover(self.config.clone()).await?;
        *slot = Some(p.clone());
        Ok(p)
    }
}

/// Reads the providers from their JSON setting; the callback of each is
/// `{issuer}/login/{name}/callback`.
pub fn providers_from_setting(
    json: Option<&str>,
    issuer: &str,
) -> anyhow::Result<Vec<ProviderSlot>> {
    let Some(json) = json.filter(|j| !j.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let settings: Vec<ProviderSetting> = serde_json::from_str(json).map_err(|e| {
        anyhow::anyhow!("FHIRLEDGER_OIDC_PROVIDERS is not a JSON list of providers: {e}")
    })?;
    let mut slots = Vec::new();
    for s in settings {
        let mut config = ProviderConfig::new(
            s.name.clone(),
            s.label.unwrap_or_else(|| s.name.clone()),
            s.issuer,
            s.client_id,
            s.client_secret,
            format!("{issuer}/login/{}/callback", s.name),
        );
        if let Some(scopes) = s.scopes {
            config.scopes = scopes;
        }
        config.validate()?;
        if slots.iter().any(|x: &ProviderSlot| x.name() == config.name) {
            anyhow::bail!("two OpenID Connect providers are named '{}'", config.name);
        }
        slots.push(ProviderSlot {
            config,
            discovered: Mutex::new(None),
        });
    }
    Ok(slots)
}

/// What a login in progress remembers besides the provider's secrets.
#[derive(Serialize, Deserialize)]
struct LoginState {
    provider: String,
    /// The authorization request to go on with.
    request: Option<String>,
    /// The invitation to redeem.
    invite: Option<String>,
    pending: PendingLogin,
}

fn unavailable(what: &str) -> HttpResponse {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        what,
    )
}

/// `GET /auth/login/{provider}?request=…|invite=…`: off to the provider.
pub async fn start_route(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    path: web::Path<String>,
) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let Some(slot) = server.providers.iter().find(|p| p.name() == path.as_str()) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Unknown sign-in provider",
            "This server has no such provider.",
        );
    };
    let (request, invite) = (
        params.get("request").map(str::to_string),
        params.get("invite").map(str::to_string),
    );
    if request.is_none() && invite.is_none() {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Nothing to sign in for",
            "Start from an app or an invitation.",
        );
    }
    if let Some(r) = &request {
        if let Err(page) = pending(&server, Some(r)).await {
            return page;
        }
    }
    let provider = match slot.provider().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(provider = slot.name(), error = %e, "OpenID Connect discovery failed");
            return unavailable(&format!(
                "{} cannot be reached right now. Please try again shortly.",
                slot.label()
            ));
        }
    };
    let (url, pending_login) = provider.begin();
    let login = LoginState {
        provider: slot.name().to_string(),
        request,
        invite,
        pending: pending_login,
    };
    let Ok(value) = serde_json::to_value(&login) else {
        return unavailable("The sign-in could not be started.");
    };
    let key = digest(&login.pending.state);
    let expires = Utc::now() + chrono::Duration::minutes(LOGIN_MINUTES);
    let saved = server
        .db
        .call(move |store| {
            store.create_auth_request(
                &key,
                &serde_json::json!({ "kind": "external-login" }),
                expires,
            )?;
            store.set_pending_login(&key, Some(&value))
        })
        .await;
    if !matches!(saved, Ok(Ok(()))) {
        return unavailable("The authorization server cannot reach its database.");
    }
    see_other(&url)
}

/// `GET /auth/login/{provider}/callback`: who signed in, and on to the
/// authorization request (or the redeemed invitation).
pub async fn callback(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    path: web::Path<String>,
) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    // Every way a federated sign-in fails is a security event.
    let refused = |person: Option<&UserRow>, m: &str| {
        let actor = SecurityActor {
            person: person.map(security::person),
            client_id: None,
        };
        security::record(&req, SecurityEvent::SignIn, actor, Some((400, m)));
        error_page(StatusCode::BAD_REQUEST, "Sign-in failed", m)
    };
    let failed = |m: &str| refused(None, m);
    let Some(state_param) = params.get("state") else {
        return failed("The provider's answer carries no server.");
    };
    let key = digest(state_param);
    let lookup = key.clone();
    let row = match server
        .db
        .call(move |store| store.auth_request(&lookup))
        .await
    {
        Ok(Ok(Some(row))) => row,
        Ok(Ok(None)) => return failed("This sign-in is unknown or took too long. Start again."),
        _ => return unavailable("The authorization server cannot reach its database."),
    };
    let Some(login) = row
        .pending_login
        .and_then(|v| serde_json::from_value::<LoginState>(v).ok())
    else {
        return failed("This sign-in is unknown. Start again.");
    };
    if login.provider != path.as_str() || !login.pending.matches_state(state_param) {
        return failed("The provider's answer does not belong to this sign-in.");
    }
    let done = key.clone();
    let _ = server
        .db
        .call(move |store| store.finish_auth_request(&done))
        .await;
    if let Some(error) = params.get("error") {
        return failed(&format!("The provider refused the sign-in ({error})."));
    }
    let Some(slot) = server.providers.iter().find(|p| p.name() == login.provider) else {
        return failed("This provider is no longer configured.");
    };
    let Some(code) = params.get("code") else {
        return failed("The provider's answer carries no code.");
    };
    let identity = match slot.provider().await {
        Ok(p) => match p.check_callback_issuer(params.get("iss")) {
            Ok(()) => p.finish(code, &login.pending).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let identity = match identity {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(provider = %login.provider, error = %e, "external sign-in failed");
            return failed(&format!("The sign-in could not be verified: {e}"));
        }
    };
    let (issuer, subject, invite) = (
        identity.issuer.clone(),
        identity.subject.clone(),
        login.invite.clone(),
    );
    let user = server
        .db
        .call(
            move |store| match store.user_by_identity(&issuer, &subject)? {
                Some(u) => Ok(Some(u)),
                None => match &invite {
                    Some(code) => store.redeem_invitation(&digest(code), &issuer, &subject),
                    None => Ok(None),
                },
            },
        )
        .await;
    let user = match user {
        Ok(Ok(Some(u))) if u.active => u,
        Ok(Ok(Some(u))) => return refused(Some(&u), "This account has been deactivated."),
        Ok(Ok(None)) => return failed(
            "No account is linked to this sign-in. Ask your hospital's admin for an invitation, \
                 and open its link before signing in.",
        ),
        Ok(Err(fhirledger_postgres::StoreError::Duplicate(_))) => {
            return failed("This sign-in is already linked to another account.")
        }
        _ => return unavailable("The authorization server cannot reach its database."),
    };
    let actor = SecurityActor {
        person: Some(security::person(&user)),
        client_id: None,
    };
    security::record(&req, SecurityEvent::SignIn, actor, None);
    match &login.request {
        Some(request) => signed_in_to(&server, request, user.user_id).await,
        None => {
            let Ok((cookie, _)) = start(&server, user.user_id).await else {
                return unavailable("The session could not be started.");
            };
            let mut resp = message_page(
                "You are signed in",
                "Your account is ready. You can now sign in from any app that uses fhirledger.",
            );
            let _ = resp.add_cookie(&cookie);
            resp
        }
    }
}

/// Starts the session, binds the request to it and continues with it.
async fn signed_in_to(server: &AuthServer, request: &str, user_id: uuid::Uuid) -> HttpResponse {
    let Ok((cookie, session)) = start(server, user_id).await else {
        return unavailable("The session could not be started.");
    };
    let hash = digest(request);
    if server
        .db
        .call(move |store| store.bind_auth_request(&hash, &session))
        .await
        .is_err()
    {
        return unavailable("The authorization server cannot reach its database.");
    }
    let mut resp = see_other(&continue_url(server, request));
    let _ = resp.add_cookie(&cookie);
    resp
}

/// `GET /auth/invite/{code}`: how to activate an account.
pub async fn invitation(server: web::Data<AuthServer>, path: web::Path<String>) -> HttpResponse {
    let code = path.into_inner();
    let hash = digest(&code);
    let user = match server.db.call(move |store| store.invitation(&hash)).await {
        Ok(Ok(Some(u))) => u,
        Ok(Ok(None)) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "Invitation not valid",
                "This invitation is unknown, used or expired.",
            )
        }
        _ => return unavailable("The authorization server cannot reach its database."),
    };
    let providers: Vec<crate::pages::ProviderLink> = server
        .providers
        .iter()
        .map(|p| crate::pages::ProviderLink {
            label: p.label().to_string(),
            href: server
                .settings
                .url(&format!("login/{}?invite={code}", p.name())),
        })
        .collect();
    crate::pages::invitation_page(&user.email, &code, &providers, server.settings.local_login)
}

/// `POST /auth/invite/{code}/password`: a local account's first password
/// (development only).
pub async fn invitation_password(
    server: web::Data<AuthServer>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if !server.settings.local_login {
        return error_page(
            StatusCode::FORBIDDEN,
            "Not available",
            "Password sign-in is not enabled on this server.",
        );
    }
    let params = Params::parse(&body);
    let password = params.get("password").unwrap_or_default().to_string();
    if password.chars().count() < 8 {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Password too short",
            "Choose a password of at least 8 characters.",
        );
    }
    let code = path.into_inner();
    let done = server
        .db
        .call(
            move |store| -> Result<bool, fhirledger_postgres::StoreError> {
                let Some(user) = store.invitation(&digest(&code))? else {
                    return Ok(false);
                };
                let hash = crate::passwords::hash(&password)
                    .map_err(fhirledger_postgres::StoreError::Internal)?;
                let subject = user.user_id.to_string();
                if store
                    .redeem_invitation(&digest(&code), "local", &subject)?
                    .is_none()
                {
                    return Ok(false);
                }
                store.set_password_hash(user.user_id, &hash)
            },
        )
        .await;
    match done {
        Ok(Ok(true)) => message_page(
            "Password set",
            "Your account is ready; sign in from your app with your email and this password.",
        ),
        Ok(Ok(false)) => error_page(
            StatusCode::NOT_FOUND,
            "Invitation not valid",
            "This invitation is unknown, used or expired.",
        ),
        _ => unavailable("The authorization server cannot reach its database."),
    }
}
