//! Is a request target one of iumgate's own pages? The check must agree with
//! how the upstream (Tomcat) will read the path, or a client could dress an
//! own path up so that the prefix check misses it and the upstream still
//! maps it under `/iumgate/` (or the other way round): `%2e%2e`, encoded
//! slashes, backslashes, `;` path parameters, `//`, `/./`, case.

/// Where a request's path belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The app's: forward it.
    Upstream,
    /// `/iumgate` or `/iumgate/…`, spelled plainly: serve our own page.
    Own,
    /// Reads as `/iumgate/…` once decoded or normalised, or starts there and
    /// leaves by `..`: answer 404 ourselves, never forward it.
    DisguisedOwn,
}

const OWN: &str = "iumgate";

/// Classifies a request path (without the query).
pub fn classify(path: &str) -> Target {
    // Nearly every path: no escapes and no "iumgate" in any case, so no
    // reading of it can reach our pages (and nothing needs decoding).
    if !path.contains('%')
        && !path
            .as_bytes()
            .windows(OWN.len())
            .any(|w| w.eq_ignore_ascii_case(OWN.as_bytes()))
    {
        return Target::Upstream;
    }
    let plain = path == "/iumgate" || path.starts_with("/iumgate/");
    let clean = !path.bytes().any(|b| matches!(b, b'%' | b';' | b'\\'))
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..");
    if plain && clean {
        return Target::Own;
    }
    // Percent-decode once (as Tomcat does), fold backslashes into slashes
    // and case, then look at the first segment as written and after
    // resolving dot segments.
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path)
        .map(|b| {
            if b == b'\\' {
                b'/'
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect();
    if first_segment_is_own(&decoded) || normalised_first_is_own(&decoded) {
        Target::DisguisedOwn
    } else {
        Target::Upstream
    }
}

/// The first segment, cut at a path parameter or NUL, is `iumgate`.
fn first_segment_is_own(decoded: &[u8]) -> bool {
    let rest = decoded.strip_prefix(b"/").unwrap_or(decoded);
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b';' | 0))
        .unwrap_or(rest.len());
    &rest[..end] == OWN.as_bytes()
}

/// After dropping empty and `.` segments, resolving `..` and cutting path
/// parameters, the first segment is `iumgate`.
fn normalised_first_is_own(decoded: &[u8]) -> bool {
    let mut stack: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|b| *b == b'/') {
        let seg = match seg.iter().position(|b| matches!(b, b';' | 0)) {
            Some(i) => &seg[..i],
            None => seg,
        };
        match seg {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    stack.first().is_some_and(|s| *s == OWN.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::{classify, Target::*};

    #[test]
    fn plain_own_paths_are_served() {
        for p in [
            "/iumgate",
            "/iumgate/",
            "/iumgate/wait",
            "/iumgate/api/queue",
        ] {
            assert_eq!(classify(p), Own, "{p}");
        }
    }

    #[test]
    fn app_paths_pass() {
        for p in [
            "/",
            "/iumgateway",
            "/browse/IUMGATE-1",
            "/x/iumgate/y",
            "/rest/api/2/issue/ABC-1",
            "/s/abc/_/download/x.js",
            "/secure/Logout!default.jspa",
            "/a%20b",
            "/x/..",
        ] {
            assert_eq!(classify(p), Upstream, "{p}");
        }
    }

    #[test]
    fn disguised_own_paths_are_caught() {
        for p in [
            "/iumgate/../secure/admin",
            "/iumgate/%2e%2e/secure/admin",
            "/iumgate/./wait",
            "/iumgate//wait",
            "/iumgate%2f..%2fsecure",
            "/iumgate%5c..%5cx",
            "/iumgate\\..\\x",
            "/iumgate;x=1/wait",
            "/%69umgate/wait",
            "/IUMGATE/wait",
            "//iumgate/wait",
            "/./iumgate/wait",
            "/x/../iumgate/wait",
            "/x/%2e%2e/iumgate",
            "/iumgate%00/x",
        ] {
            assert_eq!(classify(p), DisguisedOwn, "{p}");
        }
    }
}
