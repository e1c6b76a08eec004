//! `iumgate check` on an app that signs users in through SSO for Data
//! Center: OIDC users are learned from the app's answer only (a warning
//! that says so); SAML logins are verified only with the IdP's certificate.

use crate::housekeeping_support::*;
use iumgate::check::{self, Verdict};
use iumgate::config::{Config, Secret};
use iumgate::directory::{Auth, ClientOptions, Directory, JiraDirectory};
use iumgate::sim::Sim;
use std::sync::Arc;
use std::time::Duration;

fn directory(sim: &Sim) -> Arc<dyn Directory> {
    let opts = ClientOptions {
        timeout: Duration::from_secs(5),
        retries: 0,
        ..ClientOptions::default()
    };
    let auth = Auth::Basic {
        username: "iumgate-admin".into(),
        password: Secret::new("demo"),
    };
    Arc::new(JiraDirectory::new(&sim.url(), auth, opts).unwrap())
}

fn password_config(sim: &Sim, tmp: &tempfile::TempDir) -> Config {
    let path = tmp.path().join("password");
    std::fs::write(&path, "demo\n").unwrap();
    let mut cfg = config(sim);
    cfg.directory.username = Some("iumgate-admin".into());
    cfg.directory.password_file = Some(path);
    cfg
}

#[tokio::test]
async fn oidc_and_unverified_saml_idps_are_named_with_what_iumgate_can_do_about_them() {
    let sim = jira_sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = password_config(&sim, &tmp);

    // No IdPs: no SSO finding at all.
    let r = check::run(&cfg, directory(&sim).as_ref()).await;
    assert!(
        r.get("sso_oidc").is_none() && r.get("sso_saml").is_none(),
        "{}",
        r.human()
    );

    sim.set_sso_idps(&[("Okta", "OIDC"), ("Entra ID", "SAML")]);
    let r = check::run(&cfg, directory(&sim).as_ref()).await;
    let oidc = r.get("sso_oidc").unwrap_or_else(|| panic!("{}", r.human()));
    assert_eq!(oidc.verdict, Verdict::Warn);
    assert!(oidc.evidence.contains("Okta"), "{}", oidc.evidence);
    assert!(
        oidc.evidence.contains("from the app's answer only"),
        "{}",
        oidc.evidence
    );
    let saml = r.get("sso_saml").unwrap_or_else(|| panic!("{}", r.human()));
    assert_eq!(saml.verdict, Verdict::Warn);
    assert!(saml.evidence.contains("Entra ID"), "{}", saml.evidence);
    assert!(saml
        .fix
        .as_deref()
        .unwrap_or("")
        .contains("idp_certificate_file"));

    // With the IdP's certificate configured, SAML is verified.
    let mut cfg = cfg;
    let cert = tmp.path().join("idp.pem");
    let idp = Sim::saml_idp().expect("the simulator's IdP");
    std::fs::write(&cert, idp.certificate_pem()).unwrap();
    cfg.sso.saml.idp_certificate_file = Some(cert);
    cfg.sso.saml.audience = Some(iumgate::sim::SAML_AUDIENCE.into());
    cfg.sso.saml.destination = Some(iumgate::sim::SAML_DESTINATION.into());
    let r = check::run(&cfg, directory(&sim).as_ref()).await;
    assert_eq!(
        r.get("sso_saml").map(|f| f.verdict),
        Some(Verdict::Pass),
        "{}",
        r.human()
    );
}
