//! Logging set-up: `[log] level`, `filters`, `format`; `RUST_LOG` overrides.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::{fmt, prelude::*, reload, EnvFilter, Registry};

/// Lets SIGHUP swap the log filters without a restart.
pub type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the config.
pub fn init(cfg: &LogConfig) -> FilterHandle {
    let filter = filter_for(cfg);
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let res = match cfg.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_target(true)
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .try_init(),
    };
    // A second init (tests, demo) keeps the first subscriber.
    let _ = res;
    handle
}

pub fn filter_for(cfg: &LogConfig) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(s) if !s.is_empty() => {
            EnvFilter::try_new(&s).unwrap_or_else(|_| EnvFilter::new(cfg.directives()))
        }
        _ => EnvFilter::try_new(cfg.directives()).unwrap_or_else(|_| EnvFilter::new("info")),
    }
}
