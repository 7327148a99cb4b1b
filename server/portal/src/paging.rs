//! Long lists a page at a time: the search's own cursor (`_cursor`) travels
//! in the page's address as `?cursor=…`, and each paged list ends with the
//! same links — back to the newest, on to older ones.

use maud::{html, Markup};

/// The page a list is at (`?cursor=…`; the first page without one).
pub fn cursor_of(query: &[(String, String)]) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.clone())
}

/// A search's parameters for the page at `cursor`.
pub fn at(mut params: Vec<(String, String)>, cursor: Option<&String>) -> Vec<(String, String)> {
    if let Some(cursor) = cursor {
        params.push(("_cursor".into(), cursor.clone()));
    }
    params
}

/// The words of a pager's two links: back to the first page, on to the next.
pub struct Labels {
    pub first: &'static str,
    pub next: &'static str,
}

/// Lists newest first, where the next page is `older` ones.
pub const fn newest_first(older: &'static str) -> Labels {
    Labels {
        first: "Newest",
        next: older,
    }
}

/// The links under a list at `first` (its address, with any filters in its
/// query): back to the first page when this is a later one, and on to the
/// page after `next` when there is one.
pub fn pager(
    first: &str,
    cursor: Option<&String>,
    next: Option<&String>,
    labels: Labels,
) -> Markup {
    let joiner = if first.contains('?') { "&" } else { "?" };
    html! {
        nav aria-label="Pages" {
            @if cursor.is_some() { a href=(first) { (labels.first) } " " }
            @if let Some(next) = next {
                a class="button secondary" href={ (first) (joiner) "cursor=" (urlencode(next)) } { (labels.next) }
            }
        }
    }
}

/// A value as it goes into an address's query.
pub fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_linked_with_the_list_filters_kept() {
        let next = "a+b/c=".to_string();
        let first = pager(
            "/portal/documents",
            None,
            Some(&next),
            newest_first("Older documents"),
        )
        .into_string();
        assert!(
            first.contains(r#"href="/portal/documents?cursor=a%2Bb%2Fc%3D""#),
            "{first}"
        );
        assert!(!first.contains("Newest"), "{first}");
        let later = pager(
            "/portal/trail?outcome=4",
            Some(&next),
            None,
            newest_first("Older events"),
        )
        .into_string();
        assert!(
            later.contains(r#"href="/portal/trail?outcome=4""#),
            "{later}"
        );
        assert!(
            !later.contains("Older events"),
            "the last page links no further: {later}"
        );
        let filtered = pager(
            "/portal/trail?outcome=4",
            None,
            Some(&next),
            newest_first("Older events"),
        )
        .into_string();
        assert!(
            filtered.contains("/portal/trail?outcome=4&amp;cursor=a%2Bb%2Fc%3D"),
            "{filtered}"
        );
    }
}
