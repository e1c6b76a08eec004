//! Today's Data Center login, one platform in Jira 10, Confluence 9 and
//! Bitbucket 9 (`shared/ATLASSIAN.md`, "Today's Data Center versions"): a
//! script page that posts JSON to `/rest/tsv/latest/authenticate`, a second
//! step for users enrolled in two-step verification, and the list of login
//! methods. The decisions behind it are Seraph's, as in the form logins
//! ([`auth::check_login`]): the same failed-login count, the same
//! application access check.
//!
//! | request | answer |
//! |---|---|
//! | `POST /rest/tsv/{latest,1.0}/authenticate` `{"username","password","rememberMe","targetUrl"}` | 200 `{"redirectUrl"}` + session (+ remember-me), reason `OK`; 401 `{"captchaRequired","message"}`, reason `AUTHENTICATED_FAILED` (`AUTHENTICATION_DENIED` once a CAPTCHA is due); [`NO_ACCESS_STATUS`] `{"message"}`, reason `AUTHORISATION_FAILED`; 412 `{"message"}` + a half session when enrolled |
//! | `POST /rest/tsv/{latest,1.0}/authenticate/{totp-code,recovery-code}` `{"code"}` on the half session | 200 `{"redirectUrl"}` + a new session, reason `OK`; [`NO_ACCESS_STATUS`] `AUTHORISATION_FAILED`; 401 `{"message":"invalid code"}` (the half session stays); 401 without a half session |
//! | `GET /rest/authconfig/{latest,1.0}/login-options` | 200 `{"results":[{"type":"LOGIN_FORM"}]}` |
//! | `GET` the product's login page, [`LoginStyle::Json`] | the script page (see [`page`]) |
//!
//! Every `POST` here takes `Content-Type: application/json` only (else 415,
//! checked first, as JAX-RS matches the media type before the resource's
//! filters run) and `X-Atlassian-Token: no-check` (else 403 "XSRF check
//! failed").

use super::auth::{self, Cx, Login};
use super::state::{CodeKind, State};
use super::web::{self, escape, Reply, Req};
use super::LoginStyle;
use http::Method;
use iumgate_core::product::Product;
use serde_json::{json, Value};

/// The status of a login whose password was right but whose user has no
/// application access. UNCONFIRMED: nothing we have read shows what the new
/// endpoint answers then; 403 is our reading (the old JSON login answers
/// 401, the form 200 with a page). One const so it is easy to change.
pub(crate) const NO_ACCESS_STATUS: u16 = 403;

const NO_PERMISSION: &str = "You do not have a permission to log in";
const BAD_PASSWORD: &str = "Sorry, your username and password are incorrect - please try again.";
const CAPTCHA: &str = "Sorry, your userid is required to answer a CAPTCHA question correctly.";
const TWO_STEP: &str = "two-step verification required";
const INVALID_CODE: &str = "invalid code";
const NO_HALF_SESSION: &str =
    "no two-step verification in progress: log in with your password first";

/// Answers the request if it belongs to the platform login; `None` leaves it
/// to the product.
pub(crate) fn route(st: &mut State, req: &Req, cx: &mut Cx) -> Option<Reply> {
    let path = req.path.as_str();
    if let Some(rest) = strip_version(path, "/rest/tsv/") {
        let reply = match rest {
            "authenticate" => authenticate(st, req, cx),
            "authenticate/totp-code" => code_step(st, req, cx, CodeKind::Totp),
            "authenticate/recovery-code" => code_step(st, req, cx, CodeKind::Recovery),
            _ => Reply::json(404, json!({ "message": "Not Found" })),
        };
        return Some(reply);
    }
    if strip_version(path, "/rest/authconfig/") == Some("login-options") {
        if req.method != Method::GET {
            return Some(Reply::new(405).header("Allow", "GET"));
        }
        // Served to anyone: the login page asks before anyone is logged in.
        // Identity providers (SAML, OIDC) would be listed here too.
        return Some(Reply::json(
            200,
            json!({ "results": [{ "type": "LOGIN_FORM" }] }),
        ));
    }
    if req.method == Method::GET
        && st.login_style == LoginStyle::Json
        && path == page_path(st.product)
    {
        return Some(page(st.product, req));
    }
    None
}

/// `/rest/tsv/latest/…` or `/rest/tsv/1.0/…` → `…`.
fn strip_version<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    rest.strip_prefix("latest/")
        .or_else(|| rest.strip_prefix("1.0/"))
}

/// The product's login page and the query parameter naming where to go after.
fn page_path(product: Product) -> &'static str {
    match product {
        Product::Jira => "/login.jsp",
        Product::Confluence => "/login.action",
        Product::Bitbucket => "/login",
    }
}

fn destination_param(product: Product) -> &'static str {
    match product {
        Product::Bitbucket => "next",
        Product::Jira | Product::Confluence => "os_destination",
    }
}

fn message(status: u16, text: &str) -> Reply {
    Reply::json(status, json!({ "message": text }))
}

/// The checks every `POST` here makes before reading its body: the method,
/// the media type (415), the XSRF header (403), then the JSON (400).
fn json_request(req: &Req) -> Result<serde_json::Map<String, Value>, Reply> {
    if req.method != Method::POST {
        return Err(Reply::new(405).header("Allow", "POST"));
    }
    if !req.has_media_type("application/json") {
        return Err(message(415, "Unsupported Media Type"));
    }
    let token = req
        .headers
        .get("x-atlassian-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if token != Some("no-check") {
        return Err(Reply::text(403, "XSRF check failed"));
    }
    match req.json() {
        Some(Value::Object(body)) => Ok(body),
        _ => Err(message(400, "The body is not a JSON object")),
    }
}

fn str_field<'a>(body: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The caller is nobody on a refused login, whatever session they came with.
fn refused(cx: &mut Cx, reason: Option<&'static str>) {
    cx.login_reason = reason;
    cx.shown = None;
}

/// `POST /rest/tsv/…/authenticate`: the password step. Checks in the order
/// `shared/ATLASSIAN.md` implies: the password (with the failed-login count),
/// then application access (checked here and again at the code step), then
/// two-step enrolment.
fn authenticate(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let body = match json_request(req) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let user = str_field(&body, "username");
    let password = str_field(&body, "password");
    let remember = body.get("rememberMe").and_then(Value::as_bool) == Some(true);
    // Only a local path, as the form logins' destinations: anything else
    // (absent, absolute, protocol-relative) becomes "/".
    let target = web::local_destination(body.get("targetUrl").and_then(Value::as_str), "/");
    match auth::check_login(st, user, password) {
        Login::BadPassword { captcha } => {
            refused(cx, Some("AUTHENTICATED_FAILED"));
            Reply::json(
                401,
                json!({ "captchaRequired": captcha, "message": BAD_PASSWORD }),
            )
        }
        Login::Denied => {
            refused(cx, Some("AUTHENTICATION_DENIED"));
            Reply::json(401, json!({ "captchaRequired": true, "message": CAPTCHA }))
        }
        Login::NoAccess => {
            refused(cx, Some("AUTHORISATION_FAILED"));
            message(NO_ACCESS_STATUS, NO_PERMISSION)
        }
        Login::Ok(u) if st.two_step_enrolled(&u) => {
            // The session the browser came with is replaced by one that is
            // not logged in; no reason header (the login is not over).
            end_request_sessions(st, req, cx);
            let sid = st.new_half_session(&u, remember, &target);
            cx.cookies
                .push(web::set_cookie(auth::session_cookie(st), &sid));
            message(412, TWO_STEP)
        }
        Login::Ok(u) => {
            auth::open_session(st, req, cx, &u, remember);
            st.note_auth(&u);
            cx.login_reason = Some("OK");
            Reply::json(200, json!({ "redirectUrl": target }))
        }
    }
}

/// Ends the session the request came with (and one `identify` just opened
/// from a remember-me cookie), dropping its queued cookie: the caller is
/// anonymous from here on.
fn end_request_sessions(st: &mut State, req: &Req, cx: &mut Cx) {
    if let Some(old) = req.cookie(auth::session_cookie(st)) {
        st.end_session(&old);
        st.end_half_session(&old);
    }
    if let Some(sid) = cx.session.take() {
        st.end_session(&sid);
    }
    cx.cookies.clear();
    cx.user = None;
    cx.access = false;
    cx.shown = None;
}

/// `POST /rest/tsv/…/authenticate/{totp-code,recovery-code}`: the second
/// step, on the half session's cookie.
fn code_step(st: &mut State, req: &Req, cx: &mut Cx, kind: CodeKind) -> Reply {
    let body = match json_request(req) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    // A code typed as a number is still a code.
    let code = match body.get("code") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let sid = req.cookie(auth::session_cookie(st));
    let Some((sid, half)) = sid.and_then(|sid| st.half_session(&sid).map(|h| (sid, h))) else {
        return message(401, NO_HALF_SESSION);
    };
    if !st.check_code(&half.user, kind, &code) {
        // No reason header: Seraph has not been asked yet. The half session
        // stays, so the right code still works afterwards.
        return message(401, INVALID_CODE);
    }
    st.end_half_session(&sid);
    // The app checks application access again as it makes the real session.
    if !st.has_access(&half.user) {
        refused(cx, Some("AUTHORISATION_FAILED"));
        return message(NO_ACCESS_STATUS, NO_PERMISSION);
    }
    auth::open_session(st, req, cx, &half.user, half.remember);
    st.reset_failed_logins(&half.user);
    st.note_auth(&half.user);
    cx.login_reason = Some("OK");
    Reply::json(200, json!({ "redirectUrl": half.target }))
}

/// The script login page ([`LoginStyle::Json`]). Its element ids are kept
/// stable for browser tests: `#username`, `#password`, `#remember-me`,
/// `#login-submit`, `#code`, `#code-submit`, `#login-error`.
///
/// It posts `{"username","password","rememberMe","targetUrl"}` to
/// `/rest/tsv/latest/authenticate` with `X-Atlassian-Token: no-check`; on
/// 200 it goes to the answer's `redirectUrl`; on 412 it shows the code field
/// and posts `{"code"}` to `…/authenticate/totp-code` (or, with "Use a
/// recovery code instead" ticked, `…/recovery-code`), then goes to
/// `redirectUrl` on 200; on 401/403 it shows the answer's `message`.
///
/// AND, whatever the status: if the answer's JSON has a `redirectUrl`, or the
/// answer is a redirect that `fetch` followed (`response.redirected`), the
/// page goes there. iumgate relies on this: a login that must wait for a
/// licence is answered `{"redirectUrl":"/iumgate/wait?to=…"}` (status 200 or
/// 503), and the page must follow it to the waiting room.
pub(crate) fn page(product: Product, req: &Req) -> Reply {
    let target = web::local_destination(req.q(destination_param(product)), "/");
    let title = match product {
        Product::Jira => "Log in - Jira",
        Product::Confluence => "Log In - Confluence",
        Product::Bitbucket => "Log in - Bitbucket",
    };
    Reply::html(
        200,
        title,
        &format!(
            "<div id=\"login-error\" class=\"aui-message error\" role=\"alert\" hidden></div>\n\
             <form id=\"login-form\" method=\"post\" data-target=\"{target}\">\n\
             <label for=\"username\">Username</label>\n\
             <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\">\n\
             <label for=\"password\">Password</label>\n\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\">\n\
             <label><input type=\"checkbox\" id=\"remember-me\" name=\"rememberMe\"> Remember me</label>\n\
             <button type=\"submit\" id=\"login-submit\">Log in</button>\n\
             </form>\n\
             <form id=\"code-form\" method=\"post\" hidden>\n\
             <label for=\"code\">Verification code</label>\n\
             <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\n\
             <label><input type=\"checkbox\" id=\"use-recovery\"> Use a recovery code instead</label>\n\
             <button type=\"submit\" id=\"code-submit\">Verify</button>\n\
             </form>\n\
             <script>\n{PAGE_SCRIPT}</script>",
            target = escape(&target),
        ),
    )
}

/// The page's script (see [`page`]). Plain ES5-ish, no dependencies.
const PAGE_SCRIPT: &str = r#"(function () {
  var AUTHENTICATE = '/rest/tsv/latest/authenticate';
  var loginForm = document.getElementById('login-form');
  var codeForm = document.getElementById('code-form');
  var error = document.getElementById('login-error');

  function showError(text) {
    error.textContent = text || 'Login failed.';
    error.hidden = false;
  }

  function post(url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Atlassian-Token': 'no-check' },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var json = null;
        try { json = JSON.parse(text); } catch (e) { json = null; }
        return { response: response, json: json };
      });
    });
  }

  // Whatever the status: an answer naming a redirectUrl, or a redirect that
  // fetch followed, is where the browser goes next. iumgate answers a login
  // that must wait for a licence {"redirectUrl":"/iumgate/wait?to=..."}
  // (200 or 503) and relies on this.
  function followed(answer) {
    if (answer.json && typeof answer.json.redirectUrl === 'string') {
      window.location.assign(answer.json.redirectUrl);
      return true;
    }
    if (answer.response.redirected) {
      window.location.assign(answer.response.url);
      return true;
    }
    return false;
  }

  function message(answer) {
    return answer.json && typeof answer.json.message === 'string' ? answer.json.message : null;
  }

  function unreachable() { showError('The server could not be reached.'); }

  loginForm.addEventListener('submit', function (event) {
    event.preventDefault();
    error.hidden = true;
    post(AUTHENTICATE, {
      username: document.getElementById('username').value,
      password: document.getElementById('password').value,
      rememberMe: document.getElementById('remember-me').checked,
      targetUrl: loginForm.getAttribute('data-target') || '/'
    }).then(function (answer) {
      if (followed(answer)) { return; }
      if (answer.response.status === 412) {
        loginForm.hidden = true;
        codeForm.hidden = false;
        document.getElementById('code').focus();
        return;
      }
      showError(message(answer));
    }, unreachable);
  });

  codeForm.addEventListener('submit', function (event) {
    event.preventDefault();
    error.hidden = true;
    var kind = document.getElementById('use-recovery').checked ? '/recovery-code' : '/totp-code';
    post(AUTHENTICATE + kind, {
      code: document.getElementById('code').value
    }).then(function (answer) {
      if (followed(answer)) { return; }
      showError(message(answer));
    }, unreachable);
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimConfig, SimTwoStep};
    use bytes::Bytes;
    use http::{HeaderMap, HeaderName, HeaderValue};

    fn state(product: Product) -> State {
        let mut cfg = SimConfig::demo(product);
        cfg.two_step
            .push(SimTwoStep::new("power2", "123456", &["r-1", "r-2"]));
        State::new(cfg)
    }

    fn req(method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Req {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Req::new(
            method,
            &path.parse().unwrap(),
            map,
            Bytes::from(body.to_string()),
        )
    }

    const JSON: (&str, &str) = ("content-type", "application/json");
    const XSRF: (&str, &str) = ("x-atlassian-token", "no-check");

    /// One request through identify → route → finish, as the server does.
    fn call(st: &mut State, r: &Req) -> (u16, Value, Vec<(&'static str, String)>) {
        let mut cx = auth::identify(st, r);
        let reply = route(st, r, &mut cx).expect("a platform login path");
        let reply = auth::finish(st, cx, reply);
        let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status.as_u16(), body, reply.headers)
    }

    fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn cookie(h: &[(&'static str, String)], name: &str) -> Option<String> {
        h.iter()
            .filter(|(k, _)| *k == "Set-Cookie")
            .filter_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap_or("").to_string())
            .find(|v| !v.is_empty())
    }

    fn login(st: &mut State, user: &str, pw: &str) -> (u16, Value, Vec<(&'static str, String)>) {
        let body = json!({ "username": user, "password": pw, "rememberMe": false, "targetUrl": "/browse/A-1" });
        call(
            st,
            &req(
                Method::POST,
                "/rest/tsv/latest/authenticate",
                &[JSON, XSRF],
                &body.to_string(),
            ),
        )
    }

    #[test]
    fn the_password_step_answers_200_401_403_and_412() {
        let mut st = state(Product::Jira);
        let (status, body, h) = login(&mut st, "power1", "demo");
        assert_eq!(status, 200);
        assert_eq!(body, json!({ "redirectUrl": "/browse/A-1" }));
        assert_eq!(header(&h, "X-Seraph-LoginReason"), Some("OK"));
        assert_eq!(header(&h, "X-AUSERNAME"), Some("power1"));
        let sid = cookie(&h, "JSESSIONID").unwrap();
        assert_eq!(st.session_user(&sid).as_deref(), Some("power1"));

        let (status, body, h) = login(&mut st, "power1", "nope");
        assert_eq!(status, 401);
        assert_eq!(body["captchaRequired"], json!(false));
        assert_eq!(
            header(&h, "X-Seraph-LoginReason"),
            Some("AUTHENTICATED_FAILED")
        );
        assert_eq!(st.failed_logins("power1"), 1);

        let (status, body, h) = login(&mut st, "casual01", "demo");
        assert_eq!(status, NO_ACCESS_STATUS);
        assert_eq!(body, json!({ "message": NO_PERMISSION }));
        assert_eq!(
            header(&h, "X-Seraph-LoginReason"),
            Some("AUTHORISATION_FAILED")
        );
        assert_eq!(header(&h, "X-AUSERNAME"), Some("anonymous"));

        let (status, body, h) = login(&mut st, "power2", "demo");
        assert_eq!(status, 412);
        assert_eq!(body, json!({ "message": TWO_STEP }));
        assert_eq!(header(&h, "X-Seraph-LoginReason"), None);
        assert_eq!(header(&h, "X-AUSERNAME"), Some("anonymous"));
        let half = cookie(&h, "JSESSIONID").unwrap();
        assert_eq!(st.session_user(&half), None);
        assert_eq!(
            st.half_session(&half).map(|h| h.user),
            Some("power2".into())
        );
    }

    #[test]
    fn a_captcha_is_due_after_three_failures_and_then_denies_the_right_password() {
        let mut st = state(Product::Confluence);
        for n in 1..=3 {
            let (status, body, _) = login(&mut st, "power1", "nope");
            assert_eq!(status, 401);
            assert_eq!(body["captchaRequired"], json!(n == 3), "failure {n}");
        }
        let (status, body, h) = login(&mut st, "power1", "demo");
        assert_eq!(status, 401);
        assert_eq!(body["captchaRequired"], json!(true));
        assert_eq!(
            header(&h, "X-Seraph-LoginReason"),
            Some("AUTHENTICATION_DENIED")
        );
        st.reset_failed_logins("power1");
        assert_eq!(login(&mut st, "power1", "demo").0, 200);
        // Unknown users have no count.
        for _ in 0..5 {
            let (_, body, _) = login(&mut st, "nobody", "x");
            assert_eq!(body["captchaRequired"], json!(false));
        }
    }

    #[test]
    fn requests_need_json_and_the_xsrf_header() {
        let mut st = state(Product::Bitbucket);
        let body = r#"{"username":"power1","password":"demo"}"#;
        let r = req(Method::POST, "/rest/tsv/1.0/authenticate", &[JSON], body);
        assert_eq!(call(&mut st, &r).0, 403);
        let form = ("content-type", "application/x-www-form-urlencoded");
        let r = req(
            Method::POST,
            "/rest/tsv/1.0/authenticate",
            &[form, XSRF],
            body,
        );
        assert_eq!(call(&mut st, &r).0, 415);
        let r = req(
            Method::POST,
            "/rest/tsv/1.0/authenticate",
            &[JSON, XSRF],
            "[",
        );
        assert_eq!(call(&mut st, &r).0, 400);
        let r = req(Method::GET, "/rest/tsv/1.0/authenticate", &[], "");
        assert_eq!(call(&mut st, &r).0, 405);
        let r = req(
            Method::POST,
            "/rest/tsv/1.0/authenticate",
            &[JSON, XSRF],
            body,
        );
        let (status, _, h) = call(&mut st, &r);
        assert_eq!(status, 200);
        assert!(cookie(&h, "BITBUCKETSESSIONID").is_some());
        assert!(st.last_auth("power1").is_some());
    }

    #[test]
    fn the_code_step_makes_a_real_session_from_the_half_one() {
        let mut st = state(Product::Jira);
        let (_, _, h) = login(&mut st, "power2", "demo");
        let half = cookie(&h, "JSESSIONID").unwrap();
        let jar = format!("JSESSIONID={half}");
        let code = |path: &str, c: &str| {
            req(
                Method::POST,
                path,
                &[JSON, XSRF, ("cookie", jar.as_str())],
                &json!({ "code": c }).to_string(),
            )
        };
        let (status, body, h) = call(
            &mut st,
            &code("/rest/tsv/latest/authenticate/totp-code", "000000"),
        );
        assert_eq!((status, body), (401, json!({ "message": INVALID_CODE })));
        assert_eq!(header(&h, "X-Seraph-LoginReason"), None);
        let (status, body, h) = call(
            &mut st,
            &code("/rest/tsv/1.0/authenticate/totp-code", "123456"),
        );
        assert_eq!(
            (status, body),
            (200, json!({ "redirectUrl": "/browse/A-1" }))
        );
        assert_eq!(header(&h, "X-Seraph-LoginReason"), Some("OK"));
        assert_eq!(header(&h, "X-AUSERNAME"), Some("power2"));
        let sid = cookie(&h, "JSESSIONID").unwrap();
        assert_ne!(sid, half);
        assert_eq!(st.session_user(&sid).as_deref(), Some("power2"));
        // The half session is spent.
        let (status, body, _) = call(
            &mut st,
            &code("/rest/tsv/latest/authenticate/totp-code", "123456"),
        );
        assert_eq!((status, body), (401, json!({ "message": NO_HALF_SESSION })));
    }

    #[test]
    fn recovery_codes_work_once_and_half_sessions_expire() {
        let mut st = state(Product::Jira);
        let half_of = |st: &mut State| {
            let (_, _, h) = login(st, "power2", "demo");
            format!("JSESSIONID={}", cookie(&h, "JSESSIONID").unwrap())
        };
        let recover = |jar: &str, c: &str| {
            req(
                Method::POST,
                "/rest/tsv/latest/authenticate/recovery-code",
                &[JSON, XSRF, ("cookie", jar)],
                &json!({ "code": c }).to_string(),
            )
        };
        let jar = half_of(&mut st);
        assert_eq!(call(&mut st, &recover(&jar, "r-1")).0, 200);
        assert_eq!(st.recovery_codes("power2"), vec!["r-2".to_string()]);
        let jar = half_of(&mut st);
        assert_eq!(call(&mut st, &recover(&jar, "r-1")).0, 401);
        // The TOTP code is not a recovery code.
        assert_eq!(call(&mut st, &recover(&jar, "123456")).0, 401);
        st.advance_clock(crate::state::HALF_SESSION_LIFETIME);
        let (status, body, _) = call(&mut st, &recover(&jar, "r-2"));
        assert_eq!((status, body), (401, json!({ "message": NO_HALF_SESSION })));
        assert_eq!(st.recovery_codes("power2"), vec!["r-2".to_string()]);
    }

    #[test]
    fn access_is_checked_again_at_the_code_step() {
        let mut st = state(Product::Jira);
        let (_, _, h) = login(&mut st, "power2", "demo");
        let jar = format!("JSESSIONID={}", cookie(&h, "JSESSIONID").unwrap());
        st.force_member("power2", "jira-software-users", false);
        let r = req(
            Method::POST,
            "/rest/tsv/latest/authenticate/totp-code",
            &[JSON, XSRF, ("cookie", jar.as_str())],
            r#"{"code":123456}"#,
        );
        let (status, body, h) = call(&mut st, &r);
        assert_eq!(
            (status, body),
            (NO_ACCESS_STATUS, json!({ "message": NO_PERMISSION }))
        );
        assert_eq!(
            header(&h, "X-Seraph-LoginReason"),
            Some("AUTHORISATION_FAILED")
        );
        assert!(cookie(&h, "JSESSIONID").is_none());
    }

    #[test]
    fn login_options_and_the_page_follow_the_style() {
        let mut st = state(Product::Confluence);
        let r = req(Method::GET, "/rest/authconfig/1.0/login-options", &[], "");
        let (status, body, _) = call(&mut st, &r);
        assert_eq!(
            (status, body),
            (200, json!({ "results": [{ "type": "LOGIN_FORM" }] }))
        );
        let r = req(
            Method::GET,
            "/login.action?os_destination=/display/X",
            &[],
            "",
        );
        let mut cx = auth::identify(&mut st, &r);
        assert!(
            route(&mut st, &r, &mut cx).is_none(),
            "the form page is the product's"
        );
        st.login_style = LoginStyle::Json;
        let reply = route(&mut st, &r, &mut cx).unwrap();
        let html = String::from_utf8(reply.body.to_vec()).unwrap();
        for id in [
            "username",
            "password",
            "login-submit",
            "code",
            "code-submit",
            "login-error",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "#{id}");
        }
        assert!(html.contains("data-target=\"/display/X\""));
        assert!(html.contains("response.redirected") && html.contains("redirectUrl"));
    }
}
