//! [`HeaderView`]: a head's fields by name, from a `HeaderMap` or from the
//! raw head.

use http::{header, HeaderMap, HeaderName};
use std::ops::Range;

/// A head's fields by name, as bytes, whatever holds them. Readers written
/// against it serve both lanes with one implementation, so what the fast
/// lane decides from the raw head is what the hyper lane decides from its
/// map.
pub trait HeaderView {
    /// Every value of `name`, in order.
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The first value of `name`.
    fn value(&self, name: &HeaderName) -> Option<&[u8]>;

    /// Whether `name` is present at all.
    fn has(&self, name: &HeaderName) -> bool {
        self.value(name).is_some()
    }
}

impl HeaderView for HeaderMap {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }

    fn value(&self, name: &HeaderName) -> Option<&[u8]> {
        self.get(name).map(|v| v.as_bytes())
    }

    fn has(&self, name: &HeaderName) -> bool {
        self.contains_key(name)
    }
}

/// A head's fields as they came: names, and where each value lies in the
/// head's bytes (the fast lane's codec finds them; no map is built).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    head: &'a [u8],
    spans: &'a [(HeaderName, Range<usize>)],
}

impl<'a> Fields<'a> {
    pub fn new(head: &'a [u8], spans: &'a [(HeaderName, Range<usize>)]) -> Fields<'a> {
        Fields { head, spans }
    }
}

impl HeaderView for Fields<'_> {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let head = self.head;
        self.spans
            .iter()
            .filter(move |(n, _)| n == name)
            .map(move |(_, r)| head.get(r.clone()).unwrap_or_default())
    }

    fn value(&self, name: &HeaderName) -> Option<&[u8]> {
        let (_, r) = self.spans.iter().find(|(n, _)| n == name)?;
        Some(self.head.get(r.clone()).unwrap_or_default())
    }

    fn has(&self, name: &HeaderName) -> bool {
        self.spans.iter().any(|(n, _)| n == name)
    }
}

/// Whether the client asks for HTML (a browser), from its `Accept`.
pub fn wants_html(headers: &impl HeaderView) -> bool {
    headers
        .value(&header::ACCEPT)
        .and_then(text)
        .is_some_and(|a| a.contains("text/html"))
}

/// A field value as text, as `HeaderValue::to_str` reads it: visible ASCII
/// (and tabs) only, else none.
pub fn text(value: &[u8]) -> Option<&str> {
    // Without an early exit, so that the check runs many bytes at a time
    // (cookies are long, and read on every request).
    let visible = value.iter().fold(true, |ok, &b| {
        ok & ((b.wrapping_sub(b' ') < 95) | (b == b'\t'))
    });
    if visible {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The same head as a map and as raw fields reads the same through the
    /// view: values in order, first value, presence, and a repeated name.
    #[test]
    fn a_map_and_raw_fields_read_alike() {
        let head = b"GET / HTTP/1.1\r\nCookie: a=1\r\nAccept: text/html\r\ncookie: b=2\r\n\r\n";
        let find = |needle: &[u8]| {
            let at = head
                .windows(needle.len())
                .position(|w| w == needle)
                .expect("in head");
            at..at + needle.len()
        };
        let spans = vec![
            (header::COOKIE, find(b"a=1")),
            (header::ACCEPT, find(b"text/html")),
            (header::COOKIE, find(b"b=2")),
        ];
        let fields = Fields::new(head, &spans);
        let mut map = HeaderMap::new();
        map.append(header::COOKIE, HeaderValue::from_static("a=1"));
        map.append(header::ACCEPT, HeaderValue::from_static("text/html"));
        map.append(header::COOKIE, HeaderValue::from_static("b=2"));

        fn read(v: &impl HeaderView) -> (Vec<Vec<u8>>, Option<Vec<u8>>, bool, bool, bool) {
            (
                v.values(&header::COOKIE).map(<[u8]>::to_vec).collect(),
                v.value(&header::ACCEPT).map(<[u8]>::to_vec),
                v.has(&header::COOKIE),
                v.has(&header::AUTHORIZATION),
                wants_html(v),
            )
        }
        let want = (
            vec![b"a=1".to_vec(), b"b=2".to_vec()],
            Some(b"text/html".to_vec()),
            true,
            false,
            true,
        );
        assert_eq!(read(&fields), want);
        assert_eq!(read(&map), want);
    }

    #[test]
    fn text_reads_a_value_exactly_as_header_value_to_str_does() {
        for b in 0..=255u8 {
            for v in [
                vec![b],
                vec![b'a', b, b'z'],
                [b"x".repeat(40), vec![b]].concat(),
            ] {
                let map = HeaderValue::from_bytes(&v)
                    .ok()
                    .map(|h| h.to_str().ok().map(str::to_owned));
                if let Some(expected) = map {
                    assert_eq!(text(&v).map(str::to_owned), expected, "{v:?}");
                }
            }
        }
    }
}
