//! Small HTTP helpers for the simulator: a fully read request with its
//! cookies, query and credentials at hand, and a reply that turns into a
//! hyper response without any way to panic.

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// Tomcat's rule for reading a POST body as parameters: the content type,
/// cut at its first `;` and trimmed, equals `application/x-www-form-urlencoded`
/// ignoring case (`Request.parseParameters`).
fn is_form_type(content_type: Option<&str>) -> bool {
    is_media_type(content_type, "application/x-www-form-urlencoded")
}

/// Whether `content_type`, cut at its first `;` and trimmed, is `media`
/// (ignoring case).
fn is_media_type(content_type: Option<&str>, media: &str) -> bool {
    content_type.is_some_and(|ct| {
        let base = ct.find(';').map_or(ct, |i| &ct[..i]);
        base.trim().eq_ignore_ascii_case(media)
    })
}

/// The first value of parameter `name` of a `POST` request as a servlet
/// container reads it: the query string's parameters come first, then the
/// body's, and the body counts only when it is a form ([`is_form_type`]).
/// The simulator's logins read their fields this way; tests use it as the
/// app's reading of a login.
pub fn servlet_parameter(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    name: &str,
) -> Option<String> {
    let from_query = query
        .map(|q| form_urlencoded::parse(q.as_bytes()))
        .into_iter()
        .flatten();
    let body = is_form_type(content_type).then_some(body);
    let from_body = body.map(form_urlencoded::parse).into_iter().flatten();
    from_query
        .chain(from_body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A request, read in full (the simulator's bodies are small; see `MAX_BODY`).
pub(crate) struct Req {
    pub method: Method,
    /// Path without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Bodies above this are refused with 413: no test needs more, and it keeps
/// a misbehaving client from filling memory.
pub(crate) const MAX_BODY: usize = 1 << 20;

impl Req {
    pub fn new(method: Method, uri: &http::Uri, headers: HeaderMap, body: Bytes) -> Req {
        let query = uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Req {
            method,
            path: uri.path().to_string(),
            query,
            headers,
            body,
        }
    }

    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter as a number, `default` when absent or not a number.
    pub fn q_num(&self, key: &str, default: usize) -> usize {
        self.q(key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }

    pub fn q_bool(&self, key: &str) -> bool {
        self.q(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The value of cookie `name` (first one if repeated).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    }

    /// The request's parameters as a servlet container reads them (what
    /// `getParameter` sees): the query's, then a form body's (see
    /// [`servlet_parameter`]).
    pub fn form(&self) -> Vec<(String, String)> {
        let mut params = self.query.clone();
        if self.method == Method::POST && is_form_type(self.content_type()) {
            params.extend(form_urlencoded::parse(&self.body).into_owned());
        }
        params
    }

    pub fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
        form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether the body's media type (parameters off) is `media`.
    pub fn has_media_type(&self, media: &str) -> bool {
        is_media_type(self.content_type(), media)
    }

    fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, `None` when it is not.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn authorization(&self) -> Option<&str> {
        self.headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    }

    /// `Authorization: Basic …`, as the app reads it.
    pub fn basic(&self) -> Basic {
        let Some((scheme, rest)) = self.authorization().and_then(|v| v.trim().split_once(' '))
        else {
            return Basic::Absent;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Basic::Absent;
        }
        base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| Basic::Credentials(u.to_string(), p.to_string()))
            })
            .unwrap_or(Basic::Malformed)
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.authorization()?;
        let (scheme, rest) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
    }
}

/// A request's `Authorization: Basic …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basic {
    /// No Basic credentials (none, or another scheme).
    Absent,
    /// Basic, but not `base64(user:password)` (the app answers 401).
    Malformed,
    /// The user name and password.
    Credentials(String, String),
}

/// What the simulator answers; headers are checked only when it becomes a
/// response, where a bad value is dropped rather than panicking.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type: None,
            body: Bytes::new(),
            headers: Vec::new(),
        }
    }

    pub fn json(status: u16, value: serde_json::Value) -> Reply {
        let mut r = Reply::new(status);
        r.content_type = Some("application/json;charset=UTF-8");
        r.body = Bytes::from(value.to_string());
        r
    }

    /// Jira's error body: `{"errorMessages":[msg],"errors":{}}`.
    pub fn error(status: u16, msg: &str) -> Reply {
        Reply::json(
            status,
            serde_json::json!({ "errorMessages": [msg], "errors": {} }),
        )
    }

    pub fn html(status: u16, title: &str, body: &str) -> Reply {
        let mut r = Reply::new(status);
        r.content_type = Some("text/html;charset=UTF-8");
        r.body = Bytes::from(format!(
            "<!DOCTYPE html>\n<html><head><title>{}</title></head>\n<body>\n{}\n</body></html>\n",
            escape(title),
            body
        ));
        r
    }

    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        let mut r = Reply::new(status);
        r.content_type = Some("text/plain;charset=UTF-8");
        r.body = Bytes::from(body.into());
        r
    }

    pub fn redirect(location: &str) -> Reply {
        Reply::new(302).header("Location", location)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        if let Some(ct) = self.content_type {
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (name, value) in self.headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                (Ok(n), Ok(v)) => {
                    headers.append(n, v);
                }
                _ => tracing::debug!(header = name, "sim: dropped an invalid response header"),
            }
        }
        resp
    }
}

/// HTML-escapes text put into a page.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Characters escaped in a query value that carries a path: `/` stays as it
/// is, as in the apps' own `os_destination=/browse/KEY` links.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'%');

pub(crate) fn query_value(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// Header values must be visible ASCII: the apps URL-encode non-ASCII user
/// names in `X-AUSERNAME`, and so does the simulator.
pub(crate) fn header_name_value(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_graphic()) {
        s.to_string()
    } else {
        utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
    }
}

/// A destination after login must stay on this server: only a local path.
pub(crate) fn local_destination(dest: Option<&str>, default: &str) -> String {
    match dest {
        Some(d) if d.starts_with('/') && !d.starts_with("//") && !d.contains('\\') => d.to_string(),
        _ => default.to_string(),
    }
}

pub(crate) fn set_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Path=/; HttpOnly")
}

/// Two weeks, Seraph's default remember-me lifetime.
pub(crate) fn set_remember_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Max-Age=1209600; Path=/; HttpOnly")
}

pub(crate) fn clear_cookie(name: &str) -> String {
    format!("{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:10 GMT; Path=/; HttpOnly")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Req {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Req::new(
            Method::GET,
            &"/x?a=1&b=t%20rue".parse().unwrap(),
            map,
            Bytes::new(),
        )
    }

    #[test]
    fn cookies_are_found_across_headers() {
        let r = req(&[("cookie", "a=1; JSESSIONID=ABC"), ("cookie", "x=\"q\"")]);
        assert_eq!(r.cookie("JSESSIONID").as_deref(), Some("ABC"));
        assert_eq!(r.cookie("x").as_deref(), Some("q"));
        assert_eq!(r.cookie("nope"), None);
        assert_eq!(r.q("b"), Some("t rue"));
    }

    #[test]
    fn basic_and_bearer_are_told_apart() {
        let r = req(&[("authorization", "Basic dXNlcjpwdzpjb2xvbg==")]);
        assert_eq!(
            r.basic(),
            Basic::Credentials("user".into(), "pw:colon".into())
        );
        assert_eq!(r.bearer(), None);
        let r = req(&[("authorization", "Basic !!!")]);
        assert_eq!(r.basic(), Basic::Malformed);
        let r = req(&[("authorization", "Bearer tok")]);
        assert_eq!(r.bearer(), Some("tok"));
        assert_eq!(r.basic(), Basic::Absent);
    }

    #[test]
    fn destinations_stay_local() {
        assert_eq!(local_destination(Some("/browse/A-1"), "/d"), "/browse/A-1");
        assert_eq!(local_destination(Some("//evil.example"), "/d"), "/d");
        assert_eq!(local_destination(Some("http://evil"), "/d"), "/d");
        assert_eq!(local_destination(None, "/d"), "/d");
        assert_eq!(query_value("/browse/A-1?x=y&z"), "/browse/A-1?x%3Dy%26z");
    }
}
