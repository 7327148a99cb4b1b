//! The format of a request's FHIR body, which is also the answer's format
//! when neither `_format` nor `Accept` chooses one (no `Accept`, `*/*`, or
//! only types that are not FHIR formats). The specification leaves the
//! format open then; a client that wrote XML reads XML, so an XML create,
//! update or Bundle is answered in XML, its errors included.

use actix_web::http::header;
use actix_web::HttpRequest;
use fhir_profiles::format::FhirFormat;

use crate::http::negotiate::{fhir_format_of, is_fhir_mime};

/// The FHIR format of the request's body by its `Content-Type`, if it has a
/// FHIR body: raw content uploaded to `Binary` (any type but the FHIR ones,
/// `application/xml` included) is not one.
pub fn body_format(req: &HttpRequest) -> Option<FhirFormat> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())?;
    let format = fhir_format_of(content_type)?;
    if is_binary_path(req.path()) && !is_fhir_mime(content_type) {
        return None;
    }
    Some(format)
}

/// `/fhir/Binary` and the paths below it.
fn is_binary_path(path: &str) -> bool {
    path.strip_prefix("/fhir/Binary")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn format(path: &str, content_type: Option<&str>) -> Option<FhirFormat> {
        let mut req = TestRequest::post().uri(path);
        if let Some(ct) = content_type {
            req = req.insert_header(("Content-Type", ct));
        }
        body_format(&req.to_http_request())
    }

    #[test]
    fn fhir_bodies_name_their_format() {
        assert_eq!(
            format("/fhir/Patient", Some("application/fhir+xml")),
            Some(FhirFormat::Xml)
        );
        assert_eq!(
            format("/fhir/Patient", Some("application/xml; charset=utf-8")),
            Some(FhirFormat::Xml)
        );
        assert_eq!(
            format("/fhir", Some("application/fhir+json")),
            Some(FhirFormat::Json)
        );
        assert_eq!(
            format("/fhir/Binary", Some("application/fhir+xml")),
            Some(FhirFormat::Xml)
        );
        assert_eq!(
            format("/fhir/BinaryX/1", Some("application/xml")),
            Some(FhirFormat::Xml)
        );
    }

    #[test]
    fn other_bodies_name_none() {
        assert_eq!(format("/fhir/Patient", None), None);
        assert_eq!(
            format(
                "/fhir/Patient/_search",
                Some("application/x-www-form-urlencoded")
            ),
            None
        );
        assert_eq!(format("/fhir/Binary", Some("application/xml")), None);
        assert_eq!(format("/fhir/Binary/1", Some("application/json")), None);
        assert_eq!(format("/fhir/Binary", Some("application/pdf")), None);
    }
}
