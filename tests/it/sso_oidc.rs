//! The OpenID Connect relying party (`iumgate::sso::oidc`) against the
//! simulator's IdP (`iumgate_sim::oidc_idp`) on real sockets: discovery,
//! the code flow with PKCE and nonce, and the ID token checks.

use iumgate::sso::oidc::{ClientAuth, IdTokenError, OidcError, PendingAuth, Provider};
use iumgate_sim::oidc_idp::OidcIdp;
use std::collections::HashMap;
use std::time::Duration;

const REDIRECT: &str = "https://jira.example.test/iumgate/oidc/callback";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn setup() -> (OidcIdp, Provider) {
    let idp = OidcIdp::start().await.expect("IdP starts");
    let provider = Provider::discover(idp.issuer(), idp.client_id(), idp.client_secret(), http())
        .await
        .expect("discovery");
    (idp, provider)
}

/// Follows the authorization URL as a browser would, without following
/// the redirect: the callback's query.
async fn authorize(url: reqwest::Url) -> HashMap<String, String> {
    let resp = http().get(url).send().await.expect("authorize");
    assert_eq!(resp.status(), 302);
    let location = resp
        .headers()
        .get("location")
        .expect("Location")
        .to_str()
        .expect("ASCII")
        .to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    let url = reqwest::Url::parse(&location).expect("URL");
    url.query_pairs().into_owned().collect()
}

/// A code for `user` and what `start` kept.
async fn code_for(provider: &Provider, user: &str) -> (String, String, PendingAuth) {
    let (mut url, pending) = provider.start(REDIRECT);
    url.query_pairs_mut().append_pair("login_hint", user);
    let q = authorize(url).await;
    (q["code"].clone(), q["state"].clone(), pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reads_the_document_and_refuses_another_issuer() {
    let (idp, provider) = setup().await;
    assert_eq!(provider.issuer(), idp.issuer());
    assert_eq!(provider.client_auth(), ClientAuth::Basic);
    assert_eq!(idp.jwks_fetches(), 1);
    // The document names exactly the configured issuer; a trailing slash is
    // another issuer.
    let other = format!("{}/", idp.issuer());
    let e = Provider::discover(&other, idp.client_id(), idp.client_secret(), http())
        .await
        .expect_err("issuer mismatch");
    assert!(matches!(e, OidcError::Discovery(_)), "{e}");
    // Nothing listening.
    let e = Provider::discover("http://127.0.0.1:1", "c", "s", http())
        .await
        .expect_err("no IdP");
    assert!(matches!(e, OidcError::Discovery(_)), "{e}");
    // Plain http to a non-loopback host is refused before any request.
    let e = Provider::discover("http://idp.example.test", "c", "s", http())
        .await
        .expect_err("http");
    assert!(matches!(e, OidcError::Discovery(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_names_the_user() {
    let (idp, provider) = setup().await;
    let (url, pending) = provider.start(REDIRECT);
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"], pending.state);
    assert_eq!(q["nonce"], pending.nonce);
    assert!(!url.as_str().contains(&pending.pkce_verifier));
    assert_eq!(pending.pkce_verifier.len(), 43);

    idp.set_user(Some("alice"));
    let cb = authorize(url).await;
    let v = provider
        .finish(&cb["code"], &cb["state"], &pending, REDIRECT)
        .await
        .expect("verified");
    assert_eq!(v.username, "alice");
    assert_eq!(v.subject, "sub-alice");
    assert!(v.expires > jiff::Timestamp::now());
    assert_eq!(idp.tokens_issued(), 1);

    // client_secret_post works as well, and login_hint picks the user.
    let provider = provider.with_client_auth(ClientAuth::Post);
    let (code, state, pending) = code_for(&provider, "bob").await;
    let v = provider
        .finish(&code, &state, &pending, REDIRECT)
        .await
        .expect("verified");
    assert_eq!(v.username, "bob");

    // Another claim can name the user.
    let provider = provider.with_username_claim("sub");
    let (code, state, pending) = code_for(&provider, "carol").await;
    let v = provider
        .finish(&code, &state, &pending, REDIRECT)
        .await
        .expect("verified");
    assert_eq!(v.username, "sub-carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_state_verifier_secret_or_reused_code_are_refused() {
    let (idp, provider) = setup().await;

    // A state that is not the flow's: refused before the token request.
    let (code, _, pending) = code_for(&provider, "alice").await;
    let e = provider
        .finish(&code, "forged-state", &pending, REDIRECT)
        .await
        .expect_err("state");
    assert!(matches!(e, OidcError::State), "{e}");
    assert_eq!(idp.token_requests(), 0);

    // A PKCE verifier that is not the one the challenge was made from.
    let (code, state, mut pending) = code_for(&provider, "alice").await;
    pending.pkce_verifier = "x".repeat(43);
    let e = provider
        .finish(&code, &state, &pending, REDIRECT)
        .await
        .expect_err("PKCE");
    assert!(
        matches!(&e, OidcError::Token(m) if m.contains("invalid_grant")),
        "{e}"
    );

    // A code is redeemed once.
    let (code, state, pending) = code_for(&provider, "alice").await;
    provider
        .finish(&code, &state, &pending, REDIRECT)
        .await
        .expect("first use");
    let e = provider
        .finish(&code, &state, &pending, REDIRECT)
        .await
        .expect_err("second use");
    assert!(
        matches!(&e, OidcError::Token(m) if m.contains("invalid_grant")),
        "{e}"
    );

    // Another redirect_uri than the authorization request's.
    let (code, state, pending) = code_for(&provider, "alice").await;
    let e = provider
        .finish(&code, &state, &pending, "https://elsewhere.test/cb")
        .await
        .expect_err("redirect_uri");
    assert!(
        matches!(&e, OidcError::Token(m) if m.contains("invalid_grant")),
        "{e}"
    );

    // A wrong client secret; the error does not show it.
    let bad = Provider::discover(idp.issuer(), idp.client_id(), "not-the-secret", http())
        .await
        .expect("discovery");
    let (code, state, pending) = code_for(&bad, "alice").await;
    let e = bad
        .finish(&code, &state, &pending, REDIRECT)
        .await
        .expect_err("secret");
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("invalid_client"), "{shown}");
    assert!(!shown.contains("not-the-secret"), "{shown}");
    assert!(!format!("{bad:?}").contains("not-the-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_wrong_id_tokens_are_refused() {
    let (idp, provider) = setup().await;
    let nonce = "the-nonce";
    let refused = |r: Result<_, OidcError>| match r {
        Err(OidcError::IdToken(e)) => e,
        other => panic!("expected an ID token error, got {other:?}"),
    };

    // The control: valid claims verify.
    let good = idp.claims("alice", Some(nonce));
    let v = provider
        .verify_id_token(&idp.sign(&good), nonce)
        .await
        .expect("valid");
    assert_eq!(v.username, "alice");

    // Bad signature (a foreign key under the IdP's kid).
    let e = refused(provider.verify_id_token(&idp.forge(&good), nonce).await);
    assert_eq!(e, IdTokenError::Signature);

    // A payload changed after signing.
    let token = idp.sign(&good);
    let mut parts: Vec<&str> = token.split('.').collect();
    let mallory = idp.sign(&idp.claims("mallory", Some(nonce)));
    let mallory_payload = mallory.split('.').nth(1).expect("payload");
    parts[1] = mallory_payload;
    let e = refused(provider.verify_id_token(&parts.join("."), nonce).await);
    assert_eq!(e, IdTokenError::Signature);

    // Wrong audience.
    let mut c = good.clone();
    c.aud = vec!["another-client".into()];
    let e = refused(provider.verify_id_token(&idp.sign(&c), nonce).await);
    assert_eq!(e, IdTokenError::Audience);

    // Several audiences need azp = the client.
    let mut c = good.clone();
    c.aud = vec!["iumgate".into(), "another-client".into()];
    let e = refused(provider.verify_id_token(&idp.sign(&c), nonce).await);
    assert_eq!(e, IdTokenError::AuthorizedParty);
    c.azp = Some("iumgate".into());
    provider
        .verify_id_token(&idp.sign(&c), nonce)
        .await
        .expect("azp names the client");
    c.azp = Some("another-client".into());
    let e = refused(provider.verify_id_token(&idp.sign(&c), nonce).await);
    assert_eq!(e, IdTokenError::AuthorizedParty);

    // Wrong issuer.
    let mut c = good.clone();
    c.iss = "https://evil.example.test".into();
    let e = refused(provider.verify_id_token(&idp.sign(&c), nonce).await);
    assert_eq!(e, IdTokenError::Issuer);

    // Expired beyond the skew (60 s); within it still accepted.
    let mut c = good.clone();
    c.exp = jiff::Timestamp::now().as_second() - 120;
    let e = refused(provider.verify_id_token(&idp.sign(&c), nonce).await);
    assert_eq!(e, IdTokenError::Expired);
    c.exp = jiff::Timestamp::now().as_second() - 30;
    provider
        .verify_id_token(&idp.sign(&c), nonce)
        .await
        .expect("within the skew");

    // Issued in the future.
    let mut c = good.clone();
    c.iat = jiff::Timestamp::now().as_second() + 600;
    let e = refused(provider.verify_id_token(&idp.sign(&c), nonce).await);
    assert_eq!(e, IdTokenError::IssuedInFuture);

    // Wrong or missing nonce.
    let e = refused(provider.verify_id_token(&idp.sign(&good), "other").await);
    assert_eq!(e, IdTokenError::Nonce);
    let c = idp.claims("alice", None);
    let e = refused(provider.verify_id_token(&idp.sign(&c), nonce).await);
    assert_eq!(e, IdTokenError::Nonce);

    // No username claim.
    let mut c = good.clone();
    c.preferred_username = None;
    let e = refused(provider.verify_id_token(&idp.sign(&c), nonce).await);
    assert_eq!(e, IdTokenError::Claim("preferred_username".into()));

    // Not RS256: an unsigned token.
    let unsigned = format!(
        "eyJhbGciOiJub25lIn0.{}.",
        token.split('.').nth(1).expect("payload")
    );
    let e = refused(provider.verify_id_token(&unsigned, nonce).await);
    assert!(
        matches!(e, IdTokenError::Malformed(_) | IdTokenError::Algorithm),
        "{e:?}"
    );
    let e = refused(provider.verify_id_token("garbage", nonce).await);
    assert!(matches!(e, IdTokenError::Malformed(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refreshes_the_jwks_once() {
    let (idp, provider) = setup().await;
    let provider = provider.with_jwks_min_refresh(Duration::ZERO);
    assert_eq!(idp.jwks_fetches(), 1);

    // The IdP rotates its key: the first token with the new kid refetches
    // the JWKS, later ones use the cache.
    idp.rotate_key().await.expect("new key");
    let claims = idp.claims("alice", Some("n"));
    provider
        .verify_id_token(&idp.sign(&claims), "n")
        .await
        .expect("after one refresh");
    assert_eq!(idp.jwks_fetches(), 2);
    provider
        .verify_id_token(&idp.sign(&claims), "n")
        .await
        .expect("cached");
    assert_eq!(idp.jwks_fetches(), 2);

    // The full flow signs with the new key too.
    let (code, state, pending) = code_for(&provider, "bob").await;
    let v = provider
        .finish(&code, &state, &pending, REDIRECT)
        .await
        .expect("verified");
    assert_eq!(v.username, "bob");
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_do_not_hammer_the_idp() {
    let (idp, provider) = setup().await;
    // The default least interval between refreshes (30 s) has not passed
    // since discovery: a key the provider has not seen is refused without
    // a fetch.
    idp.rotate_key().await.expect("new key");
    let claims = idp.claims("alice", Some("n"));
    for _ in 0..3 {
        match provider.verify_id_token(&idp.sign(&claims), "n").await {
            Err(OidcError::IdToken(IdTokenError::UnknownKey)) => {}
            other => panic!("expected UnknownKey, got {other:?}"),
        }
    }
    assert_eq!(idp.jwks_fetches(), 1);
}
