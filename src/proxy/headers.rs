//! Header operations as small, separately tested functions.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// RFC 9110 §7.6.1 hop-by-hop headers (plus the de-facto `Proxy-*` family).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether the message asks for a protocol upgrade (`Connection: upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_lists(headers, "upgrade")
}

fn connection_lists(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers: the fixed list, every header that `Connection`
/// names, and `Proxy-*`. With `keep_upgrade`, `Upgrade` and `Connection:
/// upgrade` survive, so a websocket handshake can pass.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    remove_hop_by_hop_and(headers, keep_upgrade, |_| false);
}

/// A request's clean-up before it goes upstream, in one pass over its
/// fields: what [`dropped_when_forwarded`] drops, and the fields that
/// `Connection` names (an upgrade's `Upgrade` kept with `keep_upgrade`).
pub fn clean_request(
    headers: &mut HeaderMap,
    keep_upgrade: bool,
    upstream_only: &[HeaderName],
    trusted: bool,
) {
    remove_hop_by_hop_and(headers, keep_upgrade, |name| {
        dropped_when_forwarded(name, upstream_only, trusted)
    });
}

/// [`remove_hop_by_hop`], and whatever else `also` names, in the same pass.
fn remove_hop_by_hop_and(
    headers: &mut HeaderMap,
    keep_upgrade: bool,
    also: impl Fn(&HeaderName) -> bool,
) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade = if keep_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for name in named {
        if name != header::UPGRADE || upgrade.is_none() {
            headers.remove(&name);
        }
    }
    let fixed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_hop_by_hop(k) || also(k))
        .cloned()
        .collect();
    for name in fixed {
        headers.remove(name);
    }
    if let Some(up) = upgrade {
        headers.insert(header::UPGRADE, up);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether `name` is hop-by-hop whatever `Connection` says: the fixed list
/// and the `Proxy-*` family.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name.as_str().starts_with("proxy-")
}

/// Strips the headers only the upstream may send (the app's list, handed
/// to the proxy in its settings: `crate::product::UPSTREAM_ONLY`).
pub fn strip_upstream_only(headers: &mut HeaderMap, upstream_only: &[HeaderName]) {
    for name in upstream_only {
        headers.remove(name);
    }
}

// Names built once (a `&str` name is parsed again on every use).
const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The forwarding headers iumgate writes (or, from an untrusted peer,
/// replaces), and the other client-address headers an app, a Tomcat valve or
/// a log format may read (`Forwarded`, nginx's `X-Real-IP`, Akamai's and
/// Cloudflare's): from an untrusted peer, none of the client's own reach the
/// upstream, so nobody can claim another address through them. A trusted
/// load balancer's pass.
pub const FORWARDING: [HeaderName; 8] = [
    FORWARDED,
    XFF,
    XFP,
    XFH,
    X_REAL_IP,
    TRUE_CLIENT_IP,
    X_CLIENT_IP,
    CF_CONNECTING_IP,
];
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const TRUE_CLIENT_IP: HeaderName = HeaderName::from_static("true-client-ip");
const X_CLIENT_IP: HeaderName = HeaderName::from_static("x-client-ip");
const CF_CONNECTING_IP: HeaderName = HeaderName::from_static("cf-connecting-ip");
/// RFC 7239 `Forwarded`: we do not write it, but apps (and Tomcat valves) may
/// read it, so an untrusted client must not be able to send one.
const FORWARDED: HeaderName = header::FORWARDED;

/// The client's address as a header value, made once per connection.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Sets `X-Forwarded-For/-Proto/-Host`. From a trusted peer (a load balancer
/// in `trusted_proxies`) the incoming values are kept and the peer appended
/// to the chain; from anyone else they are replaced, so a client cannot
/// pretend to come from elsewhere (the same holds for `Forwarded`).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    trusted: bool,
    proto: &'static str,
    host: Option<HeaderValue>,
) {
    if trusted {
        let chain: Vec<&str> = headers
            .get_all(&XFF)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let value = if chain.is_empty() {
            Some(peer.clone())
        } else {
            HeaderValue::from_str(&format!(
                "{}, {}",
                chain.join(", "),
                peer.to_str().unwrap_or("unknown")
            ))
            .ok()
        };
        headers.remove(&XFF);
        if let Some(v) = value {
            headers.insert(XFF, v);
        }
        if !headers.contains_key(&XFP) {
            headers.insert(XFP, HeaderValue::from_static(proto));
        }
        if !headers.contains_key(&XFH) {
            if let Some(h) = host {
                headers.insert(XFH, h);
            }
        }
    } else {
        // None of the client's own forwarding fields pass (the request's
        // clean-up dropped them already; this keeps the function whole).
        for name in &FORWARDING {
            headers.remove(name);
        }
        for (name, value) in forwarded_fields(peer.clone(), HeaderValue::from_static(proto), host) {
            if let Some(v) = value {
                headers.insert(name, v);
            }
        }
    }
}

/// The forwarding rule, shared by both lanes: whether a request field from
/// the client is dropped on its way to the upstream. Hop-by-hop fields,
/// `Expect` (answered by the proxy), the headers only the upstream may send
/// (`upstream_only`), and, from a peer that is not a trusted proxy, every
/// forwarding and client-address field ([`FORWARDING`]): iumgate writes its
/// own ([`forwarded_fields`]). (Fields that `Connection` names are dropped
/// too; the fast lane hands such requests to the map path.)
pub fn dropped_when_forwarded(
    name: &HeaderName,
    upstream_only: &[HeaderName],
    trusted: bool,
) -> bool {
    is_hop_by_hop(name)
        || name == header::EXPECT
        || upstream_only.contains(name)
        || (!trusted && FORWARDING.contains(name))
}

/// The forwarding fields iumgate writes for a request from a peer that is
/// not a trusted proxy, in this order: `X-Forwarded-For` (the peer),
/// `X-Forwarded-Proto`, and `X-Forwarded-Host` (the client's `Host`; none
/// without one). Both lanes write exactly these, each with its own value
/// type (a header value on the map, bytes on the raw head).
pub fn forwarded_fields<V>(peer: V, proto: V, host: Option<V>) -> [(HeaderName, Option<V>); 3] {
    [(XFF, Some(peer)), (XFP, Some(proto)), (XFH, host)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn removes_fixed_and_connection_named_headers() {
        let mut m = h(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "websocket"),
            ("x-keep", "yes"),
        ]);
        remove_hop_by_hop(&mut m, false);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m["x-keep"], "yes");
    }

    #[test]
    fn a_requests_clean_up_removes_hop_by_hop_upstream_only_and_expect_in_one_pass() {
        let mut m = h(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("x-ausername", "admin"),
            ("X-Seraph-LoginReason", "OK"),
            ("x-auserid", "1"),
            ("x-asessionid", "s"),
            ("expect", "100-continue"),
            ("cookie", "JSESSIONID=a"),
            ("x-keep", "yes"),
        ]);
        clean_request(&mut m, false, &crate::product::UPSTREAM_ONLY, true);
        let mut left: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["cookie", "x-keep"]);
    }

    #[test]
    fn keeps_upgrade_on_upgrades() {
        let mut m = h(&[
            ("connection", "Upgrade, keep-alive"),
            ("upgrade", "websocket"),
        ]);
        assert!(is_upgrade(&m));
        remove_hop_by_hop(&mut m, true);
        assert_eq!(m["upgrade"], "websocket");
        assert_eq!(m["connection"], "upgrade");
    }

    #[test]
    fn strips_spoofed_upstream_headers() {
        let mut m = h(&[
            ("x-ausername", "admin"),
            ("X-Seraph-LoginReason", "OK"),
            ("a", "b"),
        ]);
        strip_upstream_only(&mut m, &crate::product::UPSTREAM_ONLY);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn untrusted_forwarded_headers_are_replaced() {
        let sent = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
            ("forwarded", "for=7.7.7.7"),
            ("x-real-ip", "6.6.6.6"),
            ("True-Client-IP", "6.6.6.6"),
            ("x-client-ip", "6.6.6.6"),
            ("cf-connecting-ip", "6.6.6.6"),
        ];
        let mut m = h(&sent);
        set_forwarded(
            &mut m,
            &peer_value("10.0.0.5".parse().unwrap()),
            false,
            "http",
            Some(HeaderValue::from_static("jira.example.com")),
        );
        let all = |m: &HeaderMap, n: &str| m.get_all(n).iter().cloned().collect::<Vec<_>>();
        assert_eq!(all(&m, "x-forwarded-for"), ["10.0.0.5"]);
        assert_eq!(all(&m, "x-forwarded-proto"), ["http"]);
        assert_eq!(all(&m, "x-forwarded-host"), ["jira.example.com"]);
        assert!(!m.contains_key("forwarded"));
        for name in [
            "x-real-ip",
            "true-client-ip",
            "x-client-ip",
            "cf-connecting-ip",
        ] {
            assert!(!m.contains_key(name), "{name} passed");
        }
        // No Host to pass on: the client's X-Forwarded-Host goes too.
        let mut m = h(&sent);
        set_forwarded(
            &mut m,
            &peer_value("10.0.0.5".parse().unwrap()),
            false,
            "https",
            None,
        );
        assert_eq!(all(&m, "x-forwarded-for"), ["10.0.0.5"]);
        assert_eq!(all(&m, "x-forwarded-proto"), ["https"]);
        assert!(!m.contains_key("x-forwarded-host") && !m.contains_key("forwarded"));
        assert_eq!(m.len(), 2, "{m:?}");
    }

    #[test]
    fn trusted_forwarded_headers_are_kept_and_chained() {
        let mut m = h(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        set_forwarded(
            &mut m,
            &peer_value("10.0.0.5".parse().unwrap()),
            true,
            "http",
            None,
        );
        assert_eq!(m["x-forwarded-for"], "1.2.3.4, 10.0.0.5");
        assert_eq!(m["x-forwarded-proto"], "https");
        // The load balancer's own client-address header passes.
        assert_eq!(m["x-real-ip"], "1.2.3.4");
    }
}
