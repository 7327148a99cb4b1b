//! The folding applied to strings on both sides of a string search, so that the default
//! match is case- and accent-insensitive.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Lower-cases, strips accents (combining marks after canonical decomposition) and
/// collapses runs of whitespace into one space, trimming the ends.
pub fn normalize_string(s: &str) -> String {
    if s.is_ascii() {
        // ASCII has no accents: the decomposition, the costly part, changes nothing.
        fold(s.chars(), s.len())
    } else {
        fold(s.nfd().filter(|c| !is_combining_mark(*c)), s.len())
    }
}

fn fold(chars: impl Iterator<Item = char>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let mut pending_space = false;
    for c in chars {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The most bytes of text an index row stores per value (codes, systems, strings, URLs, ids),
/// which keeps PostgreSQL btree entries well under their size limit.
pub const MAX_INDEX_BYTES: usize = 512;

/// `s` cut to at most [`MAX_INDEX_BYTES`] bytes at a char boundary. Extraction stores every
/// text value cut like this, and search values are cut the same way before they are compared.
pub fn truncate_for_index(s: &str) -> &str {
    if s.len() <= MAX_INDEX_BYTES {
        return s;
    }
    let mut end = MAX_INDEX_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_a_char_boundary() {
        assert_eq!(truncate_for_index("short"), "short");
        let exact = "a".repeat(MAX_INDEX_BYTES);
        assert_eq!(truncate_for_index(&exact), exact);
        let long = "b".repeat(MAX_INDEX_BYTES + 10);
        assert_eq!(truncate_for_index(&long).len(), MAX_INDEX_BYTES);
        // 'é' is two bytes: 511 ASCII bytes then 'é' would end at 513.
        let split = format!("{}é", "c".repeat(MAX_INDEX_BYTES - 1));
        assert_eq!(truncate_for_index(&split), "c".repeat(MAX_INDEX_BYTES - 1));
    }

    #[test]
    fn the_ascii_shortcut_folds_like_the_decomposition() {
        for b in 0u8..128 {
            let s = format!(" A{}B  {}c ", b as char, b as char);
            let decomposed = fold(s.nfd().filter(|c| !is_combining_mark(*c)), s.len());
            assert_eq!(normalize_string(&s), decomposed, "{b}");
        }
    }

    #[test]
    fn folds_case_accents_and_spaces() {
        assert_eq!(normalize_string("  Chalmérs  "), "chalmers");
        assert_eq!(normalize_string("ÅNGSTRÖM"), "angstrom");
        assert_eq!(normalize_string("Peter\t James"), "peter james");
        assert_eq!(
            normalize_string("Müller-Lüdenscheidt"),
            "muller-ludenscheidt"
        );
    }
}
