//! The admin listener's protected page `/status`: without a token, with a
//! wrong one, and with tokens that probe it byte by byte. Needs the admin
//! room's `/status`; where it does not exist yet (the route answers 404),
//! the tests say so and skip.

use crate::proxy_support::*;
use std::io::Write;

const TOKEN: &str = "s3cret-admin-token-0123456789abcdef";

async fn start_with_token() -> (iumgate::app::Running, Upstream, tempfile::NamedTempFile) {
    let up = echo_upstream().await;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{TOKEN}").unwrap();
    let mut cfg = config(&up.url(), "");
    cfg.admin.token_file = Some(file.path().to_path_buf());
    let run = iumgate::app::start(cfg).await.unwrap();
    (run, up, file)
}

async fn status(run: &iumgate::app::Running, auth: Option<&str>) -> (u16, String) {
    let mut req = client().get(format!("http://{}/status", run.admin_addr));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = within("/status", req.send()).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// `true` when `/status` is not served at all (admin branch not merged).
async fn status_missing(run: &iumgate::app::Running) -> bool {
    let (code, _) = status(run, Some(&format!("Bearer {TOKEN}"))).await;
    if code == 404 {
        eprintln!(
            "SKIPPED: the admin listener has no /status route in this build \
             (needs the admin room's /status with its token); nothing was tested"
        );
        return true;
    }
    false
}

#[tokio::test]
async fn status_without_a_token_is_refused() {
    let (run, _up, _f) = start_with_token().await;
    if status_missing(&run).await {
        return;
    }
    let (code, body) = status(&run, None).await;
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("holders") && !body.contains(TOKEN), "{body}");
}

#[tokio::test]
async fn status_with_a_wrong_token_is_refused_and_the_right_one_admitted() {
    let (run, _up, _f) = start_with_token().await;
    if status_missing(&run).await {
        return;
    }
    for wrong in [
        "Bearer wrong".to_string(),
        "Bearer ".to_string(),
        // (A trailing space is optional white space in HTTP: it is the same token.)
        format!("Bearer {}", TOKEN.to_uppercase()),
        format!("Bearer {TOKEN}x"),
        format!("Basic {TOKEN}"),
        format!("Token {TOKEN}"),
        TOKEN.to_string(),
    ] {
        let (code, body) = status(&run, Some(&wrong)).await;
        assert_eq!(code, 401, "{wrong:?}: {body}");
    }
    let (code, _) = status(&run, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(code, 200);
}

/// A timing probe guesses the token a byte at a time: every guess sharing a
/// longer prefix must be refused exactly like one sharing none (same status,
/// same body), and the comparison itself is constant-time (the admin room
/// hashes both sides and compares with `subtle`; measuring nanoseconds here
/// would only make a flaky test).
#[tokio::test]
async fn status_answers_a_timing_probe_identically_for_every_prefix_length() {
    let (run, _up, _f) = start_with_token().await;
    if status_missing(&run).await {
        return;
    }
    let mut answers = Vec::new();
    for n in [0, 1, TOKEN.len() / 2, TOKEN.len() - 1] {
        let guess = format!("{}{}", &TOKEN[..n], "#".repeat(TOKEN.len() - n));
        answers.push(status(&run, Some(&format!("Bearer {guess}"))).await);
    }
    assert!(answers.iter().all(|a| a.0 == 401), "{answers:?}");
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

#[tokio::test]
async fn the_admin_token_is_never_accepted_on_the_public_listener() {
    let (run, up, _f) = start_with_token().await;
    // The public listener forwards /status to the app like any path; the
    // app must never see the admin token from iumgate itself.
    let r = client()
        .get(format!("http://{}/status", run.proxy_addr))
        .send()
        .await
        .unwrap();
    let seen = Seen::parse(&r.bytes().await.unwrap());
    assert!(!seen.0.to_string().contains(TOKEN));
    assert_eq!(up.hits(), 1);
}
