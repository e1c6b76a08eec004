//! `[pools.<name>]`: seat pools beside the default one (issue 20).
//!
//! `[licence]` + `[ium]` stay the default pool (Jira Software). Each further
//! pool hands out the seats of one more application role — Jira Service
//! Management's agents, bought as a tier of their own — with its own group
//! pair, capacity arithmetic, queue, eviction order, tier check, cleanup and
//! sync. A request whose `"METHOD /path"` matches a pool's `needs` requires
//! that pool's seat instead of the default pool's; the Service Management
//! customer portal (`/servicedesk/customer/…`) requires none.
//!
//! Each pool runs as a gate of its own, configured by [`Config::pool_config`]:
//! the whole config with the pool's groups, tier and `min_idle` in place of
//! `[licence]`/`[ium]`, its own snapshot file and its own keys on Redis.

use super::{Config, Dur, Tier};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One `[pools.<name>]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PoolSection {
    /// The application role whose seats this pool hands out (its
    /// `numberOfSeats` is the tier with `tier = "auto"`).
    pub application: String,
    pub tier: Tier,
    /// Groups that give this application a fixed licence.
    pub fixed_groups: Vec<String>,
    pub reserved: u32,
    pub user_group: String,
    pub access_group: String,
    pub min_idle: Dur,
    /// Regexes over `"METHOD /path"`: the requests that need this pool's
    /// seat. One trailing negative look-ahead `(?!…)` is allowed.
    pub needs: Vec<String>,
    /// The user sync of this pool: members of these groups are put into
    /// its `user_group` (on `[sync]`'s schedule). Empty: no sync for it —
    /// `[sync] source_groups` feeds the default pool only.
    pub sync_source_groups: Vec<String>,
}

impl Default for PoolSection {
    fn default() -> Self {
        PoolSection {
            application: String::new(),
            tier: Tier::Auto,
            fixed_groups: Vec::new(),
            reserved: 0,
            user_group: String::new(),
            access_group: String::new(),
            min_idle: Dur::secs(30 * 60),
            needs: Vec::new(),
            sync_source_groups: Vec::new(),
        }
    }
}

/// The pools by name (sorted, so every replica and every report lists them
/// in one order).
pub type Pools = BTreeMap<String, PoolSection>;

/// The default pool's name (metrics, the status page, the audit trail).
pub const DEFAULT_POOL: &str = "default";

/// Jira Service Management's application role (its agents' seats).
pub const SERVICE_MANAGEMENT: &str = "jira-servicedesk";

impl Config {
    /// The config the gate of pool `name` runs on: this one, with the pool's
    /// licence and groups in place of `[licence]`/`[ium]`, its snapshot in
    /// `<state.path>.<name>`, its keys on Redis under `<key_prefix><name>:`,
    /// and no further pools. `None` if there is no such pool.
    pub fn pool_config(&self, name: &str) -> Option<Config> {
        let p = self.pools.get(name)?;
        let mut c = self.clone();
        c.pools = Pools::new();
        c.licence.application = p.application.clone();
        c.licence.tier = p.tier;
        c.licence.fixed_groups = p.fixed_groups.clone();
        c.licence.reserved = p.reserved;
        c.ium.user_group = p.user_group.clone();
        c.ium.access_group = p.access_group.clone();
        c.ium.min_idle = p.min_idle;
        c.sync.source_groups = p.sync_source_groups.clone();
        if p.application.eq_ignore_ascii_case(SERVICE_MANAGEMENT) {
            // Service Management's own activity: viewing or acting on a
            // request is; queue and SLA refreshes (an agent's open tab) are
            // not. The site's own rules come after and may add to them.
            use iumgate_analyze::pools::{
                SERVICE_MANAGEMENT_ACTIVITY_EXCLUDE as EXCLUDE,
                SERVICE_MANAGEMENT_ACTIVITY_INCLUDE as INCLUDE,
            };
            let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            c.activity.include = [own(INCLUDE), c.activity.include].concat();
            c.activity.exclude = [own(EXCLUDE), c.activity.exclude].concat();
        }
        if let Some(path) = &self.state.path {
            let mut s = path.clone().into_os_string();
            s.push(format!(".{name}"));
            c.state.path = Some(s.into());
        }
        if let Some(cl) = &mut c.cluster {
            cl.key_prefix = format!("{}{name}:", cl.key_prefix);
        }
        Some(c)
    }

    /// Every pool's problems, keyed `pools.<name>.<key>`.
    pub(super) fn validate_pools(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if self.pools.is_empty() {
            return errs;
        }
        if !self.gate_enabled() {
            errs.push((
                "pools".into(),
                "further pools need the default one: set [ium] user_group and access_group".into(),
            ));
        }
        // Every IUM group, with the pool it belongs to: no group may serve
        // two pools, and no pool's fixed groups may be another's IUM group.
        let mut ium_groups: Vec<(&str, &str)> = vec![
            (DEFAULT_POOL, self.ium.user_group.as_str()),
            (DEFAULT_POOL, self.ium.access_group.as_str()),
        ];
        let mut applications = vec![(DEFAULT_POOL, self.licence.application.as_str())];
        for (name, p) in &self.pools {
            let key = |k: &str| format!("pools.{name}.{k}");
            if name == DEFAULT_POOL || !valid_name(name) {
                errs.push((
                    format!("pools.{name}"),
                    "a pool's name is letters, digits, `-` and `_`, and not \"default\"".into(),
                ));
            }
            if p.application.is_empty() {
                errs.push((
                    key("application"),
                    "missing: the application role whose seats this pool hands out, e.g. \"jira-servicedesk\"".into(),
                ));
            }
            for (k, g) in [
                ("user_group", &p.user_group),
                ("access_group", &p.access_group),
            ] {
                if g.is_empty() {
                    errs.push((key(k), "missing".into()));
                }
            }
            if !p.user_group.is_empty() && p.user_group.eq_ignore_ascii_case(&p.access_group) {
                errs.push((key("access_group"), "must differ from user_group".into()));
            }
            if p.needs.is_empty() {
                errs.push((
                    key("needs"),
                    "missing: the requests that need this pool's seat, e.g. ['^[A-Z]+ /jira/servicedesk/']".into(),
                ));
            }
            if let Err(e) = iumgate_analyze::pools::Needs::new(&p.needs) {
                errs.push((key("needs"), e));
            }
            for (other, app) in &applications {
                if !p.application.is_empty() && app.eq_ignore_ascii_case(&p.application) {
                    errs.push((
                        key("application"),
                        format!(
                            "`{}` is the application of pool `{other}` already",
                            p.application
                        ),
                    ));
                }
            }
            applications.push((name, &p.application));
            for g in [&p.user_group, &p.access_group] {
                if g.is_empty() {
                    continue;
                }
                if let Some((other, _)) = ium_groups.iter().find(|(_, o)| o.eq_ignore_ascii_case(g))
                {
                    errs.push((
                        key(if g == &p.user_group { "user_group" } else { "access_group" }),
                        format!("`{g}` is an IUM group of pool `{other}` already: each pool needs its own pair"),
                    ));
                }
            }
            ium_groups.push((name, &p.user_group));
            ium_groups.push((name, &p.access_group));
        }
        // A fixed group of one pool that is an IUM group of another would
        // hand one application's seats out through the other's rules.
        let mut fixed: Vec<(&str, &str)> = self
            .licence
            .fixed_groups
            .iter()
            .map(|g| (DEFAULT_POOL, g.as_str()))
            .collect();
        for (name, p) in &self.pools {
            fixed.extend(p.fixed_groups.iter().map(|g| (name.as_str(), g.as_str())));
        }
        for (pool, g) in fixed {
            if let Some((other, _)) = ium_groups
                .iter()
                .find(|(_, o)| !o.is_empty() && o.eq_ignore_ascii_case(g))
            {
                let k = if pool == DEFAULT_POOL {
                    "licence.fixed_groups".to_string()
                } else {
                    format!("pools.{pool}.fixed_groups")
                };
                errs.push((
                    k,
                    format!("`{g}` is an IUM group of pool `{other}`; fixed groups give a fixed licence"),
                ));
            }
        }
        errs
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
