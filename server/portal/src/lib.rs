//! The portal at `/portal`: the dashboards of the product brief's people —
//! solution admins, hospital admins, doctors, patients and compliance
//! officers — as server-rendered HTML (maud) that works without JavaScript.
//!
//! The portal is a first-party SMART client of the server's own
//! authorization server ([`fhirledger_auth::first_party`]): the person signs
//! in through `/auth/authorize`, the portal keeps the access token in an
//! HttpOnly cookie scoped to `/portal`, and every page reads and writes
//! through the FHIR service with that token's `Caller` ([`session::Visit`]),
//! so the one access decision decides what it shows and every datum is
//! audited with the portal as the client application. It never reads the
//! store around the service.
//!
//! Layering: this crate sits beside `fhirledger-auth` under the HTTP layer
//! (the binary mounts [`configure`]); it depends on the authorization server
//! (sign-in, token checks) and the FHIR service, and nothing depends on it
//! but the binary.

pub mod access_log;
pub mod admin;
pub mod context;
pub mod csrf;
pub mod dashboard;
pub mod documents;
pub mod emergency;
pub mod fhir;
pub mod layout;
pub mod live;
pub mod log_entry;
pub mod paging;
pub mod session;
pub mod sharing;
pub mod sign_in;
pub mod trail;
pub mod upload;

use actix_web::web;

pub use context::PortalContext;

/// The portal's routes, under `/portal`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/portal")
            .service(web::resource("").route(web::get().to(dashboard::home)))
            .service(web::resource("/").route(web::get().to(dashboard::home)))
            .service(web::resource("/assets/portal.css").route(web::get().to(layout::stylesheet)))
            .service(web::resource("/assets/portal.js").route(web::get().to(layout::script)))
            .service(web::resource("/upload").route(web::post().to(upload::upload)))
            .service(web::resource("/access-log").route(web::get().to(access_log::log_page)))
            .service(web::resource("/live/{topic}").route(web::get().to(live::stream)))
            .service(
                web::resource("/access-log/{id}/proof")
                    .route(web::get().to(access_log::proof_page)),
            )
            .service(web::resource("/hospitals").route(web::post().to(admin::onboard_hospital)))
            .service(
                web::resource("/hospitals/{id}/active")
                    .route(web::post().to(admin::set_hospital_active)),
            )
            .service(web::resource("/accounts").route(web::post().to(admin::onboard_person)))
            .service(
                web::resource("/accounts/{id}/remove").route(web::post().to(admin::remove_account)),
            )
            .service(web::resource("/emergency").route(web::post().to(emergency::open)))
            .service(web::resource("/patients/{id}").route(web::get().to(documents::patient_page)))
            .service(
                web::resource("/documents").route(web::get().to(documents::own_documents_page)),
            )
            .service(
                web::resource("/documents/{id}").route(web::get().to(documents::document_page)),
            )
            .service(
                web::resource("/documents/{id}/content")
                    .route(web::get().to(documents::document_content)),
            )
            .service(web::resource("/sharing").route(web::post().to(sharing::create_share)))
            .service(web::resource("/sharing/new").route(web::get().to(sharing::new_share)))
            .service(
                web::resource("/sharing/{id}/revoke").route(web::post().to(sharing::revoke_share)),
            )
            .service(web::resource("/trail").route(web::get().to(trail::trail_page)))
            .service(web::resource("/trail/export").route(web::get().to(trail::export)))
            .service(web::resource("/sign-in").route(web::get().to(sign_in::sign_in)))
            .service(web::resource("/callback").route(web::get().to(sign_in::callback)))
            .service(web::resource("/sign-out").route(web::post().to(sign_in::sign_out)))
            .service(web::resource("/signed-out").route(web::get().to(sign_in::signed_out))),
    );
}
