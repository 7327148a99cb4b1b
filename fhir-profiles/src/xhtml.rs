//! Checks of narrative XHTML (`Narrative.div`): well-formed, rooted in an XHTML `div`, and
//! free of the active content FHIR's txt-1 rules out (scripts, forms, frames, event handlers),
//! since stored narrative is shown to other users in browsers.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

pub(crate) const XHTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";

/// Elements outside the HTML subset FHIR narrative allows.
const FORBIDDEN_ELEMENTS: &[&str] = &[
    "html", "head", "body", "title", "meta", "link", "base", "script", "noscript", "style", "form",
    "input", "button", "select", "option", "textarea", "label", "fieldset", "legend", "frame",
    "frameset", "iframe", "noframes", "object", "embed", "applet", "param",
];

/// URL schemes that run code when followed.
const ACTIVE_SCHEMES: &[&str] = &["javascript:", "vbscript:"];

/// Inspects a narrative: `Err` with the reason when it is not a well-formed XHTML `div`,
/// otherwise the list of forbidden constructs found (empty when clean).
pub(crate) fn inspect(div: &str) -> Result<Vec<String>, String> {
    // Narrative arrives inside JSON bodies too; quick-xml 0.25 must not see it unchecked.
    crate::format::xml_guard::check(div.as_bytes()).map_err(|e| e.to_string())?;
    let mut reader = Reader::from_str(div);
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut forbidden = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            )
        })?;
        match event {
            Event::Start(e) => {
                if depth == 0 {
                    check_root(&e, &mut seen_root)?;
                }
                check_element(&e, &mut forbidden)?;
                depth += 1;
            }
            Event::Empty(e) => {
                if depth == 0 {
                    check_root(&e, &mut seen_root)?;
                }
                check_element(&e, &mut forbidden)?;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) => {
                let text = t
                    .unescape()
                    .map_err(|e| format!("bad character or entity reference: {e}"))?;
                if depth == 0 && !text.trim().is_empty() {
                    return Err("text outside the root div".into());
                }
            }
            Event::CData(_) if depth == 0 => return Err("text outside the root div".into()),
            Event::CData(_) | Event::Comment(_) => {}
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {
                return Err(
                    "declarations, processing instructions and DOCTYPE are not allowed".into(),
                )
            }
            Event::Eof => break,
        }
    }
    if !seen_root {
        return Err("no div element".into());
    }
    if depth != 0 {
        return Err("unclosed element".into());
    }
    Ok(forbidden)
}

fn check_root(e: &BytesStart, seen_root: &mut bool) -> Result<(), String> {
    if std::mem::replace(seen_root, true) {
        return Err("more than one root element".into());
    }
    if e.name().as_ref() != b"div" {
        return Err("the root element must be an unprefixed div".into());
    }
    let declares_xhtml = e
        .attributes()
        .flatten()
        .any(|a| a.key.as_ref() == b"xmlns" && a.value.as_ref() == XHTML_NAMESPACE.as_bytes());
    if declares_xhtml {
        Ok(())
    } else {
        Err(format!("the div must declare xmlns=\"{XHTML_NAMESPACE}\""))
    }
}

fn check_element(e: &BytesStart, forbidden: &mut Vec<String>) -> Result<(), String> {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).to_ascii_lowercase();
    if FORBIDDEN_ELEMENTS.contains(&name.as_str()) {
        forbidden.push(format!("element <{name}>"));
    }
    for attr in e.attributes() {
        let attr = attr.map_err(|err| format!("bad attribute in <{name}>: {err}"))?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).to_ascii_lowercase();
        let value = attr
            .unescape_value()
            .map_err(|err| format!("bad attribute value in <{name}>: {err}"))?;
        if key.starts_with("on") {
            forbidden.push(format!("event handler attribute {key} on <{name}>"));
        }
        let value = value.trim_start().to_ascii_lowercase();
        if ACTIVE_SCHEMES.iter().any(|s| value.starts_with(s)) {
            forbidden.push(format!("script URL in {key} of <{name}>"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>Hi &amp; <b>there</b><br/></p><a href="http://x">x</a></div>"#;

    #[test]
    fn accepts_clean_narrative() {
        assert_eq!(inspect(OK), Ok(vec![]));
        assert_eq!(
            inspect(r#"<div xmlns="http://www.w3.org/1999/xhtml"/>"#),
            Ok(vec![])
        );
    }

    #[test]
    fn rejects_malformed_or_foreign_roots() {
        for bad in [
            "",
            "plain text",
            "<div><p>x</p></div>",
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>x</div>"#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p>"#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml">&nbsp;</div>"#,
            r#"<p xmlns="http://www.w3.org/1999/xhtml">x</p>"#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml">x</div><div xmlns="http://www.w3.org/1999/xhtml">y</div>"#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml">x</div>trailing"#,
        ] {
            assert!(inspect(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reports_active_content() {
        let found = inspect(
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><script>x()</script><img src="a.png" onerror="x()"/><a href=" JavaScript:x()">x</a></div>"#,
        );
        assert_eq!(found.map(|f| f.len()), Ok(3));
    }
}
