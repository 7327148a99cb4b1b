//! Logical ids, checked before they reach storage or URLs.

/// FHIR id: [A-Za-z0-9\-\.]{1,64}
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::is_valid_id;

    #[test]
    fn accepts_the_id_grammar() {
        for ok in ["a", "123", "example", "A-b.C", "-", ".", &"x".repeat(64)] {
            assert!(is_valid_id(ok), "{ok:?} should be valid");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long = "x".repeat(65);
        for bad in [
            "", " ", "a b", "a/b", "a_b", "é", "a\n", "a%20", "x?y", "#a", &long,
        ] {
            assert!(!is_valid_id(bad), "{bad:?} should be invalid");
        }
    }
}
