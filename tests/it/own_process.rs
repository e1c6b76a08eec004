//! A test that measures the process as a whole (its RSS) runs alone in a
//! child process of this test binary: in the one test binary, other tests run
//! in the same process at the same time, and their memory would count too.

use std::process::Command;

/// Set in the child to the one test it runs.
const CHILD: &str = "IUMGATE_IT_OWN_PROCESS";

/// Whether the calling test (`name`, in the module `module`, i.e. its
/// `module_path!()`) should run its body here: true in the child process
/// that runs it alone. Otherwise starts that child, asserts the test passed
/// there, forwards its output and returns false — the caller returns.
pub fn alone(module: &str, name: &str) -> bool {
    // A test's name is its path without the crate's.
    let module = module.split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::{name}");
    if std::env::var(CHILD).is_ok_and(|t| t == test) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([&test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &test)
        .output()
        .expect("start the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{test} failed in its own process ({})",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test} did not run in its own process (is its name right?)"
    );
    false
}
