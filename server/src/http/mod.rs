//! HTTP plumbing shared by the routes: content negotiation, FHIR error
//! answers, request headers (`Prefer`, `If-Match`) and resource responses.

pub mod authenticate;
pub mod body;
pub mod body_format;
pub mod client_address;
pub mod error;
pub mod fhir_request;
pub mod health;
pub mod landing;
pub mod negotiate;
pub mod preconditions;
pub mod respond;
pub mod security_headers;
