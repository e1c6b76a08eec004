//! What end users see from iumgate itself: error pages (502, 504, …) and the
//! waiting page. Browsers get HTML, API clients JSON. No page ever shows a
//! secret or an internal error's details beyond a short cause.

pub mod wait;

use crate::wire::body::{full, Body};
use crate::wire::{text, wants_html, HeaderView};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

/// One of iumgate's own answers (the waiting room, its redirects, error
/// pages): status, type, body, and the headers they may carry. Every one is
/// `Cache-Control: no-store`; this is the only place that builds them.
#[derive(Debug)]
pub struct Own {
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Bytes,
    retry_after: Option<u64>,
    location: Option<HeaderValue>,
    cookies: Vec<HeaderValue>,
    /// Any other field (`WWW-Authenticate`, `Content-Security-Policy`, an
    /// upstream's `Content-Type` passed on), appended in order.
    extra: Vec<(HeaderName, HeaderValue)>,
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";
pub const HTML: &str = "text/html; charset=utf-8";

impl Own {
    /// `status` with a body of `content_type`.
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Own {
        Own {
            status,
            content_type: Some(content_type),
            body: body.into(),
            retry_after: None,
            location: None,
            cookies: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// `status` with a body whose type, if any, the caller sets with
    /// [`Own::header`] (an answer passed on from the upstream).
    pub fn untyped(status: StatusCode, body: impl Into<Bytes>) -> Own {
        Own {
            content_type: None,
            ..Own::new(status, TEXT, body)
        }
    }

    pub fn html(body: impl Into<Bytes>) -> Own {
        Own::new(StatusCode::OK, HTML, body)
    }

    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Own {
        Own::new(status, JSON, body)
    }

    /// A redirect (no body) to `to`, which the caller made a local path.
    /// A value that cannot be a header leaves the answer without `Location`.
    pub fn redirect(status: StatusCode, to: &str) -> Own {
        Own {
            status,
            content_type: None,
            body: Bytes::new(),
            retry_after: None,
            location: HeaderValue::from_str(to).ok(),
            cookies: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Adds a field (appended: a name may come more than once).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Own {
        self.extra.push((name, value));
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Own {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds a `Set-Cookie`.
    pub fn cookie(mut self, value: HeaderValue) -> Own {
        self.cookies.push(value);
        self
    }

    /// Adds every `Set-Cookie` of `headers` (the upstream's, kept).
    pub fn cookies_of(mut self, headers: &HeaderMap) -> Own {
        self.cookies
            .extend(headers.get_all(header::SET_COOKIE).iter().cloned());
        self
    }

    pub fn build(self) -> Response<Body> {
        let mut r = Response::new(if self.body.is_empty() {
            crate::wire::body::empty()
        } else {
            full(self.body)
        });
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        if let Some(ct) = self.content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(l) = self.location {
            h.insert(header::LOCATION, l);
        }
        for c in self.cookies {
            h.append(header::SET_COOKIE, c);
        }
        for (name, value) in self.extra {
            h.append(name, value);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

pub use iumgate_core::html::escape;

/// Escapes text for a JSON string.
///
/// `<`, `>`, `&` and the JS line separators are escaped too, so the result is
/// also safe inside an inline `<script>`: a value holding `</script>` (a
/// waiting room's `to`, which only has to be a local path) cannot end the
/// script and start markup of its own.
pub fn json_str(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A local path safe to redirect to: `/…`, never `//host` or a scheme.
pub fn local_path(to: &str) -> Option<&str> {
    let ok = to.starts_with('/')
        && !to.starts_with("//")
        && !to.starts_with("/\\")
        && !to.chars().any(|c| c.is_control() || c == '\\')
        && to.len() <= 2048;
    ok.then_some(to)
}

/// German or English, by `Accept-Language` (first match wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub fn from_headers(h: &impl HeaderView) -> Lang {
        let Some(v) = h.value(&header::ACCEPT_LANGUAGE).and_then(text) else {
            return Lang::En;
        };
        for part in v.split(',') {
            let tag = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("de") {
                return Lang::De;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::En
    }
}

pub(crate) const STYLE: &str =
    "body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;\
background:#f4f5f7;color:#172b4d;margin:0}main{max-width:34rem;margin:12vh auto;background:#fff;\
border-radius:6px;padding:2rem 2.5rem;box-shadow:0 1px 3px rgba(9,30,66,.25)}h1{font-size:1.4rem}\
.muted{color:#5e6c84;font-size:.9rem}img.logo{max-height:48px;margin-bottom:1rem}";

/// A complete, self-contained HTML page.
pub fn html_page(lang: Lang, title: &str, body_html: &str, head_extra: &str) -> String {
    let lang = match lang {
        Lang::En => "en",
        Lang::De => "de",
    };
    format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style>{head_extra}</head><body><main>{body_html}</main></body></html>",
        escape(title)
    )
}

/// The proxy's own error answer: a friendly page for browsers, JSON otherwise.
pub fn error(status: StatusCode, req_headers: &impl HeaderView, cause: &str) -> Response<Body> {
    let lang = Lang::from_headers(req_headers);
    let (title, text) = match (status.as_u16(), lang) {
        (502, Lang::En) => (
            "The application is not reachable right now",
            "The application behind this address did not answer. Please try again in a minute; \
             if it persists, your administrator has been told by the proxy's logs.",
        ),
        (502, Lang::De) => (
            "Die Anwendung ist gerade nicht erreichbar",
            "Die Anwendung hinter dieser Adresse hat nicht geantwortet. Bitte versuchen Sie es \
             in einer Minute erneut.",
        ),
        (504, Lang::En) => (
            "The application is taking too long",
            "The application did not answer in time. Please try again.",
        ),
        (504, Lang::De) => (
            "Die Anwendung antwortet zu langsam",
            "Die Anwendung hat nicht rechtzeitig geantwortet. Bitte versuchen Sie es erneut.",
        ),
        (404, Lang::En) => ("Not found", "There is no page at this address."),
        (404, Lang::De) => (
            "Nicht gefunden",
            "Unter dieser Adresse gibt es keine Seite.",
        ),
        (_, Lang::En) => ("Something went wrong", "Please try again."),
        (_, Lang::De) => ("Etwas ist schiefgegangen", "Bitte versuchen Sie es erneut."),
    };
    if wants_html(req_headers) {
        let body = format!(
            "<h1>{}</h1><p>{}</p><p class=\"muted\">{} {}</p>",
            escape(title),
            escape(text),
            status.as_u16(),
            escape(status.canonical_reason().unwrap_or("")),
        );
        Own::new(status, HTML, html_page(lang, title, &body, "")).build()
    } else {
        let body = format!(
            "{{\"error\":{},\"status\":{},\"cause\":{}}}",
            json_str(title),
            status.as_u16(),
            json_str(cause)
        );
        Own::json(status, body).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(local_path("/browse/ABC-1?x=1"), Some("/browse/ABC-1?x=1"));
        assert_eq!(local_path("//evil.example.com/"), None);
        assert_eq!(local_path("https://evil.example.com/"), None);
        assert_eq!(local_path("/\\evil.example.com"), None);
        assert_eq!(local_path("/a\r\nSet-Cookie: x"), None);
        assert_eq!(local_path("evil"), None);
    }

    #[test]
    fn json_strings_cannot_close_a_script() {
        let j = json_str("/x</script><script>alert(1)</script>&\u{2028}");
        assert!(
            !j.contains('<') && !j.contains('>') && !j.contains('&'),
            "{j}"
        );
        let back: String = serde_json::from_str(&j).unwrap();
        assert_eq!(back, "/x</script><script>alert(1)</script>&\u{2028}");
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn picks_language() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("de-DE,de;q=0.9,en;q=0.8"),
        );
        assert_eq!(Lang::from_headers(&h), Lang::De);
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("fr,en;q=0.5"),
        );
        assert_eq!(Lang::from_headers(&h), Lang::En);
    }

    #[test]
    fn browsers_get_html_api_clients_json() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html,*/*"));
        let r = error(StatusCode::BAD_GATEWAY, &h, "connect refused");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let r = error(StatusCode::GATEWAY_TIMEOUT, &HeaderMap::new(), "timeout");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.status(), 504);
    }
}
