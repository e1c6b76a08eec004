//! Entry points for the `fast_lane` fuzz target (not an API).

use super::chunked::Chunks;
use super::codec::{parse_request, parse_response, Answer, Head, Parsed, Raw, Spans};
use super::encode::{
    write_edited_head, write_forwarded_head, write_relayed_head, write_request_head,
};
use crate::proxy::{body, ConnInfo};
use bytes::BytesMut;
use http::{header, HeaderValue};
use std::time::Duration;

/// Parses `data` as request heads, as the fast lane does, and checks that
/// every one it takes is plainly simple, and that its head written raw
/// for the upstream is the one the header-map path writes.
pub fn requests(data: &[u8]) {
    let mut b = BytesMut::from(data);
    let mut spans = Spans::new();
    while let Parsed::Simple(head) = parse_request(&mut b, &mut spans) {
        for (preserve_host, tls) in [(false, false), (true, true)] {
            let (raw, mapped) = request_heads(&head, &spans, preserve_host, tls);
            assert_eq!(raw, mapped, "preserve_host: {preserve_host}, tls: {tls}");
        }
        let uri = head.uri.clone();
        let h = head.into_parts(&spans).headers;
        assert!(!h.contains_key(header::TRANSFER_ENCODING));
        assert!(!h.contains_key(header::UPGRADE) && !h.contains_key(header::EXPECT));
        assert!(h.get_all(header::CONTENT_LENGTH).iter().all(|v| v == "0"));
        assert!(uri.path().starts_with('/'));
        assert_eq!(
            crate::proxy::target::classify(uri.path()),
            crate::proxy::target::Target::Upstream
        );
    }
}

/// A simple request's head for the upstream, written raw and through the
/// header map (from a peer that is not a trusted proxy), each as its
/// request line and sorted fields, lower-cased.
pub(super) fn request_heads(
    head: &Head,
    spans: &Spans,
    preserve_host: bool,
    tls: bool,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let settings = crate::proxy::Settings {
        upstream_host: HeaderValue::from_static("upstream.internal:8080"),
        preserve_host,
        trusted: Vec::new(),
        request_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        upstream_only: &crate::product::UPSTREAM_ONLY,
    };
    let conn = ConnInfo::new(
        std::net::SocketAddr::from(([192, 0, 2, 7], 40000)),
        tls,
        false,
    );
    let mut raw = Vec::new();
    write_forwarded_head(&mut raw, &settings, &conn, head, spans);
    let copy = Head {
        method: head.method.clone(),
        uri: head.uri.clone(),
        head: head.head.clone(),
        close: head.close,
    };
    let mut parts = copy.into_parts(spans);
    crate::proxy::edit_request(&settings, &conn, &mut parts, false);
    let mut mapped = Vec::new();
    write_request_head(
        &mut mapped,
        &http::Request::from_parts(parts, body::empty()),
    );
    (lines(&raw), lines(&mapped))
}

/// Parses `data` as the upstream's answers; a final one that may be
/// relayed as it came must come out as the header-map path writes it.
pub fn answers(data: &[u8], is_head: bool) {
    let mut b = BytesMut::from(data);
    let mut spans = Spans::new();
    loop {
        match parse_response(&mut b, is_head, &mut spans) {
            Ok(Answer::Interim) => continue,
            Ok(Answer::Final(raw)) if raw.plain => {
                for close in [false, true] {
                    let (relayed, mapped) = both_heads(&raw, &mut spans.clone(), close);
                    assert_eq!(relayed, mapped, "close: {close}");
                }
            }
            _ => {}
        }
        break;
    }
}

/// A plain answer's head as relayed raw and as written from a header map
/// (after the proxy's hop-by-hop clean-up), each as its status line and
/// sorted fields, lower-cased: the two must agree up to field order.
pub(super) fn both_heads(
    raw: &Raw,
    spans: &mut Spans,
    close: bool,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut relayed = Vec::new();
    write_relayed_head(&mut relayed, raw, spans, close);
    let copy = Raw {
        head: raw.head.clone(),
        ..*raw
    };
    let mut mapped = Vec::new();
    if let Ok(resp) = copy.into_response(spans) {
        let (mut parts, _) = resp.into_parts();
        crate::proxy::headers::remove_hop_by_hop(&mut parts.headers, false);
        write_edited_head(
            &mut mapped,
            parts.status,
            &mut parts.headers,
            raw.framing,
            close,
        );
    }
    (lines(&relayed), lines(&mapped))
}

fn lines(head: &[u8]) -> Vec<Vec<u8>> {
    let mut l: Vec<Vec<u8>> = head
        .split(|b| *b == b'\n')
        .map(|l| l.to_ascii_lowercase())
        .collect();
    if let Some((_status, fields)) = l.split_first_mut() {
        fields.sort();
    }
    l
}

/// Where a chunked body ends does not depend on how its bytes are cut.
pub fn chunks(data: &[u8], cut: usize) {
    let whole = Chunks::default().feed(data);
    let cut = cut % (data.len() + 1);
    let mut c = Chunks::default();
    let split = match c.feed(&data[..cut]) {
        Ok(None) => c.feed(&data[cut..]).map(|end| end.map(|n| n + cut)),
        other => other,
    };
    assert_eq!(whole, split, "cut at {cut}");
}
