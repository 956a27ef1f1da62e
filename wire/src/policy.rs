//! Which paths are tracked. The collector's config is the only source of a
//! policy; the library receives it in `Welcome` and applies the same rules.
//!
//! A path is tracked when it is a tracked root or lies below one, and no
//! ignore glob matches it. A glob containing `/` is matched against the whole
//! absolute path; a glob without `/` against the file name alone, so
//! `*.swp` ignores swap files everywhere and `/etc/mtab` just that file.

use glob::{MatchOptions, Pattern, PatternError};

#[derive(Debug, Clone)]
pub struct Policy {
    roots: Vec<Vec<u8>>,
    ignore: Globs,
    pub max_size: u64,
}

/// A list of path globs: one with `/` matches the whole absolute path, one
/// without matches the file name.
#[derive(Debug, Clone, Default)]
pub struct Globs(Vec<Pattern>);

impl Globs {
    pub fn new<S: AsRef<str>>(globs: &[S]) -> Result<Self, PatternError> {
        globs.iter().map(|g| Pattern::new(g.as_ref())).collect::<Result<_, _>>().map(Globs)
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let full = String::from_utf8_lossy(path);
        let name = full.rsplit('/').next().unwrap_or(&full);
        self.0
            .iter()
            .any(|p| if p.as_str().contains('/') { p.matches_with(&full, MATCH) } else { p.matches_with(name, MATCH) })
    }
}

const MATCH: MatchOptions =
    MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

impl Policy {
    pub fn new<S: AsRef<str>>(track: &[S], ignore: &[S], max_size: u64) -> Result<Self, PatternError> {
        let roots = track
            .iter()
            .map(|r| {
                let r = r.as_ref().as_bytes();
                let trimmed = r.strip_suffix(b"/").filter(|t| !t.is_empty()).unwrap_or(r);
                trimmed.to_vec()
            })
            .collect();
        Ok(Policy { roots, ignore: Globs::new(ignore)?, max_size })
    }

    /// True when `path` (absolute, normalized) is under a root and not ignored.
    pub fn is_tracked(&self, path: &[u8]) -> bool {
        self.under_root(path) && !self.is_ignored(path)
    }

    /// True when `path` is a root or lies below one.
    pub fn under_root(&self, path: &[u8]) -> bool {
        self.roots.iter().any(|root| {
            root.as_slice() == b"/"
                || path == root.as_slice()
                || (path.starts_with(root) && path.get(root.len()) == Some(&b'/'))
        })
    }

    /// True when an ignore glob matches `path`.
    pub fn is_ignored(&self, path: &[u8]) -> bool {
        self.ignore.matches(path)
    }
}

/// Makes `path` absolute against `base` (an absolute directory) and removes
/// `.`, `..` and repeated slashes without touching the filesystem.
pub fn absolute(base: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let joined = if path.first() == Some(&b'/') { [path].to_vec() } else { vec![base, path] };
    for piece in joined {
        for comp in piece.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
    }
    let mut out = Vec::with_capacity(path.len() + base.len() + 1);
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(&["/etc", "/srv/app/"], &["*.swp", "*~", "/etc/mtab", "4913"], 16).unwrap()
    }

    #[test]
    fn roots_match_whole_components() {
        let p = policy();
        assert!(p.is_tracked(b"/etc/hosts"));
        assert!(p.is_tracked(b"/etc"));
        assert!(p.is_tracked(b"/srv/app/conf/x.toml"));
        assert!(!p.is_tracked(b"/etcetera/hosts"));
        assert!(!p.is_tracked(b"/srv/application"));
        assert!(!p.is_tracked(b"/tmp/x"));
    }

    #[test]
    fn globs_without_slash_match_the_name() {
        let p = policy();
        assert!(!p.is_tracked(b"/etc/.hosts.swp"));
        assert!(!p.is_tracked(b"/etc/hosts~"));
        assert!(!p.is_tracked(b"/etc/4913"));
        assert!(!p.is_tracked(b"/etc/mtab"));
        assert!(p.is_tracked(b"/etc/sub/mtab"));
    }

    #[test]
    fn root_slash_tracks_everything() {
        let p = Policy::new(&["/"], &[] as &[&str], 1).unwrap();
        assert!(p.is_tracked(b"/anything/at/all"));
    }

    #[test]
    fn absolute_is_lexical() {
        assert_eq!(absolute(b"/home/a", b"f"), b"/home/a/f");
        assert_eq!(absolute(b"/home/a", b"../b/./f"), b"/home/b/f");
        assert_eq!(absolute(b"/x", b"//etc//hosts/"), b"/etc/hosts");
        assert_eq!(absolute(b"/", b".."), b"/");
    }
}
