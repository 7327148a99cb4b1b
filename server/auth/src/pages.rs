//! The authorization server's HTML pages: sign-in, patient picker, approval
//! and errors. Server-rendered with maud (which escapes every value), plain
//! forms that work without JavaScript, labelled controls, one `h1` per page,
//! and a stylesheet inline so nothing else must load.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use fhirledger_access::describe::ScopeDescription;

const STYLE: &str = r#"
body{font-family:system-ui,sans-serif;background:#f7f8fa;color:#1b1f24;margin:0;line-height:1.5}
main{max-width:34rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;box-shadow:0 1px 3px #0002}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=text],input[type=email],input[type=password],input[type=search]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box;border:1px solid #8a8f98;border-radius:4px}
button,.button{display:inline-block;margin-top:1rem;padding:.55rem 1.1rem;font-size:1rem;border-radius:4px;border:1px solid #0b6bcb;background:#0b6bcb;color:#fff;cursor:pointer;text-decoration:none}
button.secondary{background:#fff;color:#0b6bcb}
fieldset{border:1px solid #d0d4da;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
legend{font-weight:600;padding:0 .25rem}
.choice{display:flex;gap:.5rem;align-items:flex-start;margin:.4rem 0}
.choice label{display:inline;font-weight:normal;margin:0}
.error{color:#b3261e;font-weight:600}
.muted{color:#5a616b;font-size:.9rem}
:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
"#;

/// A whole page.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · fhirledger" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main { (body) }
            }
        }
    }
}

/// An HTML answer; pages showing a sign-in or approval are never cached
/// and may not be framed (clickjacking).
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Content-Type", "text/html; charset=utf-8"))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(markup.into_string())
}

/// An error the person (not the app) must see: the app could not be told
/// safely (unknown client or redirect URI), or there is nothing to go back to.
pub fn error_page(status: StatusCode, heading: &str, message: &str) -> HttpResponse {
    respond(
        status,
        page(
            heading,
            html! {
                h1 { (heading) }
                p role="alert" class="error" { (message) }
                p class="muted" { "You can close this window and start again from the app." }
            },
        ),
    )
}

/// An external sign-in option.
pub struct ProviderLink {
    pub label: String,
    pub href: String,
}

/// The sign-in page: the external providers, and in development the local
/// password form.
pub fn login_page(
    client_name: Option<&str>,
    request: &str,
    providers: &[ProviderLink],
    local: bool,
    error: Option<&str>,
) -> HttpResponse {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(name) = client_name {
            p { "to let " strong { (name) } " use your health records." }
        }
        @if let Some(e) = error {
            p role="alert" class="error" { (e) }
        }
        @if !providers.is_empty() {
            ul aria-label="Sign in with" style="list-style:none;padding:0" {
                @for p in providers {
                    li { a class="button" href=(p.href) { "Sign in with " (p.label) } }
                }
            }
        }
        @if local {
            form method="post" action="login" {
                input type="hidden" name="request" value=(request);
                label for="email" { "Email" }
                input id="email" type="email" name="email" autocomplete="username" required;
                label for="password" { "Password" }
                input id="password" type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        }
        @if providers.is_empty() && !local {
            p class="error" { "No sign-in method is configured on this server." }
        }
    };
    respond(
        if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        page("Sign in", body),
    )
}

/// One patient the picker offers.
pub struct PatientChoice {
    pub id: String,
    pub name: String,
    pub detail: String,
}

/// The patient picker of a standalone launch asking for `launch/patient`.
pub fn picker_page(
    request: &str,
    client_name: &str,
    query: &str,
    patients: &[PatientChoice],
) -> HttpResponse {
    let body = html! {
        h1 { "Choose a patient" }
        p { strong { (client_name) } " will work with the record of the patient you choose." }
        form method="get" action="continue" role="search" {
            input type="hidden" name="request" value=(request);
            label for="q" { "Find a patient by name" }
            input id="q" type="search" name="q" value=(query);
            button type="submit" class="secondary" { "Search" }
        }
        @if patients.is_empty() {
            p { "No patient matches." }
        } @else {
            form method="post" action="patient" {
                input type="hidden" name="request" value=(request);
                fieldset {
                    legend { "Patients" }
                    @for (i, p) in patients.iter().enumerate() {
                        div class="choice" {
                            input type="radio" id=(format!("p{i}")) name="patient" value=(p.id) required checked[i == 0];
                            label for=(format!("p{i}")) { (p.name) " " span class="muted" { (p.detail) } }
                        }
                    }
                }
                button type="submit" { "Continue" }
            }
        }
    };
    respond(StatusCode::OK, page("Choose a patient", body))
}

/// The approval page: each permission in plain words, each can be unticked.
pub fn approval_page(
    request: &str,
    client_name: &str,
    user_label: &str,
    patient_label: Option<&str>,
    permissions: &[ScopeDescription],
) -> HttpResponse {
    let body = html! {
        h1 { "Allow " (client_name) "?" }
        p { "Signed in as " strong { (user_label) } "." }
        @if let Some(p) = patient_label {
            p { "Patient: " strong { (p) } }
        }
        form method="post" action="approve" {
            input type="hidden" name="request" value=(request);
            fieldset {
                legend { (client_name) " asks to:" }
                @for (i, d) in permissions.iter().enumerate() {
                    div class="choice" {
                        input type="checkbox" id=(format!("s{i}")) name="scope" value=(d.scopes.join(" ")) checked;
                        label for=(format!("s{i}")) { (d.text) }
                    }
                }
            }
            p class="muted" { "Untick anything you do not want to allow." }
            button type="submit" name="decision" value="approve" { "Allow" }
            " "
            button type="submit" name="decision" value="deny" class="secondary" { "Deny" }
        }
    };
    respond(StatusCode::OK, page("Allow access", body))
}

/// A plain message page (signed in, invitation redeemed).
pub fn message_page(heading: &str, message: &str) -> HttpResponse {
    respond(
        StatusCode::OK,
        page(heading, html! { h1 { (heading) } p { (message) } }),
    )
}

/// An invitation: sign in with a provider (or, in development, choose a
/// password) to activate the account.
pub fn invitation_page(
    email: &str,
    code: &str,
    providers: &[ProviderLink],
    local: bool,
) -> HttpResponse {
    let body = html! {
        h1 { "Activate your account" }
        p { "An account was created for " strong { (email) } ". Sign in once to activate it." }
        @if !providers.is_empty() {
            ul aria-label="Sign in with" style="list-style:none;padding:0" {
                @for p in providers {
                    li { a class="button" href=(p.href) { "Sign in with " (p.label) } }
                }
            }
        }
        @if local {
            form method="post" action=(format!("{code}/password")) {
                label for="password" { "Choose a password" }
                input id="password" type="password" name="password" autocomplete="new-password" minlength="8" required;
                button type="submit" { "Set password" }
            }
        }
    };
    respond(StatusCode::OK, page("Activate your account", body))
}
