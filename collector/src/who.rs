//! Who made a change, as plain data: the [`Identity`] of a writing process
//! and how far each of its fields can be trusted. How these are learned
//! from the kernel is `identity.rs`; the store and the model depend on this
//! module only, never on the trust boundary.

use std::collections::BTreeMap;

use serde::Serialize;

/// How far a field can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    Verified,
    Claimed,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Identity {
    /// Unique per identity read in this collector's lifetime: the store
    /// writes one `writers` row per key.
    #[serde(skip)]
    pub key: u64,
    pub pid: i32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    /// The audit login uid: the human who logged in (None when unset).
    pub loginuid: Option<u32>,
    pub session: Option<u32>,
    /// The human: name of the loginuid, else of the uid.
    pub user: String,
    /// Users from login to writer, e.g. `["alice", "root"]`.
    pub chain: Vec<String>,
    pub exe: String,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub tty: Option<String>,
    pub sudo_user: Option<String>,
    pub ssh_client: Option<String>,
    pub host: Option<String>,
    pub trust: BTreeMap<&'static str, Trust>,
    /// Effective gid and supplementary groups (for the write-permission check).
    #[serde(skip)]
    pub groups: Vec<u32>,
}

pub(crate) fn next_key() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The identity fields that carry a trust label, in the bit order the store
/// uses (`writers.trust`: bit i set = field i verified). Append only.
pub const TRUST_FIELDS: &[&str] = &[
    "pid",
    "uid",
    "euid",
    "loginuid",
    "session",
    "exe",
    "cwd",
    "tty",
    "user",
    "chain",
    "argv",
    "sudo_user",
    "ssh_client",
];

/// The trust labels as a bit set (see [`TRUST_FIELDS`]).
pub fn trust_bits(trust: &BTreeMap<&'static str, Trust>) -> i64 {
    TRUST_FIELDS
        .iter()
        .enumerate()
        .filter(|(_, f)| trust.get(*f) == Some(&Trust::Verified))
        .map(|(i, _)| 1i64 << i)
        .sum()
}

/// The trust labels of a bit set, as the JSON object `query --json` prints.
pub fn trust_json(bits: i64) -> serde_json::Value {
    TRUST_FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| (f.to_string(), serde_json::json!(if bits & (1 << i) != 0 { "verified" } else { "claimed" })))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The name of `uid` from the user database, or the number.
pub fn user_name(uid: u32) -> String {
    uzers::get_user_by_uid(uid).map(|u| u.name().to_string_lossy().into_owned()).unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_round_trips_through_bits() {
        let mut t = BTreeMap::new();
        t.insert("exe", Trust::Verified);
        t.insert("argv", Trust::Claimed);
        let json = trust_json(trust_bits(&t));
        assert_eq!(json["exe"], "verified");
        assert_eq!(json["argv"], "claimed");
        assert_eq!(json["pid"], "claimed");
    }
}
