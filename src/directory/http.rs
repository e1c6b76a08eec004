//! What the four clients share: one reqwest client with the service account's
//! `Authorization`, calls under a time-out with retries and back-off, the
//! observer hook, and the classification of 4xx answers.
//!
//! Retrying a write is safe here because every write the clients make ends in
//! the same state when repeated: a second add answers "already a member" (Ok),
//! a second remove "not a member" (Ok).

use super::{Auth, CallObserver, Cause, ClientOptions, DirectoryError, ErrorStatus, SetupError};
use base64::Engine as _;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, USER_AGENT};
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything but the RFC 3986 unreserved characters is escaped, so a name
/// with `/`, `?`, `&`, `+`, `#`, spaces or non-ASCII letters stays one path
/// segment or one query value (`+` would otherwise read as a space).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a user or group name for a path segment or a query value.
pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A guard against an app that never says "last page": this many pages of
/// at least 50 names is far beyond any real group.
pub(crate) const MAX_PAGES: usize = 10_000;

/// A page that is empty yet not the last would make the reader loop forever.
pub(crate) fn stuck_paging(ans: &Answer, at: u64) -> DirectoryError {
    DirectoryError::Unexpected {
        status: ans.status,
        detail: format!(
            "{}: the page at {at} is empty but not marked as the last one",
            ans.call
        ),
    }
}

pub(crate) fn too_many_pages(what: &str) -> DirectoryError {
    DirectoryError::Unexpected {
        status: 200,
        detail: format!("{what}: more than {MAX_PAGES} pages; giving up"),
    }
}

pub(crate) fn yes() -> bool {
    true
}

/// A JSON count as a seat number: negative (Atlassian's "unlimited") → None.
pub(crate) fn seats(n: Option<i64>) -> Option<u32> {
    n.and_then(|n| u32::try_from(n).ok())
}

/// No back-off grows past this, however many retries are configured.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An answer that is not a 5xx (those are retried, then become `Unavailable`).
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// `METHOD /path`, for error messages.
    pub call: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Parses the body as JSON; a body that does not fit is `Unexpected`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, DirectoryError> {
        serde_json::from_slice(&self.body).map_err(|e| DirectoryError::Unexpected {
            status: self.status,
            detail: format!(
                "{}: the answer is not the JSON expected ({e}): {}",
                self.call,
                snippet(&self.body)
            ),
        })
    }

    /// The human part of an Atlassian error body: Jira's `errorMessages` and
    /// `errors`, Confluence's and Crowd's `message`, Bitbucket's
    /// `errors[].message`; the raw body (shortened) when it is not JSON.
    pub fn message(&self) -> String {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.body) else {
            return snippet(&self.body);
        };
        let mut parts = Vec::new();
        collect_messages(&v, &mut parts);
        if parts.is_empty() {
            snippet(&self.body)
        } else {
            parts.join("; ")
        }
    }

    /// Crowd's machine-readable `reason` (`USER_NOT_FOUND`, …), when present.
    pub fn reason(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("reason")?.as_str().map(str::to_owned)
    }

    /// A 2xx answer is Ok; anything else is classified for `asked`.
    pub fn ok_or_classify(&self, asked: Asked<'_>) -> Result<(), DirectoryError> {
        if self.is_success() {
            Ok(())
        } else {
            Err(classify(self, asked))
        }
    }

    /// "Unexpected" for this answer, with the call and the error text.
    pub fn unexpected(&self) -> DirectoryError {
        DirectoryError::Unexpected {
            status: self.status,
            detail: format!("{}: {}", self.call, self.message()),
        }
    }
}

fn collect_messages(v: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    let Value::Object(map) = v else { return };
    for key in ["errorMessages", "errors", "message"] {
        match map.get(key) {
            Some(Value::String(s)) if !s.is_empty() => out.push(s.clone()),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        obj @ Value::Object(_) => collect_messages(obj, out),
                        _ => {}
                    }
                }
            }
            // Jira's field errors: {"errors":{"name":"…"}}
            Some(Value::Object(fields)) => {
                for s in fields.values().filter_map(Value::as_str) {
                    out.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
}

/// The first 300 characters of a body, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s.replace(['\r', '\n'], " ")
}

/// What a call was about, so a 404 can say which name is missing.
#[derive(Clone, Copy, Default)]
pub(crate) struct Asked<'a> {
    pub user: Option<&'a str>,
    pub group: Option<&'a str>,
}

impl<'a> Asked<'a> {
    pub fn user(user: &'a str) -> Self {
        Asked {
            user: Some(user),
            group: None,
        }
    }
    pub fn group(group: &'a str) -> Self {
        Asked {
            user: None,
            group: Some(group),
        }
    }
    pub fn both(user: &'a str, group: &'a str) -> Self {
        Asked {
            user: Some(user),
            group: Some(group),
        }
    }
}

/// The app's answer to Basic credentials while Basic authentication is
/// blocked: "Basic Authentication has been disabled on this instance." (seen
/// as a 403 on Jira 8.16; the wording and status of today's versions are
/// unconfirmed, so any "basic auth… disabled/blocked" text counts).
pub(crate) fn says_basic_auth_disabled(text: &str) -> bool {
    let t = text.to_lowercase();
    (t.contains("basic auth") || t.contains("basic-auth"))
        && (t.contains("disabled") || t.contains("blocked") || t.contains("not allowed"))
}

pub(crate) fn mentions_read_only(text: &str) -> bool {
    let t = text.to_lowercase();
    t.contains("read-only") || t.contains("read only") || t.contains("readonly")
}

/// The rules every product shares: 401, 403 (read-only or not an admin), a
/// 400 that blames a read-only directory, 404 → which name is missing, 429 →
/// unavailable for now (rate limited; the caller may try again later).
pub(crate) fn classify(ans: &Answer, asked: Asked<'_>) -> DirectoryError {
    let msg = ans.message();
    match ans.status {
        401 | 403 if says_basic_auth_disabled(&msg) => {
            DirectoryError::BasicAuthDisabled(format!("{}: {msg}", ans.status))
        }
        401 => DirectoryError::BadCredentials,
        403 | 400 if mentions_read_only(&msg) => DirectoryError::ReadOnly(msg),
        403 => DirectoryError::NotAdmin,
        404 => missing(ans, &msg, asked),
        429 => DirectoryError::Unavailable {
            operation: super::op_name(""),
            detail: format!("{}: rate limited (429)", ans.call),
            source: Some(Cause::new(ErrorStatus {
                status: 429,
                body: msg,
            })),
        },
        _ => ans.unexpected(),
    }
}

/// Which of the names asked for does a 404 blame? The names themselves are
/// cut out of the text first: a group called `IUM_user_software` must not
/// make "group … does not exist" read as a missing user.
fn missing(ans: &Answer, msg: &str, asked: Asked<'_>) -> DirectoryError {
    let mut text = msg.to_lowercase();
    for name in [asked.user, asked.group].into_iter().flatten() {
        if !name.is_empty() {
            text = text.replace(&name.to_lowercase(), " ");
        }
    }
    let says_user = text.contains("user");
    let says_group = text.contains("group");
    match (asked.user, asked.group) {
        (Some(u), Some(_)) if says_user && !says_group => DirectoryError::UserMissing(u.into()),
        (Some(_), Some(g)) if says_group && !says_user => DirectoryError::GroupMissing(g.into()),
        (Some(u), None) => DirectoryError::UserMissing(u.into()),
        (None, Some(g)) => DirectoryError::GroupMissing(g.into()),
        (Some(u), Some(g)) => DirectoryError::Unexpected {
            status: 404,
            detail: format!(
                "{}: user `{u}` or group `{g}` does not exist (the answer does not say which): {msg}",
                ans.call
            ),
        },
        (None, None) => ans.unexpected(),
    }
}

/// One product's connection to its admin REST API.
pub(crate) struct Transport {
    product: &'static str,
    client: reqwest::Client,
    /// Base URL without a trailing slash; may carry a context path (`/jira`).
    base: String,
    auth_kind: String,
    opts: ClientOptions,
    observer: Option<Arc<dyn CallObserver>>,
}

impl fmt::Debug for Transport {
    // Only what helps an admin; the credentials never.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("product", &self.product)
            .field("base", &self.base)
            .field("auth", &self.auth_kind)
            .field("timeout", &self.opts.timeout)
            .field("retries", &self.opts.retries)
            .field("backoff", &self.opts.backoff)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl Transport {
    pub fn new(
        product: &'static str,
        base_url: &str,
        auth: Auth,
        opts: ClientOptions,
    ) -> Result<Self, SetupError> {
        const URL: &str = "directory.url";
        const CA: &str = "proxy.upstream_ca_file";
        let fail = |key, problem: &str| SetupError::new(product, key, problem);
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| fail(URL, "the base URL is not a URL").because(e))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(fail(
                URL,
                "the base URL must be http:// or https:// with a host",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // It would end up in error messages and logs; credentials belong in
            // the secret settings.
            return Err(fail(
                URL,
                "the base URL must not carry credentials; use [directory] username \
                 and password_env/token_env",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(fail(URL, "the base URL must not have a query or fragment"));
        }
        if opts.timeout.is_zero() {
            return Err(fail("directory.timeout", "the time-out must be above zero"));
        }
        let header = match &auth {
            Auth::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Auth::Bearer(token) => format!("Bearer {}", token.expose()),
        };
        // (InvalidHeaderValue's text holds no part of the value.)
        let mut authorization = HeaderValue::from_str(&header).map_err(|e| {
            fail(
                "directory.username / password / token",
                "the credentials hold characters not allowed in a header",
            )
            .because(e)
        })?;
        let auth_kind = auth_kind_of(&auth);
        // Keeps the value out of hyper's debug output and HTTP/2 header tables.
        authorization.set_sensitive(true);

        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        // Disables Atlassian's XSRF check for REST writes, which a service
        // call without a browser session would otherwise trip.
        headers.insert("X-Atlassian-Token", HeaderValue::from_static("no-check"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("iumgate/", env!("CARGO_PKG_VERSION"))),
        );

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            // A redirect here means a wrong base URL (login page, http→https);
            // following it would send the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &opts.extra_ca {
            let file = path.display();
            let pem = std::fs::read(path)
                .map_err(|e| fail(CA, &format!("cannot read the CA file {file}")).because(e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                fail(CA, &format!("the CA file {file} is not PEM certificates")).because(e)
            })?;
            if certs.is_empty() {
                return Err(fail(
                    CA,
                    &format!("the CA file {file} holds no certificate"),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| fail("directory", "cannot build the HTTP client").because(e))?;
        Ok(Transport {
            product,
            client,
            base: base_url.trim_end_matches('/').to_string(),
            auth_kind,
            opts,
            observer: None,
        })
    }

    pub fn set_observer(&mut self, observer: Option<Arc<dyn CallObserver>>) {
        self.observer = observer;
    }

    /// Runs one trait operation and tells the observer how it went. An
    /// `Unavailable` error gets the operation's name here ([`super::op_name`]).
    pub async fn observe<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        let started = Instant::now();
        let mut res = fut.await;
        if let Err(DirectoryError::Unavailable { operation, .. }) = &mut res {
            *operation = super::op_name(op);
        }
        if let Some(o) = &self.observer {
            let result = match &res {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            o.observe(op, result, started.elapsed().as_secs_f64());
        }
        res
    }

    /// `GET` of one resource: `Ok(None)` on 404 (it does not exist), the
    /// parsed body on success, a classified error otherwise.
    pub async fn get_optional<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        asked: Asked<'_>,
    ) -> Result<Option<T>, DirectoryError> {
        let ans = self.call(Method::GET, path_and_query, None).await?;
        if ans.status == 404 {
            return Ok(None);
        }
        ans.ok_or_classify(asked)?;
        ans.json().map(Some)
    }

    /// Makes one call, retrying 5xx, time-outs and connection errors with a
    /// doubling back-off. Every other answer is returned as it came, for the
    /// product's client to classify. The last failure becomes `Unavailable`,
    /// kept as its source.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, DirectoryError> {
        // The path alone goes into logs and errors: the query holds nothing
        // secret either, but the path is enough to find the call.
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        let call = format!("{method} {path}");
        let url = format!("{}{}", self.base, path_and_query);
        let tries = self.opts.retries.saturating_add(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let (what, cause) = match self.send(method.clone(), &url, body).await {
                Ok((status, bytes)) => {
                    tracing::debug!(
                        product = self.product,
                        method = %method,
                        path,
                        status,
                        ms = started.elapsed().as_millis() as u64,
                        "directory call"
                    );
                    if status < 500 {
                        return Ok(Answer {
                            status,
                            body: bytes,
                            call,
                        });
                    }
                    let cause = ErrorStatus {
                        status,
                        body: snippet(&bytes),
                    };
                    (format!("answered {status}"), Cause::new(cause))
                }
                Err(e) => {
                    let e = e.without_url();
                    tracing::debug!(
                        product = self.product,
                        method = %method,
                        path,
                        error = %crate::proxy::error_chain(&e),
                        ms = started.elapsed().as_millis() as u64,
                        "directory call failed"
                    );
                    (failure_kind(&e).to_string(), Cause::new(e))
                }
            };
            if attempt >= tries {
                return Err(DirectoryError::Unavailable {
                    operation: super::op_name(""),
                    detail: format!(
                        "{} {call}: {what} (after {attempt} tr{})",
                        self.product,
                        if attempt == 1 { "y" } else { "ies" }
                    ),
                    source: Some(cause),
                });
            }
            let delay = self.backoff(attempt);
            tracing::warn!(
                product = self.product,
                call = %call,
                attempt,
                of = tries,
                retry_in_ms = delay.as_millis() as u64,
                failure = %what,
                cause = %crate::proxy::error_chain(&cause),
                "directory call failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange. `Err` is a transport failure (time-out, refused,
    /// reset, TLS).
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes), reqwest::Error> {
        let mut req = self.client.request(method, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((status, bytes))
    }

    /// `backoff · 2^(attempt-1)`, capped, plus up to a quarter of jitter so
    /// several proxies do not hammer a recovering app in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let base = self
            .opts
            .backoff
            .checked_mul(factor)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF);
        let jitter_max = base.as_millis() as u64 / 4;
        let jitter = if jitter_max == 0 {
            0
        } else {
            rand::random_range(0..=jitter_max)
        };
        base + Duration::from_millis(jitter)
    }
}

fn auth_kind_of(auth: &Auth) -> String {
    match auth {
        Auth::Basic { username, .. } => format!("basic as {username}"),
        Auth::Bearer(_) => "bearer token".into(),
    }
}

/// The short word for a transport failure, for the error's one-line text;
/// the causes underneath ("Connection refused (os error 111)", the TLS
/// verdict) stay in its source chain.
fn failure_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: Bytes::from(body.to_string()),
            call: "GET /x".into(),
        }
    }

    #[test]
    fn names_are_encoded_as_one_component() {
        assert_eq!(enc("a b+c&d/e?f#g"), "a%20b%2Bc%26d%2Fe%3Ff%23g");
        assert_eq!(enc("jörg"), "j%C3%B6rg");
        assert_eq!(enc("IUM_user-x.y~z"), "IUM_user-x.y~z");
    }

    #[test]
    fn messages_come_from_each_products_error_shape() {
        let jira = answer(
            400,
            r#"{"errorMessages":["Cannot add user"],"errors":{"name":"bad"}}"#,
        );
        assert_eq!(jira.message(), "Cannot add user; bad");
        let bb = answer(
            404,
            r#"{"errors":[{"context":null,"message":"No such group"}]}"#,
        );
        assert_eq!(bb.message(), "No such group");
        let crowd = answer(
            404,
            r#"{"reason":"GROUP_NOT_FOUND","message":"Group <g> not found"}"#,
        );
        assert_eq!(crowd.message(), "Group <g> not found");
        assert_eq!(crowd.reason().as_deref(), Some("GROUP_NOT_FOUND"));
        assert_eq!(
            answer(500, "<html>\nboom</html>").message(),
            "<html> boom</html>"
        );
    }

    #[test]
    fn a_404_blames_the_name_the_text_mentions_even_if_a_name_contains_user() {
        let a = Asked::both("bob", "IUM_user_software");
        let e = classify(
            &answer(
                404,
                r#"{"errorMessages":["Group IUM_user_software does not exist"]}"#,
            ),
            a,
        );
        assert_eq!(e, DirectoryError::GroupMissing("IUM_user_software".into()));
        let e = classify(
            &answer(404, r#"{"errorMessages":["The user bob does not exist"]}"#),
            a,
        );
        assert_eq!(e, DirectoryError::UserMissing("bob".into()));
        match classify(&answer(404, "Not Found"), a) {
            DirectoryError::Unexpected {
                status: 404,
                detail,
            } => {
                assert!(
                    detail.contains("`bob`") && detail.contains("`IUM_user_software`"),
                    "{detail}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_429_is_unavailable_with_the_answer_as_its_source() {
        let e = classify(&answer(429, r#"{"message":"slow down"}"#), Asked::default());
        assert!(e.is_retryable(), "{e:?}");
        assert!(e.to_string().contains("GET /x: rate limited (429)"), "{e}");
        let src = std::error::Error::source(&e).expect("a source");
        assert_eq!(src.to_string(), "HTTP 429: slow down");
    }

    /// A refused connection keeps the I/O error underneath, and the error
    /// names the operation and the call.
    #[tokio::test]
    async fn a_refused_connection_keeps_its_io_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let opts = ClientOptions {
            retries: 0,
            ..ClientOptions::default()
        };
        let t = Transport::new("jira", &url, Auth::Bearer(Secret::new("t")), opts).unwrap();
        let e = t
            .observe(
                "group_members",
                t.call(Method::GET, "/rest/api/2/group/member?groupname=g", None),
            )
            .await
            .err()
            .expect("refused");
        let text = e.to_string();
        assert!(
            text.starts_with("directory: unavailable: cannot list group members: "),
            "{text}"
        );
        assert!(
            text.contains("jira GET /rest/api/2/group/member: cannot connect (after 1 try)"),
            "{text}"
        );
        let mut io = None;
        let mut src = std::error::Error::source(&e);
        assert!(src.is_some(), "{e:?}");
        while let Some(s) = src {
            io = io.or(s.downcast_ref::<std::io::Error>().map(|e| e.kind()));
            src = s.source();
        }
        assert_eq!(
            io,
            Some(std::io::ErrorKind::ConnectionRefused),
            "{}",
            crate::proxy::error_chain(&e)
        );
        // Still a plain value: cloned and compared as before.
        assert_eq!(e.clone(), e);
    }

    #[test]
    fn read_only_wins_over_not_admin() {
        let e = classify(
            &answer(403, r#"{"message":"The directory is read-only"}"#),
            Asked::default(),
        );
        assert!(matches!(e, DirectoryError::ReadOnly(_)), "{e:?}");
        let e = classify(
            &answer(403, r#"{"message":"You are not an admin"}"#),
            Asked::default(),
        );
        assert_eq!(e, DirectoryError::NotAdmin);
    }

    #[test]
    fn blocked_basic_auth_is_neither_bad_credentials_nor_missing_admin_rights() {
        let body = r#"{"message":"Basic Authentication has been disabled on this instance."}"#;
        for status in [401, 403] {
            let e = classify(&answer(status, body), Asked::default());
            assert!(matches!(e, DirectoryError::BasicAuthDisabled(_)), "{e:?}");
            assert!(e.to_string().contains("token_env or token_file"), "{e}");
            assert_eq!(e.kind(), "basic_auth_disabled");
        }
        let e = classify(
            &answer(401, r#"{"message":"Basic auth is blocked"}"#),
            Asked::default(),
        );
        assert!(matches!(e, DirectoryError::BasicAuthDisabled(_)), "{e:?}");
        let e = classify(&answer(401, "{}"), Asked::default());
        assert_eq!(e, DirectoryError::BadCredentials);
    }
}
