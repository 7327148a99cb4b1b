//! Signing in and out of the portal, as a SMART app does: the authorization
//! code flow with PKCE against the server's own `/auth/authorize` (the
//! person signs in there, with a local password in `dev` or an external
//! OpenID Connect provider), the code exchanged in-process
//! ([`fhirledger_auth::first_party::exchange_code`]); and sign-out, which
//! revokes the grant and ends the sign-in session at `/auth/logout`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fhirledger_auth::first_party::{self, PORTAL_CLIENT_ID, PORTAL_SCOPE};
use fhirledger_auth::form::Params;
use fhirledger_auth::secrets::{constant_time_eq, new_secret, pkce_challenge};
use fhirledger_auth::AuthServer;
use maud::html;

use crate::layout::{page, problem, problem_with_way_on, respond, see_other};
use crate::session::{cookie, remove, ID_COOKIE, LOGIN_COOKIE, SESSION_COOKIE};

/// How long a sign-in may take between leaving and coming back.
const LOGIN_SECONDS: i64 = 600;

/// `GET /portal/sign-in?next=…`: off to the authorization server.
pub async fn sign_in(req: HttpRequest, server: web::Data<AuthServer>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let next = params
        .get("next")
        .filter(|n| is_portal_path(n))
        .unwrap_or("/portal");
    let (state, verifier) = (new_secret(), new_secret());
    let settings = &server.settings;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", PORTAL_CLIENT_ID)
        .append_pair("redirect_uri", &first_party::callback_url(settings))
        .append_pair("scope", PORTAL_SCOPE)
        .append_pair("state", &state)
        .append_pair("aud", &settings.fhir_base)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let mut response = see_other(&format!("{}?{}", settings.url("authorize"), query.finish()));
    let kept = format!("{state}.{verifier}.{}", URL_SAFE_NO_PAD.encode(next));
    let _ = response.add_cookie(&cookie(
        &server,
        LOGIN_COOKIE,
        kept,
        "/portal/callback",
        LOGIN_SECONDS,
    ));
    response
}

/// Only the portal's own pages are places to come back to (no open redirect).
fn is_portal_path(path: &str) -> bool {
    (path == "/portal" || path.starts_with("/portal/") || path.starts_with("/portal?"))
        && !path.contains("//")
        && !path.contains('\\')
        && !path.starts_with("/portal/sign-")
        && !path.starts_with("/portal/callback")
}

/// `GET /portal/callback?code=…&state=…`: the code exchanged, the session set.
pub async fn callback(req: HttpRequest, server: web::Data<AuthServer>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let start_again = |heading: &str, message: &str| {
        let mut response = problem_with_way_on(
            StatusCode::BAD_REQUEST,
            heading,
            message,
            ("/portal/sign-in", "Sign in"),
        );
        remove(&mut response, LOGIN_COOKIE, "/portal/callback");
        response
    };
    if let Some(error) = params.get("error") {
        let why = match error {
            "access_denied" => params
                .get("error_description")
                .map(|d| format!("Sign-in was refused: {d}."))
                .unwrap_or_else(|| "Sign-in was refused.".to_string()),
            _ => "Sign-in could not be completed. Please try again.".to_string(),
        };
        return start_again("You are not signed in", &why);
    }
    let kept = req
        .cookie(LOGIN_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let mut parts = kept.splitn(3, '.');
    let (Some(state), Some(verifier), Some(next)) = (parts.next(), parts.next(), parts.next())
    else {
        return start_again(
            "This sign-in has expired",
            "It took too long, or it was started in another browser. Please sign in again.",
        );
    };
    let sent_state = params.get("state").unwrap_or_default();
    if !constant_time_eq(sent_state.as_bytes(), state.as_bytes()) {
        return start_again(
            "This sign-in has expired",
            "It does not match the one this browser started. Please sign in again.",
        );
    }
    let Some(code) = params.get("code") else {
        return start_again("You are not signed in", "The sign-in returned no code.");
    };
    let next = URL_SAFE_NO_PAD
        .decode(next)
        .ok()
        .and_then(|n| String::from_utf8(n).ok())
        .filter(|n| is_portal_path(n))
        .unwrap_or_else(|| "/portal".to_string());
    let tokens = match first_party::exchange_code(&req, &server, code, verifier).await {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::info!(error = %e.error, description = %e.description, "a portal sign-in failed");
            return start_again(
                "You are not signed in",
                "The sign-in could not be completed. Please sign in again.",
            );
        }
    };
    let mut response = see_other(&next);
    let lifetime = tokens.expires_in.max(1);
    let _ = response.add_cookie(&cookie(
        &server,
        SESSION_COOKIE,
        tokens.access_token,
        "/portal",
        lifetime,
    ));
    if let Some(id_token) = tokens.id_token {
        let _ = response.add_cookie(&cookie(
            &server,
            ID_COOKIE,
            id_token,
            "/portal/sign-out",
            lifetime.max(server.settings.session_lifetime.num_seconds()),
        ));
    }
    remove(&mut response, LOGIN_COOKIE, "/portal/callback");
    response
}

/// `POST /portal/sign-out`: the grant revoked (its token stops working on
/// every replica), then the sign-in session ended at `/auth/logout`, which
/// brings the person back to `/portal/signed-out`.
pub async fn sign_out(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    let form = Params::parse(&body);
    let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let id_token = req.cookie(ID_COOKIE).map(|c| c.value().to_string());
    if let Some(token) = &token {
        if !crate::csrf::check(token, form.get(crate::csrf::FIELD)) {
            return problem(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The page it came from is out of date or was not sent by the portal. Nothing was changed.",
            );
        }
        if let Ok(claims) = fhirledger_auth::bearer::validate(&server, token) {
            let person = claims
                .caller()
                .as_ref()
                .and_then(fhirledger_service::audit::person_of);
            if let Some(grant) = claims.grant.as_deref().and_then(|g| g.parse().ok()) {
                if first_party::end_grant(&req, &server, grant, person)
                    .await
                    .is_err()
                {
                    return problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Sign-out did not complete",
                        "The server cannot reach its database. Please try again shortly.",
                    );
                }
            }
        }
    }
    let signed_out = first_party::signed_out_url(&server.settings);
    let mut response = match id_token {
        Some(hint) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("id_token_hint", &hint)
                .append_pair("post_logout_redirect_uri", &signed_out);
            see_other(&format!(
                "{}?{}",
                server.settings.url("logout"),
                query.finish()
            ))
        }
        None => see_other(&signed_out),
    };
    remove(&mut response, SESSION_COOKIE, "/portal");
    remove(&mut response, ID_COOKIE, "/portal/sign-out");
    response
}

/// `GET /portal/signed-out`.
pub async fn signed_out() -> HttpResponse {
    respond(
        StatusCode::OK,
        page(
            "Signed out",
            None,
            html! {
                h1 { "You are signed out" }
                p { "Your session has ended and its access has been revoked." }
                p { a class="button" href="/portal/sign-in" { "Sign in again" } }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::is_portal_path;

    #[test]
    fn only_portal_pages_are_places_to_return_to() {
        assert!(is_portal_path("/portal"));
        assert!(is_portal_path("/portal/documents/abc?x=1"));
        assert!(!is_portal_path("https://evil.example/portal"));
        assert!(!is_portal_path("//evil.example/portal"));
        assert!(!is_portal_path("/portal//evil.example"));
        assert!(!is_portal_path("/portalx"));
        assert!(!is_portal_path("/portal/sign-out"));
        assert!(!is_portal_path("/auth/logout"));
    }
}
