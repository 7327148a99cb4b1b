//! FHIRPath expressions for issue locations, built while walking a resource.

/// `parent.key`, with the `_` of a primitive's extension property dropped (`_status` is
/// still `status` in FHIRPath).
pub(crate) fn child(parent: &str, key: &str) -> String {
    let key = key.strip_prefix('_').unwrap_or(key);
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_expressions() {
        assert_eq!(child("Patient", "_birthDate"), "Patient.birthDate");
        assert_eq!(index(&child("Patient", "name"), 2), "Patient.name[2]");
        assert_eq!(child("", "Patient"), "Patient");
    }
}
