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
    pub fn resolve(&self) -> Result<Option<Secret>, SecretError> {
        let what = self.what;
        if let Some(var) = &self.env {
            let var = || var.clone();
            return match std::env::var_os(var()) {
                None => Err(SecretError::EnvMissing { what, var: var() }),
                Some(v) if v.is_empty() => Err(SecretError::EnvEmpty { what, var: var() }),
                Some(v) => match v.into_string() {
                    Ok(v) => Ok(Some(Secret(v))),
                    Err(_) => Err(SecretError::EnvNotUnicode { what, var: var() }),
                },
            };
        }
        if let Some(path) = &self.file {
            let path = || path.clone();
            return match std::fs::read_to_string(path()) {
                Ok(v) => {
                    let v = v.trim_end_matches(['\r', '\n']).to_string();
                    if v.is_empty() {
                        Err(SecretError::FileEmpty { what, path: path() })
                    } else {
                        Ok(Some(Secret(v)))
                    }
                }
                Err(source) => Err(SecretError::FileUnreadable {
                    what,
                    path: path(),
                    source,
                }),
            };
        }
        Ok(None)
    }
}

/// Why a configured secret cannot be read. The text names what the secret
/// is for and the variable or file; it never holds the value (nor any part
/// of the file: the cause kept as the source is the I/O error).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("the {what} variable `{var}` is not set in the environment")]
    EnvMissing { what: &'static str, var: String },
    /// The environment variable is set but empty.
    #[error("the {what} variable `{var}` is empty")]
    EnvEmpty { what: &'static str, var: String },
    /// The environment variable is not valid Unicode.
    #[error("the {what} variable `{var}` is not valid Unicode")]
    EnvNotUnicode { what: &'static str, var: String },
    /// The file cannot be read (or is not UTF-8: the `InvalidData` source).
    #[error("cannot read the {what} file {}", path.display())]
    FileUnreadable {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is empty (or holds only a line break).
    #[error("the {what} file {} is empty", path.display())]
    FileEmpty { what: &'static str, path: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_missing_variable_is_named_and_no_value_is_shown() {
        let r = SecretRef::new("admin", Some("IUMGATE_TEST_SURELY_UNSET_VAR_2"), None);
        let e = r.resolve().unwrap_err();
        assert!(matches!(e, SecretError::EnvMissing { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "the admin variable `IUMGATE_TEST_SURELY_UNSET_VAR_2` is not set in the environment"
        );
        assert!(e.source().is_none());
    }

    #[test]
    fn an_unreadable_file_keeps_its_io_error_and_an_empty_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-token");
        let e = SecretRef::new("admin", None, Some(&missing))
            .resolve()
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("no-token"), "{text}");
        let io = e
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(!text.contains(&io.to_string()), "{text}");

        let empty = dir.path().join("empty-token");
        std::fs::write(&empty, "\n").unwrap();
        let e = SecretRef::new("admin", None, Some(&empty))
            .resolve()
            .unwrap_err();
        assert!(matches!(e, SecretError::FileEmpty { .. }), "{e:?}");
        assert!(e.to_string().contains("empty-token"), "{e}");

        // A file that is not UTF-8: the error shows none of its bytes.
        let binary = dir.path().join("binary-token");
        std::fs::write(&binary, b"s3cret\xff").unwrap();
        let e = SecretRef::new("admin", None, Some(&binary))
            .resolve()
            .unwrap_err();
        let chain = crate::proxy::error_chain(&e);
        assert!(!chain.contains("s3cret"), "{chain}");
    }
}
