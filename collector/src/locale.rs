//! What a reviewer's terminal can show: UTF-8, or (a POSIX locale, or any
//! other character set) ASCII only. The review output's own marks — the
//! chain's arrow, the mark of cut text, control characters made visible —
//! follow it; content and paths are shown as they are (quoted).

use std::sync::OnceLock;

/// Whether the environment's locale is UTF-8 (read once; in unit tests,
/// always: the ASCII forms are tested where they are made).
pub fn utf8() -> bool {
    if cfg!(test) {
        return true;
    }
    static UTF8: OnceLock<bool> = OnceLock::new();
    *UTF8.get_or_init(|| utf8_locale(|name| std::env::var(name).ok()))
}

/// Between the users of a chain: `→`, or `->`.
pub fn arrow() -> &'static str {
    if utf8() { "→" } else { "->" }
}

/// Marks where text was cut: `…`, or `...`.
pub fn ellipsis() -> &'static str {
    if utf8() { "…" } else { "..." }
}

/// Whether the locale the environment names is UTF-8: the first of
/// `LC_ALL`, `LC_CTYPE`, `LANG` set and not empty, as setlocale(3) reads
/// them (none: the POSIX locale, ASCII).
fn utf8_locale(var: impl Fn(&str) -> Option<String>) -> bool {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"].into_iter().find_map(|name| var(name).filter(|v| !v.is_empty()));
    locale.is_some_and(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("utf-8") || l.contains("utf8")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_what_setlocale_would_pick() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert!(!utf8_locale(env(&[])), "unset: POSIX");
        assert!(!utf8_locale(env(&[("LANG", "C"), ("LC_CTYPE", "")])));
        assert!(utf8_locale(env(&[("LANG", "en_US.UTF-8")])));
        assert!(utf8_locale(env(&[("LANG", "C"), ("LC_CTYPE", "de_DE.utf8")])));
        assert!(!utf8_locale(env(&[("LANG", "C.UTF-8"), ("LC_ALL", "POSIX")])), "LC_ALL wins");
        assert!(!utf8_locale(env(&[("LANG", "fr_FR.ISO-8859-1")])));
    }
}
