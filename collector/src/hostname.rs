//! This host's name, as versions carry it (`host`) and the fleet knows the
//! host: `[fleet] host` when the config names one (`collector serve` sets it
//! at start, before any version is stored), else the kernel's
//! (`/proc/sys/kernel/hostname`), read once.

use std::sync::OnceLock;

static NAME: OnceLock<Option<String>> = OnceLock::new();

/// Names this host for the rest of the process (before the first [`get`]).
pub fn set(name: &str) {
    let _ = NAME.set(Some(name.to_owned()));
}

/// This host's name (None: the kernel's is unreadable or empty).
pub fn get() -> Option<String> {
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty())
    })
    .clone()
}
