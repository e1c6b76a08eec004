//! Secrets from the environment or a file; never printed.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value. `Debug` and `Display` print `[redacted]`, so a secret that
/// lands in a log line by mistake still shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that must send it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from: an environment variable's name or a file path.
#[derive(Debug, Clone)]
pub struct SecretRef {
    what: &'static str,
    env: Option<String>,
    file: Option<PathBuf>,
}

impl SecretRef {
    pub fn new(what: &'static str, env: Option<&str>, file: Option<&Path>) -> Self {
        SecretRef {
            what,
            env: env.map(str::to_owned),
            file: file.map(Path::to_owned),
        }
    }

    pub fn is_set(&self) -> bool {
        self.env.is_some() || self.file.is_some()
    }

    /// Reads the secret: `Ok(None)` when none is configured; an error names the
    /// variable or file (never the value). A trailing newline of a file is dropped.
    pub fn resolve(&self) -> Result<Option<Secret>, String> {
        if let Some(var) = &self.env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(Secret(v))),
                Ok(_) => Err(format!("the {} variable `{var}` is empty", self.what)),
                Err(_) => Err(format!(
                    "the {} variable `{var}` is not set in the environment",
                    self.what
                )),
            };
        }
        if let Some(path) = &self.file {
            return match std::fs::read_to_string(path) {
                Ok(v) => {
                    let v = v.trim_end_matches(['\r', '\n']).to_string();
                    if v.is_empty() {
                        Err(format!(
                            "the {} file {} is empty",
                            self.what,
                            path.display()
                        ))
                    } else {
                        Ok(Some(Secret(v)))
                    }
                }
                Err(e) => Err(format!(
                    "cannot read the {} file {}: {e}",
                    self.what,
                    path.display()
                )),
            };
        }
        Ok(None)
    }
}
