//! The authorization server's routes (under `/auth`) and the SMART
//! discovery document under the FHIR base.

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::{admin, authorize, discovery, flow, introspect, login, logout, oauth_error, token};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/fhir/.well-known/smart-configuration")
            .route(web::get().to(discovery::smart_configuration_route))
            .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight)),
    )
    // One scope: FHIR requests compare its prefix once and never try the
    // dynamic /auth paths below (each of those is a regex match).
    .service(web::scope("/auth").configure(auth_routes));
}

/// The routes under `/auth`.
fn auth_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/.well-known/openid-configuration")
            .route(web::get().to(discovery::openid_configuration_route))
            .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight)),
    )
    .service(
        web::resource("/jwks")
            .route(web::get().to(discovery::jwks_route))
            .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight)),
    )
    .service(web::resource("/style").route(web::get().to(discovery::style_route)))
    .service(
        web::resource("/authorize")
            .route(web::get().to(authorize::authorize_get))
            .route(web::post().to(authorize::authorize_post)),
    )
    .service(web::resource("/continue").route(web::get().to(flow::continue_route)))
    .service(web::resource("/login").route(web::post().to(flow::login_post)))
    .service(web::resource("/login/{provider}").route(web::get().to(login::start_route)))
    .service(web::resource("/login/{provider}/callback").route(web::get().to(login::callback)))
    .service(web::resource("/invite/{code}").route(web::get().to(login::invitation)))
    .service(
        web::resource("/invite/{code}/password").route(web::post().to(login::invitation_password)),
    )
    .service(
        web::resource("/logout")
            .route(web::get().to(logout::logout_get))
            .route(web::post().to(logout::logout_post)),
    )
    .service(web::resource("/patient").route(web::post().to(flow::patient_post)))
    .service(web::resource("/approve").route(web::post().to(flow::approve_post)))
    .service(
        web::resource("/token")
            .wrap(from_fn(oauth_error::json_errors))
            .route(web::post().to(token::token))
            .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight)),
    )
    .service(
        web::resource("/introspect")
            .wrap(from_fn(oauth_error::json_errors))
            .route(web::post().to(introspect::introspect)),
    )
    .service(
        web::resource("/revoke")
            .wrap(from_fn(oauth_error::json_errors))
            .route(web::post().to(introspect::revoke)),
    )
    .service(
        web::resource("/launch")
            .wrap(from_fn(oauth_error::json_errors))
            .route(web::post().to(admin::launch)),
    )
    .service(
        web::resource("/admin/clients")
            .wrap(from_fn(oauth_error::json_errors))
            .route(web::post().to(admin::add_client)),
    )
    .service(
        web::resource("/admin/users")
            .wrap(from_fn(oauth_error::json_errors))
            .route(web::post().to(admin::add_user))
            .route(web::get().to(admin::list_users)),
    )
    .service(
        web::resource("/admin/users/{id}")
            .wrap(from_fn(oauth_error::json_errors))
            .route(web::delete().to(admin::remove_user)),
    );
}
