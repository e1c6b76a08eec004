//! A small OpenID Connect provider for tests: the IdP that Atlassian's OIDC
//! SSO and iumgate's relying party (`iumgate::sso::oidc`) both talk to.
//!
//! [`OidcIdp::start`] serves it on its own `127.0.0.1:0` listener (plain
//! HTTP/1.1), apart from the product simulator:
//!
//! - `GET /.well-known/openid-configuration`: the discovery document;
//! - `GET /authorize`: the authorization-code request (`response_type=code`,
//!   PKCE `S256` required). The user is the `login_hint` parameter, else the
//!   browser's IdP session (cookie `sim_idp_sid`, made by the sign-in page),
//!   else [`OidcIdp::set_user`]. With none of them, `prompt=none` redirects
//!   with `error=login_required` and any other request shows the IdP's
//!   sign-in page (user name and the password [`OIDC_PASSWORD`]), which
//!   `POST /login`s, opens the IdP session and goes on with the request —
//!   so a second authorization (the app's own, after iumgate's) is silent,
//!   as at a real IdP. Otherwise `302` to `redirect_uri?code=…&state=…`;
//! - `POST /token`: `grant_type=authorization_code`, the client
//!   authenticated by `client_secret_basic` or `client_secret_post`, the
//!   `code_verifier` checked against the `code_challenge`, `redirect_uri`
//!   as in the request; codes are single-use and live 60 seconds. Returns
//!   an RS256 `id_token` (`iss`, `sub`, `aud`, `exp`, `iat`, `nonce`,
//!   `preferred_username`, `auth_time`);
//! - `GET /jwks`: the RSA public keys, each with its `kid`.
//!
//! Keys are RSA 2048 from the `rsa` crate; tokens are signed by
//! `jsonwebtoken` (ring). [`OidcIdp::rotate_key`] publishes a new key and
//! signs with it from then on. For tests of the verifier,
//! [`OidcIdp::claims`] gives valid claims to change and
//! [`OidcIdp::sign`] / [`OidcIdp::forge`] sign them with the IdP's key or
//! a foreign one under the IdP's `kid`.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::sha2::{Digest, Sha256};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The client the IdP knows, as iumgate's `[sso.oidc] client_id`.
pub const OIDC_CLIENT_ID: &str = "iumgate";
/// Its secret.
pub const OIDC_CLIENT_SECRET: &str = "sim-oidc-secret";
/// The password every user types on the IdP's sign-in page.
pub const OIDC_PASSWORD: &str = "demo";
/// The IdP's browser session cookie.
const SID_COOKIE: &str = "sim_idp_sid";
/// At most this many IdP browser sessions (the oldest go first).
const MAX_SIDS: usize = 10_000;

/// What `/token` gets wrong on purpose, for tests of a relying party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// Signed with a key the IdP never published (under its `kid`).
    ForeignKey,
    /// `aud` names another client.
    WrongAudience,
    /// Expired an hour ago.
    Expired,
    /// Another `nonce` than the authorization request's.
    WrongNonce,
}

/// The clock the IdP issues tokens on (Unix seconds).
pub type IdpClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How long an authorization code can be redeemed.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long an ID token is valid.
const TOKEN_LIFETIME_SECS: i64 = 300;

/// One signing key.
struct Key {
    kid: String,
    encoding: EncodingKey,
    /// Its public half as a JWK.
    jwk: Value,
}

impl Key {
    fn generate(kid: &str) -> Result<Key, String> {
        let mut rng = rsa::rand_core::OsRng;
        let private = RsaPrivateKey::new(&mut rng, 2048).map_err(|e| format!("key: {e}"))?;
        let der = private
            .to_pkcs1_der()
            .map_err(|e| format!("key encoding: {e}"))?;
        let public = private.to_public_key();
        Ok(Key {
            kid: kid.to_string(),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": kid,
                "n": B64URL.encode(public.n().to_bytes_be()),
                "e": B64URL.encode(public.e().to_bytes_be()),
            }),
        })
    }
}

/// An issued, not yet redeemed authorization code.
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    user: String,
    issued: Instant,
}

struct State {
    issuer: String,
    keys: Vec<Key>,
    /// A key that is never published: [`OidcIdp::forge`] signs with it.
    foreign: Key,
    user: Option<String>,
    /// Browser sessions at the IdP: `sim_idp_sid` → user.
    sids: HashMap<String, String>,
    codes: HashMap<String, Grant>,
    fault: Option<TokenFault>,
    clock: Option<IdpClock>,
    jwks_fetches: usize,
    token_requests: usize,
    tokens_issued: usize,
}

/// The claims of an ID token the IdP issues; change them, then
/// [`OidcIdp::sign`] or [`OidcIdp::forge`].
#[derive(Debug, Clone)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub azp: Option<String>,
    /// Unix seconds.
    pub exp: i64,
    /// Unix seconds.
    pub iat: i64,
    pub nonce: Option<String>,
    pub preferred_username: Option<String>,
    /// Other claims, added as they are (e.g. `email`).
    pub extra: serde_json::Map<String, Value>,
}

impl IdTokenClaims {
    fn to_json(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("iss".into(), json!(self.iss));
        m.insert("sub".into(), json!(self.sub));
        m.insert(
            "aud".into(),
            if self.aud.len() == 1 {
                json!(self.aud[0])
            } else {
                json!(self.aud)
            },
        );
        if let Some(azp) = &self.azp {
            m.insert("azp".into(), json!(azp));
        }
        m.insert("exp".into(), json!(self.exp));
        m.insert("iat".into(), json!(self.iat));
        m.insert("auth_time".into(), json!(self.iat));
        if let Some(nonce) = &self.nonce {
            m.insert("nonce".into(), json!(nonce));
        }
        if let Some(u) = &self.preferred_username {
            m.insert("preferred_username".into(), json!(u));
        }
        Value::Object(m)
    }
}

/// The running IdP; dropping it stops the server.
pub struct OidcIdp {
    issuer: String,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl Drop for OidcIdp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for OidcIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcIdp")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl OidcIdp {
    /// Generates a key and serves the IdP on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<OidcIdp> {
        let (key, foreign) = tokio::task::spawn_blocking(|| {
            Ok::<_, String>((Key::generate("sim-oidc-1")?, Key::generate("sim-oidc-1")?))
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            issuer: issuer.clone(),
            keys: vec![key],
            foreign,
            user: None,
            sids: HashMap::new(),
            codes: HashMap::new(),
            fault: None,
            clock: None,
            jwks_fetches: 0,
            token_requests: 0,
            tokens_issued: 0,
        }));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), stop.clone()));
        Ok(OidcIdp {
            issuer,
            state,
            stop,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:PORT`, as the discovery document names it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn client_id(&self) -> &'static str {
        OIDC_CLIENT_ID
    }

    pub fn client_secret(&self) -> &'static str {
        OIDC_CLIENT_SECRET
    }

    /// Who is logged in at the IdP (used when `/authorize` has no
    /// `login_hint`).
    pub fn set_user(&self, user: Option<&str>) {
        self.lock().user = user.map(str::to_string);
    }

    /// Makes `/token` get its answer wrong on purpose (`None`: right).
    pub fn set_token_fault(&self, fault: Option<TokenFault>) {
        self.lock().fault = fault;
    }

    /// Issues tokens on `clock` (Unix seconds) instead of real time, e.g. a
    /// test's manual clock that the relying party verifies with.
    pub fn set_clock(&self, clock: Option<IdpClock>) {
        self.lock().clock = clock;
    }

    /// The app's side of the code flow (Atlassian's OIDC SSO redeems the
    /// code itself): a handle the simulated apps redeem codes with, in
    /// process, by the same rules as `POST /token`.
    pub fn redeemer(&self) -> Redeemer {
        Redeemer {
            state: self.state.clone(),
        }
    }

    /// `GET /jwks` served so far.
    pub fn jwks_fetches(&self) -> usize {
        self.lock().jwks_fetches
    }

    /// `POST /token` received so far.
    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// ID tokens issued by `/token`.
    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    /// Publishes a new key (the old one stays published) and signs with it
    /// from now on. Its `kid`.
    pub async fn rotate_key(&self) -> std::io::Result<String> {
        let n = self.lock().keys.len() + 1;
        let kid = format!("sim-oidc-{n}");
        let k = kid.clone();
        let key = tokio::task::spawn_blocking(move || Key::generate(&k))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        self.lock().keys.push(key);
        Ok(kid)
    }

    /// Valid claims for `user` (`sub` is `sub-<user>`), issued now.
    pub fn claims(&self, user: &str, nonce: Option<&str>) -> IdTokenClaims {
        let now = self.lock().now();
        IdTokenClaims {
            iss: self.issuer.clone(),
            sub: format!("sub-{user}"),
            aud: vec![OIDC_CLIENT_ID.to_string()],
            azp: None,
            exp: now + TOKEN_LIFETIME_SECS,
            iat: now,
            nonce: nonce.map(str::to_string),
            preferred_username: Some(user.to_string()),
            extra: serde_json::Map::new(),
        }
    }

    /// `claims` signed RS256 with the current key, `kid` in the header.
    pub fn sign(&self, claims: &IdTokenClaims) -> String {
        let st = self.lock();
        let key = st.keys.last().expect("the IdP has a key");
        sign_with(key, &key.kid, claims)
    }

    /// `claims` signed with a key the IdP never published, under the
    /// current key's `kid`: a bad signature.
    pub fn forge(&self, claims: &IdTokenClaims) -> String {
        let st = self.lock();
        let kid = &st.keys.last().expect("the IdP has a key").kid;
        sign_with(&st.foreign, kid, claims)
    }
}

impl State {
    fn now(&self) -> i64 {
        match &self.clock {
            Some(c) => c(),
            None => jiff::Timestamp::now().as_second(),
        }
    }
}

/// Redeems authorization codes in process (see [`OidcIdp::redeemer`]).
#[derive(Clone)]
pub struct Redeemer {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Redeemer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redeemer").finish_non_exhaustive()
    }
}

impl Redeemer {
    /// The issuer (`http://127.0.0.1:PORT`).
    pub fn issuer(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issuer
            .clone()
    }

    /// The user and nonce of `code`, redeemed once, as `POST /token` would
    /// for client [`OIDC_CLIENT_ID`]; `Err` the OAuth error code.
    pub fn redeem(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<(String, Option<String>), &'static str> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.token_requests += 1;
        let grant = take_grant(&mut st, OIDC_CLIENT_ID, code, redirect_uri, verifier)
            .map_err(|(_, error, _)| error)?;
        Ok((grant.user, grant.nonce))
    }
}

/// The code's grant, removed (single use), if `client_id`, `redirect_uri`
/// and the PKCE `verifier` match and it is fresh; else the OAuth error.
fn take_grant(
    st: &mut State,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Grant, (u16, &'static str, &'static str)> {
    // Single-use: the code is gone whatever happens next.
    let Some(grant) = st.codes.remove(code) else {
        return Err((400, "invalid_grant", "unknown or used code"));
    };
    if grant.issued.elapsed() > CODE_LIFETIME {
        return Err((400, "invalid_grant", "code expired"));
    }
    if grant.client_id != client_id || grant.redirect_uri != redirect_uri {
        return Err((400, "invalid_grant", "redirect_uri or client mismatch"));
    }
    let computed = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    if verifier.len() < 43 || verifier.len() > 128 || computed != grant.challenge {
        return Err((400, "invalid_grant", "PKCE verification failed"));
    }
    Ok(grant)
}

fn sign_with(key: &Key, kid: &str, claims: &IdTokenClaims) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims.to_json(), &key.encoding)
        .expect("RS256 signing with a valid key")
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

type Resp = hyper::Response<Full<Bytes>>;

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_str(content_type)
            .unwrap_or(http::HeaderValue::from_static("text/plain")),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_reply(status: u16, v: &Value) -> Resp {
    reply(status, "application/json", v.to_string())
}

fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
    json_reply(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: hyper::Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(413, "text/plain", "body too large\n")),
    };
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let query: HashMap<String, String> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let r = match (parts.method.as_str(), parts.uri.path()) {
        ("GET", "/.well-known/openid-configuration") => discovery(&st),
        ("GET", "/jwks") => {
            st.jwks_fetches += 1;
            let keys: Vec<Value> = st.keys.iter().map(|k| k.jwk.clone()).collect();
            json_reply(200, &json!({ "keys": keys }))
        }
        ("GET", "/authorize") => {
            let sid_user =
                cookie(&parts.headers, SID_COOKIE).and_then(|v| st.sids.get(&v).cloned());
            authorize(&mut st, &query, sid_user, parts.uri.query().unwrap_or(""))
        }
        ("POST", "/login") => sign_in(&mut st, &body),
        ("POST", "/token") => {
            st.token_requests += 1;
            token(&mut st, &parts.headers, &body)
        }
        _ => reply(404, "text/plain", "not found\n"),
    };
    Ok(r)
}

fn discovery(st: &State) -> Resp {
    let i = &st.issuer;
    json_reply(
        200,
        &json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "jwks_uri": format!("{i}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "preferred_username"],
        }),
    )
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    B64URL.encode(bytes)
}

/// The value of cookie `name`, if the request has it.
fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The IdP's sign-in page; `query` is the authorization request to go on
/// with.
fn sign_in_page(status: u16, query: &str, note: &str) -> Resp {
    reply(
        status,
        "text/html; charset=utf-8",
        format!(
            "<!DOCTYPE html><html><head><title>Sim IdP - Sign in</title></head><body>\
             <h1>Sim IdP</h1><p id=\"note\">{}</p>\
             <form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"q\" value=\"{}\">\
             <label>User name <input id=\"idp-username\" name=\"username\"></label>\
             <label>Password <input id=\"idp-password\" name=\"password\" type=\"password\"></label>\
             <button id=\"idp-submit\" type=\"submit\">Sign in</button></form></body></html>",
            html_escape(note),
            html_escape(query)
        ),
    )
}

/// `POST /login` from the sign-in page: opens the IdP session and goes on
/// with the authorization request.
fn sign_in(st: &mut State, body: &[u8]) -> Resp {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let user = get("username").trim().to_ascii_lowercase();
    if user.is_empty() || get("password") != OIDC_PASSWORD {
        return sign_in_page(401, get("q"), "Wrong user name or password.");
    }
    if st.sids.len() >= MAX_SIDS {
        st.sids.clear();
    }
    let sid = random_token();
    st.sids.insert(sid.clone(), user);
    let mut r = reply(302, "text/plain", "");
    let location = format!("/authorize?{}", get("q"));
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&format!(
        "{SID_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
    )) {
        r.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    r
}

fn authorize(
    st: &mut State,
    q: &HashMap<String, String>,
    sid_user: Option<String>,
    raw_query: &str,
) -> Resp {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    // Errors before the redirect URI and client are known go to the user,
    // never to an unchecked redirect (RFC 6749 §4.1.2.1).
    if get("client_id") != OIDC_CLIENT_ID {
        return reply(400, "text/plain", "unknown client_id\n");
    }
    let redirect_uri = get("redirect_uri");
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return reply(400, "text/plain", "bad redirect_uri\n");
    }
    let state = q.get("state").cloned();
    let redirect = |params: &[(&str, &str)]| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            ser.append_pair(k, v);
        }
        if let Some(s) = &state {
            ser.append_pair("state", s);
        }
        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
        let location = format!("{redirect_uri}{sep}{}", ser.finish());
        let mut r = reply(302, "text/plain", "");
        if let Ok(v) = http::HeaderValue::from_str(&location) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        r
    };
    if get("response_type") != "code" {
        return redirect(&[("error", "unsupported_response_type")]);
    }
    if !get("scope").split(' ').any(|s| s == "openid") {
        return redirect(&[("error", "invalid_scope")]);
    }
    let challenge = get("code_challenge");
    if get("code_challenge_method") != "S256" || challenge.len() != 43 {
        return redirect(&[
            ("error", "invalid_request"),
            ("error_description", "PKCE S256 required"),
        ]);
    }
    let user = match q.get("login_hint").filter(|u| !u.is_empty()) {
        Some(u) => u.clone(),
        None => match sid_user.or_else(|| st.user.clone()) {
            Some(u) => u,
            None if get("prompt") == "none" => return redirect(&[("error", "login_required")]),
            None => return sign_in_page(200, raw_query, "Sign in to continue."),
        },
    };
    let code = random_token();
    st.codes.insert(
        code.clone(),
        Grant {
            client_id: OIDC_CLIENT_ID.to_string(),
            redirect_uri: redirect_uri.to_string(),
            challenge: challenge.to_string(),
            nonce: q.get("nonce").cloned(),
            user,
            issued: Instant::now(),
        },
    );
    redirect(&[("code", &code)])
}

/// `client_secret_basic`: `Basic base64(urlenc(id):urlenc(secret))`.
fn basic_credentials(headers: &http::HeaderMap) -> Option<(String, String)> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = String::from_utf8(B64.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

fn token(st: &mut State, headers: &http::HeaderMap, body: &[u8]) -> Resp {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let basic = basic_credentials(headers);
    let posted = form
        .get("client_secret")
        .map(|s| (get("client_id"), s.as_str()));
    let (client_id, secret) = match (&basic, posted) {
        (Some((id, s)), None) => (id.as_str(), s.as_str()),
        (None, Some((id, s))) => (id, s),
        (Some(_), Some(_)) => {
            return oauth_error(
                400,
                "invalid_request",
                "more than one client authentication",
            )
        }
        (None, None) => return oauth_error(401, "invalid_client", "no client authentication"),
    };
    if client_id != OIDC_CLIENT_ID || secret != OIDC_CLIENT_SECRET {
        return oauth_error(401, "invalid_client", "client authentication failed");
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(400, "unsupported_grant_type", "authorization_code only");
    }
    let grant = match take_grant(
        st,
        client_id,
        get("code"),
        get("redirect_uri"),
        get("code_verifier"),
    ) {
        Ok(g) => g,
        Err((status, error, description)) => return oauth_error(status, error, description),
    };
    let now = st.now();
    let mut claims = IdTokenClaims {
        iss: st.issuer.clone(),
        sub: format!("sub-{}", grant.user),
        aud: vec![client_id.to_string()],
        azp: None,
        exp: now + TOKEN_LIFETIME_SECS,
        iat: now,
        nonce: grant.nonce,
        preferred_username: Some(grant.user),
        extra: serde_json::Map::new(),
    };
    match st.fault {
        Some(TokenFault::WrongAudience) => claims.aud = vec!["another-client".into()],
        Some(TokenFault::Expired) => {
            claims.iat = now - 7200;
            claims.exp = now - 3600;
        }
        Some(TokenFault::WrongNonce) => claims.nonce = Some("not-the-nonce".into()),
        Some(TokenFault::ForeignKey) | None => {}
    }
    let key = st.keys.last().expect("the IdP has a key");
    let id_token = if st.fault == Some(TokenFault::ForeignKey) {
        sign_with(&st.foreign, &key.kid, &claims)
    } else {
        sign_with(key, &key.kid, &claims)
    };
    st.tokens_issued += 1;
    json_reply(
        200,
        &json!({
            "access_token": random_token(),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "id_token": id_token,
        }),
    )
}
