//! The authorization server's routes (under `/auth`) and the SMART
//! discovery document under the FHIR base.

use actix_web::web;

use crate::auth::{admin, authorize, discovery, flow, introspect, login, token};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/fhir/.well-known/smart-configuration")
            .route(web::get().to(discovery::smart_configuration_route))
            .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight)),
    )
    .service(
        web::resource("/auth/.well-known/openid-configuration")
            .route(web::get().to(discovery::openid_configuration_route))
            .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight)),
    )
    .service(
        web::resource("/auth/jwks")
            .route(web::get().to(discovery::jwks_route))
            .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight)),
    )
    .service(web::resource("/auth/style").route(web::get().to(discovery::style_route)))
    .service(
        web::resource("/auth/authorize")
            .route(web::get().to(authorize::authorize_get))
            .route(web::post().to(authorize::authorize_post)),
    )
    .service(web::resource("/auth/continue").route(web::get().to(flow::continue_route)))
    .service(web::resource("/auth/login").route(web::post().to(flow::login_post)))
    .service(web::resource("/auth/login/{provider}").route(web::get().to(login::start_route)))
    .service(web::resource("/auth/login/{provider}/callback").route(web::get().to(login::callback)))
    .service(web::resource("/auth/invite/{code}").route(web::get().to(login::invitation)))
    .service(
        web::resource("/auth/invite/{code}/password")
            .route(web::post().to(login::invitation_password)),
    )
    .service(web::resource("/auth/patient").route(web::post().to(flow::patient_post)))
    .service(web::resource("/auth/approve").route(web::post().to(flow::approve_post)))
    .service(
        web::resource("/auth/token")
            .route(web::post().to(token::token))
            .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight)),
    )
    .service(web::resource("/auth/introspect").route(web::post().to(introspect::introspect)))
    .service(web::resource("/auth/revoke").route(web::post().to(introspect::revoke)))
    .service(web::resource("/auth/launch").route(web::post().to(admin::launch)))
    .service(web::resource("/auth/admin/clients").route(web::post().to(admin::add_client)))
    .service(
        web::resource("/auth/admin/users")
            .route(web::post().to(admin::add_user))
            .route(web::get().to(admin::list_users)),
    )
    .service(web::resource("/auth/admin/users/{id}").route(web::delete().to(admin::remove_user)));
}
