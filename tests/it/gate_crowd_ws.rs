//! Crowd as the directory, the Bitbucket + Crowd refusal, and Confluence's
//! collaborative-editing websockets through the gate.

use crate::gate_support::*;
use futures_util::{SinkExt, StreamExt};
use iumgate::app::{self, Options};
use iumgate::config::Secret;
use iumgate::directory::{Auth, ClientOptions, CrowdDirectory, Directory};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use iumgate::user::UserId;
use std::sync::Arc;
use std::time::Duration;

fn crowd(url: &str) -> CrowdDirectory {
    CrowdDirectory::new(
        url,
        Auth::Basic {
            username: "iumgate".into(),
            password: Secret::new("demo"),
        },
        ClientOptions {
            timeout: Duration::from_secs(5),
            retries: 1,
            backoff: Duration::from_millis(50),
            extra_ca: None,
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crowd_membership_calls_including_an_existing_membership() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let d = crowd(&sim.url());
    let u = UserId::new("casual01");
    d.add_to_group(&u, "IUM_access_software").await.unwrap();
    // Crowd answers 409 for an existing membership: that is success.
    d.add_to_group(&u, "IUM_access_software").await.unwrap();
    assert_eq!(sim.members("IUM_access_software"), vec!["casual01"]);
    let members = d.group_members("IUM_access_software").await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, u);
    d.remove_from_group(&u, "IUM_access_software")
        .await
        .unwrap();
    assert!(sim.members("IUM_access_software").is_empty());
    let err = d.add_to_group(&u, "no-such-group").await.unwrap_err();
    assert!(
        matches!(err, iumgate::directory::DirectoryError::GroupMissing(_)),
        "{err:?}"
    );
    // A read-only Crowd connection is recognised and explained.
    sim.set_read_only(true);
    let err = d.add_to_group(&u, "IUM_access_software").await.unwrap_err();
    assert!(
        matches!(err, iumgate::directory::DirectoryError::ReadOnly(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("read/write"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_with_crowd_as_the_directory_pools_licences() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let mut cfg = iumgate::demo::demo_config(
        Product::Jira,
        &sim.url(),
        any,
        any,
        Duration::from_secs(1800),
    );
    // Crowd reports no licence: the tier is given.
    cfg.licence.tier = iumgate::config::Tier::Fixed(10);
    let clock = Arc::new(iumgate::clock::ManualClock::new(1_800_000_000_000));
    let run = app::start_opts(
        cfg,
        Options {
            clock: clock.clone(),
            directory: Some(Arc::new(crowd(&sim.url()))),
        },
    )
    .await
    .unwrap();
    let gate = run.gate.clone().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !gate.is_reconciled() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gate.arithmetic().capacity, 7);
    let base = format!("http://{}", run.proxy_addr);
    for i in 1..=8 {
        let (c, _) = browser();
        let r = c
            .post(format!("{base}/login.jsp"))
            .form(&[
                ("os_username", format!("casual{i:02}")),
                ("os_password", "demo".into()),
                ("os_destination", "/browse/DEMO-1".into()),
            ])
            .send()
            .await
            .unwrap();
        let want = if i <= 7 {
            "/browse/DEMO-1"
        } else {
            "/iumgate/wait"
        };
        assert_eq!(r.url().path(), want, "casual{i:02}");
    }
    assert_eq!(sim.members("IUM_access_software").len(), 7);
}

#[test]
fn bitbucket_with_crowd_is_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[proxy]\nupstream = \"http://127.0.0.1:1\"\nproduct = \"bitbucket\"\n[directory]\nkind = \"crowd\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(["serve", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("directory.kind") && err.contains("Bitbucket with Crowd cannot work"),
        "{err}"
    );
    assert!(err.contains(":5:"), "names the line: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_synchrony_websockets_pass_through_the_gate_and_are_not_activity() {
    // The websocket upstream: an echo server.
    let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = ws.accept().await {
            tokio::spawn(async move {
                if let Ok(mut conn) = tokio_tungstenite::accept_async(s).await {
                    while let Some(Ok(m)) = conn.next().await {
                        if m.is_text() || m.is_binary() {
                            let _ = conn.send(m).await;
                        }
                    }
                }
            });
        }
    });
    let sim = Sim::start(SimConfig::demo(Product::Confluence))
        .await
        .unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let mut cfg = iumgate::demo::demo_config(
        Product::Confluence,
        &format!("http://{ws_addr}"),
        any,
        any,
        Duration::from_secs(1800),
    );
    cfg.directory.url = Some(sim.url());
    let run = app::start_opts(
        cfg,
        Options {
            directory: Some(
                iumgate::demo::demo_directory(Product::Confluence, &sim.url()).unwrap(),
            ),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let url = format!("ws://{}/synchrony/v1/bayeux-sync1", run.proxy_addr);
    let (mut conn, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    conn.send(tokio_tungstenite::tungstenite::Message::text("edit"))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(20), conn.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "edit");
    let rules =
        iumgate::product::ActivityRules::new(Product::Confluence.profile(), &[], &[]).unwrap();
    assert!(!rules.is_activity("GET", "/synchrony/v1/bayeux-sync1"));
}
