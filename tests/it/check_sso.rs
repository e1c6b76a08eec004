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

/// With `[sso.oidc]`, the OIDC finding passes, and iumgate reads the IdP's
/// discovery document as `serve` will: an IdP that answers passes, a wrong
/// issuer fails with the fix.
#[tokio::test]
async fn with_sso_oidc_the_idp_is_discovered_and_the_oidc_finding_passes() {
    use iumgate_sim::oidc_idp::{OidcIdp, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET};
    let sim = jira_sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = password_config(&sim, &tmp);
    sim.set_sso_idps(&[("Okta", "OIDC")]);
    let idp = OidcIdp::start().await.unwrap();
    let secret = tmp.path().join("oidc-secret");
    std::fs::write(&secret, OIDC_CLIENT_SECRET).unwrap();
    cfg.sso.oidc.issuer = Some(idp.issuer().to_string());
    cfg.sso.oidc.client_id = OIDC_CLIENT_ID.into();
    cfg.sso.oidc.client_secret_file = Some(secret);
    let r = check::run(&cfg, directory(&sim).as_ref()).await;
    let f = r.get("sso_oidc").unwrap_or_else(|| panic!("{}", r.human()));
    assert_eq!(f.verdict, Verdict::Pass, "{}", r.human());
    let f = r
        .get("sso_oidc_provider")
        .unwrap_or_else(|| panic!("{}", r.human()));
    assert_eq!(f.verdict, Verdict::Pass, "{}", r.human());
    assert!(f.evidence.contains(idp.issuer()), "{}", f.evidence);

    // An issuer with a trailing slash is not the one the document names.
    cfg.sso.oidc.issuer = Some(format!("{}/", idp.issuer()));
    let r = check::run(&cfg, directory(&sim).as_ref()).await;
    let f = r
        .get("sso_oidc_provider")
        .unwrap_or_else(|| panic!("{}", r.human()));
    assert_eq!(f.verdict, Verdict::Fail, "{}", r.human());
    assert!(f.fix.as_deref().unwrap_or("").contains("issuer exactly"));
}
