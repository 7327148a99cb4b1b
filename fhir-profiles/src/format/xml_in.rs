//! FHIR XML bodies: narrative is lifted out verbatim, fhirbolt reads the rest strictly; when
//! it refuses, the element model (which keeps unknown elements) is converted to JSON so the
//! structural check can say where the problem is.

use fhirbolt::element::Element;
use fhirbolt::FhirReleases;
use serde_json::Value;

use super::model::{canonical_json, compatible, strict, R4Resource};
use super::{divs, prolog, xml_guard};
use super::{model_rejected, ParseError};
use crate::outcome::{has_errors, IssueType};
use crate::structure;

type R4Element = Element<{ FhirReleases::R4 }>;

pub(super) fn parse(body: &[u8]) -> Result<Value, ParseError> {
    // Before any quick-xml 0.25 reader sees the body (see xml_guard).
    xml_guard::check(body).map_err(|e| {
        ParseError::single(
            IssueType::TooCostly,
            format!("the XML body was refused before parsing: {e}"),
        )
    })?;
    let body = prolog::strip(body).map_err(|why| ParseError::single(IssueType::Structure, why))?;
    let lifted = divs::take_xml_divs(body).map_err(|why| {
        ParseError::single(
            IssueType::Structure,
            format!("the body is not well-formed XML: {why}"),
        )
    })?;
    match fhirbolt::xml::from_slice::<R4Resource>(&lifted.xml, strict()) {
        Ok(resource) => {
            let mut value = canonical_json(resource)
                .map_err(|e| ParseError::single(IssueType::Exception, e))?;
            divs::restore_json_divs(&mut value, &lifted.divs);
            let issues = structure::check_resource(&value);
            if has_errors(&issues) {
                return Err(ParseError::new(issues));
            }
            Ok(value)
        }
        Err(strict_error) => Err(locate(&lifted, strict_error)),
    }
}

/// Re-reads a rejected body through the element model to find where the problem is.
fn locate(lifted: &divs::LiftedXml, strict_error: fhirbolt::xml::Error) -> ParseError {
    let element = fhirbolt::xml::from_slice::<R4Element>(&lifted.xml, compatible());
    let Ok(mut value) = element
        .map_err(|e| e.to_string())
        .and_then(|e| fhirbolt::json::to_json_value(e, None).map_err(|e| e.to_string()))
    else {
        return ParseError::single(
            IssueType::Structure,
            format!("the body is not a valid FHIR XML resource: {strict_error}"),
        );
    };
    divs::restore_json_divs(&mut value, &lifted.divs);
    let issues = structure::check_resource(&value);
    if has_errors(&issues) {
        return ParseError::new(issues);
    }
    model_rejected(&value, strict_error)
}
