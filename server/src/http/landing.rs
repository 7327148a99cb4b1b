//! The page a person finds at the server's root (`GET /`): what this server
//! is, the addresses an app needs (FHIR base, SMART discovery,
//! CapabilityStatement) and how signing in works. `GET /auth`, the
//! authorization server's own address (which `fhirledger dev` prints),
//! redirects here: people never sign in at it directly, an app sends them.
//!
//! Rendered like the sign-in pages (`auth/pages.rs`): maud, no JavaScript,
//! the same security headers.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use crate::state::AppState;
use fhirledger_auth::pages;

/// Registers `/` and `/auth`; must come before the `/auth` scope, which
/// would otherwise take `/auth` and answer 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(landing))
            .route(web::head().to(landing)),
    )
    .service(
        web::resource(["/auth", "/auth/"])
            .route(web::get().to(to_landing))
            .route(web::head().to(to_landing)),
    );
}

/// `GET /`.
async fn landing(state: web::Data<AppState>) -> HttpResponse {
    let settings = &state.auth.settings;
    pages::respond(
        StatusCode::OK,
        pages::page("FHIR server", body(&state.fhir_base, &settings.issuer)),
    )
}

/// `GET /auth`: to the landing page, by its configured public address.
async fn to_landing(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", format!("{}/", state.auth.settings.public_base)))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// A labelled address, shown as a link.
fn address(label: &str, url: &str) -> Markup {
    html! {
        dt { (label) }
        dd style="overflow-wrap:anywhere" { a href=(url) { code { (url) } } }
    }
}

fn body(fhir_base: &str, issuer: &str) -> Markup {
    let smart = format!("{fhir_base}/.well-known/smart-configuration");
    let metadata = format!("{fhir_base}/metadata");
    let authorize = format!("{issuer}/authorize");
    let token = format!("{issuer}/token");
    html! {
        h1 { "fhirledger" }
        p {
            "A FHIR R4 server for groups of hospitals that share medical documents, "
            "with its own SMART on FHIR authorization server. "
            "Apps and other systems use it over its FHIR API."
        }
        p {
            a class="button" href="portal" { "Open the portal" }
            " — patients, doctors, administrators and compliance officers sign in there."
        }
        h2 { "For apps" }
        dl {
            (address("FHIR base URL", fhir_base))
            (address("SMART configuration", &smart))
            (address("CapabilityStatement", &metadata))
        }
        p class="muted" {
            "Every FHIR request needs an access token, except the CapabilityStatement "
            "and the SMART configuration."
        }
        h2 { "Signing in" }
        p {
            "People sign in through an app, not on this page: the app sends the browser to "
            code { (authorize) }
            " (SMART App Launch, authorization code with PKCE), where the person signs in "
            "and approves what the app may do."
        }
        p {
            "Backend services get their tokens at " code { (token) }
            " with a signed assertion (SMART Backend Services)."
        }
    }
}
