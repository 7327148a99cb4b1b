//! The folding applied to strings on both sides of a string search, so that the default
//! match is case- and accent-insensitive.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Lower-cases, strips accents (combining marks after canonical decomposition) and
/// collapses runs of whitespace into one space, trimming the ends.
pub fn normalize_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfd().filter(|c| !is_combining_mark(*c)) {
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

#[cfg(test)]
mod tests {
    use super::normalize_string;

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
