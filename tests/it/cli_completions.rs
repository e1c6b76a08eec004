//! `iumgate completions bash|zsh|fish` and `iumgate man`, through the real
//! binary: each script and the man page come from the command line
//! definition, so they name every subcommand `iumgate --help` lists.

use std::process::{Command, Output, Stdio};

fn iumgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run iumgate")
}

fn stdout_of(args: &[&str]) -> String {
    let out = iumgate(args);
    assert!(
        out.status.success(),
        "iumgate {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The subcommands `iumgate --help` lists (clap's own `help` left out), and
/// a floor of the ones this test was written against.
fn subcommands() -> Vec<String> {
    let help = stdout_of(&["--help"]);
    let section = help
        .split("Commands:")
        .nth(1)
        .and_then(|s| s.split("Options:").next())
        .expect("--help lists the commands");
    let names: Vec<String> = section
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    for must in [
        "serve",
        "demo",
        "check-config",
        "check",
        "sync",
        "healthcheck",
        "analyze",
        "completions",
        "man",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "--help does not list {must}: {names:?}"
        );
    }
    names
}

#[test]
fn each_shell_gets_a_completion_script_naming_every_subcommand() {
    let commands = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.len() > 500, "{shell}: a short script:\n{script}");
        assert!(script.contains("iumgate"), "{shell}: no `iumgate` in it");
        for c in &commands {
            assert!(script.contains(c.as_str()), "{shell}: `{c}` not completed");
        }
        // Options of a subcommand are completed too (fish: `-l config`).
        assert!(
            script.contains("--config") || script.contains("-l config"),
            "{shell}: no --config"
        );
    }
    // What each shell looks for: bash registers a function, zsh starts with
    // its #compdef tag, fish calls `complete -c iumgate`.
    assert!(stdout_of(&["completions", "bash"]).contains("complete -F _iumgate"));
    assert!(stdout_of(&["completions", "zsh"]).starts_with("#compdef iumgate"));
    assert!(stdout_of(&["completions", "fish"]).contains("complete -c iumgate"));
}

#[test]
fn the_bash_script_is_valid_bash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iumgate.bash");
    std::fs::write(&path, stdout_of(&["completions", "bash"])).unwrap();
    let out = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash is on every machine this runs on");
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sourced for real, it registers the completion function.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p iumgate",
            path.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sourcing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("_iumgate"));
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let commands = subcommands();
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH iumgate 1"), "no .TH header:\n{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section}");
    }
    // roff writes a hyphen as `\-`.
    let plain = page.replace("\\-", "-");
    for c in &commands {
        assert!(
            plain.contains(&format!("iumgate-{c}(1)")),
            "the man page does not name `{c}`"
        );
    }
    // One page per command, written into a directory.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    stdout_of(&["man", "--out-dir", out_dir.to_str().unwrap()]);
    let top = std::fs::read_to_string(out_dir.join("iumgate.1")).unwrap();
    assert!(top.starts_with(".ie"), "iumgate.1 is not roff");
    assert!(top.contains(".SH SUBCOMMANDS"));
    for c in &commands {
        let sub = std::fs::read_to_string(out_dir.join(format!("iumgate-{c}.1")))
            .unwrap_or_else(|e| panic!("iumgate-{c}.1: {e}"));
        assert!(sub.contains(".SH NAME"), "iumgate-{c}.1 is not a man page");
    }
    let serve = std::fs::read_to_string(out_dir.join("iumgate-serve.1")).unwrap();
    assert!(serve.replace("\\-", "-").contains("--config"));
}

#[test]
fn a_failed_write_or_an_unknown_shell_is_an_error_not_a_panic() {
    // /dev/full: every write fails with ENOSPC.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(["completions", "bash"])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("iumgate completions: cannot write to stdout"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = iumgate(&["completions", "tcsh"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bash") && err.contains("fish"), "{err}");
}
