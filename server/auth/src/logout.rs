//! `/auth/logout`: ending the browser's sign-in session (OpenID Connect
//! RP-Initiated Logout 1.0, the `end_session_endpoint`).
//!
//! An app sends the person here with the `id_token_hint` it was given: when
//! the hint is an id token of ours naming the session's person, the session
//! ends at once and the person goes back to the app's
//! `post_logout_redirect_uri` (one of the URIs the app registered). Without
//! a hint that proves the app's part, the person is asked, and the `POST` of
//! that page ends it: a plain link elsewhere cannot sign anyone out (the
//! session cookie is `SameSite=Lax`, so a cross-site form post arrives
//! without it).

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use jsonwebtoken::{Algorithm, Validation};
use maud::html;

use crate::authorize::{append_query, see_other};
use crate::claims::IdClaims;
use crate::form::Params;
use crate::pages::{error_page, message_page, page, respond};
use crate::session::{current_user as current_session, COOKIE};
use crate::AuthServer;

/// `GET /auth/logout?id_token_hint=…&post_logout_redirect_uri=…&state=…`.
pub async fn logout_get(req: HttpRequest, server: web::Data<AuthServer>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let hint = params
        .get("id_token_hint")
        .and_then(|t| id_token(&server, t));
    let return_to = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => match &hint {
            Some(claims) if registered(&server, &claims.aud, uri).await => Some(uri.to_string()),
            _ => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Sign-out could not return to the app",
                    "The app asked to come back to an address it has not registered.",
                )
            }
        },
    };
    let session = current_session(&server, &req).await;
    let Some(claims) = hint else {
        return confirm_page(session.is_some());
    };
    if let Some((user, digest)) = &session {
        if user.user_id.to_string() == claims.sub && end(&server, digest).await.is_err() {
            return unavailable();
        }
    }
    let mut response = match return_to {
        Some(uri) => match params.get("state") {
            Some(state) => {
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("state", state);
                see_other(&append_query(&uri, &q.finish()))
            }
            None => see_other(&uri),
        },
        None => message_page("You are signed out", "You can close this window."),
    };
    clear_cookie(&mut response);
    response
}

/// `POST /auth/logout`: the person confirmed on the page below.
pub async fn logout_post(req: HttpRequest, server: web::Data<AuthServer>) -> HttpResponse {
    if let Some((_, digest)) = current_session(&server, &req).await {
        if end(&server, &digest).await.is_err() {
            return unavailable();
        }
    }
    let mut response = message_page("You are signed out", "You can close this window.");
    clear_cookie(&mut response);
    response
}

fn confirm_page(signed_in: bool) -> HttpResponse {
    if !signed_in {
        return message_page("You are signed out", "This browser is not signed in.");
    }
    respond(
        StatusCode::OK,
        page(
            "Sign out",
            html! {
                h1 { "Sign out?" }
                p { "This ends your sign-in in this browser. Apps you approved keep only what they were already given until it expires." }
                form method="post" action="logout" {
                    button type="submit" { "Sign out" }
                }
            },
        ),
    )
}

/// The claims of an id token we signed (expired ones too: a hint may be old).
fn id_token(server: &AuthServer, token: &str) -> Option<IdClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let key = server.keys.decoding_key(header.kid.as_deref()?)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[server.settings.issuer.as_str()]);
    jsonwebtoken::decode::<IdClaims>(token, &key, &validation)
        .ok()
        .map(|d| d.claims)
}

/// Whether `uri` is one of the redirect URIs `client_id` registered.
async fn registered(server: &AuthServer, client_id: &str, uri: &str) -> bool {
    let id = client_id.to_string();
    match server.db.call(move |store| store.client(&id)).await {
        Ok(Ok(Some(client))) => client.active && client.redirect_uris.iter().any(|r| r == uri),
        _ => false,
    }
}

async fn end(server: &AuthServer, digest: &[u8]) -> Result<(), ()> {
    let digest = digest.to_vec();
    match server
        .db
        .call(move |store| store.end_session(&digest))
        .await
    {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

fn clear_cookie(response: &mut HttpResponse) {
    let mut cookie = Cookie::build(COOKIE, "").path("/auth").finish();
    cookie.make_removal();
    let _ = response.add_cookie(&cookie);
}

fn unavailable() -> HttpResponse {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-out is unavailable",
        "The authorization server cannot reach its database. Please try again shortly.",
    )
}
