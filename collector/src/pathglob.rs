//! Path globs on the review command line (`query`, `log`):
//! `'/etc/nginx/**/*.conf'` is matched against the paths the store holds
//! (deleted files included, which a shell's expansion would miss), with
//! `globset`: `*` and `?` stay within one directory, `**` crosses any
//! number of them, `[…]` and `{a,b}` as in a shell, `\` escapes. Paths are
//! matched as bytes; the pattern itself must be UTF-8.

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

/// Whether an argument is meant as a glob: it has glob syntax and is not
/// an existing file of that literal name.
pub fn is_glob(arg: &[u8], exists: bool) -> bool {
    !exists && arg.iter().any(|b| b"*?[{".contains(b))
}

/// A glob made absolute, its matcher and the directory that holds every
/// path it can match.
#[derive(Debug, Clone)]
pub struct PathGlob {
    pub pattern: Vec<u8>,
    matcher: GlobMatcher,
}

impl PathGlob {
    /// `abs`: the argument made absolute and normalized (`policy::absolute`).
    pub fn new(abs: &[u8]) -> Result<PathGlob> {
        let shown = || filetrail_wire::path::quote(abs).into_owned();
        let text = std::str::from_utf8(abs).map_err(|_| {
            Error::Usage(format!("{}: a glob must be UTF-8 (give a path with other bytes literally)", shown()))
        })?;
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::Usage(format!("{}: not a valid glob: {}", shown(), e.kind())))?;
        Ok(PathGlob { pattern: abs.to_vec(), matcher: glob.compile_matcher() })
    }

    /// The longest directory with no glob syntax in it: every match is under it.
    pub fn base(&self) -> &[u8] {
        let first = self.pattern.iter().position(|b| b"*?[{\\".contains(b)).unwrap_or(self.pattern.len());
        let cut = self.pattern[..first].iter().rposition(|&b| b == b'/').unwrap_or(0);
        if cut == 0 { b"/" } else { &self.pattern[..cut] }
    }

    pub fn is_match(&self, path: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        self.matcher.is_match(std::path::Path::new(std::ffi::OsStr::from_bytes(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_stay_in_a_directory_and_double_stars_cross_them() {
        let g = PathGlob::new(b"/etc/nginx/**/*.conf").unwrap();
        assert_eq!(g.base(), b"/etc/nginx");
        for yes in [&b"/etc/nginx/nginx.conf"[..], b"/etc/nginx/conf.d/a.conf", b"/etc/nginx/a/b/c.conf"] {
            assert!(g.is_match(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [&b"/etc/nginx.conf"[..], b"/etc/nginx/a.conf.bak", b"/etc/apache/a.conf"] {
            assert!(!g.is_match(no), "{}", String::from_utf8_lossy(no));
        }
        let g = PathGlob::new(b"/etc/*.conf").unwrap();
        assert!(g.is_match(b"/etc/a.conf") && !g.is_match(b"/etc/x/a.conf"));
        assert_eq!(g.base(), b"/etc");
        assert_eq!(PathGlob::new(b"/*").unwrap().base(), b"/");
    }

    #[test]
    fn paths_are_matched_as_bytes() {
        let g = PathGlob::new(b"/srv/caf*.conf").unwrap();
        assert!(g.is_match(b"/srv/caf\xe9.conf"));
        assert!(g.is_match(b"/srv/caf\\xe9.conf"));
        assert!(PathGlob::new(b"/srv/caf\xe9*").is_err());
        assert!(PathGlob::new(b"/srv/[").is_err());
    }

    #[test]
    fn an_existing_file_is_its_literal_name() {
        assert!(is_glob(b"/etc/*.conf", false));
        assert!(!is_glob(b"/etc/*.conf", true));
        assert!(!is_glob(b"/etc/hosts", false));
    }
}
