//! The administrators' dashboards. The solution admin onboards hospitals
//! (their Organization), deactivates and reactivates them, and assigns and
//! removes hospital admins; a hospital admin onboards the doctors and
//! patients of their hospital (the Practitioner with its PractitionerRole,
//! or the Patient, with the account and its invitation link) and removes
//! them. FHIR resources are written through the service as the admin;
//! accounts through the authorization server's own administration
//! (`fhirledger_auth::admin`), recorded as security events as through the
//! admin API.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use fhirledger_access::roles::Role;
use fhirledger_auth::accounts::{AccountSummary, CreatedUser, NewUser};
use fhirledger_auth::admin::{accounts_of, deactivate_as, onboard_as, Onboarding};
use fhirledger_service::ServiceError;
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::fhir::{self, person_name, problem_page};
use crate::layout::{page, problem, respond, see_other};
use crate::session::{role_label, Visit};
use crate::sharing::forged;

/// The accounts the admin manages, or the reason they cannot be listed.
async fn accounts(visit: &Visit) -> Result<Vec<AccountSummary>, ServiceError> {
    accounts_of(&visit.server, &visit.caller)
        .await
        .map_err(|(status, why)| match status {
            StatusCode::FORBIDDEN => ServiceError::forbidden(why),
            _ => ServiceError::unavailable(why),
        })
}

fn accounts_table(visit: &Visit, rows: &[&AccountSummary], caption: &str) -> Markup {
    let csrf = visit.csrf_token();
    html! {
        @if rows.is_empty() {
            p class="empty" { "No accounts yet." }
        } @else {
            table {
                caption class="sr-only" { (caption) }
                thead { tr {
                    th scope="col" { "Email" }
                    th scope="col" { "Role" }
                    th scope="col" { "Status" }
                    th scope="col" { span class="sr-only" { "Action" } }
                } }
                tbody {
                    @for a in rows {
                        tr {
                            td { (a.email) }
                            td { (a.role.map(role_label).unwrap_or("")) }
                            td { @if a.active { "Active" } @else { "Removed" } }
                            td {
                                @if a.active {
                                    form method="post" action={ "/portal/accounts/" (a.user_id) "/remove" } {
                                        input type="hidden" name=(crate::csrf::FIELD) value=(csrf);
                                        button type="submit" class="secondary" aria-label={ "Remove " (a.email) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The solution admin's dashboard: hospitals and their admins.
pub async fn solution_admin(visit: &Visit) -> Result<(&'static str, Markup), ServiceError> {
    let hospitals = fhir::search(
        visit,
        "Organization",
        vec![
            ("_sort".into(), "name".into()),
            ("_count".into(), "200".into()),
        ],
    )
    .await?;
    let accounts = accounts(visit).await?;
    let csrf = visit.csrf_token();
    let admins: Vec<_> = accounts
        .iter()
        .filter(|a| a.role == Some(Role::HospitalAdmin))
        .collect();
    let body = html! {
        h1 { "Hospitals of the solution" }
        @if hospitals.resources.is_empty() {
            p class="empty" { "No hospital has been onboarded yet." }
        } @else {
            table {
                caption class="sr-only" { "Hospitals" }
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Status" }
                    th scope="col" { "Administrators" }
                    th scope="col" { span class="sr-only" { "Action" } }
                } }
                tbody {
                    @for h in &hospitals.resources {
                        @let id = h["id"].as_str().unwrap_or_default();
                        @let name = h["name"].as_str().unwrap_or("unnamed");
                        @let active = h["active"].as_bool() != Some(false);
                        tr {
                            td { (name) }
                            td { @if active { "Active" } @else { "Deactivated" } }
                            td {
                                (admins.iter().filter(|a| a.organization.as_deref() == Some(id) && a.active).map(|a| a.email.as_str()).collect::<Vec<_>>().join(", "))
                            }
                            td {
                                form method="post" action={ "/portal/hospitals/" (id) "/active" } {
                                    input type="hidden" name=(crate::csrf::FIELD) value=(csrf);
                                    input type="hidden" name="active" value=(if active { "false" } else { "true" });
                                    button type="submit" class="secondary" aria-label={ (if active { "Deactivate " } else { "Reactivate " }) (name) } {
                                        @if active { "Deactivate" } @else { "Reactivate" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Onboard a hospital" }
        form method="post" action="/portal/hospitals" {
            input type="hidden" name=(crate::csrf::FIELD) value=(csrf);
            label for="hospital-name" { "The hospital's name" }
            input id="hospital-name" type="text" name="name" required maxlength="200";
            p { button type="submit" { "Onboard the hospital" } }
        }
        h2 { "Hospital administrators" }
        (accounts_table(visit, &admins, "Hospital administrators"))
        h2 { "Assign a hospital administrator" }
        form method="post" action="/portal/accounts" {
            input type="hidden" name=(crate::csrf::FIELD) value=(csrf);
            input type="hidden" name="role" value="hospital-admin";
            label for="admin-email" { "Their email" }
            input id="admin-email" type="email" name="email" required;
            label for="admin-hospital" { "Hospital" }
            select id="admin-hospital" name="organization" required {
                @for h in hospitals.resources.iter().filter(|h| h["active"].as_bool() != Some(false)) {
                    option value=(h["id"].as_str().unwrap_or_default()) { (h["name"].as_str().unwrap_or("unnamed")) }
                }
            }
            p { button type="submit" { "Send an invitation" } }
        }
    };
    Ok(("Hospitals", body))
}

/// The hospital admin's dashboard: doctors, patients, their accounts.
pub async fn hospital_admin(visit: &Visit) -> Result<(&'static str, Markup), ServiceError> {
    let list = |t: &'static str| {
        fhir::search(
            visit,
            t,
            vec![
                ("_sort".into(), "family".into()),
                ("_count".into(), "200".into()),
            ],
        )
    };
    let doctors = list("Practitioner").await?;
    let patients = list("Patient").await?;
    let accounts = accounts(visit).await?;
    let account_of: HashMap<&str, &AccountSummary> = accounts
        .iter()
        .filter_map(|a| Some((a.fhir_user.as_deref()?, a)))
        .collect();
    let csrf = visit.csrf_token();
    let people = |found: &fhir::Found, t: &str, caption: &str| {
        html! {
            @if found.resources.is_empty() {
                p class="empty" { "Nobody yet." }
            } @else {
                table {
                    caption class="sr-only" { (caption) }
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Account" }
                        th scope="col" { span class="sr-only" { "Action" } }
                    } }
                    tbody {
                        @for p in &found.resources {
                            @let reference = format!("{t}/{}", p["id"].as_str().unwrap_or_default());
                            @let account = account_of.get(reference.as_str());
                            tr {
                                td { (person_name(p)) }
                                td {
                                    @match account {
                                        Some(a) => { (a.email) @if !a.active { " (removed)" } },
                                        None => span class="muted" { "none" },
                                    }
                                }
                                td {
                                    @if let Some(a) = account.filter(|a| a.active) {
                                        form method="post" action={ "/portal/accounts/" (a.user_id) "/remove" } {
                                            input type="hidden" name=(crate::csrf::FIELD) value=(csrf);
                                            button type="submit" class="secondary" aria-label={ "Remove " (person_name(p)) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        h1 { "Your hospital" }
        h2 { "Doctors" }
        (people(&doctors, "Practitioner", "Doctors"))
        h2 { "Patients" }
        (people(&patients, "Patient", "Patients"))
        h2 { "Onboard a doctor or a patient" }
        form method="post" action="/portal/accounts" {
            input type="hidden" name=(crate::csrf::FIELD) value=(csrf);
            fieldset {
                legend { "Who" }
                div class="choice" {
                    input type="radio" id="role-doctor" name="role" value="doctor" checked;
                    label for="role-doctor" { "A doctor" }
                }
                div class="choice" {
                    input type="radio" id="role-patient" name="role" value="patient";
                    label for="role-patient" { "A patient" }
                }
            }
            label for="person-given" { "Given name" }
            input id="person-given" type="text" name="given" required maxlength="100";
            label for="person-family" { "Family name" }
            input id="person-family" type="text" name="family" required maxlength="100";
            label for="person-birth" { "Birth date (patients)" }
            input id="person-birth" type="date" name="birthDate";
            label for="person-email" { "Their email" }
            input id="person-email" type="email" name="email" required;
            p { button type="submit" { "Onboard and send an invitation" } }
        }
    };
    Ok(("Your hospital", body))
}

/// `POST /portal/hospitals`: a new hospital's Organization.
pub async fn onboard_hospital(visit: Visit, body: web::Bytes) -> HttpResponse {
    let Some(form) = visit.checked_form(&body) else {
        return forged();
    };
    let name = form.get("name").cloned().unwrap_or_default();
    if name.is_empty() || name.chars().count() > 200 {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The hospital needs a name",
            "Give the hospital's name (at most 200 characters).",
        );
    }
    let organization = json!({ "resourceType": "Organization", "active": true, "name": name });
    match fhir::create(&visit, organization).await {
        Ok(_) => see_other("/portal?done=hospital"),
        Err(e) => problem_page(&e),
    }
}

/// `POST /portal/hospitals/{id}/active`: deactivates or reactivates a
/// hospital (its Organization's `active`); a deactivated hospital's people
/// can no longer sign in and their tokens are revoked within a second.
pub async fn set_hospital_active(
    visit: Visit,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(form) = visit.checked_form(&body) else {
        return forged();
    };
    let active = form.get("active").map(String::as_str) == Some("true");
    let id = path.into_inner();
    let (mut organization, version) = match fhir::read(&visit, "Organization", &id).await {
        Ok(found) => found,
        Err(e) => return problem_page(&e),
    };
    organization["active"] = Value::Bool(active);
    let mut done = fhir::update(&visit, &id, version, organization).await;
    if done.is_ok() && !active {
        done = fhirledger_auth::hospitals::revoke_hospital(&visit.server, &id).await;
    }
    match done {
        Ok(()) => see_other(if active {
            "/portal?done=reactivated"
        } else {
            "/portal?done=deactivated"
        }),
        Err(e) => problem_page(&e),
    }
}

/// `POST /portal/accounts`: onboards a hospital admin (solution admins) or
/// a doctor or patient with their FHIR record (hospital admins), and shows
/// the invitation link to send them.
pub async fn onboard_person(visit: Visit, body: web::Bytes) -> HttpResponse {
    let Some(form) = visit.checked_form(&body) else {
        return forged();
    };
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let role = get("role");
    let resource = match role.as_str() {
        "doctor" | "patient" => {
            let (given, family) = (get("given"), get("family"));
            if given.is_empty() || family.is_empty() {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "A name is needed",
                    "Give the person's given and family names.",
                );
            }
            let name = json!([{ "given": [given], "family": family }]);
            Some(if role == "doctor" {
                json!({ "resourceType": "Practitioner", "active": true, "name": name })
            } else {
                let mut p = json!({ "resourceType": "Patient", "active": true, "name": name });
                let birth = get("birthDate");
                if !birth.is_empty() {
                    p["birthDate"] = json!(birth);
                }
                p
            })
        }
        _ => None,
    };
    let onboarding = Onboarding {
        user: NewUser {
            role: role.clone(),
            email: get("email"),
            organization: form.get("organization").filter(|o| !o.is_empty()).cloned(),
            fhir_user: None,
            password: None,
        },
        resource,
    };
    match onboard_as(
        &visit.req,
        &visit.server,
        Arc::clone(&visit.caller),
        onboarding,
    )
    .await
    {
        Ok(user) => invitation_page(&visit, &user),
        Err(e) => problem(
            match e.status() {
                s if s.is_server_error() => StatusCode::SERVICE_UNAVAILABLE,
                s => s,
            },
            "The person was not onboarded",
            &sentence(&e.message()),
        ),
    }
}

/// A message as a sentence.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Something went wrong".to_string(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn invitation_page(visit: &Visit, user: &CreatedUser) -> HttpResponse {
    let body = html! {
        h1 { "Onboarded" }
        p class="notice" role="status" {
            (user.email) " can now activate their account. Send them this invitation link; it works once."
        }
        p { label for="invitation" { "Invitation link" } input id="invitation" type="text" readonly value=(user.invitation) size="80"; }
        p { a href="/portal" { "Back to your dashboard" } }
    };
    respond(
        StatusCode::CREATED,
        page("Onboarded", Some(&visit.person()), body),
    )
}

/// `POST /portal/accounts/{id}/remove`: deactivates an account the admin
/// manages (its tokens revoked at once).
pub async fn remove_account(
    visit: Visit,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if visit.checked_form(&body).is_none() {
        return forged();
    }
    let Ok(user_id) = path.into_inner().parse() else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such account.",
        );
    };
    match deactivate_as(&visit.req, &visit.server, &visit.caller, user_id).await {
        Ok(()) => see_other("/portal?done=removed"),
        Err((status, why)) => problem(status, "The account was not removed", &sentence(&why)),
    }
}
