//! A linear, bounded look at XML before quick-xml 0.25 (the version fhirbolt 0.4 pins) reads
//! it. Two of that version's faults are reachable by any client that sends XML, as a body or as
//! narrative inside JSON:
//!
//! - RUSTSEC-2026-0194: iterating a start tag's attributes compares each name with every name
//!   before it, so one tag with N attributes costs O(N²) (80,000 attributes: ~6 s of CPU).
//!   fhirbolt, our narrative lifting and the XHTML checks all iterate attributes that way.
//! - RUSTSEC-2026-0195: fhirbolt's `NsReader` stores every namespace declaration of a start tag
//!   before anyone can look at it, ~3× the tag's size in heap, with no bound.
//!
//! [`check`] refuses a document before either can happen: too many attributes on one element,
//! too many namespace declarations on one element or in scope at once, or elements nested too
//! deep. It is one pass over the bytes, allocates at most [`MAX_DEPTH`] bytes, and only
//! refuses: whether the document is well-formed is left to the parser. It splits the input
//! the way quick-xml 0.25 does (comments, CDATA, processing instructions, DOCTYPE, end tags and
//! quote-aware start tags), so what it counts is what the parser will see; a `>` or `<` inside
//! a quoted attribute value, a comment or CDATA is text, not markup.
//!
//! Remove when fhirbolt depends on quick-xml 0.41 or newer, where both faults are fixed.

/// Attributes one element may carry. FHIR XML elements carry one to three (`value`, `id`,
/// `url`, and `xmlns` on resource roots); XHTML narrative elements a handful (`class`,
/// `style`, `href`, `title`, `colspan`, `lang`…). At 64 quick-xml's duplicate check makes at
/// most 2,016 name comparisons per tag.
pub const MAX_ATTRIBUTES_PER_ELEMENT: usize = 64;

/// Namespace declarations (`xmlns`, `xmlns:p`) one element may carry. FHIR declares one on each
/// resource root and narrative `div`; some tools add `xmlns:xsi` or `xmlns:xhtml`.
pub const MAX_NAMESPACE_DECLARATIONS_PER_ELEMENT: usize = 16;

/// Namespace declarations in scope at once, summed over the open elements: what the parser's
/// namespace resolver holds (it drops an element's declarations at its end tag, so this is
/// the total that costs memory; a count over the whole document would only cap how many
/// resources a Bundle may hold). Nested contained resources and narrative reach about five.
pub const MAX_NAMESPACE_DECLARATIONS_IN_SCOPE: usize = 64;

/// Open elements at once. Real resources, narrative included, nest well under 100 levels (the
/// JSON structure check stops at 48); this bounds the resolver's scopes and the guard's own
/// stack.
pub const MAX_DEPTH: usize = 128;

/// Why a document was refused before parsing; `at` is the byte offset of the offending tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlLimitError {
    #[error(
        "an element has more than {MAX_ATTRIBUTES_PER_ELEMENT} attributes (the tag at byte {at})"
    )]
    TooManyAttributes { at: usize },
    #[error(
        "an element declares more than {MAX_NAMESPACE_DECLARATIONS_PER_ELEMENT} XML namespaces (the tag at byte {at})"
    )]
    TooManyNamespaceDeclarations { at: usize },
    #[error(
        "more than {MAX_NAMESPACE_DECLARATIONS_IN_SCOPE} XML namespace declarations are in scope at once (the tag at byte {at})"
    )]
    TooManyNamespacesInScope { at: usize },
    #[error("elements are nested more than {MAX_DEPTH} levels deep (the tag at byte {at})")]
    TooDeep { at: usize },
}

/// Checks `xml` against the limits above in one pass; see the module documentation.
pub fn check(xml: &[u8]) -> Result<(), XmlLimitError> {
    // Namespace declarations of each open element (each at most
    // MAX_NAMESPACE_DECLARATIONS_PER_ELEMENT, so a byte holds it).
    let mut open: Vec<u8> = Vec::new();
    let mut in_scope = 0usize;
    let mut at = 0usize;
    while let Some(lt) = find_byte(xml, at, b'<') {
        let rest = &xml[lt + 1..];
        at = match rest.first() {
            // Comments end at the first `-->` after `<!--`; quick-xml only then checks the
            // opening, so `<!-x … -->` is read the same way (and refused by the parser).
            Some(b'!') if rest.get(1) == Some(&b'-') => after(xml, lt + 4, b"-->"),
            Some(b'!') if rest.get(1) == Some(&b'[') => after(xml, lt + 2, b"]]>"),
            Some(b'!') => after_doctype(xml, lt + 1),
            // Processing instructions and end tags end at the first `>`.
            Some(b'?') => after(xml, lt + 1, b">"),
            Some(b'/') => {
                if let Some(declared) = open.pop() {
                    in_scope -= usize::from(declared);
                }
                after(xml, lt + 1, b">")
            }
            Some(_) => {
                let tag = start_tag(xml, lt + 1);
                // Namespaces first: a tag of declarations is over both limits, and this names
                // what it is.
                if tag.namespaces > MAX_NAMESPACE_DECLARATIONS_PER_ELEMENT {
                    return Err(XmlLimitError::TooManyNamespaceDeclarations { at: lt });
                }
                if tag.attributes > MAX_ATTRIBUTES_PER_ELEMENT {
                    return Err(XmlLimitError::TooManyAttributes { at: lt });
                }
                if in_scope + tag.namespaces > MAX_NAMESPACE_DECLARATIONS_IN_SCOPE {
                    return Err(XmlLimitError::TooManyNamespacesInScope { at: lt });
                }
                if !tag.empty {
                    if open.len() >= MAX_DEPTH {
                        return Err(XmlLimitError::TooDeep { at: lt });
                    }
                    // Within u8 by the per-element check above.
                    open.push(tag.namespaces as u8);
                    in_scope += tag.namespaces;
                }
                tag.end
            }
            None => xml.len(),
        };
    }
    Ok(())
}

/// What the guard needs of one start tag.
struct StartTag {
    /// Offset just past its `>` (or the end of the input when it is not closed).
    end: usize,
    attributes: usize,
    namespaces: usize,
    /// `<a/>`: opens no scope.
    empty: bool,
}

/// Reads a start tag from just after its `<` to its `>`, which is the first `>` outside quotes
/// (as quick-xml finds it). Counts every name-like token outside quoted values as an
/// attribute: for a well-formed tag that is exactly its attributes, and for a malformed one
/// it is never fewer than the parser would go through before failing.
fn start_tag(xml: &[u8], from: usize) -> StartTag {
    let mut i = from;
    // The element name: up to the first whitespace, `/` or `>`.
    while i < xml.len() && !is_space(xml[i]) && xml[i] != b'>' && xml[i] != b'/' {
        i += 1;
    }
    let mut attributes = 0;
    let mut namespaces = 0;
    // After `=`, the next token is a value, not a name.
    let mut value_next = false;
    while i < xml.len() {
        match xml[i] {
            b'>' => {
                return StartTag {
                    end: i + 1,
                    attributes,
                    namespaces,
                    empty: i > from && xml[i - 1] == b'/',
                }
            }
            quote @ (b'"' | b'\'') => {
                i = find_byte(xml, i + 1, quote).map_or(xml.len(), |q| q + 1);
                value_next = false;
            }
            b'=' => {
                value_next = true;
                i += 1;
            }
            b if is_space(b) || b == b'/' => i += 1,
            _ => {
                let start = i;
                while i < xml.len() && !is_token_end(xml[i]) {
                    i += 1;
                }
                if std::mem::take(&mut value_next) {
                    continue;
                }
                attributes += 1;
                let name = &xml[start..i];
                if name == b"xmlns" || name.starts_with(b"xmlns:") {
                    namespaces += 1;
                }
                // Stop counting long before a hostile tag ends; the caller refuses it.
                if attributes > MAX_ATTRIBUTES_PER_ELEMENT {
                    break;
                }
            }
        }
    }
    StartTag {
        end: xml.len(),
        attributes,
        namespaces,
        empty: false,
    }
}

/// `<!DOCTYPE …>` (and any other `<!`): ends at the first `>` that balances the `<`s seen
/// since `from`, quick-xml's rule for internal subsets.
fn after_doctype(xml: &[u8], from: usize) -> usize {
    let mut open = 0usize;
    let mut i = from;
    while let Some(p) = xml[i..].iter().position(|b| *b == b'<' || *b == b'>') {
        let p = i + p;
        if xml[p] == b'<' {
            open += 1;
        } else if open == 0 {
            return p + 1;
        } else {
            open -= 1;
        }
        i = p + 1;
    }
    xml.len()
}

/// The offset just past the first `needle` at or after `from`, or the end of the input.
fn after(xml: &[u8], from: usize, needle: &[u8]) -> usize {
    xml.get(from..)
        .and_then(|rest| rest.windows(needle.len()).position(|w| w == needle))
        .map_or(xml.len(), |p| from + p + needle.len())
}

fn find_byte(xml: &[u8], from: usize, byte: u8) -> Option<usize> {
    xml.get(from..)?
        .iter()
        .position(|b| *b == byte)
        .map(|p| from + p)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_token_end(b: u8) -> bool {
    is_space(b) || matches!(b, b'=' | b'"' | b'\'' | b'/' | b'>')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(n: usize) -> String {
        (0..n).map(|i| format!(" a{i}=\"{i}\"")).collect()
    }

    #[test]
    fn fhir_and_narrative_pass() {
        let ok = br#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment with <tags a="1"> and > -->
<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <id value="x"/>
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p class='c' title="a > b &lt; c">x<![CDATA[ <b> ]]></p></div></text>
  <extension url="http://example.org/x"><valueString value="'&quot;"/></extension>
  <?pi some > instruction?>
</Patient>"#;
        assert_eq!(check(ok), Ok(()));
        assert_eq!(check(b""), Ok(()));
        assert_eq!(check(b"plain text > with no markup"), Ok(()));
    }

    #[test]
    fn the_attribute_limit_is_inclusive() {
        let at_limit = format!("<a{}/>", attributes(MAX_ATTRIBUTES_PER_ELEMENT));
        assert_eq!(check(at_limit.as_bytes()), Ok(()));
        let over = format!("<r><a{}/></r>", attributes(MAX_ATTRIBUTES_PER_ELEMENT + 1));
        assert_eq!(
            check(over.as_bytes()),
            Err(XmlLimitError::TooManyAttributes { at: 3 })
        );
    }

    #[test]
    fn attributes_without_spaces_or_values_are_counted_too() {
        let packed: String = (0..100).map(|i| format!("a{i}='x'")).collect();
        assert!(check(format!("<a {packed}>").as_bytes()).is_err());
        let bare: String = (0..100).map(|i| format!(" a{i}")).collect();
        assert!(check(format!("<a{bare}/>").as_bytes()).is_err());
        // Unquoted values are values, not names.
        let unquoted: String = (0..40).map(|i| format!(" a{i}={i}")).collect();
        assert_eq!(check(format!("<a{unquoted}/>").as_bytes()), Ok(()));
    }

    #[test]
    fn markup_inside_quotes_comments_cdata_and_instructions_is_not_counted() {
        let many = attributes(MAX_ATTRIBUTES_PER_ELEMENT * 2);
        let deep = "<x>".repeat(MAX_DEPTH * 2);
        for hidden in [
            format!("<a v=\"<b{}>\"/>", many.replace('"', "'")),
            format!("<a v='{}'/>", many.replace('"', "")),
            format!("<a><!-- <b{many}> {deep} --></a>"),
            format!("<a><![CDATA[<b{many}>{deep}]]></a>"),
            format!("<a><?pi <b{many}?></a>"),
            format!(
                "<!DOCTYPE a [<!ENTITY e \"<b{}>\">]><a/>",
                many.replace('"', "'")
            ),
        ] {
            assert_eq!(check(hidden.as_bytes()), Ok(()), "{hidden}");
        }
    }

    #[test]
    fn a_tag_is_read_past_a_greater_than_sign_in_a_quoted_value() {
        // The `>` in the value does not end the tag: the attributes after it count.
        let tag = format!("<a v=\">\"{}/>", attributes(MAX_ATTRIBUTES_PER_ELEMENT));
        assert_eq!(
            check(tag.as_bytes()),
            Err(XmlLimitError::TooManyAttributes { at: 0 })
        );
    }

    #[test]
    fn comments_end_where_the_parser_ends_them() {
        // `<!-->` and `<!--->` do not close the comment: the tag after them is inside it.
        let many = attributes(MAX_ATTRIBUTES_PER_ELEMENT + 1);
        assert_eq!(check(format!("<!--><b{many}>-->").as_bytes()), Ok(()));
        assert_eq!(check(format!("<!---><b{many}>-->").as_bytes()), Ok(()));
        // But a tag after the comment's end is seen.
        assert!(check(format!("<!-- --><b{many}>").as_bytes()).is_err());
        assert!(check(format!("<![CDATA[]]><b{many}>").as_bytes()).is_err());
        assert!(check(format!("<!DOCTYPE a [<!ENTITY e 'x'>]><b{many}>").as_bytes()).is_err());
    }

    #[test]
    fn namespace_declarations_are_bounded_per_element_and_in_scope() {
        let declarations = |n: usize| -> String {
            (0..n)
                .map(|i| format!(" xmlns:p{i}=\"urn:x:{i}\""))
                .collect()
        };
        let at_limit = format!(
            "<a xmlns=\"urn:d\"{}/>",
            declarations(MAX_NAMESPACE_DECLARATIONS_PER_ELEMENT - 1)
        );
        assert_eq!(check(at_limit.as_bytes()), Ok(()));
        let over = format!(
            "<a xmlns=\"urn:d\"{}/>",
            declarations(MAX_NAMESPACE_DECLARATIONS_PER_ELEMENT)
        );
        assert_eq!(
            check(over.as_bytes()),
            Err(XmlLimitError::TooManyNamespaceDeclarations { at: 0 })
        );
        // Within the per-element limit on each of many nested elements.
        let per = MAX_NAMESPACE_DECLARATIONS_PER_ELEMENT;
        let nested = format!("<a{}>", declarations(per)).repeat(MAX_DEPTH);
        assert!(matches!(
            check(nested.as_bytes()),
            Err(XmlLimitError::TooManyNamespacesInScope { .. })
        ));
        // Declarations go out of scope at their element's end.
        let siblings = format!(
            "<r>{}</r>",
            format!("<a{}></a>", declarations(per)).repeat(1000)
        );
        assert_eq!(check(siblings.as_bytes()), Ok(()));
        let empty_siblings = format!(
            "<r>{}</r>",
            format!("<a{}/>", declarations(per)).repeat(1000)
        );
        assert_eq!(check(empty_siblings.as_bytes()), Ok(()));
    }

    #[test]
    fn nesting_is_bounded_and_end_tags_and_empty_elements_close_levels() {
        let at_limit = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert_eq!(check(at_limit.as_bytes()), Ok(()));
        let over = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(
            check(over.as_bytes()),
            Err(XmlLimitError::TooDeep { at: 3 * MAX_DEPTH })
        );
        let long_but_flat = "<a><b/></a>".repeat(10_000);
        assert_eq!(check(long_but_flat.as_bytes()), Ok(()));
    }

    #[test]
    fn unclosed_constructs_are_left_to_the_parser() {
        for s in [
            "<a",
            "<a b=\"",
            "<!--",
            "<![CDATA[",
            "<?pi",
            "</a",
            "<!DOCTYPE [<",
            "<",
        ] {
            assert_eq!(check(s.as_bytes()), Ok(()), "{s}");
        }
    }
}
