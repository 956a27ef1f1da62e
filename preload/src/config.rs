//! The library's own settings, read once per process from the environment.
//! What is *tracked* is not here: that is the collector's decision
//! (`Welcome`). These only say where the collector is and how to behave.

use std::sync::OnceLock;

use crate::sys;

pub struct Settings {
    /// `FILETRAIL_SOCKET`, default [`filetrail_wire::DEFAULT_SOCKET`].
    pub socket: Vec<u8>,
    /// `FILETRAIL_DEBUG=1`: diagnostics on stderr. Off by default: the
    /// library never writes to the host's output otherwise.
    pub debug: bool,
    /// `FILETRAIL_TIMEOUT_MS`: the most this process may wait on the
    /// collector in total, default 1000.
    pub budget_ms: u64,
}

pub fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Settings {
        socket: sys::env(c"FILETRAIL_SOCKET")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| filetrail_wire::DEFAULT_SOCKET.as_bytes().to_vec()),
        debug: sys::env(c"FILETRAIL_DEBUG").is_some_and(|v| !v.is_empty() && v != b"0"),
        budget_ms: sys::env(c"FILETRAIL_TIMEOUT_MS")
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
            .unwrap_or(1000),
    })
}

/// Prints a diagnostic when `FILETRAIL_DEBUG` is set.
pub fn debug(msg: impl FnOnce() -> String) {
    if settings().debug {
        sys::debug_line(&msg());
    }
}
