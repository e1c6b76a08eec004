use super::*;

const MINIMAL: &str = r#"
[proxy]
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:8081"
"#;

fn errors(text: &str) -> Vec<ConfigError> {
    match Config::parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.proxy.upstream, "http://127.0.0.1:8081");
    assert!(c.proxy.preserve_host);
    assert_eq!(c.ium.min_idle.get().as_secs(), 1800);
    assert_eq!(c.queue.abandon_after.get().as_secs(), 120);
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9102");
    assert!(!c.gate_enabled());
}

#[test]
fn durations_parse_from_human_text() {
    let c = Config::parse(&format!("{MINIMAL}\n[ium]\nmin_idle = \"5m\"\n")).unwrap();
    assert_eq!(c.ium.min_idle.get().as_secs(), 300);
    let e = errors(&format!("{MINIMAL}\n[ium]\nmin_idle = 300\n"));
    assert_eq!(e[0].key, "ium.min_idle");
    assert_eq!(e[0].line, Some(7));
    assert!(e[0].message.contains("300s"), "{}", e[0].message);
}

#[test]
fn unknown_key_is_reported_with_path_and_line() {
    let e = errors(&format!("{MINIMAL}\n[ium]\nmin_idel = \"5m\"\n"));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "ium.min_idel");
    assert_eq!(e[0].line, Some(7));
    assert!(e[0].to_string().contains("line 7"));
    assert!(e[0].message.contains("typo"));
}

#[test]
fn wrong_type_names_key_and_line() {
    let e = errors("[proxy]\nupstream = \"http://x\"\nlisten = 8080\n");
    assert_eq!(e[0].key, "proxy.listen");
    assert_eq!(e[0].line, Some(3));
}

#[test]
fn syntax_error_names_line() {
    let e = errors("[proxy]\nupstream = \"http://x\n");
    assert_eq!(e[0].line, Some(2));
}

#[test]
fn validation_names_key_and_line() {
    let e = errors("[proxy]\nlisten = \"127.0.0.1:1\"\nupstream = \"ftp://x\"\n");
    assert_eq!(e[0].key, "proxy.upstream");
    assert_eq!(e[0].line, Some(3));
    assert!(e[0].message.contains("http"));
}

#[test]
fn missing_upstream_is_an_error() {
    let e = errors("[proxy]\nlisten = \"127.0.0.1:1\"\n");
    assert_eq!(e[0].key, "proxy.upstream");
}

#[test]
fn all_errors_reported_together() {
    let e = errors(
        "[proxy]\nupstream = \"http://x\"\nmax_header_bytes = 10\nbogus = 1\n[ium]\nuser_group = \"a\"\n",
    );
    let keys: Vec<_> = e.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"proxy.bogus"), "{keys:?}");
    assert!(keys.contains(&"proxy.max_header_bytes"), "{keys:?}");
    assert!(keys.contains(&"ium.access_group"), "{keys:?}");
    assert!(keys.contains(&"directory"), "{keys:?}");
}

#[test]
fn tier_is_number_or_auto() {
    let c = Config::parse(&format!("{MINIMAL}\n[licence]\ntier = 500\n")).unwrap();
    assert_eq!(c.licence.tier, Tier::Fixed(500));
    let c = Config::parse(&format!("{MINIMAL}\n[licence]\ntier = \"auto\"\n")).unwrap();
    assert_eq!(c.licence.tier, Tier::Auto);
    let e = errors(&format!("{MINIMAL}\n[licence]\ntier = -3\n"));
    assert_eq!(e[0].key, "licence.tier");
}

#[test]
fn secrets_come_from_env_or_file_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "s3cret\n").unwrap();
    let r = SecretRef::new("directory password", None, Some(&f));
    let s = r.resolve().unwrap().unwrap();
    assert_eq!(s.expose(), "s3cret");
    assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    let r = SecretRef::new(
        "directory password",
        Some("IUMGATE_TEST_SURELY_UNSET_VAR"),
        None,
    );
    let e = r.resolve().unwrap_err();
    assert!(e.to_string().contains("IUMGATE_TEST_SURELY_UNSET_VAR"));
}

#[test]
fn bitbucket_with_crowd_is_refused() {
    let e = errors(
        "[proxy]\nupstream = \"http://x\"\nproduct = \"bitbucket\"\n[directory]\nkind = \"crowd\"\n",
    );
    assert_eq!(e[0].key, "directory.kind");
    assert!(e[0].message.contains("Crowd"));
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../config/iumgate.example.toml");
    if let Err(e) = Config::parse(text) {
        panic!("{e}");
    }
}

#[test]
fn timezone_is_checked_at_load() {
    let c = Config::parse(&format!(
        "{MINIMAL}\n[jobs]\ntimezone = \"Europe/Berlin\"\n"
    ))
    .unwrap();
    assert_eq!(c.jobs.timezone.as_deref(), Some("Europe/Berlin"));
    assert!(Config::parse(&format!("{MINIMAL}\n[jobs]\ntimezone = \"+01:00\"\n")).is_ok());
    let e = errors(&format!("{MINIMAL}\n[jobs]\ntimezone = \"Mars/Olympus\"\n"));
    assert_eq!(e[0].key, "jobs.timezone");
    assert_eq!(e[0].line, Some(7));
}

#[test]
fn fixed_offsets_and_names_parse() {
    let plus1 = parse_timezone(Some("+01:00")).unwrap();
    assert_eq!(plus1.to_fixed_offset().unwrap().seconds(), 3600);
    let minus = parse_timezone(Some("-05:30")).unwrap();
    assert_eq!(
        minus.to_fixed_offset().unwrap().seconds(),
        -(5 * 3600 + 30 * 60)
    );
    assert_eq!(
        parse_timezone(Some("+02"))
            .unwrap()
            .to_fixed_offset()
            .unwrap()
            .seconds(),
        7200
    );
    assert!(parse_timezone(Some("UTC")).is_ok());
    assert!(parse_timezone(Some("+25:00")).is_err());
    assert!(parse_timezone(Some("Mars/Olympus")).is_err());
    assert!(parse_timezone(None).is_ok());
}

#[test]
fn cluster_needs_exactly_one_redis_url_and_a_redis_scheme() {
    let c = Config::parse(&format!(
        "{MINIMAL}\n[cluster]\nredis_url = \"redis://127.0.0.1:6379/\"\n"
    ))
    .unwrap();
    let cl = c.cluster.expect("the section");
    assert_eq!(cl.key_prefix, "iumgate:");
    assert_eq!(cl.lease.get().as_secs(), 30);
    assert_eq!(
        cl.redis_url().unwrap().unwrap().expose(),
        "redis://127.0.0.1:6379/"
    );
    let none = errors(&format!("{MINIMAL}\n[cluster]\nkey_prefix = \"x:\"\n"));
    assert!(
        none.iter().any(|e| e.key == "cluster.redis_url"),
        "{none:?}"
    );
    let two = errors(&format!(
        "{MINIMAL}\n[cluster]\nredis_url = \"redis://a/\"\nredis_url_env = \"R\"\n"
    ));
    assert!(two.iter().any(|e| e.key == "cluster.redis_url"), "{two:?}");
    let http = errors(&format!(
        "{MINIMAL}\n[cluster]\nredis_url = \"http://a/\"\n"
    ));
    assert!(
        http.iter().any(|e| e.key == "cluster.redis_url"),
        "{http:?}"
    );
    // Without the section: one process, as before.
    assert!(Config::parse(MINIMAL).unwrap().cluster.is_none());
}

#[test]
fn authorisation_retries_are_at_most_three() {
    let c = Config::parse(&format!(
        "{MINIMAL}\n[identity]\nauthorisation_retries = 3\n"
    ))
    .unwrap();
    assert_eq!(c.identity.authorisation_retries, 3);
    let e = errors(&format!(
        "{MINIMAL}\n[identity]\nauthorisation_retries = 4\n"
    ));
    assert!(
        e.iter().any(|e| e.key == "identity.authorisation_retries"),
        "{e:?}"
    );
}

#[test]
fn the_access_log_is_off_unless_a_path_is_set_and_its_keys_are_checked() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.access_log.path, None);
    assert_eq!(c.access_log.format, AccessLogFormat::Json);
    assert!(!c.access_log.include_query);
    let c = Config::parse(&format!(
        "{MINIMAL}\n[access_log]\npath = \"-\"\nformat = \"combined\"\ninclude_query = true\nbuffer = 100\n"
    ))
    .unwrap();
    assert_eq!(c.access_log.path.as_deref(), Some(Path::new("-")));
    assert_eq!(c.access_log.format, AccessLogFormat::Combined);
    assert!(c.access_log.include_query);
    assert_eq!(c.access_log.buffer, 100);

    let e = errors(&format!("{MINIMAL}\n[access_log]\nformat = \"clf\"\n"));
    assert_eq!(e[0].key, "access_log.format");
    assert_eq!(e[0].line, Some(7));
    assert!(e[0].message.contains("json"), "{}", e[0].message);
    let e = errors(&format!(
        "{MINIMAL}\n[access_log]\npath = \"\"\nbuffer = 0\n"
    ));
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["access_log.path", "access_log.buffer"], "{e:?}");
    assert_eq!(e[0].line, Some(7));
    let dir = std::env::temp_dir();
    let e = errors(&format!(
        "{MINIMAL}\n[access_log]\npath = {:?}\n",
        dir.display().to_string()
    ));
    assert!(e[0].message.contains("is a directory"), "{}", e[0].message);
}

/// A gated config with one Service Management pool, `extra` appended to
/// the pool's section.
fn with_service_pool(extra: &str) -> String {
    format!(
        r#"{MINIMAL}
[directory]
username = "svc"
password_env = "PW"
[licence]
fixed_groups = ["jira-software-users"]
[ium]
user_group = "IUM_user_software"
access_group = "IUM_access_software"
[pools.service]
application = "jira-servicedesk"
fixed_groups = ["jira-servicedesk-users"]
user_group = "IUM_user_service"
access_group = "IUM_access_service"
needs = ['^[A-Z]+ /jira/servicedesk/', '^[A-Z]+ /servicedesk/(?!customer/)']
{extra}
"#
    )
}

#[test]
fn the_example_pool_section_is_valid_once_uncommented() {
    let text = include_str!("../../config/iumgate.example.toml");
    let start = text.find("# [pools.service]").unwrap();
    let pool: String = text[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let base = with_service_pool("");
    let base = &base[..base.find("[pools.service]").unwrap()];
    let c = Config::parse(&format!("{base}\n{pool}\n")).unwrap_or_else(|e| panic!("{e}"));
    let p = &c.pools["service"];
    assert_eq!(p.application, "jira-servicedesk");
    assert_eq!(p.needs.len(), 4);
    let derived = c.pool_config("service").unwrap();
    assert_eq!(derived.ium.user_group, "IUM_user_service");
    assert_eq!(derived.licence.application, "jira-servicedesk");
    assert!(derived.pools.is_empty());
    assert!(
        !derived.activity.exclude.is_empty(),
        "Service Management's refreshes are no activity"
    );
}

#[test]
fn a_pools_config_names_its_state_file_and_its_redis_keys() {
    let mut c = Config::parse(&with_service_pool("")).unwrap();
    c.state.path = Some("/var/lib/iumgate/state.json".into());
    c.cluster = Some(ClusterConfig::default());
    let d = c.pool_config("service").unwrap();
    assert_eq!(
        d.state.path.as_deref(),
        Some(std::path::Path::new("/var/lib/iumgate/state.json.service"))
    );
    assert_eq!(d.cluster.unwrap().key_prefix, "iumgate:service:");
    // The default pool's user sync is not the pool's.
    c.sync.source_groups = vec!["everyone".into()];
    assert!(c
        .pool_config("service")
        .unwrap()
        .sync
        .source_groups
        .is_empty());
    c.pools.get_mut("service").unwrap().sync_source_groups = vec!["agents".into()];
    assert_eq!(
        c.pool_config("service").unwrap().sync.source_groups,
        ["agents"]
    );
    assert!(c.pool_config("nope").is_none());
}

#[test]
fn pools_are_checked_at_load() {
    // Each pool needs its own pair of groups.
    let e = errors(&with_service_pool("").replace("IUM_access_service", "IUM_access_software"));
    assert!(
        e.iter()
            .any(|e| e.key == "pools.service.access_group" && e.message.contains("default")),
        "{e:?}"
    );
    // A fixed group of one pool is never another's IUM group.
    let e = errors(
        &with_service_pool("").replace("[\"jira-servicedesk-users\"]", "[\"IUM_user_software\"]"),
    );
    assert!(
        e.iter().any(|e| e.key == "pools.service.fixed_groups"),
        "{e:?}"
    );
    // Two pools never hand out one application's seats.
    let e = errors(&with_service_pool("").replace(
        "application = \"jira-servicedesk\"",
        "application = \"jira-software\"",
    ));
    assert!(
        e.iter().any(|e| e.key == "pools.service.application"),
        "{e:?}"
    );
    // `needs` must compile (one trailing look-ahead at most), and be there.
    let e = errors(&with_service_pool("").replace("(?!customer/)", "(?<=x)"));
    assert!(e.iter().any(|e| e.key == "pools.service.needs"), "{e:?}");
    let e = errors(&with_service_pool("").replace(
        "needs = ['^[A-Z]+ /jira/servicedesk/', '^[A-Z]+ /servicedesk/(?!customer/)']",
        "",
    ));
    assert!(e.iter().any(|e| e.key == "pools.service.needs"), "{e:?}");
    // "default" is the default pool's name.
    let e = errors(&with_service_pool("").replace("[pools.service]", "[pools.default]"));
    assert!(e.iter().any(|e| e.key == "pools.default"), "{e:?}");
    // Pools beside a default pool only.
    let e = errors(
        &with_service_pool("")
            .replace("user_group = \"IUM_user_software\"\n", "")
            .replace("access_group = \"IUM_access_software\"\n", ""),
    );
    assert!(e.iter().any(|e| e.key == "pools"), "{e:?}");
}
