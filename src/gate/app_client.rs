//! The gate's own calls to the app, beside the proxied traffic: asking who
//! owns a session (the whoami fallback) and repeating a login that waited
//! for a seat. Redirects are never followed; every call is bounded by a
//! time-out.

use crate::user::UserId;
use http::HeaderValue;
use std::time::Duration;

/// How long one of the gate's own calls may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the app said of a session it was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Current {
    /// It belongs to this user.
    User(UserId),
    /// Nobody (anonymous), or an answer that names nobody.
    Nobody,
}

pub(crate) struct AppClient {
    http: Option<reqwest::Client>,
}

impl AppClient {
    pub(crate) fn new() -> AppClient {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALL_TIMEOUT)
            .build();
        if let Err(e) = &http {
            tracing::error!(error = %e, "cannot build the client for the app's whoami and login replay; both are off");
        }
        AppClient { http: http.ok() }
    }

    /// The HTTP client, when it could be built.
    pub(crate) fn http(&self) -> Option<&reqwest::Client> {
        self.http.as_ref()
    }

    /// Who the app says owns the session in `cookie`, asked at `url` (its
    /// "current user" resource). `None`: no answer at all (unreachable,
    /// time-out): nothing is learned.
    pub(crate) async fn current_user(&self, url: String, cookie: &HeaderValue) -> Option<Current> {
        #[derive(serde::Deserialize)]
        struct Answer {
            username: Option<String>,
        }
        let answer = self
            .http
            .as_ref()?
            .get(url)
            .header(http::header::COOKIE, cookie.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .ok()?
            .json::<Answer>()
            .await
            .ok();
        Some(match answer.and_then(|a| a.username) {
            Some(name) if crate::identity::valid_username(&name) => {
                Current::User(UserId::new(&name))
            }
            _ => Current::Nobody,
        })
    }
}

/// A login the gate repeated to the app, its answer passed on to the
/// browser: the status, the body, and the fields that carry the session
/// and the way on (`Location`, `Set-Cookie`, `Content-Type`).
pub(crate) async fn pass_on(answer: reqwest::Response) -> http::Response<crate::wire::body::Body> {
    let status = http::StatusCode::from_u16(answer.status().as_u16())
        .unwrap_or(http::StatusCode::BAD_GATEWAY);
    let headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap_or_default();
    let mut own = crate::pages::Own::untyped(status, body);
    for name in [
        http::header::LOCATION,
        http::header::SET_COOKIE,
        http::header::CONTENT_TYPE,
    ] {
        for v in headers.get_all(&name) {
            own = own.header(name.clone(), v.clone());
        }
    }
    own.build()
}
