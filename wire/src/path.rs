//! Paths on the wire: Linux paths are bytes, JSON strings are UTF-8.
//!
//! A [`WirePath`] is serialized as a JSON string when it is valid UTF-8 and
//! as an array of byte values otherwise, so no path is ever altered.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct WirePath(pub Vec<u8>);

impl WirePath {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Readable form: UTF-8 as is, other bytes as `\xNN`.
    pub fn display(&self) -> String {
        escape_bytes(&self.0)
    }
}

/// Renders bytes as text, escaping each byte that is not part of valid UTF-8
/// as `\xNN` (and a literal backslash as `\\` only when escaping happened).
pub fn escape_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::new();
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

/// True when `path` is absolute and canonical as text: it starts with `/`,
/// has no empty, `.` or `..` component (no `//`, no trailing `/` except the
/// root itself) and no NUL byte. Whether a component is a symlink is a
/// question for the file system, not for this function.
pub fn is_canonical(path: &[u8]) -> bool {
    if path == b"/" {
        return true;
    }
    let Some(rest) = path.strip_prefix(b"/") else { return false };
    !path.contains(&0) && rest.split(|&b| b == b'/').all(|c| !matches!(c, b"" | b"." | b".."))
}

impl From<&str> for WirePath {
    fn from(s: &str) -> Self {
        WirePath(s.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for WirePath {
    fn from(v: Vec<u8>) -> Self {
        WirePath(v)
    }
}

impl Serialize for WirePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for WirePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Bytes(Vec<u8>),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Text(t) => WirePath(t.into_bytes()),
            Repr::Bytes(b) => WirePath(b),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_paths_survive_json() {
        let p = WirePath(b"/etc/caf\xe9".to_vec());
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.starts_with('['));
        assert_eq!(serde_json::from_str::<WirePath>(&json).unwrap(), p);
        assert_eq!(p.display(), "/etc/caf\\xe9");
    }

    #[test]
    fn canonical_paths() {
        for ok in [&b"/"[..], b"/etc", b"/etc/hosts", b"/etc/.hidden", b"/a/..b/c.", b"/caf\xe9"] {
            assert!(is_canonical(ok), "{}", escape_bytes(ok));
        }
        for bad in [&b""[..], b"etc", b"/etc/", b"//etc", b"/etc//x", b"/etc/./x", b"/etc/../x", b"/..", b"/x\0y"] {
            assert!(!is_canonical(bad), "{}", escape_bytes(bad));
        }
    }

    #[test]
    fn utf8_paths_are_strings() {
        let p = WirePath::from("/etc/hosts");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"/etc/hosts\"");
    }
}
