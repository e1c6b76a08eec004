//! `iumgate demo`: the built-in Atlassian simulator with seeded users and the
//! proxy in front of it — the whole product on one machine, no Jira needed.

use crate::app::{self, Options};
use crate::config::{Config, Dur, Tier};
use crate::directory::{
    Auth, BitbucketDirectory, ClientOptions, ConfluenceDirectory, Directory, JiraDirectory,
};
use crate::product::Product;
use crate::sim::{Sim, SimConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct DemoOptions {
    pub product: Product,
    pub listen: SocketAddr,
    /// None: 127.0.0.1:9102, or a free port beside the proxy's when
    /// `listen` asks for a free port ([`admin_listen_for`]).
    pub admin_listen: Option<SocketAddr>,
    pub min_idle: Duration,
    pub login: DemoLogin,
    /// `--access-log`: `[access_log] path` (JSON lines).
    pub access_log: Option<std::path::PathBuf>,
    /// `--service-management` (Jira only): the simulated Jira also runs
    /// Service Management, and iumgate hands its agent seats out as a second
    /// pool, `[pools.service]` ([`service_pool`]).
    pub service_management: bool,
}

/// The Service Management pool's name in the demo.
pub const SERVICE_POOL: &str = "service";

/// The Service Management agent queue of the demo's `HELP` project.
pub const SERVICE_QUEUE: &str = "/jira/servicedesk/projects/HELP/queues/custom/1";

/// Where the demo's portal customers log in (they need no seat).
pub const PORTAL_LOGIN: &str = "/servicedesk/customer/user/login";

/// `[pools.service]` of the demo with `--service-management`: the agents of
/// `jira-servicedesk` (fixed licence: `jira-servicedesk-users`), shared
/// through `IUM_user_service` / `IUM_access_service`, needing a seat for
/// the agent pages ([`iumgate_analyze::pools::SERVICE_MANAGEMENT_NEEDS`]).
pub fn service_pool(min_idle: Duration) -> crate::config::PoolSection {
    use crate::sim::{IUM_ACCESS_SERVICE, IUM_USER_SERVICE, SERVICE_DESK_ROLE, SERVICE_DESK_USERS};
    crate::config::PoolSection {
        application: SERVICE_DESK_ROLE.into(),
        tier: Tier::Auto,
        fixed_groups: vec![SERVICE_DESK_USERS.into()],
        reserved: 0,
        user_group: IUM_USER_SERVICE.into(),
        access_group: IUM_ACCESS_SERVICE.into(),
        min_idle: Dur(min_idle),
        needs: iumgate_analyze::pools::SERVICE_MANAGEMENT_NEEDS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..crate::config::PoolSection::default()
    }
}

/// Which login the demo's simulated app shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoLogin {
    /// The login form of older versions (`os_username`, `j_username`).
    #[default]
    Form,
    /// Today's login page (Jira 10, Confluence 9, Bitbucket 9): JSON to
    /// `/rest/tsv/latest/authenticate`, with two-step verification for
    /// [`TWO_STEP_USER`].
    Json,
    /// SAML single sign-on through the simulator's IdP, verified by
    /// iumgate (`[sso.saml]` with the IdP's certificate).
    Saml,
    /// OpenID Connect single sign-on through the simulator's OIDC IdP, with
    /// iumgate as a relying party of it (`[sso.oidc]`).
    Oidc,
}

/// The demo user enrolled in two-step verification with `--login json`.
pub const TWO_STEP_USER: &str = "casual20";
/// Their code (the simulator holds one fixed code, not a real TOTP).
pub const TWO_STEP_CODE: &str = "424242";

/// The demo's config (also used by tests that want the demo world).
pub fn demo_config(
    product: Product,
    upstream: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    min_idle: Duration,
) -> Config {
    let mut cfg = Config::default();
    cfg.proxy.listen = listen;
    cfg.proxy.upstream = upstream.to_string();
    cfg.proxy.product = product;
    cfg.admin.listen = admin;
    let (fixed, user, access, app) = match product {
        Product::Jira => (
            "jira-software-users",
            "IUM_user_software",
            "IUM_access_software",
            "jira-software",
        ),
        Product::Confluence => (
            "confluence-users",
            "IUM_user_confluence",
            "IUM_access_confluence",
            "confluence",
        ),
        Product::Bitbucket => (
            "stash-users",
            "IUM_user_bitbucket",
            "IUM_access_bitbucket",
            "bitbucket",
        ),
    };
    cfg.licence.tier = Tier::Auto;
    cfg.licence.application = app.into();
    cfg.licence.fixed_groups = vec![fixed.into()];
    cfg.ium.user_group = user.into();
    cfg.ium.access_group = access.into();
    cfg.ium.min_idle = Dur(min_idle);
    cfg.queue.retry_every = Dur::secs(5);
    cfg.queue.message =
        Some("This is the iumgate demo: 10 seats, 3 power users, 7 shared seats.".into());
    cfg
}

/// Where the demo's admin listener goes when not told: a free port on the
/// proxy's address when the proxy takes a free port too (port 0), else
/// 127.0.0.1:9102 as `iumgate serve`.
pub fn admin_listen_for(listen: SocketAddr, admin: Option<SocketAddr>) -> SocketAddr {
    match admin {
        Some(a) => a,
        None if listen.port() == 0 => SocketAddr::new(listen.ip(), 0),
        None => ([127, 0, 0, 1], 9102).into(),
    }
}

/// A directory client for the demo's service account.
pub fn demo_directory(
    product: Product,
    url: &str,
) -> Result<Arc<dyn Directory>, crate::directory::SetupError> {
    let auth = Auth::Basic {
        username: "iumgate-admin".into(),
        password: crate::config::Secret::new("demo"),
    };
    let opts = ClientOptions {
        timeout: Duration::from_secs(5),
        retries: 2,
        backoff: Duration::from_millis(100),
        extra_ca: None,
    };
    Ok(match product {
        Product::Jira => Arc::new(JiraDirectory::new(url, auth, opts)?),
        Product::Confluence => Arc::new(ConfluenceDirectory::new(url, auth, opts)?),
        Product::Bitbucket => Arc::new(BitbucketDirectory::new(url, auth, opts)?),
    })
}

pub async fn run(o: DemoOptions) -> i32 {
    if o.service_management && o.product != Product::Jira {
        eprintln!(
            "iumgate demo: --service-management needs --product jira (Service Management is a Jira application), not {}",
            o.product.name()
        );
        return 2;
    }
    // Before anything binds: a Ctrl-C during start-up must still be handled.
    let signals = match app::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("iumgate demo: {}", crate::proxy::error_chain(&e));
            return 1;
        }
    };
    let mut sim_config = if o.service_management {
        SimConfig::demo_service_management()
    } else {
        SimConfig::demo(o.product)
    };
    if o.login == DemoLogin::Json {
        sim_config.login_style = crate::sim::LoginStyle::Json;
        sim_config.two_step.push(crate::sim::SimTwoStep::new(
            TWO_STEP_USER,
            TWO_STEP_CODE,
            &[],
        ));
    }
    let sim = match Sim::start(sim_config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("iumgate demo: cannot start the simulator: {e}");
            return 1;
        }
    };
    let admin_listen = admin_listen_for(o.listen, o.admin_listen);
    let mut cfg = demo_config(o.product, &sim.url(), o.listen, admin_listen, o.min_idle);
    cfg.access_log.path = o.access_log.clone();
    if o.service_management {
        cfg.pools
            .insert(SERVICE_POOL.into(), service_pool(o.min_idle));
        cfg.queue.message = Some(
            "This is the iumgate demo: 7 shared Jira Software seats and 4 shared Service Management agent seats."
                .into(),
        );
    }
    // With `--login saml`, iumgate verifies the simulator IdP's responses:
    // its certificate goes to a file for the demo's lifetime.
    let _idp_certificate = if o.login == DemoLogin::Saml {
        match saml_config(&mut cfg) {
            Ok(file) => Some(file),
            Err(e) => {
                eprintln!("iumgate demo: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    // With `--login oidc`, the simulator's OIDC IdP runs beside it; the app
    // and iumgate are both its clients (the secret goes to a file for the
    // demo's lifetime).
    let (_oidc_idp, _oidc_secret) = if o.login == DemoLogin::Oidc {
        match oidc_config(&mut cfg).await {
            Ok((idp, secret)) => {
                sim.set_oidc_idp(Some(&idp));
                (Some(idp), Some(secret))
            }
            Err(e) => {
                eprintln!("iumgate demo: {e}");
                return 1;
            }
        }
    } else {
        (None, None)
    };
    let directory = match demo_directory(o.product, &sim.url()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("iumgate demo: {}", crate::proxy::error_chain(&e));
            return 1;
        }
    };
    // The admin page with its seat holders and queue: a token made for this
    // run, handed over in a file only this user may read, and a link that
    // opens the page in a browser. The token is read once at start: the file
    // goes right after, so a demo killed later leaves no secret behind.
    let admin_token = new_admin_token();
    let token_file = match admin_token_file(&mut cfg, &admin_token) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("iumgate demo: {e}");
            return 1;
        }
    };
    let started = app::start_opts(
        cfg,
        Options {
            directory: Some(directory),
            ..Options::default()
        },
    )
    .await;
    drop(token_file);
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "iumgate demo: cannot start the proxy: {}",
                crate::proxy::error_chain(&e)
            );
            if let app::StartError::Listen { key, .. } = &e {
                let flag = if *key == "admin.listen" {
                    "--admin-listen"
                } else {
                    "--listen"
                };
                eprintln!("(try {flag} 127.0.0.1:0 for a free port)");
            }
            return 1;
        }
    };
    if let (Some(_), Some(gate)) = (&_oidc_idp, &running.gate) {
        // The first sign-in should meet iumgate as a relying party, not the
        // fallback: discovery is quick against the local IdP.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !gate.oidc_ready() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let name = o.product.name();
    let page = match o.product {
        Product::Jira => "/browse/DEMO-1",
        Product::Confluence => "/display/DEMO/Home",
        Product::Bitbucket => "/projects/DEMO",
    };
    println!();
    println!("  iumgate demo — {name} simulator behind the licence gate");
    println!();
    println!("  Open        http://{}{page}", running.proxy_addr);
    println!("  Simulator   {} (direct, bypassing the gate)", sim.url());
    println!(
        "  Admin       http://{}/healthz  /readyz",
        running.admin_addr
    );
    // Printed for the person at the terminal (never logged): the link
    // trades the token for a cookie scoped to the admin page.
    println!(
        "  Status      http://{}{}?token={admin_token}",
        running.admin_addr,
        crate::admin::LOGIN_PATH
    );
    println!("              the admin page: seat holders and the queue, live as users log in");
    if let Some(p) = &o.access_log {
        println!(
            "  Access log  {}  (read it with: iumgate analyze {})",
            p.display(),
            p.display()
        );
    }
    println!();
    println!("  Users (password for all: demo)");
    println!("    power users  power1 power2 power3        fixed licence, never touched");
    println!("    casual users casual01 … casual20         share 7 seats (tier 10 − 3 fixed)");
    println!(
        "  min_idle = {}: log 8 casual users in (e.g. in private windows)",
        humantime::format_duration(o.min_idle)
    );
    println!("  and the 8th waits until a holder has been idle that long.");
    if o.service_management {
        let proxy = running.proxy_addr;
        println!();
        println!("  Jira Service Management: a second pool, \"{SERVICE_POOL}\" (application jira-servicedesk)");
        println!("  Queue       http://{proxy}{SERVICE_QUEUE}");
        println!(
            "    power agent  agent1                       fixed agent licence, never touched"
        );
        println!(
            "    agents       agent01 … agent10            share 4 agent seats (tier 5 − 1 fixed)"
        );
        println!("    both pools   both1 both2 both3            casual in both: a software seat for issues,");
        println!(
            "                                              an agent seat once they open the queue"
        );
        println!(
            "    customers    customer1 … customer3        the customer portal, no seat: log in at"
        );
        println!("  Portal      http://{proxy}{PORTAL_LOGIN}");
        println!("  Seats       software: 7 shared (tier 10 − 3 fixed); service: 4 shared (tier 5 − 1 fixed)");
        println!(
            "  Log 5 agents in to the queue and the 5th waits, while software users still get in."
        );
    }
    match o.login {
        DemoLogin::Json => println!(
            "  Login page  today's (JSON, two-step): {TWO_STEP_USER} is enrolled, code {TWO_STEP_CODE}"
        ),
        DemoLogin::Saml => println!(
            "  SAML SSO    http://{}/sim-idp/sso?user=casual01&RelayState={page}  (the simulator's IdP; any user)",
            running.proxy_addr
        ),
        DemoLogin::Oidc => {
            let issuer = _oidc_idp.as_ref().map_or("", |i| i.issuer());
            println!(
                "  OIDC SSO    http://{}/plugins/servlet/oidc/initiate-login?returnUrl={page}",
                running.proxy_addr
            );
            println!(
                "              the simulator's IdP at {issuer}: any user above, password {}",
                crate::sim::oidc_idp::OIDC_PASSWORD
            );
        }
        DemoLogin::Form => {}
    }
    println!();
    println!("  Ctrl-C to stop.");
    let code = app::run_until_signalled(running, signals).await;
    sim.shutdown();
    code
}

/// A fresh admin token: 32 random bytes, hex.
fn new_admin_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `[admin] token_file`: the demo's token in a file only this user may read.
fn admin_token_file(cfg: &mut Config, token: &str) -> Result<TempFile, String> {
    let path =
        std::env::temp_dir().join(format!("iumgate-demo-admin-token-{}", std::process::id()));
    write_private(&path, token)
        .map_err(|e| format!("cannot write the admin token to {}: {e}", path.display()))?;
    cfg.admin.token_file = Some(path.clone());
    Ok(TempFile(path))
}

/// A file in the temporary directory (the IdP's certificate, the OIDC
/// client secret), removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `[sso.saml]` for the simulator's IdP: its certificate (written to a file
/// in the temporary directory), audience, destination and issuer.
fn saml_config(cfg: &mut Config) -> Result<TempFile, String> {
    let idp = Sim::saml_idp().ok_or("the simulator's SAML IdP has no key")?;
    let path = std::env::temp_dir().join(format!("iumgate-demo-idp-{}.pem", std::process::id()));
    std::fs::write(&path, idp.certificate_pem()).map_err(|e| {
        format!(
            "cannot write the IdP certificate to {}: {e}",
            path.display()
        )
    })?;
    let saml = &mut cfg.sso.saml;
    saml.idp_certificate_file = Some(path.clone());
    saml.audience = Some(crate::sim::SAML_AUDIENCE.to_string());
    saml.destination = Some(crate::sim::SAML_DESTINATION.to_string());
    saml.issuer = Some(crate::sim::SAML_IDP_ENTITY_ID.to_string());
    Ok(TempFile(path))
}

/// Starts the simulator's OIDC IdP and points `[sso.oidc]` at it; the
/// client secret goes to a file readable by this user only.
async fn oidc_config(
    cfg: &mut Config,
) -> Result<(crate::sim::oidc_idp::OidcIdp, TempFile), String> {
    use crate::sim::oidc_idp::{OidcIdp, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET};
    let idp = OidcIdp::start()
        .await
        .map_err(|e| format!("cannot start the simulator's OIDC IdP: {e}"))?;
    let path =
        std::env::temp_dir().join(format!("iumgate-demo-oidc-secret-{}", std::process::id()));
    write_private(&path, OIDC_CLIENT_SECRET).map_err(|e| {
        format!(
            "cannot write the OIDC client secret to {}: {e}",
            path.display()
        )
    })?;
    let oidc = &mut cfg.sso.oidc;
    oidc.issuer = Some(idp.issuer().to_string());
    oidc.client_id = OIDC_CLIENT_ID.to_string();
    oidc.client_secret_file = Some(path.clone());
    Ok((idp, TempFile(path)))
}

/// Writes `text` to a new file only its owner may read (on Unix).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)?.write_all(text.as_bytes())
}
