//! The portal's look: one layout for every dashboard (a header naming the
//! person, their role and hospital, with sign-out; one `main` with one
//! `h1`), a stylesheet of its own served from `/portal/assets` (the
//! Content-Security-Policy allows nothing inline), and plain-language
//! problem pages.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

/// The strict policy of every portal page: only the portal's own
/// stylesheet and scripts, forms only to this server, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../assets/portal.css");
const SCRIPT: &str = include_str!("../assets/portal.js");

/// Who is signed in, for the header.
pub struct Person {
    pub name: String,
    pub role: String,
    pub organization: Option<String>,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: String,
}

/// A whole page.
pub fn page(title: &str, person: Option<&Person>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · fhirledger" }
                link rel="stylesheet" href="/portal/assets/portal.css";
                script src="/portal/assets/portal.js" defer {}
            }
            body {
                a class="skip" href="#content" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/portal" { "fhirledger" }
                    @if let Some(p) = person {
                        div class="who" {
                            span class="name" { (p.name) }
                            span class="role" {
                                (p.role)
                                @if let Some(org) = &p.organization { " · " (org) }
                            }
                        }
                        form method="post" action="/portal/sign-out" class="sign-out" {
                            input type="hidden" name=(crate::csrf::FIELD) value=(p.csrf);
                            button type="submit" class="secondary" { "Sign out" }
                        }
                    }
                }
                main id="content" tabindex="-1" { (body) }
            }
        }
    }
}

/// A part of a page that its script refreshes when the server's live
/// updates on `topic` say it changed (`GET /portal/live/{topic}`, see
/// [`crate::live`]); the element's id is how the refreshed page's copy is
/// found. Rows inside carry `data-key`, so new ones can be pointed out.
pub fn live_region(topic: &str, content: &Markup) -> Markup {
    html! {
        div id={ "live-" (topic) } class="live" data-live={ "/portal/live/" (topic) } {
            (content)
        }
    }
}

/// An HTML answer: never cached (it shows someone's data), never framed.
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Content-Type", "text/html; charset=utf-8"))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .body(markup.into_string())
}

/// A page saying what went wrong, in plain words (never an
/// OperationOutcome or an internal error's text).
pub fn problem(status: StatusCode, heading: &str, message: &str) -> HttpResponse {
    problem_with_way_on(
        status,
        heading,
        message,
        ("/portal", "Back to your dashboard"),
    )
}

/// [`problem`] with its own way on: a link (`href`, words).
pub fn problem_with_way_on(
    status: StatusCode,
    heading: &str,
    message: &str,
    (href, words): (&str, &str),
) -> HttpResponse {
    respond(
        status,
        page(
            heading,
            None,
            html! {
                h1 { (heading) }
                p role="alert" class="error" { (message) }
                p { a class="button" href=(href) { (words) } }
            },
        ),
    )
}

/// `303 See Other`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// `GET /portal/assets/portal.css`.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", "text/css; charset=utf-8"))
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(STYLESHEET)
}

/// `GET /portal/assets/portal.js`: times in the person's time zone, the
/// progress bar of upload forms (every page works without it).
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", "text/javascript; charset=utf-8"))
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(SCRIPT)
}
