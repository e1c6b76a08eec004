//! OpenID Connect logins end to end (issue 18, items 4 and 7): iumgate in
//! front of the simulator on real sockets, the simulator's IdP on its own
//! server, the simulated app's OIDC SSO (`/plugins/servlet/oidc/initiate-login`
//! → IdP → `/plugins/servlet/oidc/callback`, where the app redeems the code
//! itself and so names nobody in the request). With `[sso.oidc]` iumgate is
//! a relying party of the same IdP: it signs the anonymous browser in first
//! (its own code flow with PKCE and nonce, callback `/iumgate/oidc/callback`),
//! verifies the ID token, and admits the user like a proven password before
//! the app's flow runs. A token that does not verify, a callback from
//! another browser or a replayed one admit nobody.

use crate::gate_support::{browser, browser_no_redirect, fill, poll_queue, World, SEVEN};
use iumgate::clock::Clock;
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig, SimUser};
use iumgate_sim::oidc_idp::{
    OidcIdp, TokenFault, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_PASSWORD,
};
use std::sync::Arc;
use std::time::Duration;

const START: &str = "/plugins/servlet/oidc/initiate-login";
const START_TO_ISSUE: &str = "/plugins/servlet/oidc/initiate-login?returnUrl=/browse/DEMO-1";
const CALLBACK: &str = "/plugins/servlet/oidc/callback";

pub(crate) struct Oidc {
    pub(crate) w: World,
    pub(crate) idp: OidcIdp,
    _dir: tempfile::TempDir,
}

/// iumgate with `[sso.oidc]` in front of `product`, the app and iumgate
/// clients of one IdP that issues on iumgate's manual clock.
async fn oidc_world(product: Product, sim_tweak: impl FnOnce(&mut SimConfig)) -> Oidc {
    oidc_world_with(product, sim_tweak, |_| {}).await
}

/// [`oidc_world`] with more of the config changed.
pub(crate) async fn oidc_world_with(
    product: Product,
    sim_tweak: impl FnOnce(&mut SimConfig),
    cfg_tweak: impl FnOnce(&mut iumgate::config::Config),
) -> Oidc {
    let idp = OidcIdp::start().await.expect("IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("oidc-secret");
    std::fs::write(&secret, format!("{OIDC_CLIENT_SECRET}\n")).unwrap();
    let issuer = idp.issuer().to_string();
    let w = World::start(product, sim_tweak, move |c| {
        c.sso.oidc.issuer = Some(issuer);
        c.sso.oidc.client_id = OIDC_CLIENT_ID.into();
        c.sso.oidc.client_secret_file = Some(secret);
        cfg_tweak(c);
    })
    .await;
    let clock = w.clock.clone();
    idp.set_clock(Some(Arc::new(move || (clock.now_ms() / 1000) as i64)));
    w.sim.set_oidc_idp(Some(&idp));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !w.gate.oidc_ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "OIDC discovery did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Oidc { w, idp, _dir: dir }
}

fn ausername(r: &reqwest::Response) -> &str {
    r.headers()
        .get("x-ausername")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn sorted(users: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    v.sort();
    v
}

/// Follows `r`'s redirects by hand with `c` (no redirects of its own),
/// until an answer that is not a redirect or `stop` says so; every hop.
async fn hops(
    c: &reqwest::Client,
    base: &str,
    first: &str,
    stop: impl Fn(&str) -> bool,
) -> Vec<(u16, String)> {
    let mut url = format!("{base}{first}");
    let mut out = Vec::new();
    for _ in 0..12 {
        let r = c.get(&url).send().await.unwrap();
        let status = r.status().as_u16();
        let loc = location(&r);
        out.push((status, url.clone()));
        if !(300..400).contains(&status) || loc.is_empty() {
            return out;
        }
        let next = r.url().join(&loc).unwrap().to_string();
        if stop(&next) {
            out.push((0, next));
            return out;
        }
        url = next;
    }
    panic!("too many redirects: {out:?}");
}

/// The authorization request the IdP's sign-in page goes on with.
async fn idp_query(page: reqwest::Response) -> String {
    let html = page.text().await.unwrap();
    let marker = "name=\"q\" value=\"";
    let at = html.find(marker).expect("the IdP's sign-in page") + marker.len();
    html[at..at + html[at..].find('"').unwrap()].replace("&amp;", "&")
}

/// Signs `user` in on the IdP's sign-in `page`; the browser's last answer.
async fn sign_in_at_idp(
    c: &reqwest::Client,
    page: reqwest::Response,
    user: &str,
) -> reqwest::Response {
    let login = page.url().join("/login").unwrap();
    let q = idp_query(page).await;
    c.post(login)
        .form(&[
            ("q", q.as_str()),
            ("username", user),
            ("password", OIDC_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_simulated_app_signs_in_through_its_idp_and_redeems_the_code_once() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let c = browser_no_redirect(Arc::new(reqwest::cookie::Jar::default()));
    // Without an IdP, there is no OIDC.
    let r = c.get(format!("{}{START}", sim.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let idp = OidcIdp::start().await.unwrap();
    sim.set_oidc_idp(Some(&idp));
    idp.set_user(Some("power1"));
    let steps = hops(&c, &sim.url(), START_TO_ISSUE, |u| u.contains(CALLBACK)).await;
    let callback = steps.last().unwrap().1.clone();
    assert!(
        steps[0].0 == 302 && steps[1].1.starts_with(idp.issuer()),
        "{steps:?}"
    );
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), location(&r)),
        (302, "/browse/DEMO-1".into())
    );
    assert_eq!(ausername(&r), "power1");
    // The callback request itself named nobody; a second use of it fails.
    let again = c.get(&callback).send().await.unwrap();
    assert_eq!(
        (again.status().as_u16(), ausername(&again)),
        (401, "anonymous")
    );
    // A casual user without a licence: the app's no-permission answer.
    idp.set_user(Some("casual01"));
    let steps = hops(&c, &sim.url(), START, |u| u.contains(CALLBACK)).await;
    let r = c.get(&steps.last().unwrap().1).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-seraph-loginreason"], "AUTHORISATION_FAILED");
    assert_eq!(ausername(&r), "anonymous");
    assert_eq!(sim.oidc_logins(), 1);
}

/// The reason iumgate must be a relying party: without `[sso.oidc]` a
/// casual user's OIDC login reaches the app unlicensed and is refused.
#[tokio::test]
async fn without_sso_oidc_a_casual_users_oidc_login_is_refused() {
    let w = World::jira().await;
    let idp = OidcIdp::start().await.unwrap();
    w.sim.set_oidc_idp(Some(&idp));
    idp.set_user(Some("casual08"));
    let (c, _) = browser();
    let r = c.get(w.url(START_TO_ISSUE)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(!w.holds("casual08"));
    assert!(w.access_members().is_empty());
}

#[tokio::test]
async fn a_casual_user_with_a_free_seat_ends_licensed_in_every_product() {
    for product in [Product::Jira, Product::Confluence, Product::Bitbucket] {
        let o = oidc_world(product, |_| {}).await;
        let w = &o.w;
        o.idp.set_user(Some("casual08"));
        let (c, _) = browser();
        let start = if product == Product::Jira {
            START_TO_ISSUE
        } else {
            START
        };
        let r = c.get(w.url(start)).send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), ausername(&r)),
            (200, "casual08"),
            "{product:?}"
        );
        if product == Product::Jira {
            assert_eq!(r.url().path(), "/browse/DEMO-1");
        }
        assert_eq!(
            w.access_members(),
            vec!["casual08".to_string()],
            "{product:?}"
        );
        // iumgate redeemed one code and the app another.
        assert_eq!(o.idp.tokens_issued(), 1, "{product:?}");
        assert_eq!(w.sim.oidc_logins(), 1, "{product:?}");
        assert_eq!(w.sim.count(CALLBACK), 1, "{product:?}");
        // The app's session is the user's from now on.
        let r = c.get(w.url("/")).send().await.unwrap();
        assert_eq!(ausername(&r), "casual08", "{product:?}");
    }
}

#[tokio::test]
async fn the_idps_sign_in_page_then_a_silent_second_authorization() {
    let o = oidc_world(Product::Jira, |_| {}).await;
    let w = &o.w;
    let (c, _) = browser();
    // Nobody is signed in at the IdP: its page asks.
    let page = c.get(w.url(START_TO_ISSUE)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.url().as_str().starts_with(o.idp.issuer()));
    let q = idp_query(page).await;
    // A wrong password stays at the IdP.
    let login = format!("{}/login", o.idp.issuer());
    let r = c
        .post(&login)
        .form(&[
            ("q", q.as_str()),
            ("username", "casual09"),
            ("password", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(w.access_members().is_empty());
    let r = c
        .post(&login)
        .form(&[
            ("q", q.as_str()),
            ("username", "casual09"),
            ("password", OIDC_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    // iumgate's authorization, then the app's (silent: the IdP session).
    assert_eq!(
        (r.url().path(), ausername(&r)),
        ("/browse/DEMO-1", "casual09")
    );
    assert_eq!(w.access_members(), vec!["casual09".to_string()]);
}

#[tokio::test]
async fn a_full_pool_gives_the_longest_idle_seat_to_the_verified_user() {
    let o = oidc_world(Product::Jira, |_| {}).await;
    let w = &o.w;
    let clients = fill(w, &SEVEN).await;
    w.advance_min(1);
    for c in &clients[1..] {
        let r = c.get(w.url("/browse/DEMO-1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    w.advance_min(31);
    o.idp.set_user(Some("casual08"));
    let (c, _) = browser();
    let r = c.get(w.url(START_TO_ISSUE)).send().await.unwrap();
    assert_eq!(
        (r.url().path(), ausername(&r)),
        ("/browse/DEMO-1", "casual08")
    );
    let mut expected: Vec<&str> = SEVEN[1..].to_vec();
    expected.push("casual08");
    assert_eq!(w.access_members(), sorted(&expected));
    assert!(w.holds("casual08") && !w.holds("casual01"));
    assert_eq!(
        w.sim.count(CALLBACK),
        1,
        "the app's flow ran once, and worked"
    );
}

#[tokio::test]
async fn with_every_holder_active_the_user_waits_then_goes_through_sso_again() {
    let o = oidc_world(Product::Jira, |_| {}).await;
    let w = &o.w;
    fill(w, &SEVEN).await;
    o.idp.set_user(Some("casual08"));
    let (b, _) = browser();
    let r = b.get(w.url(START_TO_ISSUE)).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.url().path()),
        (200, "/iumgate/wait")
    );
    let to = r
        .url()
        .query_pairs()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert_eq!(to, START_TO_ISSUE);
    assert_eq!(w.access_members(), sorted(&SEVEN));
    assert_eq!(w.sim.count(START), 0, "the app's flow never started");
    // The holders idle: the waiting room admits casual08, and its way on
    // (the start page again) signs in without a question.
    w.advance_min(31);
    let q = poll_queue(w, &b, "").await;
    assert_eq!(q["state"], "admitted", "{q}");
    assert!(w.holds("casual08"));
    let r = b.get(w.url(&to)).send().await.unwrap();
    assert_eq!(
        (r.url().path(), ausername(&r)),
        ("/browse/DEMO-1", "casual08")
    );
    assert_eq!(w.access_members().len(), 7);
}

#[tokio::test]
async fn an_id_token_that_does_not_verify_admits_nobody() {
    let o = oidc_world(Product::Jira, |_| {}).await;
    let w = &o.w;
    o.idp.set_user(Some("casual08"));
    for fault in [
        TokenFault::ForeignKey,
        TokenFault::WrongAudience,
        TokenFault::Expired,
        TokenFault::WrongNonce,
    ] {
        o.idp.set_token_fault(Some(fault));
        let (c, _) = browser();
        let r = c.get(w.url(START_TO_ISSUE)).send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), r.url().path()),
            (401, "/iumgate/oidc/callback"),
            "{fault:?}"
        );
        let page = r.text().await.unwrap();
        assert!(page.contains("could not be verified"), "{fault:?}: {page}");
        assert!(page.contains(&format!(
            "href=\"{}\"",
            START_TO_ISSUE.replace('&', "&amp;")
        )));
        assert!(w.access_members().is_empty(), "{fault:?}");
        assert_eq!(w.sim.count(START), 0, "{fault:?}: never sent on to the app");
    }
    let refused = w
        .gate
        .counters
        .oidc_refused
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 4);
    // The IdP fixed: the same browser gets in.
    o.idp.set_token_fault(None);
    let (c, _) = browser();
    let r = c.get(w.url(START_TO_ISSUE)).send().await.unwrap();
    assert_eq!(ausername(&r), "casual08");
    // Operators see both, and that discovery is done.
    let metrics = reqwest::get(format!("http://{}/metrics", w.run.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "iumgate_oidc_signins_total{result=\"refused\"} 4",
        "iumgate_oidc_signins_total{result=\"verified\"} 1",
        "iumgate_oidc_ready 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing");
    }
}

#[tokio::test]
async fn a_replayed_foreign_or_refused_callback_admits_nobody() {
    let o = oidc_world(Product::Jira, |_| {}).await;
    let w = &o.w;
    o.idp.set_user(Some("casual08"));
    let (_, jar) = browser();
    let c = browser_no_redirect(jar);
    let steps = hops(&c, &w.url(""), START_TO_ISSUE, |u| {
        u.contains("/iumgate/oidc/callback")
    })
    .await;
    let callback = steps.last().unwrap().1.clone();
    // Another browser (no state cookie) presents the callback: refused,
    // and the flow it belonged to is not used up by that.
    let stranger = browser_no_redirect(Arc::new(reqwest::cookie::Jar::default()));
    let r = stranger.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(w.access_members().is_empty());
    // Its own browser: admitted, and a pass back to the start page.
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), location(&r)),
        (303, START_TO_ISSUE.to_string())
    );
    assert!(w.holds("casual08"));
    // The same callback again: used up.
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The pass works once: the start page goes to the app, …
    let r = c.get(w.url(START_TO_ISSUE)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).contains("redirect_uri=http%3A%2F%2F127.0.0.1"));
    assert!(location(&r).contains("plugins%2Fservlet%2Foidc%2Fcallback"));
    assert_eq!(w.sim.count(START), 1);
    // … and a second visit is iumgate's sign-in again.
    let r = c.get(w.url(START_TO_ISSUE)).send().await.unwrap();
    assert!(
        location(&r).contains("iumgate%2Foidc%2Fcallback"),
        "{}",
        location(&r)
    );
    assert_eq!(w.sim.count(START), 1);

    // The IdP refuses (e.g. the user cancelled): nobody admitted.
    let (_, jar) = browser();
    let c = browser_no_redirect(jar);
    o.idp.set_user(Some("casual09"));
    let steps = hops(&c, &w.url(""), START, |u| {
        u.contains("/iumgate/oidc/callback")
    })
    .await;
    let callback = steps.last().unwrap().1.clone();
    let state = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let r = c
        .get(w.url(&format!(
            "/iumgate/oidc/callback?error=access_denied&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("access_denied"));
    assert!(!w.holds("casual09"));
    // A sign-in left at the IdP past its time is gone.
    let steps = hops(&c, &w.url(""), START, |u| {
        u.contains("/iumgate/oidc/callback")
    })
    .await;
    let callback = steps.last().unwrap().1.clone();
    w.advance_min(11);
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(!w.holds("casual09"));
    assert_eq!(w.access_members(), vec!["casual08".to_string()]);
}

#[tokio::test]
async fn fifty_concurrent_oidc_logins_never_overfill_the_access_group() {
    let o = oidc_world(Product::Jira, |sc| {
        for i in 21..=57 {
            sc.users.push(SimUser::new(
                &format!("casual{i:02}"),
                &["IUM_user_software"],
            ));
        }
    })
    .await;
    let w = Arc::new(o.w);
    fill(&w, &SEVEN).await;
    w.advance_min(31);
    let capacity = w.gate.with_pool(|p| p.capacity());
    assert_eq!(capacity, 7);
    let mut tasks = Vec::new();
    for i in 8..=57 {
        let w = w.clone();
        let user = format!("casual{i:02}");
        tasks.push(tokio::spawn(async move {
            let (c, _) = browser();
            // Each browser signs in at the IdP itself.
            let page = c
                .get(w.url("/plugins/servlet/oidc/initiate-login?returnUrl=/"))
                .send()
                .await
                .unwrap();
            let r = sign_in_at_idp(&c, page, &user).await;
            (user, r.url().path().to_string(), ausername(&r).to_string())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let logged_in: Vec<_> = results.iter().filter(|(u, _, a)| u == a).collect();
    let waiting = results
        .iter()
        .filter(|(_, p, _)| p == "/iumgate/wait")
        .count();
    assert_eq!(logged_in.len() + waiting, 50, "{results:?}");
    assert!(
        !logged_in.is_empty() && logged_in.len() <= capacity,
        "{results:?}"
    );
    assert!(w.access_members().len() <= capacity);
    assert!(w.in_use() <= capacity);
    assert!(w.sim.peak_members("IUM_access_software") <= capacity);
    drop(o.idp);
}
