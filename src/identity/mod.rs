//! Who is this request? Pure parsing of cookies, Basic auth, login bodies and
//! the upstream's answer, plus the session → user map.
//!
//! Cookie values and tokens are never stored: only keyed BLAKE3 hashes
//! (the key is random per installation and kept in the state snapshot), so a
//! leaked snapshot or heap dump does not hand out sessions.

mod anonymous;
mod peek;
mod sessions;

pub use anonymous::AnonymousCache;
pub use peek::{peek_body, peek_body_status, Peeked};
pub use sessions::{
    BindingChange, Dropped, Kind, Limits, Observer, SessionKey, SessionRecord, Sessions,
};

use crate::product::{Profile, X_AUSERNAME, X_SERAPH_LOGINREASON};
use crate::user::UserId;
use crate::wire::{text, HeaderView};
use base64::Engine;
use http::{header, HeaderName, Method};

/// The fields the readers below return iterators over (a `static`, so the
/// iterators may borrow the name as long as the head).
static COOKIE: HeaderName = header::COOKIE;
static SET_COOKIE: HeaderName = header::SET_COOKIE;

/// `name=value` pairs of every `Cookie` header.
pub fn cookies<'a>(headers: &'a impl HeaderView) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    headers
        .values(&COOKIE)
        .filter_map(text)
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            let v = v.trim().trim_matches('"');
            Some((n.trim(), v))
        })
}

/// The request's session and remember-me cookies (non-empty values only),
/// at most one per cookie name: the first, as the app reads it (Tomcat takes
/// the first `JSESSIONID`). A request repeating a name thousands of times
/// yields one value for it, and parsing stops once every name was found.
pub fn session_cookies<'a>(
    profile: &'a Profile,
    headers: &'a impl HeaderView,
) -> impl Iterator<Item = (Kind, &'a str)> + 'a {
    // One bit a name: session names from bit 0, remember-me names from bit
    // 32 (a profile has one or two of each; any past 31 share a bit, which
    // can only yield fewer values, never more).
    let bit = |i: usize, base: u32| 1u64 << (base + i.min(31) as u32);
    let all = (0..profile.session_cookies.len())
        .map(|i| bit(i, 0))
        .chain((0..profile.remember_cookies.len()).map(|i| bit(i, 32)))
        .fold(0u64, |a, b| a | b);
    let mut seen = 0u64;
    let mut pairs = cookies(headers);
    std::iter::from_fn(move || {
        while seen != all {
            let (n, v) = pairs.next()?;
            if v.is_empty() {
                continue;
            }
            let (kind, b) = if let Some(i) = profile.session_cookies.iter().position(|s| *s == n) {
                (Kind::Session, bit(i, 0))
            } else if let Some(i) = profile.remember_cookies.iter().position(|s| *s == n) {
                (Kind::RememberMe, bit(i, 32))
            } else {
                continue;
            };
            if seen & b == 0 {
                seen |= b;
                return Some((kind, v));
            }
        }
        None
    })
}

/// A `Set-Cookie` of a session cookie: its value, or `None` when it deletes it.
pub fn set_session_cookies<'a>(
    profile: &'a Profile,
    headers: &'a impl HeaderView,
) -> impl Iterator<Item = (Kind, Option<&'a str>)> + 'a {
    set_cookies(profile, headers).map(|(kind, _, value)| (kind, value))
}

/// The session and remember-me cookies an answer sets (not deletes), as
/// (kind, name, value).
pub fn set_session_cookie_pairs<'a>(
    profile: &'a Profile,
    headers: &'a impl HeaderView,
) -> impl Iterator<Item = (Kind, &'a str, &'a str)> + 'a {
    set_cookies(profile, headers).filter_map(|(kind, name, value)| Some((kind, name, value?)))
}

/// Every `Set-Cookie` of a session or remember-me cookie: kind, name, and
/// value (`None` when it deletes the cookie).
fn set_cookies<'a>(
    profile: &'a Profile,
    headers: &'a impl HeaderView,
) -> impl Iterator<Item = (Kind, &'a str, Option<&'a str>)> + 'a {
    headers
        .values(&SET_COOKIE)
        .filter_map(text)
        .filter_map(move |sc| {
            let mut parts = sc.split(';');
            let (name, value) = parts.next()?.split_once('=')?;
            let name = name.trim();
            let kind = if profile.session_cookies.contains(&name) {
                Kind::Session
            } else if profile.remember_cookies.contains(&name) {
                Kind::RememberMe
            } else {
                return None;
            };
            let value = value.trim().trim_matches('"');
            let deleted = value.is_empty()
                || parts.any(|a| {
                    let a = a.trim();
                    a.eq_ignore_ascii_case("max-age=0")
                        || a.to_ascii_lowercase().starts_with("max-age=-")
                        || a.to_ascii_lowercase()
                            .starts_with("expires=thu, 01 jan 1970")
                });
            Some((kind, name, (!deleted).then_some(value)))
        })
}

/// What an `Authorization` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// The user name of `Basic …` (the password is never looked at): a claim.
    Basic(UserId),
    /// The token of `Bearer …` (a PAT names no user by itself).
    Bearer(&'a str),
}

/// Reads an `Authorization` value as it came (both lanes use this one
/// reader); a value with other than visible ASCII names nothing, as
/// `HeaderValue::to_str` would have it.
pub fn credentials_of(value: &[u8]) -> Option<Credentials<'_>> {
    let v = text(value)?;
    let (scheme, rest) = v.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        // Decoded on the stack: the common credentials fit, and this runs
        // for every Basic request (longer ones take the heap).
        let mut buf = [0u8; 512];
        let engine = base64::engine::general_purpose::STANDARD;
        let heap;
        let raw: &[u8] = match engine.decode_slice(rest.trim(), &mut buf) {
            Ok(n) => &buf[..n],
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                heap = engine.decode(rest.trim()).ok()?;
                &heap
            }
            Err(_) => return None,
        };
        // Only the name is read; the password is never looked at, and its
        // decoded bytes are wiped before returning.
        let user = raw
            .iter()
            .position(|&b| b == b':')
            .and_then(|colon| std::str::from_utf8(&raw[..colon]).ok())
            .filter(|u| valid_username(u))
            .map(UserId::new);
        zeroize::Zeroize::zeroize(&mut buf);
        user.map(Credentials::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let t = rest.trim();
        (!t.is_empty()).then_some(Credentials::Bearer(t))
    } else {
        None
    }
}

/// The username of `Authorization: Basic …` (the password is never looked at).
pub fn basic_user(headers: &impl HeaderView) -> Option<UserId> {
    match credentials_of(headers.value(&header::AUTHORIZATION)?)? {
        Credentials::Basic(u) => Some(u),
        Credentials::Bearer(_) => None,
    }
}

/// The token of `Authorization: Bearer …` (a PAT names no user by itself).
pub fn bearer_token(headers: &impl HeaderView) -> Option<&str> {
    match credentials_of(headers.value(&header::AUTHORIZATION)?)? {
        Credentials::Bearer(t) => Some(t),
        Credentials::Basic(_) => None,
    }
}

/// Usernames we accept from client input: non-empty, bounded, no control characters.
pub fn valid_username(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control)
}

/// A login request: who tries to log in, and where they want to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    pub user: UserId,
    /// The form's destination field (`os_destination`, `next`), if any.
    pub destination: Option<String>,
    /// A JSON login (REST client) rather than a browser form.
    pub json: bool,
}

/// Whether `method path` is one of the product's login requests (body not yet read).
pub fn is_login(profile: &Profile, method: &Method, path: &str) -> bool {
    method == Method::POST
        && (profile.login_form(path).is_some()
            || profile.is_json_login(path)
            || profile.saml_consumer == path)
}

/// The media type of a `Content-Type` value: lower case, parameters off.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The form media type a servlet container reads parameters from.
pub const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

/// Reads who a login request logs in, the way the app reads it, from the
/// query string and the whole body (`body` must be all of it).
///
/// - A form login: the servlet container's parameters, which are the query
///   string's first and then the body's, and the body's only when its media
///   type is exactly `application/x-www-form-urlencoded`. Every value of the
///   user field must name the same user; readings that disagree are no claim.
/// - A JSON login: the body, only when its media type is exactly
///   `application/json`; a duplicated `username` is no claim.
pub fn login_attempt(
    profile: &Profile,
    path: &str,
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<LoginAttempt> {
    let media = media_type(content_type.unwrap_or(""));
    if let Some(form) = profile.login_form(path) {
        let from_body = (media == FORM_MEDIA_TYPE).then_some(body);
        let params = query
            .map(str::as_bytes)
            .into_iter()
            .chain(from_body)
            .flat_map(form_urlencoded::parse);
        let mut user: Option<String> = None;
        let mut destination = None;
        for (k, v) in params {
            if k == form.user_field {
                match &user {
                    None => user = Some(v.into_owned()),
                    Some(first) if UserId::new(first) == UserId::new(&v) => {}
                    Some(_) => return None,
                }
            } else if k == form.destination_field && destination.is_none() {
                destination = Some(v.into_owned());
            }
        }
        let user = user.filter(|u| valid_username(u))?;
        return Some(LoginAttempt {
            user: UserId::new(&user),
            destination,
            json: false,
        });
    }
    if profile.is_json_login(path) && media == "application/json" {
        return json_login(body);
    }
    None
}

/// One form parameter as the servlet container reads it: from the query
/// string first, then from the body when it is exactly
/// `application/x-www-form-urlencoded`. Readings that disagree are none (the
/// app might take either).
pub fn form_parameter(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    name: &str,
) -> Option<String> {
    let from_body = (media_type(content_type.unwrap_or("")) == FORM_MEDIA_TYPE).then_some(body);
    let mut found: Option<String> = None;
    let params = query
        .map(str::as_bytes)
        .into_iter()
        .chain(from_body)
        .flat_map(form_urlencoded::parse);
    for (k, v) in params {
        if k == name {
            match &found {
                None => found = Some(v.into_owned()),
                Some(first) if *first == v => {}
                Some(_) => return None,
            }
        }
    }
    found
}

/// A JSON login body: `{"username", …}`, and the platform login's
/// `targetUrl` (where its page goes afterwards). A repeated field is no
/// login (the app might read either).
fn json_login(body: &[u8]) -> Option<LoginAttempt> {
    #[derive(serde::Deserialize)]
    struct J {
        username: String,
        #[serde(rename = "targetUrl", default)]
        target_url: Option<String>,
    }
    // Only an object: serde would also read a struct from an array
    // (`["alice", …]`), which the app's JSON reader does not.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let j: J = serde_json::from_slice(body).ok()?;
    valid_username(&j.username).then(|| LoginAttempt {
        user: UserId::new(&j.username),
        destination: j.target_url,
        json: true,
    })
}

/// What the upstream's `X-AUSERNAME` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamUser {
    Anonymous,
    User(UserId),
}

/// Who the upstream's `X-AUSERNAME` names; when it names `known` (the
/// user iumgate already took the request for, the usual case), that id is
/// shared rather than built again. A value with other than visible ASCII is
/// no name, as `HeaderValue::to_str` would have it.
pub fn upstream_user(headers: &impl HeaderView, known: Option<&UserId>) -> Option<UpstreamUser> {
    let v = text(headers.value(&X_AUSERNAME)?)?.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("anonymous") {
        Some(UpstreamUser::Anonymous)
    } else if let Some(k) = known.filter(|k| k.as_str() == v) {
        Some(UpstreamUser::User(k.clone()))
    } else if valid_username(v) {
        Some(UpstreamUser::User(UserId::new(v)))
    } else {
        None
    }
}

/// Seraph's verdict on a login (`X-Seraph-LoginReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginReason {
    Ok,
    /// Wrong password or unknown user.
    AuthenticatedFailed,
    /// CAPTCHA / too many tries.
    AuthenticationDenied,
    /// Right password, no permission to use the app (no licence).
    AuthorisationFailed,
}

pub fn login_reason(headers: &impl HeaderView) -> Option<LoginReason> {
    let v = text(headers.value(&X_SERAPH_LOGINREASON)?)?;
    // Seraph may list several reasons; the first one decides.
    match v.split(',').next()?.trim() {
        "OK" => Some(LoginReason::Ok),
        "AUTHENTICATED_FAILED" => Some(LoginReason::AuthenticatedFailed),
        "AUTHENTICATION_DENIED" => Some(LoginReason::AuthenticationDenied),
        "AUTHORISATION_FAILED" | "AUTHORIZATION_FAILED" => Some(LoginReason::AuthorisationFailed),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
