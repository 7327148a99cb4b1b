//! Narrative (`Narrative.div`) bypasses fhirbolt: its XML reader and writer trim and re-indent
//! XHTML text, which would change what the author wrote. Each div is swapped for a
//! placeholder before fhirbolt runs and put back, byte for byte, afterwards.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::Value;

use crate::structure::MAX_DEPTH;
use crate::xhtml::XHTML_NAMESPACE;

/// Marks a placeholder; followed by the div's index.
const TOKEN: &str = "fhirledger-narrative-placeholder-";

/// XML nesting accepted: one element per JSON object plus the primitive leaf, with headroom.
const MAX_XML_DEPTH: usize = MAX_DEPTH + 4;

fn placeholder(n: usize) -> String {
    format!("<div xmlns=\"{XHTML_NAMESPACE}\">{TOKEN}{n}</div>")
}

/// Replaces every narrative div in a JSON resource by a placeholder; returns the originals.
pub(super) fn take_json_divs(value: &mut Value) -> Vec<String> {
    let mut divs = Vec::new();
    visit_divs(value, &mut |div| {
        let original = std::mem::replace(div, placeholder(divs.len()));
        divs.push(original);
    });
    divs
}

/// Puts narrative back where fhirbolt's JSON has placeholders.
pub(super) fn restore_json_divs(value: &mut Value, divs: &[String]) {
    if divs.is_empty() {
        return;
    }
    visit_divs(value, &mut |div| {
        let original = div
            .find(TOKEN)
            .and_then(|at| leading_number(&div[at + TOKEN.len()..]))
            .and_then(|n| divs.get(n));
        if let Some(original) = original {
            div.clone_from(original);
        }
    });
}

/// Calls `f` on every string under a `div` key (only Narrative has such an element in R4).
fn visit_divs(value: &mut Value, f: &mut impl FnMut(&mut String)) {
    match value {
        Value::Object(obj) => {
            for (key, child) in obj.iter_mut() {
                match child {
                    Value::String(s) if key == "div" => f(s),
                    _ => visit_divs(child, f),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| visit_divs(item, f)),
        _ => {}
    }
}

/// Puts the original divs into fhirbolt's XML output in one pass.
pub(super) fn restore_xml_divs(xml: &str, divs: &[String]) -> Result<String, String> {
    let mut out = String::with_capacity(xml.len() + divs.iter().map(String::len).sum::<usize>());
    let mut rest = xml;
    let open = format!("<div xmlns=\"{XHTML_NAMESPACE}\">{TOKEN}");
    let mut restored = 0;
    while let Some(at) = rest.find(&open) {
        out.push_str(&rest[..at]);
        let after = &rest[at + open.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let original = leading_number(after)
            .and_then(|n| divs.get(n))
            .filter(|_| after[digits..].starts_with("</div>"))
            .ok_or("narrative placeholder was altered")?;
        out.push_str(original);
        rest = &after[digits + "</div>".len()..];
        restored += 1;
    }
    out.push_str(rest);
    if restored == divs.len() {
        Ok(out)
    } else {
        Err("narrative placeholder was lost".into())
    }
}

fn leading_number(s: &str) -> Option<usize> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s.get(..digits)?.parse().ok()
}

/// An XML body with its narrative divs swapped for placeholders.
pub(super) struct LiftedXml {
    pub xml: Vec<u8>,
    pub divs: Vec<String>,
}

/// Lifts every XHTML `div` that declares its namespace itself (as FHIR XML does) out of the
/// body, keeping its exact text for the JSON form. Also bounds the nesting depth.
pub(super) fn take_xml_divs(body: &[u8]) -> Result<LiftedXml, String> {
    if contains(body, TOKEN.as_bytes()) {
        // Someone is imitating our placeholders; let fhirbolt handle narrative on its own.
        check_depth(body)?;
        return Ok(LiftedXml {
            xml: body.to_vec(),
            divs: Vec::new(),
        });
    }
    let mut reader = Reader::from_reader(body);
    let mut xml = Vec::with_capacity(body.len());
    let mut divs = Vec::new();
    let mut copied = 0;
    let mut depth = 0usize;
    loop {
        let start = reader.buffer_position();
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) if is_xhtml_div(&e) => {
                skip_to_end(&mut reader, depth + 1)?;
                let end = reader.buffer_position();
                lift(body, start, end, &mut copied, &mut xml, &mut divs)?;
            }
            Event::Empty(e) if is_xhtml_div(&e) => {
                let end = reader.buffer_position();
                lift(body, start, end, &mut copied, &mut xml, &mut divs)?;
            }
            Event::Start(_) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err("elements are nested too deeply".into());
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof if depth > 0 => return Err("the document ends inside an element".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    xml.extend_from_slice(body.get(copied..).unwrap_or_default());
    Ok(LiftedXml { xml, divs })
}

fn lift(
    body: &[u8],
    start: usize,
    end: usize,
    copied: &mut usize,
    xml: &mut Vec<u8>,
    divs: &mut Vec<String>,
) -> Result<(), String> {
    let raw = body.get(start..end).ok_or("narrative out of range")?;
    let raw = std::str::from_utf8(raw).map_err(|e| e.to_string())?;
    xml.extend_from_slice(body.get(*copied..start).unwrap_or_default());
    xml.extend_from_slice(placeholder(divs.len()).as_bytes());
    divs.push(raw.to_string());
    *copied = end;
    Ok(())
}

/// Reads up to the end tag matching an already read start tag.
fn skip_to_end(reader: &mut Reader<&[u8]>, mut depth: usize) -> Result<(), String> {
    let mut open = 1usize;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(_) => {
                open += 1;
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err("elements are nested too deeply".into());
                }
            }
            Event::End(_) => {
                open -= 1;
                if open == 0 {
                    return Ok(());
                }
                depth -= 1;
            }
            Event::Eof => return Err("narrative div is not closed".into()),
            _ => {}
        }
    }
}

fn check_depth(body: &[u8]) -> Result<(), String> {
    let mut reader = Reader::from_reader(body);
    let mut depth = 0usize;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(_) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err("elements are nested too deeply".into());
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof if depth > 0 => return Err("the document ends inside an element".into()),
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn is_xhtml_div(e: &BytesStart) -> bool {
    e.name().as_ref() == b"div"
        && e.attributes()
            .flatten()
            .any(|a| a.key.as_ref() == b"xmlns" && a.value.as_ref() == XHTML_NAMESPACE.as_bytes())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_divs_round_trip_through_placeholders() {
        let original = json!({"text": {"div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"> a  b </div>"},
            "contained": [{"text": {"div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">c</div>"}}]});
        let mut v = original.clone();
        let divs = take_json_divs(&mut v);
        assert_eq!(divs.len(), 2);
        assert_eq!(v["contained"][0]["text"]["div"], json!(placeholder(1)));
        restore_json_divs(&mut v, &divs);
        assert_eq!(v, original);
    }

    #[test]
    fn xml_divs_are_lifted_verbatim() {
        let body = b"<Patient xmlns=\"http://hl7.org/fhir\"><text><div xmlns=\"http://www.w3.org/1999/xhtml\">\n <p>x <b>y</b> </p>\n</div></text><active value=\"true\"/></Patient>";
        let lifted = take_xml_divs(body);
        let Ok(lifted) = lifted else {
            panic!("{lifted:?}", lifted = lifted.err());
        };
        assert_eq!(
            lifted.divs,
            vec!["<div xmlns=\"http://www.w3.org/1999/xhtml\">\n <p>x <b>y</b> </p>\n</div>"]
        );
        let xml = String::from_utf8_lossy(&lifted.xml).to_string();
        assert!(xml.contains(&placeholder(0)));
        assert_eq!(
            restore_xml_divs(&xml, &lifted.divs)
                .ok()
                .as_deref()
                .map(str::as_bytes),
            Some(&body[..])
        );
    }

    #[test]
    fn altered_placeholders_are_errors() {
        let xml = format!("<a>{}</a>", placeholder(3));
        assert!(restore_xml_divs(&xml, &["x".to_string()]).is_err());
        assert!(restore_xml_divs("<a/>", &["x".to_string()]).is_err());
    }

    #[test]
    fn deep_xml_is_refused() {
        let body = "<a>".repeat(MAX_XML_DEPTH + 1);
        assert!(take_xml_divs(body.as_bytes()).is_err());
    }
}
