//! OpenID Connect relying party: iumgate's own authorization-code flow at the
//! IdP that Atlassian's OIDC SSO uses, so that it learns who is logging in
//! before the app's `/plugins/servlet/oidc/callback` (which names nobody:
//! the app redeems the code itself).
//!
//! [`Provider::discover`] reads the issuer's discovery document and JWKS;
//! [`Provider::start`] makes the authorization URL with `state`, `nonce` and
//! PKCE (`S256`) and the [`PendingAuth`] to keep until the callback;
//! [`Provider::finish`] checks `state`, redeems the code with the PKCE
//! verifier and verifies the ID token ([`Provider::verify_id_token`]):
//! RS256 signature against the JWKS, `iss`, `aud` (and `azp`), `exp` and
//! `iat` with clock skew, `nonce`; the user is the configured claim
//! (`preferred_username` by default).
//!
//! # Libraries, and why
//!
//! - **`jsonwebtoken` 9** (Keats; the most used JWT crate) for the JWS:
//!   signature verification with `ring` (already in the tree through
//!   rustls), JWK parsing (`jwk::Jwk`, `DecodingKey::from_jwk`), `iss` and
//!   `aud` checks. Built without default features (no PEM parsing needed).
//!   Version 9.3 needs Rust 1.73; 10 and later need 1.88 and make the
//!   crypto backend a choice (aws-lc-rs or RustCrypto).
//! - Discovery, the authorization URL, PKCE and the token request are
//!   written here over the existing `reqwest` 0.12 (rustls): a few plain
//!   HTTP and JSON steps. PKCE's S256 is `ring`'s SHA-256 plus `base64`;
//!   `state`, `nonce` and the verifier are 32 random bytes (`rand`).
//!   No cryptography is written here.
//!
//! Considered and not taken: **`openidconnect`** (ramosbugs), the complete
//! relying party. Its current 4.1 needs Rust 1.88 (this workspace is on
//! 1.85); 4.0.1 (Rust 1.65) would mean pinning an old release, and it
//! brings `oauth2`, `chrono`, `serde_with` and the RustCrypto RSA, ECDSA
//! and Ed25519 stacks beside ring — much more than one RS256 code flow
//! needs. It does fit otherwise (reqwest 0.12 with rustls, no OpenSSL);
//! worth revisiting when the workspace moves to 1.88.
//!
//! # Secrets
//!
//! The client secret, codes, verifiers and tokens are never logged or
//! shown by `Debug`; errors name the step and the IdP's `error` code, never
//! a token.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use jiff::Timestamp;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Each request to the IdP (discovery, JWKS, token) must be answered in
/// this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest IdP answer read.
const MAX_RESPONSE: usize = 256 * 1024;
/// Default clock skew allowed on `exp` and `iat`.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
/// Default least time between two JWKS fetches caused by unknown `kid`s
/// (a forged token with a random `kid` must not make iumgate hammer the
/// IdP).
pub const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

/// Which step failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("OIDC discovery: {0}")]
    Discovery(String),
    #[error("OIDC JWKS: {0}")]
    Jwks(String),
    /// The callback's `state` is not the one this flow started with.
    #[error("OIDC callback: state does not match")]
    State,
    /// The IdP refused the code (its `error` code), or the exchange failed.
    #[error("OIDC token exchange: {0}")]
    Token(String),
    #[error("OIDC ID token: {0}")]
    IdToken(#[from] IdTokenError),
}

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("algorithm is not RS256")]
    Algorithm,
    #[error("no key in the JWKS for its kid")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("issuer is not the configured one")]
    Issuer,
    #[error("audience does not include the client")]
    Audience,
    #[error("azp is not the client")]
    AuthorizedParty,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("nonce does not match")]
    Nonce,
    #[error("claim {0} missing or not a string")]
    Claim(String),
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` (the default).
    Basic,
    /// `client_secret_post`.
    Post,
}

/// What the relying party keeps between [`Provider::start`] and
/// [`Provider::finish`] (server side, keyed by `state`).
#[derive(Clone)]
pub struct PendingAuth {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl std::fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuth").finish_non_exhaustive()
    }
}

/// Whom the IdP vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `username_claim`'s value.
    pub username: String,
    /// `sub`.
    pub subject: String,
    /// The ID token's `exp`.
    pub expires: Timestamp,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

struct Keys {
    keys: Vec<(Option<String>, DecodingKey)>,
    fetched: Instant,
}

/// A configured OpenID provider.
pub struct Provider {
    issuer: String,
    client_id: String,
    client_secret: Zeroizing<String>,
    authorization_endpoint: Url,
    token_endpoint: Url,
    jwks_uri: Url,
    client_auth: ClientAuth,
    username_claim: String,
    scopes: String,
    skew: Duration,
    jwks_min_refresh: Duration,
    http: reqwest::Client,
    keys: RwLock<Arc<Keys>>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("username_claim", &self.username_claim)
            .finish_non_exhaustive()
    }
}

/// `https`, or `http` to a loopback host (tests, a local IdP).
fn endpoint(s: &str, what: &str) -> Result<Url, OidcError> {
    let url = Url::parse(s).map_err(|e| OidcError::Discovery(format!("{what}: {e}")))?;
    let loopback = matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
    );
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(OidcError::Discovery(format!(
            "{what} must be https: {}",
            url.as_str()
        ))),
    }
}

/// Reads at most [`MAX_RESPONSE`] bytes of `resp`.
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_RESPONSE {
            return Err("answer too large".into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn get_json(http: &reqwest::Client, url: &Url) -> Result<Value, String> {
    let resp = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let body = tokio::time::timeout(REQUEST_TIMEOUT, read_capped(resp))
        .await
        .map_err(|_| "timed out".to_string())??;
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

fn random_b64() -> String {
    let bytes: [u8; 32] = rand::random();
    B64URL.encode(bytes)
}

/// The client iumgate talks to an IdP with (discovery, keys, tokens):
/// rustls, redirects never followed (a document must be where it is asked
/// for). Each call is bounded by [`REQUEST_TIMEOUT`] where it is made.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .use_rustls_tls()
        .build()
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    B64URL.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// The RSA signing keys of a JWKS; keys of other types or uses, and keys
/// that do not parse, are left out.
fn parse_jwks(v: &Value) -> Result<Vec<(Option<String>, DecodingKey)>, String> {
    let list = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut keys = Vec::new();
    for k in list {
        if k.get("kty").and_then(Value::as_str) != Some("RSA") {
            continue;
        }
        if k.get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        if k.get("alg")
            .and_then(Value::as_str)
            .is_some_and(|a| a != "RS256")
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.push((jwk.common.key_id.clone(), key));
        }
    }
    Ok(keys)
}

fn claim_str<'a>(claims: &'a Value, name: &str) -> Result<&'a str, IdTokenError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| IdTokenError::Claim(name.to_string()))
}

fn claim_secs(claims: &Value, name: &str) -> Result<i64, IdTokenError> {
    let v = claims
        .get(name)
        .ok_or_else(|| IdTokenError::Claim(name.to_string()))?;
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .ok_or_else(|| IdTokenError::Claim(name.to_string()))
}

impl Provider {
    /// Reads `issuer/.well-known/openid-configuration` (whose `issuer` must
    /// be exactly `issuer`) and the JWKS. Every request is bounded by
    /// [`REQUEST_TIMEOUT`]. `http` should not follow redirects to other
    /// hosts blindly; iumgate's own client is fine.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        http: reqwest::Client,
    ) -> Result<Provider, OidcError> {
        let base = issuer.trim_end_matches('/');
        let url = endpoint(
            &format!("{base}/.well-known/openid-configuration"),
            "issuer",
        )?;
        let doc = get_json(&http, &url).await.map_err(OidcError::Discovery)?;
        let doc: Discovery =
            serde_json::from_value(doc).map_err(|e| OidcError::Discovery(e.to_string()))?;
        if doc.issuer != issuer {
            return Err(OidcError::Discovery(format!(
                "the document's issuer {:?} is not the configured {issuer:?}",
                doc.issuer
            )));
        }
        if let Some(algs) = &doc.id_token_signing_alg_values_supported {
            if !algs.iter().any(|a| a == "RS256") {
                return Err(OidcError::Discovery("the IdP does not sign RS256".into()));
            }
        }
        if let Some(methods) = &doc.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(OidcError::Discovery("the IdP has no PKCE S256".into()));
            }
        }
        let client_auth = match &doc.token_endpoint_auth_methods_supported {
            None => ClientAuth::Basic,
            Some(m) if m.iter().any(|m| m == "client_secret_basic") => ClientAuth::Basic,
            Some(m) if m.iter().any(|m| m == "client_secret_post") => ClientAuth::Post,
            Some(_) => {
                return Err(OidcError::Discovery(
                    "the token endpoint takes neither client_secret_basic nor _post".into(),
                ))
            }
        };
        let jwks_uri = endpoint(&doc.jwks_uri, "jwks_uri")?;
        let jwks = get_json(&http, &jwks_uri).await.map_err(OidcError::Jwks)?;
        let keys = parse_jwks(&jwks).map_err(OidcError::Jwks)?;
        Ok(Provider {
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            client_secret: Zeroizing::new(client_secret.to_string()),
            authorization_endpoint: endpoint(
                &doc.authorization_endpoint,
                "authorization_endpoint",
            )?,
            token_endpoint: endpoint(&doc.token_endpoint, "token_endpoint")?,
            jwks_uri,
            client_auth,
            username_claim: "preferred_username".to_string(),
            scopes: "openid profile".to_string(),
            skew: DEFAULT_SKEW,
            jwks_min_refresh: DEFAULT_JWKS_MIN_REFRESH,
            http,
            keys: RwLock::new(Arc::new(Keys {
                keys,
                fetched: Instant::now(),
            })),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The claim that names the user (`preferred_username` by default).
    pub fn with_username_claim(mut self, claim: &str) -> Provider {
        self.username_claim = claim.to_string();
        self
    }

    /// Clock skew allowed on `exp` and `iat`.
    pub fn with_skew(mut self, skew: Duration) -> Provider {
        self.skew = skew;
        self
    }

    /// Least time between JWKS fetches for unknown `kid`s.
    pub fn with_jwks_min_refresh(mut self, d: Duration) -> Provider {
        self.jwks_min_refresh = d;
        self
    }

    /// Overrides the client authentication chosen from discovery.
    pub fn with_client_auth(mut self, auth: ClientAuth) -> Provider {
        self.client_auth = auth;
        self
    }

    /// The scopes asked for (`openid profile` by default; `openid` is
    /// always included).
    pub fn with_scopes(mut self, scopes: &str) -> Provider {
        let mut s: Vec<&str> = scopes.split_whitespace().collect();
        if !s.contains(&"openid") {
            s.insert(0, "openid");
        }
        self.scopes = s.join(" ");
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// The URL to send the browser to, and what to keep for the callback.
    pub fn start(&self, redirect_uri: &str) -> (Url, PendingAuth) {
        let pending = PendingAuth {
            state: random_b64(),
            nonce: random_b64(),
            pkce_verifier: random_b64(),
        };
        let mut url = self.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &pkce_challenge(&pending.pkce_verifier))
            .append_pair("code_challenge_method", "S256");
        (url, pending)
    }

    /// The callback: `state` (as the IdP sent it back) must be `pending`'s;
    /// then the code is redeemed with the PKCE verifier and the ID token
    /// verified.
    pub async fn finish(
        &self,
        code: &str,
        state: &str,
        pending: &PendingAuth,
        redirect_uri: &str,
    ) -> Result<Verified, OidcError> {
        self.finish_at(code, state, pending, redirect_uri, Timestamp::now())
            .await
    }

    /// [`Provider::finish`] with the ID token's times checked at `now`.
    pub async fn finish_at(
        &self,
        code: &str,
        state: &str,
        pending: &PendingAuth,
        redirect_uri: &str,
        now: Timestamp,
    ) -> Result<Verified, OidcError> {
        if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
            return Err(OidcError::State);
        }
        let id_token = self
            .exchange(code, &pending.pkce_verifier, redirect_uri)
            .await?;
        self.verify_id_token_at(&id_token, &pending.nonce, now)
            .await
    }

    /// The token request; the raw ID token.
    async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Zeroizing<String>, OidcError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut req = self
            .http
            .post(self.token_endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .timeout(REQUEST_TIMEOUT);
        match self.client_auth {
            ClientAuth::Basic => {
                // RFC 6749 §2.3.1: both parts form-urlencoded first.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let creds = Zeroizing::new(format!(
                    "{}:{}",
                    enc(&self.client_id),
                    enc(&self.client_secret)
                ));
                let mut value = reqwest::header::HeaderValue::from_str(&format!(
                    "Basic {}",
                    B64.encode(creds.as_bytes())
                ))
                .map_err(|_| OidcError::Token("client credentials not a header value".into()))?;
                value.set_sensitive(true);
                req = req.header(reqwest::header::AUTHORIZATION, value);
            }
            ClientAuth::Post => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", &self.client_secret));
            }
        }
        // (The serializer is not `Send`: it is gone before the first await.)
        let body = Zeroizing::new(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        );
        let resp = req
            .body(body.as_bytes().to_vec())
            .send()
            .await
            .map_err(|e| OidcError::Token(e.without_url().to_string()))?;
        let status = resp.status();
        let bytes = tokio::time::timeout(REQUEST_TIMEOUT, read_capped(resp))
            .await
            .map_err(|_| OidcError::Token("timed out".into()))?
            .map_err(OidcError::Token)?;
        let bytes = Zeroizing::new(bytes);
        let json: Value = serde_json::from_slice(&bytes)
            .map_err(|_| OidcError::Token(format!("HTTP {status}, answer not JSON")))?;
        if !status.is_success() {
            // Only the IdP's error code: its description might echo input.
            let error = json
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error code");
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            return Err(OidcError::Token(format!("HTTP {status}: {error}")));
        }
        json.get("id_token")
            .and_then(Value::as_str)
            .map(|s| Zeroizing::new(s.to_string()))
            .ok_or_else(|| OidcError::Token("no id_token in the answer".into()))
    }

    /// Verifies `raw` (a compact JWS) now: see [`Provider::verify_id_token_at`].
    pub async fn verify_id_token(
        &self,
        raw: &str,
        expected_nonce: &str,
    ) -> Result<Verified, OidcError> {
        self.verify_id_token_at(raw, expected_nonce, Timestamp::now())
            .await
    }

    /// Verifies an ID token at `now`: RS256 signature by a JWKS key (an
    /// unknown `kid` refetches the JWKS once, at most every
    /// `jwks_min_refresh`), `iss`, `aud` includes the client, `azp` is the
    /// client when present or when there are several audiences, `exp` and
    /// `iat` within the skew, `nonce`, `sub` and the username claim.
    pub async fn verify_id_token_at(
        &self,
        raw: &str,
        expected_nonce: &str,
        now: Timestamp,
    ) -> Result<Verified, OidcError> {
        let header = jsonwebtoken::decode_header(raw)
            .map_err(|e| IdTokenError::Malformed(format!("header: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(IdTokenError::Algorithm.into());
        }
        let key = match self.find_key(header.kid.as_deref()) {
            Some(k) => k,
            None => self.refresh_for(header.kid.as_deref()).await?,
        };
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.client_id]);
        // Times are checked below against `now`.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.required_spec_claims = HashSet::from(["iss".to_string(), "aud".to_string()]);
        let data = jsonwebtoken::decode::<Value>(raw, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => IdTokenError::Signature,
                K::InvalidIssuer => IdTokenError::Issuer,
                K::InvalidAudience => IdTokenError::Audience,
                K::InvalidAlgorithm => IdTokenError::Algorithm,
                K::MissingRequiredClaim(c) => IdTokenError::Claim(c.clone()),
                _ => IdTokenError::Malformed(e.to_string()),
            }
        })?;
        let claims = data.claims;
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp") {
            Some(azp) if azp.as_str() != Some(self.client_id.as_str()) => {
                return Err(IdTokenError::AuthorizedParty.into())
            }
            None if several_audiences => return Err(IdTokenError::AuthorizedParty.into()),
            _ => {}
        }
        let skew = self.skew.as_secs() as i64;
        let now_s = now.as_second();
        let exp = claim_secs(&claims, "exp")?;
        if now_s > exp.saturating_add(skew) {
            return Err(IdTokenError::Expired.into());
        }
        let iat = claim_secs(&claims, "iat")?;
        if iat > now_s.saturating_add(skew) {
            return Err(IdTokenError::IssuedInFuture.into());
        }
        let nonce = claim_str(&claims, "nonce").map_err(|_| IdTokenError::Nonce)?;
        if !bool::from(nonce.as_bytes().ct_eq(expected_nonce.as_bytes())) {
            return Err(IdTokenError::Nonce.into());
        }
        let subject = claim_str(&claims, "sub")?.to_string();
        let username = claim_str(&claims, &self.username_claim)?.to_string();
        let expires =
            Timestamp::from_second(exp).map_err(|_| IdTokenError::Claim("exp".to_string()))?;
        Ok(Verified {
            username,
            subject,
            expires,
        })
    }

    fn keys(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key for `kid`; without a `kid`, the only key.
    fn find_key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let keys = self.keys();
        match kid {
            Some(kid) => keys
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key.clone()),
            None if keys.keys.len() == 1 => Some(keys.keys[0].1.clone()),
            None => None,
        }
    }

    /// Refetches the JWKS for an unknown `kid` (once: concurrent callers
    /// wait for one fetch; not again within `jwks_min_refresh`).
    async fn refresh_for(&self, kid: Option<&str>) -> Result<DecodingKey, OidcError> {
        let _one = self.refresh.lock().await;
        // Someone else may have refreshed while this one waited.
        if let Some(k) = self.find_key(kid) {
            return Ok(k);
        }
        if self.keys().fetched.elapsed() < self.jwks_min_refresh {
            return Err(IdTokenError::UnknownKey.into());
        }
        let jwks = get_json(&self.http, &self.jwks_uri)
            .await
            .map_err(OidcError::Jwks)?;
        let keys = parse_jwks(&jwks).map_err(OidcError::Jwks)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Keys {
            keys,
            fetched: Instant::now(),
        });
        self.find_key(kid)
            .ok_or_else(|| IdTokenError::UnknownKey.into())
    }
}
