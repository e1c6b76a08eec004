//! The directory (the app's admin REST API) fails: 500, time-outs, 401,
//! 403, a read-only user directory. Holders keep working at full speed
//! (admissions wait, holders do not), failures raise an alert, retries back
//! off, no seat is counted that was not granted and none is lost that was.

use crate::gate_support::*;
use async_trait::async_trait;
use iumgate::app::{self, Options};
use iumgate::clock::ManualClock;
use iumgate::config::Dur;
use iumgate::directory::{Directory, DirectoryError, LicenceInfo, Member, UserInfo};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use iumgate::user::UserId;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

const GROUP_API: &str = "/rest/api/2/group/user";

/// Faults injected in front of the real (simulator-backed) directory.
#[derive(Debug, Default)]
struct Faults {
    /// While set, `add_to_group` reports itself on the channel, waits for the
    /// notify, then fails as a time-out would.
    stall_add: Mutex<Option<(mpsc::UnboundedSender<UserId>, Arc<Notify>)>>,
    /// `add_to_group` of this user fails at once.
    fail_add_for: Mutex<Option<UserId>>,
}

#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn Directory>,
    f: Arc<Faults>,
}

#[async_trait]
impl Directory for Faulty {
    async fn add_to_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        if self.f.fail_add_for.lock().unwrap().as_ref() == Some(user) {
            return Err(DirectoryError::unavailable(
                "add user to group",
                "injected",
                "injected failure",
            ));
        }
        let stall = self.f.stall_add.lock().unwrap().clone();
        if let Some((tx, go)) = stall {
            let _ = tx.send(user.clone());
            go.notified().await;
            return Err(DirectoryError::unavailable(
                "add user to group",
                "timed out after 10s (injected)",
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        self.inner.add_to_group(user, group).await
    }
    async fn remove_from_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.inner.remove_from_group(user, group).await
    }
    async fn group_members(&self, group: &str) -> Result<Vec<Member>, DirectoryError> {
        self.inner.group_members(group).await
    }
    async fn user(&self, user: &UserId) -> Result<Option<UserInfo>, DirectoryError> {
        self.inner.user(user).await
    }
    async fn licence(&self, application: &str) -> Result<Option<LicenceInfo>, DirectoryError> {
        self.inner.licence(application).await
    }
}

/// A Jira world whose directory goes through [`Faulty`]. With
/// `wait_reconciled`, returns once the first reconcile has passed.
async fn faulty_world(sim: Sim, wait_reconciled: bool) -> (World, Arc<Faults>) {
    let product = Product::Jira;
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let any = "127.0.0.1:0".parse().unwrap();
    let mut cfg =
        iumgate::demo::demo_config(product, &sim.url(), any, any, Duration::from_secs(30 * 60));
    cfg.queue.abandon_after = Dur::secs(24 * 3600);
    let faults = Arc::new(Faults::default());
    let directory: Arc<dyn Directory> = Arc::new(Faulty {
        inner: iumgate::demo::demo_directory(product, &sim.url()).unwrap(),
        f: faults.clone(),
    });
    let run = app::start_opts(
        cfg,
        Options {
            clock: clock.clone(),
            directory: Some(directory),
        },
    )
    .await
    .unwrap();
    let gate = run.gate.clone().unwrap();
    if wait_reconciled {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !gate.is_reconciled() {
            assert!(Instant::now() < deadline, "first reconcile did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let base = format!("http://{}", run.proxy_addr);
    let w = World {
        product,
        sim,
        run,
        gate,
        clock,
        base,
    };
    (w, faults)
}

async fn jira_sim() -> Sim {
    Sim::start(SimConfig::demo(Product::Jira)).await.unwrap()
}

fn alert_keys(w: &World) -> Vec<String> {
    w.run.alerts.list().iter().map(|a| a.key.clone()).collect()
}

/// The core promise: while casual02's admission is stuck on a directory
/// call that does not come back, casual01 (a holder) browses normally. No
/// timing: the holder's requests complete while the admission is provably
/// still inside the directory call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_browse_while_an_admission_is_stuck_on_the_directory() {
    let (w, faults) = faulty_world(jira_sim().await, true).await;
    let clients = fill(&w, &["casual01"]).await;
    let holder = &clients[0];

    let (tx, mut entered) = mpsc::unbounded_channel();
    let go = Arc::new(Notify::new());
    *faults.stall_add.lock().unwrap() = Some((tx, go.clone()));
    let url = w.url("/login.jsp");
    let login = tokio::spawn(async move {
        let (c, _) = browser();
        c.post(url)
            .form(&[
                ("os_username", "casual02"),
                ("os_password", "demo"),
                ("os_destination", "/browse/DEMO-1"),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    let who = tokio::time::timeout(Duration::from_secs(20), entered.recv())
        .await
        .expect("the admission reached the directory")
        .unwrap();
    assert_eq!(who.as_str(), "casual02");

    for i in 1..=20 {
        let r = holder
            .get(w.url(&format!("/browse/DEMO-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "holder request {i}");
        assert_eq!(r.headers()["x-ausername"], "casual01");
    }
    assert!(
        !login.is_finished(),
        "the admission was not stuck after all"
    );
    // While pending, the stuck user's seat is not counted as granted.
    assert!(!w.holds("casual02"));

    *faults.stall_add.lock().unwrap() = None;
    go.notify_one();
    let status = tokio::time::timeout(Duration::from_secs(20), login)
        .await
        .expect("the stuck login ends")
        .unwrap();
    assert_eq!(status, 503, "a failed grant shows the unavailable page");
    assert!(!w.holds("casual02"), "a seat counted that was not granted");
    assert_eq!(w.in_use(), 1);
    assert_eq!(w.access_members(), vec!["casual01"]);
    assert!(alert_keys(&w).contains(&"directory_unavailable".to_string()));

    // The directory is back: the same user gets in, the alert clears.
    let (c, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "casual02", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert_eq!(w.access_members(), vec!["casual01", "casual02"]);
    assert!(!alert_keys(&w).iter().any(|k| k.starts_with("directory_")));
}

/// Each failure mode of the admin API: the admission shows the unavailable
/// page, the right alert is raised, 4xx are not retried and 5xx are (a few
/// times, not forever), the holder is untouched, nothing is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_directory_failure_raises_its_alert_and_counts_no_seat() {
    let (w, _) = faulty_world(jira_sim().await, true).await;
    let clients = fill(&w, &["casual01"]).await;
    // (how to break it, alert key, admin calls expected for one grant)
    let cases: [(&str, &str, usize); 4] = [
        ("500", "directory_unavailable", 3),
        ("401", "directory_bad_credentials", 1),
        ("403", "directory_not_admin", 1),
        ("read-only", "directory_read_only", 1),
    ];
    for (how, key, calls) in cases {
        match how {
            "read-only" => w.sim.set_read_only(true),
            s => w.sim.fail_admin(Some(s.parse().unwrap())),
        }
        let before = w.sim.count(GROUP_API);
        let (c, _) = browser();
        let r = jira_login(&w, &c, "casual02", "demo", false).await;
        assert_eq!(r.status(), 503, "{how}");
        assert_eq!(
            w.sim.count(GROUP_API) - before,
            calls,
            "{how}: directory calls for one grant"
        );
        assert!(
            alert_keys(&w).contains(&key.to_string()),
            "{how}: {:?}",
            alert_keys(&w)
        );
        assert!(!w.holds("casual02"), "{how}");
        assert_eq!(w.in_use(), 1, "{how}");
        assert_eq!(w.access_members(), vec!["casual01"], "{how}");
        // The holder is not affected.
        let r = clients[0]
            .get(w.url("/browse/DEMO-3"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{how}");
        w.sim.set_read_only(false);
        w.sim.fail_admin(None);
    }
}

/// None lost that was granted: a failed release (logout), a failed
/// eviction and a failed grant after an eviction all leave every holder
/// holding, in iumgate's pool and in the app's group alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_releases_and_evictions_lose_no_granted_seat() {
    let (w, faults) = faulty_world(jira_sim().await, true).await;
    let clients = fill(&w, &SEVEN).await;
    let seven: Vec<String> = SEVEN.iter().map(|s| s.to_string()).collect();

    // Logout while the directory fails: the app logs the user out, the seat
    // stays counted (it is still in the group) and reconcile/cleanup frees it later.
    w.sim.fail_admin(Some(500));
    let r = clients[0]
        .get(w.url("/secure/Logout!default.jspa"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        w.holds("casual01"),
        "the pool dropped a seat the group still holds"
    );
    assert_eq!(w.access_members(), seven);

    // Everyone idle: casual08's login needs an eviction, which fails.
    w.advance_min(31);
    let (c8, _) = browser();
    let r = jira_login(&w, &c8, "casual08", "demo", false).await;
    assert_eq!(r.status(), 503);
    for u in SEVEN {
        assert!(w.holds(u), "{u} lost the seat to a failed eviction");
    }
    assert!(!w.holds("casual08"));
    assert_eq!(w.in_use(), 7);
    assert_eq!(w.access_members(), seven);

    // The victim's removal works but casual08's grant fails: the victim is
    // given the seat back.
    w.sim.fail_admin(None);
    *faults.fail_add_for.lock().unwrap() = Some(UserId::new("casual08"));
    let r = jira_login(&w, &c8, "casual08", "demo", false).await;
    assert_eq!(r.status(), 503);
    assert!(!w.holds("casual08"));
    assert_eq!(w.in_use(), 7);
    assert_eq!(w.access_members(), seven, "the victim got the seat back");
    assert!(w.sim.peak_members("IUM_access_software") <= 7);

    // All well again: casual08 gets in by evicting the longest-idle holder.
    *faults.fail_add_for.lock().unwrap() = None;
    let (status, path, _) = text(jira_login(&w, &c8, "casual08", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert_eq!(w.in_use(), 7);
    assert_eq!(w.access_members().len(), 7);
    assert!(w.access_members().contains(&"casual08".to_string()));
}

/// The directory is down when iumgate starts: nobody is let in by guesswork,
/// an alert says why, reconcile retries with a growing back-off (not in a
/// tight loop), and the gate starts working by itself once the directory is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_backs_off_while_the_directory_fails_and_recovers_by_itself() {
    let sim = jira_sim().await;
    sim.fail_admin(Some(500));
    let (w, _faults) = faulty_world(sim, false).await;
    let started = Instant::now();
    // Two failed passes: the second comes after the first back-off (1 s).
    // (Counted by the alert each pass raises: the start-up diagnostics call
    // the directory too.)
    let passes = |w: &World| {
        w.run
            .alerts
            .list()
            .into_iter()
            .find(|a| a.key == "reconcile_failed")
            .map_or(0, |a| a.count)
    };
    let deadline = started + Duration::from_secs(30);
    while passes(&w) < 2 {
        assert!(Instant::now() < deadline, "reconcile was not retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second_after = started.elapsed();
    assert!(
        second_after >= Duration::from_millis(900),
        "retried after {second_after:?}, without the back-off"
    );
    assert!(alert_keys(&w).contains(&"reconcile_failed".to_string()));
    assert!(!w.gate.is_reconciled());

    // Meanwhile nothing is granted: the class look-up fails too, so the
    // login passes untouched (power users must keep working) and the app
    // itself refuses the unlicensed casual user.
    let (c, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert_eq!(status, 200);
    assert_ne!(path, "/browse/DEMO-1", "let in without a licence");
    assert!(w.access_members().is_empty());
    assert_eq!(w.in_use(), 0);

    // Doubling: over the next 2.5 s at most one more pass (due 2 s after the
    // second). A loop without back-off would make dozens.
    // (Passes, not member reads: one pass reads its groups side by side.)
    let before = passes(&w);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let more = passes(&w) - before;
    assert!(more <= 1, "{more} reconcile passes in 2.5 s");

    // Back: the next pass (≤ 4 s away) succeeds and the waiter gets in.
    w.sim.fail_admin(None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.gate.is_reconciled() {
        assert!(Instant::now() < deadline, "reconcile never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alert_keys(&w).contains(&"reconcile_failed".to_string()));
    let (status, path, _) = text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert_eq!(w.access_members(), vec!["casual01"]);
}

/// The app itself goes down under the gate (holders get 502 at once, not a
/// hang), and comes back: the holder is served again without a restart and
/// still holds the seat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_going_down_and_up_under_the_gate_keeps_the_seats() {
    let (w, _) = faulty_world(jira_sim().await, true).await;
    let clients = fill(&w, &["casual01", "casual02"]).await;
    w.sim.set_down(true);
    for c in &clients {
        let r = c.get(w.url("/browse/DEMO-1")).send().await.unwrap();
        assert_eq!(r.status(), 502);
    }
    w.sim.set_down(false);
    for (c, u) in clients.iter().zip(["casual01", "casual02"]) {
        let r = c.get(w.url("/browse/DEMO-1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ausername"], u);
        assert!(w.holds(u));
    }
    assert_eq!(w.access_members(), vec!["casual01", "casual02"]);
}
