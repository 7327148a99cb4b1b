//! Canonical JSON to FHIR XML through fhirbolt's typed model, with the narrative copied
//! verbatim and fhirbolt's always-indented output tidied.

use serde_json::Value;

use super::divs;
use super::model::{lax, R4Resource};
use super::FormatError;
use crate::outcome::Issue;
use crate::structure;

pub(super) fn to_xml(resource: &Value, pretty: bool) -> Result<String, FormatError> {
    // fhirbolt can panic on some malformed input (an empty array read through its element
    // model), so only structurally valid resources reach it.
    if let Some(issue) = structure::check_resource(resource)
        .into_iter()
        .find(Issue::is_error)
    {
        let at = issue
            .expression
            .first()
            .map(String::as_str)
            .unwrap_or("resource");
        return Err(FormatError::Json(format!("{at}: {}", issue.diagnostics)));
    }
    let mut value = resource.clone();
    // Well-formed: the structural check has inspected every narrative.
    let narratives = divs::take_json_divs(&mut value);
    let typed: R4Resource = fhirbolt::json::from_json_value(value, lax())
        .map_err(|e| FormatError::Json(e.to_string()))?;
    let xml =
        fhirbolt::xml::to_string(&typed, None).map_err(|e| FormatError::Xml(e.to_string()))?;
    divs::restore_xml_divs(&tidy(&xml, pretty), &narratives).map_err(FormatError::Xml)
}

/// Escapes tabs and line breaks inside attribute values (an XML parser would otherwise turn
/// them into spaces) and, unless `pretty`, drops the indentation between tags. Outside the
/// placeholders fhirbolt's output has no text content, only indentation.
fn tidy(xml: &str, pretty: bool) -> String {
    #[derive(PartialEq)]
    enum State {
        Between,
        Tag,
        Attribute,
    }
    let mut out = String::with_capacity(xml.len());
    let mut state = State::Between;
    for c in xml.chars() {
        match state {
            State::Between => {
                if c == '<' {
                    state = State::Tag;
                } else if !pretty && c.is_whitespace() {
                    continue;
                }
                out.push(c);
            }
            State::Tag => {
                match c {
                    '"' => state = State::Attribute,
                    '>' => state = State::Between,
                    _ => {}
                }
                out.push(c);
            }
            State::Attribute => match c {
                '"' => {
                    state = State::Tag;
                    out.push(c);
                }
                '\n' => out.push_str("&#10;"),
                '\r' => out.push_str("&#13;"),
                '\t' => out.push_str("&#9;"),
                _ => out.push(c),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::tidy;

    #[test]
    fn tidies_fhirbolt_output() {
        let xml = "<?xml version=\"1.0\"?>\n<a>\n  <b value=\"x\n\ty\"/>\n</a>";
        assert_eq!(
            tidy(xml, false),
            "<?xml version=\"1.0\"?><a><b value=\"x&#10;&#9;y\"/></a>"
        );
        assert_eq!(
            tidy(xml, true),
            "<?xml version=\"1.0\"?>\n<a>\n  <b value=\"x&#10;&#9;y\"/>\n</a>"
        );
    }
}
