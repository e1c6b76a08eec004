//! The deployment files are parsed and checked against each other and
//! against iumgate's own config loader: Dockerfile, Kubernetes manifests,
//! compose file, systemd unit (and `systemd-analyze verify` where available).
//! Docker itself cannot run here; what can be checked without it is.

use iumgate::config::Config;
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v:?}"))
}

fn seq<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v:?}"))
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

// ---- Dockerfile ---------------------------------------------------------------

/// (instruction, arguments) with continuation lines joined and comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let t = line.trim();
        if cur.is_empty() && (t.starts_with('#') || t.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (ins, args) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((
            ins.to_uppercase(),
            args.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
        cur.clear();
    }
    out
}

/// The instructions of the last stage (the runtime image).
fn runtime_stage(all: &[(String, String)]) -> Vec<(String, String)> {
    let last = all.iter().rposition(|(i, _)| i == "FROM").unwrap();
    all[last..].to_vec()
}

fn cargo_commands(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"cargo build[^&;\n\\]*").unwrap();
    re.find_iter(text)
        .map(|m| m.as_str().split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn dockerfile_is_multi_stage_with_a_small_non_root_runtime() {
    let all = dockerfile();
    let froms: Vec<_> = all.iter().filter(|(i, _)| i == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].1.contains(" AS build"),
        "the first stage is the build: {:?}",
        froms[0]
    );
    let rt = runtime_stage(&all);
    let base = &rt[0].1;
    assert!(
        base.contains("distroless") || base.contains("-slim"),
        "small runtime base: {base}"
    );
    assert!(
        !rt.iter().any(|(i, a)| i == "RUN" && a.contains("cargo")),
        "no toolchain in the runtime stage"
    );
    let user = rt
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .expect("a USER in the runtime stage");
    let uid = user.1.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "non-root: {user:?}");
    // The binary goes in from the build stage.
    assert!(rt.iter().any(|(i, a)| i == "COPY"
        && a.contains("--from=build")
        && a.contains("/usr/local/bin/iumgate")));
    // Config and state as volumes; the config path is in the config volume.
    let volume = rt.iter().find(|(i, _)| i == "VOLUME").expect("VOLUME");
    assert!(
        volume.1.contains("/etc/iumgate") && volume.1.contains("/var/lib/iumgate"),
        "{volume:?}"
    );
    let env = rt
        .iter()
        .find(|(i, a)| i == "ENV" && a.starts_with("IUMGATE_CONFIG="))
        .expect("IUMGATE_CONFIG");
    assert!(env.1.starts_with("IUMGATE_CONFIG=/etc/iumgate/"));
    // HEALTHCHECK runs the binary's own probe (no curl in the image) on /healthz.
    let hc = rt
        .iter()
        .find(|(i, _)| i == "HEALTHCHECK")
        .expect("HEALTHCHECK");
    assert!(
        hc.1.contains("\"/usr/local/bin/iumgate\", \"healthcheck\""),
        "{hc:?}"
    );
    assert!(hc.1.contains("/healthz"), "{hc:?}");
    let ep = rt
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert!(ep.1.contains("/usr/local/bin/iumgate"));
    assert!(rt.iter().any(|(i, a)| i == "CMD" && a.contains("serve")));
    // The build context filter keeps target/ and .git out.
    let ignore = read("deploy/Dockerfile.dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target") && ignore.lines().any(|l| l.trim() == ".git")
    );
}

#[test]
fn dockerfile_builds_with_the_command_ci_uses() {
    let docker = cargo_commands(&read("deploy/Dockerfile"));
    // The fully optimised profile (Cargo.toml: fat LTO, one codegen unit),
    // and the binary installed from that profile's directory.
    assert_eq!(
        docker,
        ["cargo build --profile dist --locked"],
        "the image's only build command"
    );
    assert!(read("deploy/Dockerfile").contains("target/dist/iumgate"));
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let dist = &manifest["profile"]["dist"];
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(dist["lto"].as_str(), Some("fat"));
    assert_eq!(dist["codegen-units"].as_integer(), Some(1));
    // The README's quick start builds the lighter `release` profile: no fat
    // LTO, no single codegen unit there (issue 22, item 5: the first demo
    // within 3 minutes on 2 cores).
    let release = manifest["profile"].get("release");
    let setting = |k: &str| release.and_then(|r| r.get(k)).cloned();
    assert!(
        !matches!(setting("lto"), Some(toml::Value::String(v)) if v == "fat")
            && setting("lto") != Some(toml::Value::Boolean(true)),
        "profile.release has fat LTO again"
    );
    assert_ne!(
        setting("codegen-units"),
        Some(toml::Value::Integer(1)),
        "profile.release has one codegen unit again"
    );
    // CI builds and tests with --locked as well; if it ever builds the
    // release binary itself, it must be the very same command.
    let ci = read(".ci/run");
    for line in ci
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo ") && !l.starts_with("cargo fmt"))
    {
        assert!(
            line.contains("--locked"),
            "CI runs `{line}` without --locked"
        );
    }
    for cmd in cargo_commands(&ci) {
        assert_eq!(cmd, docker[0], "CI and the image build differently");
    }
}

/// Issue 22, item 5: the README's first command must answer within minutes
/// on a fresh 2-core machine, so it builds the cheap profile `quick`
/// (unoptimised, no debug info: 136 CPU-s here, against 420 for `release`),
/// and `cargo test` stays the second command.
#[test]
fn the_readme_quick_start_builds_the_quick_profile_then_tests() {
    let readme = read("README.md");
    let quick_start = readme
        .split("## Quick start")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Quick start section");
    let commands: Vec<&str> = quick_start
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(str::trim)
        .collect();
    assert_eq!(
        commands,
        ["cargo run --profile quick -- demo", "cargo test"],
        "the quick start's two commands"
    );
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let quick = &manifest["profile"]["quick"];
    assert_eq!(quick["inherits"].as_str(), Some("release"));
    assert_eq!(quick["opt-level"].as_integer(), Some(0));
    // Inherited from release: no debug info, no LTO, parallel codegen.
    for key in ["debug", "lto", "codegen-units"] {
        assert!(
            quick.get(key).is_none()
                && manifest["profile"]
                    .get("release")
                    .and_then(|r| r.get(key))
                    .is_none(),
            "`{key}` makes the quick start's build slower"
        );
    }
}

#[test]
fn dockerfile_toolchain_is_at_least_the_crates_rust_version() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    // Declared once, for every crate of the workspace.
    let msrv = manifest["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap()
        .to_owned();
    let arg = dockerfile()
        .into_iter()
        .find(|(i, a)| i == "ARG" && a.starts_with("RUST_VERSION="))
        .expect("ARG RUST_VERSION");
    let docker = arg.1.trim_start_matches("RUST_VERSION=").to_owned();
    let v = |s: &str| {
        s.split('.')
            .map(|p| p.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        v(&docker) >= v(&msrv),
        "the image's Rust {docker} is older than rust-version {msrv}"
    );
    let all = dockerfile();
    assert!(all
        .iter()
        .any(|(i, a)| i == "FROM" && a.starts_with("rust:${RUST_VERSION}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_subcommand_passes_on_a_live_admin_listener_and_fails_otherwise() {
    let mut cfg = Config::default();
    cfg.proxy.listen = "127.0.0.1:0".parse().unwrap();
    cfg.proxy.upstream = "http://127.0.0.1:9".into();
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    let running = iumgate::app::start(cfg).await.unwrap();
    let probe = |url: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_iumgate"))
                .args(["healthcheck", "--url", &url])
                .output()
                .unwrap()
        })
    };
    let ok = probe(format!("http://{}/healthz", running.admin_addr))
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let missing = probe(format!("http://{}/no-such-page", running.admin_addr))
        .await
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(1),
        "a non-200 answer is unhealthy"
    );
    running.begin_drain();
    let addr = running.admin_addr;
    running.wait().await;
    let down = probe(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(
        down.status.code(),
        Some(1),
        "nothing listening is unhealthy"
    );
    assert!(String::from_utf8_lossy(&down.stderr).contains("healthcheck"));
}

// ---- Kubernetes -----------------------------------------------------------------

fn kube_objects() -> Vec<Value> {
    kube_objects_in("deploy/kubernetes")
}

/// Every object of the kustomization in `dir`; every manifest in `dir` must
/// be listed in it.
fn kube_objects_in(dir: &str) -> Vec<Value> {
    let kust = &yaml_docs(&format!("{dir}/kustomization.yaml"))[0];
    let mut out = Vec::new();
    for r in seq(&kust["resources"], "kustomization resources") {
        let rel = format!("{dir}/{}", s(r, "resource"));
        assert!(
            root().join(&rel).exists(),
            "kustomization lists a missing file: {rel}"
        );
        out.extend(yaml_docs(&rel));
    }
    let listed: Vec<String> = seq(&kust["resources"], "")
        .iter()
        .map(|r| s(r, "").to_owned())
        .collect();
    for e in std::fs::read_dir(root().join(dir)).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(
                listed.contains(&name),
                "{name} is not in kustomization.yaml"
            );
        }
    }
    out
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    seq(&pod["containers"], "containers")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env_of(c: &Value) -> BTreeMap<String, Value> {
    seq(&c["env"], "env")
        .iter()
        .map(|e| (s(&e["name"], "env name").to_owned(), e.clone()))
        .collect()
}

fn container_port(c: &Value, name: &str) -> u16 {
    seq(&c["ports"], "ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port {name}")) as u16
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_mapping().expect("selector");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn kubernetes_runs_iumgate_as_jiras_sidecar_and_only_iumgate_is_reachable() {
    let objs = kube_objects();
    for o in &objs {
        assert!(
            o["apiVersion"].is_string() && o["kind"].is_string(),
            "{o:?}"
        );
        assert!(o["metadata"]["name"].is_string(), "{o:?}");
    }
    let sts = find(&objs, "StatefulSet", "jira");
    assert_eq!(
        sts["spec"]["replicas"].as_u64(),
        Some(1),
        "one gate per set of IUM groups"
    );
    let tmpl = &sts["spec"]["template"];
    assert!(labels_match(
        &sts["spec"]["selector"]["matchLabels"],
        &tmpl["metadata"]["labels"]
    ));
    let pod = &tmpl["spec"];
    let jira = container(pod, "jira");
    let gate = container(pod, "iumgate");

    // The config iumgate mounts is valid for iumgate itself.
    let cm = find(&objs, "ConfigMap", "iumgate");
    let cfg = Config::parse(s(&cm["data"]["iumgate.toml"], "iumgate.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.gate_enabled());
    let mounts = seq(&gate["volumeMounts"], "iumgate mounts");
    let mount_of = |vol: &str| {
        mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(vol))
            .map(|m| s(&m["mountPath"], "mountPath").to_owned())
            .unwrap_or_else(|| panic!("no mount {vol}"))
    };
    let volumes = seq(&pod["volumes"], "volumes");
    let config_vol = volumes
        .iter()
        .find(|v| v["configMap"]["name"].as_str() == Some("iumgate"))
        .expect("ConfigMap volume");
    let config_dir = mount_of(s(&config_vol["name"], "volume name"));
    let args = seq(&gate["args"], "args")
        .iter()
        .map(|a| s(a, "arg").to_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        args,
        ["serve", "--config", &format!("{config_dir}/iumgate.toml")]
    );
    // State on a persistent volume claim, where [state] path points.
    let state_dir = mount_of("iumgate-state");
    assert_eq!(
        cfg.state.path.as_deref().and_then(Path::parent),
        Some(Path::new(&state_dir))
    );
    let claims = seq(&sts["spec"]["volumeClaimTemplates"], "claims");
    assert!(claims
        .iter()
        .any(|c| c["metadata"]["name"].as_str() == Some("iumgate-state")));

    // Ports: iumgate listens where the container says; Jira only on localhost,
    // on the port iumgate forwards to.
    let http = container_port(gate, "http");
    let admin = container_port(gate, "admin");
    assert_eq!(cfg.proxy.listen.port(), http);
    assert!(
        cfg.proxy.listen.ip().is_unspecified(),
        "reachable from the Service"
    );
    assert_eq!(cfg.admin.listen.port(), admin);
    // Reachable by every pod, so bounded (security review finding 9).
    assert!(
        cfg.admin.max_connections <= 64,
        "{}",
        cfg.admin.max_connections
    );
    // Only the ingress controller may set X-Forwarded-For: never the whole
    // pod network (the review's informational finding: 10.0.0.0/8 let any
    // pod claim any client address).
    assert!(!cfg.proxy.trusted_proxies.is_empty());
    for net in &cfg.proxy.trusted_proxies {
        let narrow = match net {
            ipnet::IpNet::V4(n) => n.prefix_len() >= 24,
            ipnet::IpNet::V6(n) => n.prefix_len() >= 64,
        };
        assert!(
            narrow,
            "trusted_proxies {net} is wider than an ingress pool"
        );
    }
    let jenv = env_of(jira);
    assert_eq!(
        s(&jenv["ATL_TOMCAT_ADDRESS"]["value"], "address"),
        "127.0.0.1"
    );
    let jira_port: u16 = s(&jenv["ATL_TOMCAT_PORT"]["value"], "port")
        .parse()
        .unwrap();
    assert_eq!(cfg.proxy.upstream, format!("http://127.0.0.1:{jira_port}"));
    assert!(jira["ports"].is_null(), "Jira exposes no port");
    for k in [
        "ATL_PROXY_NAME",
        "ATL_PROXY_PORT",
        "ATL_TOMCAT_SCHEME",
        "ATL_TOMCAT_SECURE",
    ] {
        assert!(jenv.contains_key(k), "Jira's connector needs {k}");
    }

    // The users' Service points at iumgate's port, never at Jira.
    let svc = find(&objs, "Service", "jira");
    assert!(labels_match(
        &svc["spec"]["selector"],
        &tmpl["metadata"]["labels"]
    ));
    for p in seq(&svc["spec"]["ports"], "ports") {
        assert_eq!(p["targetPort"].as_str(), Some("http"), "{p:?}");
    }

    // Secrets: the env vars the config names come from the Secret's keys.
    let secret = find(&objs, "Secret", "iumgate");
    let genv = env_of(gate);
    for var in [
        cfg.directory.password_env.clone().unwrap(),
        cfg.admin.token_env.clone().unwrap(),
    ] {
        let r =
            &genv.get(&var).unwrap_or_else(|| panic!("{var} not set"))["valueFrom"]["secretKeyRef"];
        assert_eq!(r["name"].as_str(), Some("iumgate"));
        let key = s(&r["key"], "key");
        assert!(
            secret["stringData"].get(key).is_some(),
            "the Secret has no key {key}"
        );
    }

    // Probes, drain, resources, hardening.
    assert_eq!(
        gate["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        gate["livenessProbe"]["httpGet"]["port"].as_str(),
        Some("admin")
    );
    assert_eq!(
        gate["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        gate["readinessProbe"]["httpGet"]["port"].as_str(),
        Some("admin")
    );
    let pause = gate["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("preStop pause");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= pause + cfg.proxy.shutdown_grace.get().as_secs(),
        "the pod is killed before the drain ends"
    );
    for c in [jira, gate] {
        assert!(
            c["resources"]["requests"]["cpu"].as_str().is_some(),
            "{:?}",
            c["name"]
        );
        assert!(
            c["resources"]["requests"]["memory"].as_str().is_some(),
            "{:?}",
            c["name"]
        );
    }
    let sc = &gate["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));

    // Prometheus: ServiceMonitor → admin Service → the admin port; annotations too.
    let admin_svc = find(&objs, "Service", "iumgate-admin");
    assert!(labels_match(
        &admin_svc["spec"]["selector"],
        &tmpl["metadata"]["labels"]
    ));
    let admin_port = seq(&admin_svc["spec"]["ports"], "ports")[0].clone();
    assert_eq!(admin_port["targetPort"].as_str(), Some("admin"));
    let sm = find(&objs, "ServiceMonitor", "iumgate");
    assert_eq!(
        s(&sm["apiVersion"], "apiVersion"),
        "monitoring.coreos.com/v1"
    );
    assert!(labels_match(
        &sm["spec"]["selector"]["matchLabels"],
        &admin_svc["metadata"]["labels"]
    ));
    let ep = &seq(&sm["spec"]["endpoints"], "endpoints")[0];
    assert_eq!(ep["port"], admin_port["name"]);
    assert_eq!(ep["path"].as_str(), Some("/metrics"));
    let ann = &tmpl["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(
        ann["prometheus.io/port"].as_str(),
        Some(admin.to_string().as_str())
    );
}

// ---- compose ----------------------------------------------------------------

#[test]
fn compose_puts_iumgate_in_front_of_jira_with_prometheus_and_grafana() {
    let doc = &yaml_docs("deploy/compose.yaml")[0];
    let svc = &doc["services"];
    for name in ["iumgate", "jira", "prometheus", "grafana"] {
        assert!(svc[name].is_mapping(), "service {name}");
    }
    let gate = &svc["iumgate"];
    assert_eq!(
        gate["build"]["dockerfile"].as_str(),
        Some("deploy/Dockerfile")
    );
    assert!(root()
        .join("deploy")
        .join(s(&gate["build"]["context"], "context"))
        .join("deploy/Dockerfile")
        .exists());
    assert!(svc["jira"]["image"]
        .as_str()
        .unwrap()
        .starts_with("atlassian/jira-software"));
    assert!(
        svc["jira"]["ports"].is_null(),
        "Jira is reachable through iumgate only"
    );

    // The inline config is valid for iumgate and matches the wiring.
    let configs = &doc["configs"];
    let cfg = Config::parse(s(&configs["iumgate.toml"]["content"], "iumgate.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.gate_enabled());
    assert!(cfg.proxy.upstream.starts_with("http://jira:"));
    let published = s(&seq(&gate["ports"], "ports")[0], "port").to_owned();
    assert_eq!(published, format!("{0}:{0}", cfg.proxy.listen.port()));
    let jenv = &svc["jira"]["environment"];
    assert_eq!(
        jenv["ATL_PROXY_PORT"].as_str(),
        Some(cfg.proxy.listen.port().to_string().as_str())
    );
    assert_eq!(
        port_of(&cfg.proxy.upstream),
        8080,
        "the Jira image's default port"
    );
    let secret_file = cfg.directory.password_file.clone().unwrap();
    let secret_name = secret_file.file_name().unwrap().to_str().unwrap();
    assert!(
        doc["secrets"][secret_name].is_mapping(),
        "secret {secret_name}"
    );
    assert!(seq(&gate["secrets"], "secrets")
        .iter()
        .any(|x| x.as_str() == Some(secret_name)));
    let state_vol = seq(&gate["volumes"], "volumes")
        .iter()
        .map(|v| s(v, "volume").to_owned())
        .find(|v| v.starts_with("iumgate-state:"))
        .expect("a named volume for the state");
    assert_eq!(
        cfg.state.path.as_deref().and_then(Path::parent),
        Some(Path::new(state_vol.split(':').nth(1).unwrap()))
    );

    // Prometheus scrapes iumgate's admin port and loads the project's rules.
    let prom: Value =
        serde_norway::from_str(s(&configs["prometheus.yml"]["content"], "prometheus.yml")).unwrap();
    let target = s(
        &prom["scrape_configs"][0]["static_configs"][0]["targets"][0],
        "target",
    );
    assert_eq!(target, format!("iumgate:{}", cfg.admin.listen.port()));
    assert!(
        cfg.admin.listen.ip().is_unspecified(),
        "Prometheus reaches it over the network"
    );
    assert!(
        cfg.admin.max_connections <= 64,
        "{}",
        cfg.admin.max_connections
    );
    let grafana_ds: Value = serde_norway::from_str(s(
        &configs["grafana-datasource.yaml"]["content"],
        "datasource",
    ))
    .unwrap();
    assert_eq!(
        grafana_ds["datasources"][0]["type"].as_str(),
        Some("prometheus")
    );
    let providers: Value = serde_norway::from_str(s(
        &configs["grafana-dashboards.yaml"]["content"],
        "providers",
    ))
    .unwrap();
    let dash_dir = s(&providers["providers"][0]["options"]["path"], "path").to_owned();

    // Bind mounts: the dashboard and the rules from this repository.
    let mut binds = Vec::new();
    for name in ["prometheus", "grafana"] {
        for v in seq(&svc[name]["volumes"], "volumes") {
            let v = s(v, "volume");
            if v.starts_with("./") {
                let mut parts = v.split(':');
                binds.push((
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap().to_owned(),
                ));
            }
        }
    }
    let rules = binds
        .iter()
        .find(|(src, _)| src == "./prometheus/alerts.yml")
        .expect("the alert rules");
    assert!(prom["rule_files"][0]
        .as_str()
        .unwrap()
        .starts_with(Path::new(&rules.1).parent().unwrap().to_str().unwrap()));
    let dash = binds
        .iter()
        .find(|(src, _)| src == "./grafana/iumgate-dashboard.json")
        .expect("the dashboard");
    assert!(
        dash.1.starts_with(&dash_dir),
        "the dashboard is where the provider looks"
    );
    for (src, _) in &binds {
        let path = root().join("deploy").join(src);
        assert!(path.exists(), "compose mounts a missing file: {src}");
    }
}

// ---- systemd ----------------------------------------------------------------

/// section → key → values (a key may repeat).
fn unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        assert!(
            !t.ends_with('\\'),
            "line {}: continuation lines are not used here",
            n + 1
        );
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        assert!(
            !section.is_empty(),
            "line {}: a key before any section",
            n + 1
        );
        let (k, v) = t
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {t}", n + 1));
        out.entry(section.clone())
            .or_default()
            .entry(k.trim().to_owned())
            .or_default()
            .push(v.trim().to_owned());
    }
    out
}

#[test]
fn systemd_unit_is_hardened_and_reloads_on_sighup() {
    let text = read("deploy/systemd/iumgate.service");
    let u = unit(&text);
    assert_eq!(
        u.keys().cloned().collect::<Vec<_>>(),
        ["Install", "Service", "Unit"]
    );
    let svc = &u["Service"];
    let one = |k: &str| -> &str {
        let v = svc
            .get(k)
            .unwrap_or_else(|| panic!("[Service] {k} missing"));
        v.last().unwrap()
    };
    let user = one("User");
    assert!(
        user != "root" && user != "0" && !user.is_empty(),
        "a dedicated user"
    );
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("StateDirectory"), "iumgate");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(one("ExecStart").ends_with("iumgate serve --config /etc/iumgate/iumgate.toml"));
    assert_eq!(one("CapabilityBoundingSet"), "");
    // The stop timeout covers the drain (shutdown_grace defaults to 30 s).
    let stop: u64 = one("TimeoutStopSec").parse().unwrap();
    assert!(stop > Config::default().proxy.shutdown_grace.get().as_secs());
    // The state path the comments recommend is inside StateDirectory.
    assert!(text.contains("path = \"/var/lib/iumgate/state.json\""));
    // The credential the config reads is the one the unit loads.
    let cred = one("LoadCredential").split(':').next().unwrap().to_owned();
    assert!(text.contains(&format!("/run/credentials/iumgate.service/{cred}")));
    assert_eq!(u["Install"]["WantedBy"], ["multi-user.target"]);
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("note: systemd-analyze is not installed; the unit was only parsed");
        return;
    };
    assert!(out.status.success());
    // verify wants the executables to exist: point them at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let text = read("deploy/systemd/iumgate.service")
        .replace("/usr/local/bin/iumgate", env!("CARGO_BIN_EXE_iumgate"));
    let path = dir.path().join("iumgate.service");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("iumgate.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn the_load_scripts_parse_and_are_run_with_bash() {
    // `bash benches/load/run.sh` is the documented command; a syntax error
    // would only show when someone runs the benchmark.
    for script in ["benches/load/run.sh", "benches/load/compare.sh"] {
        let path = root().join(script);
        let text = read(script);
        assert!(
            text.starts_with("#!/usr/bin/env bash\n"),
            "{script}: no bash shebang"
        );
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            read("docs/PERFORMANCE.md").contains(script),
            "{script} is not described in docs/PERFORMANCE.md"
        );
    }
}

// ---- Atlassian's Helm charts ------------------------------------------------

/// One values file of deploy/helm-atlassian/ with the iumgate config it
/// mounts, and what differs between the products' charts.
struct HelmCase {
    /// The chart's name and its top-level key for the product's settings.
    chart: &'static str,
    /// The env var or JVM property that moves the app off the Service's port.
    moved_by: &'static str,
}

const HELM_CASES: [HelmCase; 3] = [
    HelmCase {
        chart: "jira",
        moved_by: "tomcatConfig",
    },
    HelmCase {
        chart: "confluence",
        moved_by: "tomcatConfig",
    },
    HelmCase {
        chart: "bitbucket",
        moved_by: "additionalJvmArgs",
    },
];

#[test]
fn atlassian_helm_values_add_iumgate_as_a_sidecar_matching_its_config() {
    // Every file in the folder is one of the cases (nothing stale or untested).
    let mut files: Vec<String> = std::fs::read_dir(root().join("deploy/helm-atlassian"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = HELM_CASES
        .iter()
        .flat_map(|c| {
            [
                format!("iumgate-{}.toml", c.chart),
                format!("values-{}.yaml", c.chart),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(files, expected, "deploy/helm-atlassian/");

    for case in &HELM_CASES {
        let chart = case.chart;
        let rel = format!("deploy/helm-atlassian/values-{chart}.yaml");
        let docs = yaml_docs(&rel);
        assert_eq!(docs.len(), 1, "{rel}: one values document");
        let v = &docs[0];
        // iumgate's own loader reads the config the values file mounts.
        let toml = root().join(format!("deploy/helm-atlassian/iumgate-{chart}.toml"));
        let cfg = Config::load(&toml).unwrap_or_else(|e| panic!("{}: {e}", toml.display()));
        assert!(cfg.gate_enabled(), "{chart}: the gate is on");
        assert_eq!(cfg.proxy.product.name(), chart, "{chart}: [proxy] product");
        assert_eq!(v["replicaCount"].as_u64(), Some(1), "{rel}: one gate");

        let app = &v[chart];
        let containers = seq(&v["additionalContainers"], "additionalContainers");
        assert_eq!(containers.len(), 1, "{rel}: one sidecar");
        let gate = &containers[0];
        assert_eq!(gate["name"].as_str(), Some("iumgate"));

        // The chart's Service targets the app container's port "http",
        // `<chart>.ports.http`: that must be iumgate's listener, on every
        // interface of the pod.
        let http = app["ports"]["http"]
            .as_u64()
            .unwrap_or_else(|| panic!("{rel}: {chart}.ports.http")) as u16;
        assert_eq!(cfg.proxy.listen.port(), http, "{rel}: Service → iumgate");
        assert!(cfg.proxy.listen.ip().is_unspecified());
        // The app itself listens where iumgate forwards, never on that port.
        let upstream_port = port_of(&cfg.proxy.upstream);
        assert_ne!(upstream_port, http);
        match case.moved_by {
            "tomcatConfig" => {
                let t = &app["tomcatConfig"];
                assert_eq!(t["generateByHelm"].as_bool(), Some(true), "{rel}");
                let port: u16 = s(&t["port"], "tomcatConfig.port").parse().unwrap();
                assert_eq!(port, upstream_port, "{rel}: Tomcat's port");
                assert!(cfg.proxy.upstream.starts_with("http://127.0.0.1:"));
            }
            _ => {
                let args: Vec<&str> = seq(&app["additionalJvmArgs"], "additionalJvmArgs")
                    .iter()
                    .map(|a| s(a, "jvm arg"))
                    .collect();
                assert!(
                    args.contains(&format!("-Dserver.port={upstream_port}").as_str()),
                    "{rel}: {args:?}"
                );
                assert!(args.contains(&"-Dserver.address=127.0.0.1"), "{rel}");
                assert_eq!(
                    cfg.proxy.upstream,
                    format!("http://127.0.0.1:{upstream_port}")
                );
            }
        }

        // The admin listener: the sidecar's declared port, its probes, the
        // scrape annotations.
        let admin = cfg.admin.listen.port();
        assert!(cfg.admin.listen.ip().is_unspecified(), "kubelet reaches it");
        let ports = seq(&gate["ports"], "ports");
        assert!(
            ports
                .iter()
                .any(|p| p["containerPort"].as_u64() == Some(u64::from(admin))),
            "{rel}: the admin port is declared"
        );
        assert!(
            !ports
                .iter()
                .any(|p| p["containerPort"].as_u64() == Some(u64::from(http))),
            "{rel}: {http} is declared once, by the app container as \"http\""
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &gate[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some(path), "{rel}: {probe}");
            assert_eq!(
                get["port"].as_u64(),
                Some(u64::from(admin)),
                "{rel}: {probe} on the admin port"
            );
        }
        let ann = &v["podAnnotations"];
        assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
        assert_eq!(
            ann["prometheus.io/port"].as_str(),
            Some(admin.to_string().as_str()),
            "{rel}"
        );
        assert_eq!(ann["prometheus.io/path"].as_str(), Some("/metrics"));

        // The config: a ConfigMap volume (volumes.additional) mounted where
        // --config points.
        let volume = seq(&v["volumes"]["additional"], "volumes.additional")
            .iter()
            .find(|vol| vol["configMap"]["name"].as_str() == Some("iumgate"))
            .unwrap_or_else(|| panic!("{rel}: no ConfigMap volume"));
        let mounts = seq(&gate["volumeMounts"], "volumeMounts");
        let mount_of = |name: &str| {
            mounts
                .iter()
                .find(|m| m["name"].as_str() == Some(name))
                .map(|m| s(&m["mountPath"], "mountPath").to_owned())
                .unwrap_or_else(|| panic!("{rel}: nothing mounts {name}"))
        };
        let config_dir = mount_of(s(&volume["name"], "volume name"));
        let args: Vec<&str> = seq(&gate["args"], "args")
            .iter()
            .map(|a| s(a, "arg"))
            .collect();
        assert_eq!(
            args,
            ["serve", "--config", &format!("{config_dir}/iumgate.toml")]
        );
        // State on the chart's extra volume claim, where [state] path points.
        let claims = seq(
            &app["additionalVolumeClaimTemplates"],
            "additionalVolumeClaimTemplates",
        );
        let claim = s(&claims[0]["name"], "claim name");
        assert_eq!(
            cfg.state.path.as_deref().and_then(Path::parent),
            Some(Path::new(&mount_of(claim))),
            "{rel}: [state] path on the claim"
        );

        // Secrets: the env vars the config names come from the Secret
        // `iumgate` (created with kubectl, as the file's header says).
        let env = env_of(gate);
        for var in [
            cfg.directory.password_env.clone().unwrap(),
            cfg.admin.token_env.clone().unwrap(),
        ] {
            let r = &env
                .get(&var)
                .unwrap_or_else(|| panic!("{rel}: {var} not set"))["valueFrom"]["secretKeyRef"];
            assert_eq!(r["name"].as_str(), Some("iumgate"), "{rel}: {var}");
            let key = s(&r["key"], "key");
            assert!(
                read(&rel).contains(&format!("--from-literal={key}=")),
                "{rel}: the kubectl line creates no key {key}"
            );
        }
        assert!(read(&rel).contains(&format!(
            "kubectl create configmap iumgate --from-file=iumgate.toml=deploy/helm-atlassian/iumgate-{chart}.toml"
        )));

        // Drain: the pod outlives iumgate's pause and drain; the app stops after.
        let pause = gate["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .expect("preStop pause");
        let grace = app["shutdown"]["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("shutdown.terminationGracePeriodSeconds");
        let drain = pause + cfg.proxy.shutdown_grace.get().as_secs();
        assert!(grace > drain, "{rel}: killed before the drain ends");
        let stop = s(&app["shutdown"]["command"], "shutdown.command");
        let wait: u64 = stop
            .strip_prefix("sleep ")
            .and_then(|r| r.split(';').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{rel}: the app's stop waits first: {stop}"));
        assert!(wait >= drain, "{rel}: the app stops before iumgate drained");
        let sc = &gate["securityContext"];
        assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    }
}

#[test]
fn compose_cluster_runs_two_replicas_on_one_redis_behind_a_balancer() {
    let doc = &yaml_docs("deploy/compose-cluster.yaml")[0];
    let svc = &doc["services"];
    for name in [
        "lb",
        "iumgate-a",
        "iumgate-b",
        "redis",
        "jira",
        "prometheus",
        "grafana",
    ] {
        assert!(svc[name].is_mapping(), "service {name}");
    }
    // Each replica keeps its own audit trail on a volume of its own.
    let data: Vec<&str> = ["iumgate-a", "iumgate-b"]
        .iter()
        .map(|r| {
            let v = seq(&svc[*r]["volumes"], "volumes");
            let m = s(&v[0], "volume");
            assert!(m.ends_with(":/var/lib/iumgate"), "{r}: {m}");
            m.split(':').next().unwrap()
        })
        .collect();
    assert_ne!(data[0], data[1], "one volume per replica");
    // Grafana gets the dashboard and Prometheus as its data source.
    let mounts: Vec<&str> = seq(&svc["grafana"]["volumes"], "volumes")
        .iter()
        .map(|v| s(v, "volume"))
        .collect();
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("./grafana/iumgate-dashboard.json:")),
        "{mounts:?}"
    );
    assert!(s(
        &doc["configs"]["grafana-datasource.yaml"]["content"],
        "datasource"
    )
    .contains("http://prometheus:9090"));
    // One config for both replicas: the same Redis and prefix.
    let cfg = Config::parse(s(
        &doc["configs"]["iumgate.toml"]["content"],
        "iumgate.toml",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.gate_enabled());
    assert_eq!(
        cfg.audit.path.as_deref(),
        Some(std::path::Path::new("/var/lib/iumgate/audit.jsonl"))
    );
    let cluster = cfg.cluster.as_ref().expect("[cluster]");
    let url = cluster.redis_url().unwrap().unwrap();
    assert!(
        url.expose().starts_with("redis://redis:"),
        "the redis service"
    );
    for r in ["iumgate-a", "iumgate-b"] {
        let targets: Vec<&str> = seq(&svc[r]["configs"], "configs")
            .iter()
            .map(|c| s(&c["source"], "source"))
            .collect();
        assert_eq!(targets, ["iumgate.toml"], "{r} runs the shared config");
        assert!(
            svc[r]["ports"].is_null(),
            "{r} is reached through the balancer only"
        );
    }
    // Redis keeps the pool across its own restarts.
    let redis_cmd: Vec<&str> = seq(&svc["redis"]["command"], "command")
        .iter()
        .map(|c| s(c, "arg"))
        .collect();
    assert!(redis_cmd.windows(2).any(|w| w == ["--appendonly", "yes"]));
    // The balancer sends to both replicas' proxy port; Prometheus scrapes
    // both admin ports.
    let nginx = s(&doc["configs"]["nginx.conf"]["content"], "nginx.conf");
    let port = cfg.proxy.listen.port();
    for r in ["iumgate-a", "iumgate-b"] {
        assert!(
            nginx.contains(&format!("server {r}:{port}")),
            "{r} in nginx"
        );
    }
    let prom = s(
        &doc["configs"]["prometheus.yml"]["content"],
        "prometheus.yml",
    );
    let admin = cfg.admin.listen.port();
    for r in ["iumgate-a", "iumgate-b"] {
        assert!(prom.contains(&format!("{r}:{admin}")), "{r} scraped");
    }
    assert!(svc["jira"]["ports"].is_null(), "Jira only behind the gate");
}

#[test]
fn kubernetes_cluster_runs_two_replicas_on_one_redis() {
    let objs = kube_objects_in("deploy/kubernetes-cluster");
    let cm = find(&objs, "ConfigMap", "iumgate-cluster");
    let cfg = Config::parse(s(&cm["data"]["iumgate.toml"], "iumgate.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let cluster = cfg.cluster.as_ref().expect("[cluster]");
    let url_env = cluster
        .redis_url_env
        .clone()
        .expect("the URL from the environment");
    let dep = find(&objs, "Deployment", "iumgate");
    assert!(dep["spec"]["replicas"].as_u64().unwrap() >= 2);
    let pod = &dep["spec"]["template"]["spec"];
    let c = container(pod, "iumgate");
    // Every variable the config reads comes from the Secret, whose keys exist.
    let secret = find(&objs, "Secret", "iumgate-cluster");
    let env = env_of(c);
    for var in [
        url_env.as_str(),
        cfg.directory.password_env.as_deref().unwrap(),
        cfg.admin.token_env.as_deref().unwrap(),
    ] {
        let e = env.get(var).unwrap_or_else(|| panic!("env {var}"));
        let key = s(&e["valueFrom"]["secretKeyRef"]["key"], "secret key");
        assert_eq!(
            e["valueFrom"]["secretKeyRef"]["name"].as_str(),
            Some("iumgate-cluster")
        );
        assert!(secret["stringData"][key].is_string(), "secret key {key}");
    }
    assert_eq!(container_port(c, "http"), cfg.proxy.listen.port());
    assert_eq!(container_port(c, "admin"), cfg.admin.listen.port());
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    // The Secret's URL names the Redis Service, which keeps an AOF.
    let url = s(&secret["stringData"]["redis-url"], "redis-url");
    let redis_svc = find(&objs, "Service", "iumgate-redis");
    let port = seq(&redis_svc["spec"]["ports"], "ports")[0]["port"]
        .as_u64()
        .unwrap();
    assert!(url.contains(&format!("@iumgate-redis:{port}")), "{url}");
    let redis = find(&objs, "StatefulSet", "iumgate-redis");
    let args =
        serde_norway::to_string(&container(&redis["spec"]["template"]["spec"], "redis")["args"])
            .unwrap();
    assert!(args.contains("--appendonly yes"), "{args}");
    // Users' Service selects the replicas.
    let svc = find(&objs, "Service", "iumgate");
    assert!(labels_match(
        &svc["spec"]["selector"],
        &dep["spec"]["template"]["metadata"]["labels"]
    ));
}
