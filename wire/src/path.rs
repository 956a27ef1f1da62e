//! Paths on the wire: Linux paths are bytes, JSON strings are UTF-8.
//!
//! A [`WirePath`] is serialized as a JSON string when it is valid UTF-8 and
//! as an array of byte values otherwise, so no path is ever altered.
//!
//! Also here, because both sides need them: [`canonical`] (the only paths a
//! version may be filed under) and [`quote`] (the one spelling of paths and
//! names for humans: every control byte and invalid UTF-8 escaped, git-style,
//! so a name can never rewrite a reviewer's terminal or pass for another).

use std::borrow::Cow;

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

/// True for an absolute, canonical path: starts with `/`, no empty (`//`),
/// `.` or `..` component, no NUL, and does not end in `/` (so not `/`
/// itself). Such a path names one file the same way however it is walked:
/// reading it as text and resolving it in the kernel agree, except for
/// symlinks, which the walker must refuse on its own.
pub fn canonical(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else { return false };
    !path.contains(&0) && rest.split(|&b| b == b'/').all(|c| !matches!(c, b"" | b"." | b".."))
}

/// Characters that [`quote`] escapes even in valid UTF-8: C0 controls, DEL,
/// C1 controls (a terminal may take U+009B for CSI), and the bidi controls
/// that make text display in another order than it is stored.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Bytes as a human should see them (git's C-style quoting): returned as
/// they are when they are valid UTF-8 with no control characters, `"` or
/// `\`; otherwise in double quotes, with `\t \n \r \" \\` and `\ooo` (octal)
/// for every other control byte, DEL, C1 or bidi control, and byte that is
/// not valid UTF-8. So `"caf\351"` (a raw 0xe9) and `"caf\\351"` (a backslash
/// typed in the name) never look alike, and no byte reaches the terminal raw.
pub fn quote(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes)
        && !s.chars().any(|c| hidden(c) || c == '"' || c == '\\')
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    out.push('"');
    let octal = |out: &mut String, b: u8| out.push_str(&format!("\\{b:03o}"));
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if hidden(c) => c.encode_utf8(&mut [0; 4]).bytes().for_each(|b| octal(&mut out, b)),
                c => out.push(c),
            }
        }
        chunk.invalid().iter().for_each(|&b| octal(&mut out, b));
    }
    out.push('"');
    Cow::Owned(out)
}

/// The spelling of non-UTF-8 paths in `query --json` (a JSON string field):
/// each byte that is not part of valid UTF-8 as `\xNN`. Lossy (a name may
/// hold `\xNN` itself) and not for terminals: humans get [`quote`].
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
        for good in [&b"/etc/hosts"[..], b"/a", b"/a/.b/c..d/...", b"/caf\xe9"] {
            assert!(canonical(good), "{good:?}");
        }
        for bad in [
            &b""[..],
            b"/",
            b"etc/hosts",
            b"/etc/",
            b"//etc",
            b"/etc//hosts",
            b"/./etc",
            b"/etc/.",
            b"/home/u/l/../../../etc/passwd",
            b"/..",
            b"/a\0b",
        ] {
            assert!(!canonical(bad), "{bad:?}");
        }
    }

    #[test]
    fn quoting_is_unambiguous_and_leaves_no_control_byte() {
        assert_eq!(quote(b"/etc/hosts"), "/etc/hosts");
        assert!(matches!(quote(b"/etc/hosts"), Cow::Borrowed(_)));
        assert_eq!(quote("/srv/café".as_bytes()), "/srv/café");
        assert_eq!(quote(b"caf\xe9"), "\"caf\\351\"");
        assert_eq!(quote(b"caf\\351"), "\"caf\\\\351\"");
        assert_eq!(quote(b"a\x1b[1A\x1b[2K\rb\n\t\x7f\""), "\"a\\033[1A\\033[2K\\rb\\n\\t\\177\\\"\"");
        assert_eq!(quote("x\u{9b}y\u{202e}z".as_bytes()), "\"x\\302\\233y\\342\\200\\256z\"");
        for s in [&b"\x00\x01\x1f"[..], b"\xff\xfe", "\u{85}".as_bytes()] {
            assert!(quote(s).bytes().all(|b| (0x20..0x7f).contains(&b)), "{:?}", quote(s));
        }
    }

    #[test]
    fn utf8_paths_are_strings() {
        let p = WirePath::from("/etc/hosts");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"/etc/hosts\"");
    }
}
