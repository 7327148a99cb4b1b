//! The start of an XML body: byte order mark and XML declaration, which fhirbolt is pickier
//! about than the XML specification.

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The body without a UTF-8 byte order mark and without its XML declaration.
pub(super) fn strip(body: &[u8]) -> Result<&[u8], String> {
    without_declaration(body.strip_prefix(UTF8_BOM).unwrap_or(body))
}

/// Drops the XML declaration after checking it names UTF-8: fhirbolt accepts only the exact
/// spelling `UTF-8`, while `utf-8` is just as common and equally correct.
fn without_declaration(body: &[u8]) -> Result<&[u8], String> {
    let is_declaration = body.starts_with(b"<?xml")
        && body
            .get(5)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'?');
    if !is_declaration {
        return Ok(body);
    }
    let Some(end) = body.windows(2).position(|w| w == b"?>") else {
        return Err("the XML declaration is not closed".into());
    };
    let declaration = String::from_utf8_lossy(&body[..end]).to_ascii_lowercase();
    let encoding = declaration.split("encoding").nth(1).map(|rest| {
        rest.trim_start_matches(|c: char| c.is_whitespace() || c == '=')
            .trim_start_matches(['"', '\''])
            .split(['"', '\''])
            .next()
            .unwrap_or_default()
            .to_string()
    });
    match encoding.as_deref() {
        None | Some("utf-8") => Ok(&body[end + 2..]),
        Some(other) => Err(format!("only UTF-8 is supported, not '{other}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::{strip, without_declaration};

    #[test]
    fn declarations_naming_utf8_are_dropped() {
        let ok = |s: &str| {
            without_declaration(s.as_bytes()).map(|b| String::from_utf8_lossy(b).to_string())
        };
        assert_eq!(
            ok("<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>"),
            Ok("<a/>".into())
        );
        assert_eq!(ok("<?xml version='1.0'?>\n<a/>"), Ok("\n<a/>".into()));
        assert_eq!(ok("<a/>"), Ok("<a/>".into()));
        assert!(ok("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>").is_err());
        assert!(ok("<?xml version=\"1.0\"").is_err());
        assert_eq!(strip(b"\xEF\xBB\xBF<a/>"), Ok(&b"<a/>"[..]));
    }
}
