//! Bitbucket: git over HTTP through the gate with the real `git` client.

use crate::gate_support::*;
use iumgate::product::Product;
use std::process::Command;

fn git_clone(url: &str, dir: &std::path::Path) -> std::process::Output {
    Command::new("git")
        .args(["clone", url])
        .arg(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir.parent().unwrap())
        .output()
        .expect("git is installed")
}

async fn bitbucket_login(w: &World, user: &str) {
    let (c, _) = browser();
    let r = c
        .post(w.url("/j_atl_security_check"))
        .form(&[
            ("j_username", user),
            ("j_password", "demo"),
            ("next", "/projects/DEMO"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/projects/DEMO", "{user}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_clone_by_a_casual_user_with_and_without_a_free_seat() {
    let w = World::start(Product::Bitbucket, |_| {}, |_| {}).await;
    let tmp = tempfile::tempdir().unwrap();
    let addr = w.run.proxy_addr;

    // A free seat: the clone goes through and the user holds a seat.
    let url = format!("http://casual01:demo@{addr}/scm/demo/app.git");
    let dir = tmp.path().join("one");
    let out = tokio::task::spawn_blocking(move || git_clone(&url, &dir))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.holds("casual01"));

    // Fill the pool; nobody has been idle long enough.
    for i in 2..=7 {
        bitbucket_login(&w, &format!("casual{i:02}")).await;
    }
    let url = format!("http://casual09:demo@{addr}/scm/demo/app.git");
    let dir = tmp.path().join("two");
    let out = tokio::task::spawn_blocking(move || git_clone(&url, &dir))
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no licence is free"),
        "git shows iumgate's message: {stderr}"
    );
    assert!(!w.holds("casual09"));
    assert_eq!(w.access_members().len(), 7);

    // A wrong password with a free seat takes nothing.
    w.gate
        .release(
            &iumgate::user::UserId::new("casual07"),
            iumgate::pool::ReleaseReason::Cleanup,
        )
        .await;
    let url = format!("http://casual10:wrong@{addr}/scm/demo/app.git");
    let dir = tmp.path().join("three");
    let out = tokio::task::spawn_blocking(move || git_clone(&url, &dir))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(!w.holds("casual10"));
    assert_eq!(w.access_members().len(), 6);
}
