//! iumgate's integration tests, one test binary (`cargo test --test it`): one
//! module per concern, against real sockets, the simulator and the real
//! `iumgate` binary. `cargo test --test it gate_jira::` runs one module.
//!
//! Every test shares this one process with all others running at the same
//! time, so none leans on process-wide state: no test sets an environment
//! variable, installs a global subscriber or changes the current directory,
//! each app has its own metrics registry, every listener binds port 0, and
//! the signal tests signal a child `iumgate`, never this process. The two
//! tests that measure the process's memory run in a process of their own
//! (`own_process`).

// Set-ups shared by several modules.
mod admin_support;
mod analyze_support;
mod browser_support;
mod cluster_support;
mod directory_support;
mod gate_support;
mod housekeeping_support;
mod own_process;
mod proxy_support;

// The tests, by concern.
mod access_log;
mod admin_binary;
mod admin_metrics;
mod admin_metrics_zero;
mod analyze_fuzz_regressions;
mod analyze_logs;
mod analyze_pools;
mod analyze_pools_cli;
mod analyze_sim;
mod audit_burst;
mod audit_cluster;
mod audit_kill9;
mod audit_report;
mod audit_rotation;
mod audit_trail;
mod browser_oidc;
mod browser_platform_login;
mod browser_saml;
mod browser_waiting_room;
mod check_basic_auth;
mod check_diagnostics;
mod check_pools;
mod check_sso;
mod cli_completions;
mod cluster_binary;
mod cluster_props;
mod cluster_redis;
mod demo_admin_page;
mod demo_login;
mod demo_service_management;
mod deploy_files;
mod directory_jira;
mod directory_products;
mod directory_tokens;
mod fault_directory;
mod fault_upstream;
mod gate_app_cluster;
mod gate_crowd_ws;
mod gate_git;
mod gate_jira;
mod gate_oidc;
mod gate_platform_login;
mod gate_products;
mod gate_saml;
mod gate_service_management;
mod hostile_admin;
mod hostile_big_login;
mod hostile_chain_binary;
mod hostile_claims;
mod hostile_gate;
mod hostile_http;
mod hostile_login_repeat;
mod hostile_maps;
mod hostile_transport;
mod housekeeping_cleanup;
mod housekeeping_tier;
mod housekeeping_webhook;
mod proxy_drain;
mod proxy_fast_lane;
mod proxy_limits;
mod proxy_process;
mod proxy_streaming;
mod proxy_tls;
mod proxy_transparency;
mod proxy_upstream_conns;
mod sim_jira;
mod sim_jira10;
mod sim_others;
mod sim_service_management;
mod soak_gate;
mod sso_oidc;
mod sso_saml;
mod state_kill9;
mod state_restart;
mod sync_job;
mod sync_run;
