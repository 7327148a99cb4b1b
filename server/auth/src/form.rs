//! Form-encoded OAuth parameters (query strings and POST bodies). RFC 6749
//! §3.1: a parameter sent twice is an error, and an empty one is as if
//! it were absent.

use std::collections::HashMap;

/// Parsed parameters; a repeated name is remembered so it can be refused.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: HashMap<String, String>,
    repeated: Option<String>,
}

impl Params {
    pub fn parse(encoded: &[u8]) -> Params {
        let mut params = Params::default();
        for (k, v) in form_urlencoded::parse(encoded) {
            if v.is_empty() {
                continue;
            }
            if params.values.insert(k.to_string(), v.to_string()).is_some() {
                params.repeated.get_or_insert_with(|| k.to_string());
            }
        }
        params
    }

    /// The first parameter given more than once.
    pub fn repeated(&self) -> Option<&str> {
        self.repeated.as_deref()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every parameter, for carrying an authorization request between pages.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_absent_and_repeats_are_noticed() {
        let p = Params::parse(b"a=1&b=&c=x%20y&a=2");
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
        assert_eq!(p.repeated(), Some("a"));
        assert_eq!(Params::parse(b"a=1").repeated(), None);
    }
}
