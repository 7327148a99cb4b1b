//! Headers every answer carries unless its handler chose otherwise (the
//! portal's and sign-in pages set stricter ones, static assets their own
//! caching): browsers must not sniff a FHIR resource into HTML, frame the
//! API, or leak its URLs (which name patients) in `Referer`, and nothing
//! that holds health data may be kept by a shared or browser cache.
//! Behind TLS (an `https://` public base URL) browsers are also told to
//! come back over HTTPS only.

use actix_web::middleware::DefaultHeaders;

/// The default headers; `https` when the public base URL is `https://`.
pub fn defaults(https: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"));
    if https {
        headers.add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        headers
    }
}
