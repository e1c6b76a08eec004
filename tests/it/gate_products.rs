//! The licence-gate scenarios for every product, one suite parametrised by
//! product (not three copies): shared seats, waiting, eviction of the
//! longest-idle holder, failed login, logout — each against its simulator
//! flavour, over real sockets, with a manual clock.

use crate::gate_support::*;
use iumgate::product::Product;

/// How a browser logs in to `product`, and where it lands.
struct Ui {
    login_path: &'static str,
    user_field: &'static str,
    password_field: &'static str,
    dest_field: &'static str,
    landing: &'static str,
    page: &'static str,
    logout: &'static str,
}

fn ui(p: Product) -> Ui {
    match p {
        Product::Jira => Ui {
            login_path: "/login.jsp",
            user_field: "os_username",
            password_field: "os_password",
            dest_field: "os_destination",
            landing: "/browse/DEMO-1",
            page: "/browse/DEMO-2",
            logout: "/secure/Logout!default.jspa",
        },
        Product::Confluence => Ui {
            login_path: "/dologin.action",
            user_field: "os_username",
            password_field: "os_password",
            dest_field: "os_destination",
            landing: "/display/DEMO/Home",
            page: "/display/DEMO/Notes",
            logout: "/logout.action",
        },
        Product::Bitbucket => Ui {
            login_path: "/j_atl_security_check",
            user_field: "j_username",
            password_field: "j_password",
            dest_field: "next",
            landing: "/projects/DEMO",
            page: "/projects/DEMO/repos/app/browse",
            logout: "/j_atl_security_logout",
        },
    }
}

async fn login(w: &World, c: &reqwest::Client, user: &str, password: &str) -> (u16, String) {
    let u = ui(w.product);
    let r = c
        .post(w.url(u.login_path))
        .form(&[
            (u.user_field, user),
            (u.password_field, password),
            (u.dest_field, u.landing),
        ])
        .send()
        .await
        .unwrap();
    let (status, path, _) = text(r).await;
    (status, path)
}

async fn fill_product(w: &World, n: usize) -> Vec<reqwest::Client> {
    let mut out = Vec::new();
    for i in 1..=n {
        let (c, _) = browser();
        let (status, path) = login(w, &c, &format!("casual{i:02}"), "demo").await;
        assert_eq!(
            (status, path.as_str()),
            (200, ui(w.product).landing),
            "casual{i:02}"
        );
        out.push(c);
    }
    out
}

async fn shared_seats(p: Product) {
    let w = World::start(p, |_| {}, |_| {}).await;
    let a = w.gate.arithmetic();
    assert_eq!((a.tier, a.fixed, a.capacity), (10, 3, 7), "{p:?}");
    fill_product(&w, 7).await;
    assert_eq!(w.access_members().len(), 7);
}

async fn eighth_waits_then_gets_in(p: Product) {
    let w = World::start(p, |_| {}, |_| {}).await;
    fill_product(&w, 7).await;
    let (c, _) = browser();
    let (status, path) = login(&w, &c, "casual08", "demo").await;
    assert_eq!((status, path.as_str()), (200, "/iumgate/wait"), "{p:?}");
    let q = poll_queue(&w, &c, "").await;
    assert_eq!(
        (q["state"].as_str(), q["position"].as_u64()),
        (Some("waiting"), Some(1))
    );
    w.advance_min(31);
    let q = poll_queue(&w, &c, "").await;
    assert_eq!(q["state"], "admitted", "{p:?} {q}");
    let (status, path) = login(&w, &c, "casual08", "demo").await;
    assert_eq!((status, path.as_str()), (200, ui(p).landing));
    assert_eq!(w.access_members().len(), 7);
    assert!(w.sim.peak_members(w.groups().access) <= 7);
}

async fn longest_idle_is_evicted(p: Product) {
    let w = World::start(p, |_| {}, |_| {}).await;
    let clients = fill_product(&w, 7).await;
    w.advance_min(10);
    for c in &clients[1..] {
        let r = c.get(w.url(ui(p).page)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p:?} activity page");
    }
    w.advance_min(21);
    let (c, _) = browser();
    let (status, path) = login(&w, &c, "casual08", "demo").await;
    assert_eq!((status, path.as_str()), (200, ui(p).landing), "{p:?}");
    let members = w.access_members();
    assert!(
        !members.contains(&"casual01".to_string()),
        "{p:?} {members:?}"
    );
    assert_eq!(members.len(), 7);
    // Everyone else was active 21 minutes ago: the 9th waits.
    let (c, _) = browser();
    let (_, path) = login(&w, &c, "casual09", "demo").await;
    assert_eq!(path, "/iumgate/wait");
}

async fn failed_login_costs_nobody_anything(p: Product) {
    let w = World::start(p, |_| {}, |_| {}).await;
    let (c, _) = browser();
    login(&w, &c, "casual01", "wrong").await;
    assert!(w.access_members().is_empty(), "{p:?}");
    assert_eq!(w.in_use(), 0);
    fill_product(&w, 7).await;
    w.advance_min(60);
    let writes = w.sim.group_writes().len();
    let (c, _) = browser();
    let (_, path) = login(&w, &c, "casual08", "wrong").await;
    assert_ne!(
        path, "/iumgate/wait",
        "{p:?}: a wrong password is not queued either"
    );
    assert_eq!(w.sim.group_writes().len(), writes, "{p:?}");
    assert_eq!(w.access_members().len(), 7);
}

async fn logout_frees_the_seat(p: Product) {
    let w = World::start(p, |_| {}, |_| {}).await;
    let clients = fill_product(&w, 1).await;
    assert!(w.holds("casual01"));
    clients[0].get(w.url(ui(p).logout)).send().await.unwrap();
    assert!(!w.holds("casual01"), "{p:?}");
    assert!(w.access_members().is_empty());
}

macro_rules! per_product {
    ($($name:ident),* $(,)?) => {
        mod jira { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(iumgate::product::Product::Jira).await } )* }
        mod confluence { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(iumgate::product::Product::Confluence).await } )* }
        mod bitbucket { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(iumgate::product::Product::Bitbucket).await } )* }
    };
}

per_product!(
    shared_seats,
    eighth_waits_then_gets_in,
    longest_idle_is_evicted,
    failed_login_costs_nobody_anything,
    logout_frees_the_seat,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_without_x_ausername_learns_the_user_from_the_login() {
    let w = World::start(Product::Confluence, |_| {}, |_| {}).await;
    w.sim.set_ausername_header(false);
    let clients = fill_product(&w, 7).await;
    w.advance_min(31);
    // casual01 … 07 idle: casual01 comes back with its session; the gate must
    // know who it is without X-AUSERNAME to count the page as activity.
    let r = clients[0]
        .get(w.url("/display/DEMO/Notes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (c, _) = browser();
    let (_, path) = login(&w, &c, "casual08", "demo").await;
    assert_eq!(path, "/display/DEMO/Home");
    assert!(
        w.access_members().contains(&"casual01".to_string()),
        "recently active casual01 kept the seat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_asks_who_owns_an_unknown_session_before_forwarding() {
    let w = World::start(Product::Confluence, |_| {}, |_| {}).await;
    w.sim.set_ausername_header(false);
    // casual04 holds a seat (granted by hand) and has a session iumgate never saw.
    w.sim.add_to_group("casual04", "IUM_access_confluence");
    w.gate.reconcile().await.unwrap();
    w.advance_min(3);
    let direct = no_redirect();
    let session = session_behind_the_gates_back(&w, "/dologin.action", "casual04").await;
    let before = w.sim.count("/rest/api/user/current");
    let r = direct
        .get(w.url("/display/DEMO/Home"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        w.sim.count("/rest/api/user/current") - before,
        1,
        "one whoami call"
    );
    // Known from now on: no further call, and page views count as activity.
    let r = direct
        .get(w.url("/display/DEMO/Notes"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.sim.count("/rest/api/user/current") - before, 1);
    let seat = w
        .gate
        .with_pool(|p| p.holders())
        .into_iter()
        .find(|h| h.user.as_str() == "casual04")
        .unwrap();
    assert_eq!(
        seat.last_active,
        w.gate.now(),
        "the page view was counted as casual04's activity"
    );
}
