//! Browser sign-in sessions: a random value in an HttpOnly, SameSite=Lax
//! cookie scoped to `/auth`, kept in the store as its SHA-256.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;
use fhirledger_postgres::auth::UserRow;
use uuid::Uuid;

use crate::secrets::{digest, new_secret};
use crate::AuthServer;

pub(crate) const COOKIE: &str = "fhirledger_session";

/// The signed-in user of this browser, with the session's digest.
pub async fn current_user(server: &AuthServer, req: &HttpRequest) -> Option<(UserRow, Vec<u8>)> {
    let value = req.cookie(COOKIE)?.value().to_string();
    let hash = digest(&value);
    let lookup = hash.clone();
    let user = server
        .db
        .call(move |store| store.session_user(&lookup))
        .await
        .ok()?
        .ok()??;
    Some((user, hash))
}

/// Starts a session for `user_id`: its cookie and digest.
pub async fn start(
    server: &AuthServer,
    user_id: Uuid,
) -> Result<(Cookie<'static>, Vec<u8>), fhirledger_postgres::StoreError> {
    let value = new_secret();
    let hash = digest(&value);
    let expires = chrono::Utc::now() + server.settings.session_lifetime;
    let kept = hash.clone();
    server
        .db
        .call(move |store| store.create_session(&kept, user_id, expires))
        .await
        .map_err(|_| fhirledger_postgres::StoreError::Internal("shutting down".into()))??;
    let cookie = Cookie::build(COOKIE, value)
        .path("/auth")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(server.settings.public_base.starts_with("https://"))
        .max_age(actix_web::cookie::time::Duration::seconds(
            server.settings.session_lifetime.num_seconds(),
        ))
        .finish();
    Ok((cookie, hash))
}
