//! The directory clients with Basic authentication blocked (Jira 11's
//! default): configured with a personal access token (`[directory]
//! token_file`) they list, add and remove in all three products; configured
//! with a password they fail with an error that says what to do.

use iumgate::config::Config;
use iumgate::directory::{self, Directory, DirectoryError};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use iumgate::user::UserId;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const PRODUCTS: [Product; 3] = [Product::Jira, Product::Confluence, Product::Bitbucket];

async fn blocked_sim(product: Product) -> Sim {
    Sim::start(SimConfig {
        basic_auth_blocked: true,
        ..SimConfig::demo(product)
    })
    .await
    .expect("sim starts")
}

/// The demo config for `product` in front of `sim`, no retries.
fn config(product: Product, sim: &Sim) -> Config {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cfg =
        iumgate::demo::demo_config(product, &sim.url(), any, any, Duration::from_secs(60));
    cfg.directory.retries = 0;
    cfg
}

/// `[directory] token_file` holding the demo admin's personal access token.
fn with_token(mut cfg: Config, dir: &tempfile::TempDir) -> Config {
    let path = dir.path().join("token");
    std::fs::write(&path, "demo-admin-token\n").unwrap();
    cfg.directory.token_file = Some(path);
    cfg
}

/// `[directory] username` + `password_file` with the admin's right password.
fn with_password(mut cfg: Config, dir: &tempfile::TempDir) -> Config {
    let path = dir.path().join("password");
    std::fs::write(&path, "demo\n").unwrap();
    cfg.directory.username = Some("iumgate-admin".into());
    cfg.directory.password_file = Some(path);
    cfg
}

fn client(cfg: &Config) -> Arc<dyn Directory> {
    directory::from_config(cfg).expect("the directory client is built")
}

#[tokio::test]
async fn a_token_lists_adds_and_removes_with_basic_auth_blocked() {
    for product in PRODUCTS {
        let sim = blocked_sim(product).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = with_token(config(product, &sim), &tmp);
        let dir = client(&cfg);
        let (users, access) = (&cfg.ium.user_group, &cfg.ium.access_group);

        let members = dir.group_members(users).await.unwrap();
        assert_eq!(members.len(), 20, "{product:?}: {members:?}");
        assert!(members.iter().all(|m| m.active), "{product:?}");

        let casual = UserId::new("casual07");
        dir.add_to_group(&casual, access).await.unwrap();
        assert!(sim.is_member("casual07", access), "{product:?}");
        assert!(sim.has_access("casual07"), "{product:?}");
        let members = dir.group_members(access).await.unwrap();
        assert_eq!(members.len(), 1, "{product:?}: {members:?}");
        assert_eq!(members[0].name, casual, "{product:?}");

        dir.remove_from_group(&casual, access).await.unwrap();
        assert!(!sim.is_member("casual07", access), "{product:?}");
        assert!(dir.group_members(access).await.unwrap().is_empty());
        assert_eq!(sim.group_writes().len(), 2, "{product:?}");
    }
}

#[tokio::test]
async fn a_password_fails_clearly_with_basic_auth_blocked() {
    for product in PRODUCTS {
        let sim = blocked_sim(product).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = with_password(config(product, &sim), &tmp);
        let dir = client(&cfg);

        let e = dir.group_members(&cfg.ium.user_group).await.unwrap_err();
        assert!(
            matches!(e, DirectoryError::BasicAuthDisabled(_)),
            "{product:?}: {e:?}"
        );
        let chain = iumgate::proxy::error_chain(&e);
        for words in [
            "refuses Basic authentication",
            "Basic Authentication has been disabled",
            "personal access token",
            "[directory] token_env or token_file",
        ] {
            assert!(chain.contains(words), "{product:?}: {words:?} in {chain}");
        }
        // Not mistaken for a wrong password or missing admin rights.
        assert!(!chain.contains("credentials were refused"), "{chain}");
        assert!(!chain.contains("not an administrator"), "{chain}");

        let e = dir
            .add_to_group(&UserId::new("casual07"), &cfg.ium.access_group)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "basic_auth_disabled", "{product:?}: {e:?}");
        assert!(sim.group_writes().is_empty(), "{product:?}");
        assert!(!sim.is_member("casual07", &cfg.ium.access_group));

        // Unblocked, the same password works again.
        sim.set_basic_auth_blocked(false);
        assert_eq!(
            dir.group_members(&cfg.ium.user_group).await.unwrap().len(),
            20,
            "{product:?}"
        );
    }
}
