//! The tamper-evident chain of a host's versions: what a version's record
//! hash covers and how it is encoded (docs/security.md, "The chain").
//!
//! Each version has `record_hash` = SHA-256 of [`Record::encode`] (the
//! previous version's record hash, in id order, then the version's observed
//! fields) and `prev_hash` = that previous hash (NULL for a store's first
//! version). The local store computes it in the transaction that inserts the
//! version (`store/chain.rs`); the fleet store receives it with the row and
//! can recompute it from its columns, which hold every covered field.
//!
//! Covered: what was observed when the version was stored, and is never
//! updated afterwards: id, time, path, named path, the source name (the
//! rename source or temp file: `via`, else `old_path`), each side's SHA-256,
//! state and size, `consistent`, mode and owner before and after, `seen_by`,
//! `gap_before`, `temp_name`, and who: the principal (user, chain, uid, euid,
//! gid, loginuid, session, sudo user, tty, ssh client) and the writer (pid,
//! exe, argv, cwd, trust bits).
//!
//! Not covered: the store's interpretation, which folding updates later
//! (`store/fold.rs`): `action` (a rename folded into a write), which of
//! `old_path`/`via` holds the source name (their coalesce is covered), and
//! `folded_into`. A late library report of a change the kernel watch stored
//! is a version of its own that the kernel's row is folded into
//! (`store/mod.rs`, `insert`), so it rewrites no covered field.
//!
//! Encoding (version 1): the bytes `filetrail-chain-1\n`, then each value in
//! the order of [`Record`]'s fields, the previous hash first: `0` for NULL;
//! `1` and 8 bytes big-endian for an integer (booleans 0/1); `2`, a 4-byte
//! big-endian length and the bytes for text or bytes; `3`, a 4-byte count
//! and each element as text for a list of strings (`chain`, `argv`).

use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"filetrail-chain-1\n";

/// One side (before or after) of a version, as covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideRecord {
    /// Raw 32 bytes; NULL when the content is unknown or did not exist.
    pub sha256: Option<Vec<u8>>,
    /// NULL: the file did not exist on this side.
    pub state: Option<String>,
    pub size: Option<i64>,
}

/// The covered fields of one version, in encoding order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub seq: i64,
    pub time_us: i64,
    pub path: Vec<u8>,
    pub named_path: Option<Vec<u8>>,
    /// `coalesce(via, old_path)`: folding moves a rename's source from
    /// `old_path` to `via`, never changes it.
    pub source: Option<Vec<u8>>,
    pub before: SideRecord,
    pub after: SideRecord,
    pub consistent: bool,
    pub mode: Option<i64>,
    pub owner_uid: Option<i64>,
    pub group_gid: Option<i64>,
    pub before_mode: Option<i64>,
    pub before_owner_uid: Option<i64>,
    pub before_group_gid: Option<i64>,
    pub seen_by: String,
    pub gap_before: bool,
    pub temp_name: bool,
    pub user: String,
    pub chain: Vec<String>,
    pub uid: i64,
    pub euid: i64,
    pub gid: i64,
    pub loginuid: Option<i64>,
    pub session: Option<i64>,
    pub sudo_user: Option<String>,
    pub tty: Option<String>,
    pub ssh_client: Option<String>,
    pub pid: i64,
    pub exe: String,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub trust: i64,
}

struct Enc(Vec<u8>);

impl Enc {
    fn null(&mut self) {
        self.0.push(0);
    }
    fn int(&mut self, v: i64) {
        self.0.push(1);
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.push(2);
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
    }
    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.bytes(b),
            None => self.null(),
        }
    }
    fn list(&mut self, l: &[String]) {
        self.0.push(3);
        self.0.extend_from_slice(&(l.len() as u32).to_be_bytes());
        for s in l {
            self.bytes(s.as_bytes());
        }
    }
    fn side(&mut self, s: &SideRecord) {
        self.opt_bytes(s.sha256.as_deref());
        self.opt_bytes(s.state.as_deref().map(str::as_bytes));
        self.opt_int(s.size);
    }
}

impl Record {
    /// The bytes the record hash is taken over (module doc: "Encoding").
    pub fn encode(&self, prev: Option<&[u8]>) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(512));
        e.0.extend_from_slice(MAGIC);
        e.opt_bytes(prev);
        e.int(self.seq);
        e.int(self.time_us);
        e.bytes(&self.path);
        e.opt_bytes(self.named_path.as_deref());
        e.opt_bytes(self.source.as_deref());
        e.side(&self.before);
        e.side(&self.after);
        e.int(self.consistent as i64);
        for v in
            [self.mode, self.owner_uid, self.group_gid, self.before_mode, self.before_owner_uid, self.before_group_gid]
        {
            e.opt_int(v);
        }
        e.bytes(self.seen_by.as_bytes());
        e.int(self.gap_before as i64);
        e.int(self.temp_name as i64);
        e.bytes(self.user.as_bytes());
        e.list(&self.chain);
        e.int(self.uid);
        e.int(self.euid);
        e.int(self.gid);
        e.opt_int(self.loginuid);
        e.opt_int(self.session);
        for s in [&self.sudo_user, &self.tty, &self.ssh_client] {
            e.opt_bytes(s.as_deref().map(str::as_bytes));
        }
        e.int(self.pid);
        e.bytes(self.exe.as_bytes());
        e.list(&self.argv);
        e.opt_bytes(self.cwd.as_deref().map(str::as_bytes));
        e.int(self.trust);
        e.0
    }

    /// The record hash of this version after `prev`.
    pub fn hash(&self, prev: Option<&[u8]>) -> [u8; 32] {
        Sha256::digest(self.encode(prev)).into()
    }
}

/// Walks one host's versions in `seq` order and names what breaks the
/// chain: a missing seq (a deleted version), a record hash its fields do not
/// give (an edited one), a previous hash that is not the record hash before
/// it (rows edited, reordered or replaced). The newest versions can be cut
/// off without a trace (nothing follows them): a head kept elsewhere (the
/// fleet store's) catches that.
#[derive(Default)]
pub struct Checker {
    last_seq: i64,
    expected_prev: Option<Vec<u8>>,
    /// What is wrong, one line each, naming the version.
    pub problems: Vec<String>,
}

impl Checker {
    /// The next version, with the record and previous hashes it carries.
    pub fn next(&mut self, record: &Record, record_hash: Option<Vec<u8>>, prev_hash: Option<&[u8]>) {
        let (seq, last) = (record.seq, self.last_seq);
        if seq != last + 1 {
            let missing = if seq == last + 2 {
                format!("version {}", last + 1)
            } else {
                format!("versions {}..{}", last + 1, seq - 1)
            };
            self.problems.push(format!("{missing}: missing from the chain (deleted)"));
        }
        match &record_hash {
            None => self.problems.push(format!("version {seq}: not chained (no record hash)")),
            Some(h) if h[..] != record.hash(prev_hash)[..] => {
                self.problems.push(format!("version {seq}: its fields do not match its record hash (edited)"))
            }
            Some(_) => {}
        }
        if prev_hash != self.expected_prev.as_deref() && seq == last + 1 {
            self.problems.push(format!(
                "version {seq}: its previous hash is not version {last}'s record hash (rows edited, reordered or replaced)"
            ));
        }
        self.expected_prev = record_hash;
        self.last_seq = seq;
    }

    /// The last version seen and its record hash.
    pub fn head(&self) -> (i64, Option<&[u8]>) {
        (self.last_seq, self.expected_prev.as_deref())
    }
}

/// A JSON array of strings as stored (`chain`, `argv`); anything else is
/// kept as one string, so a damaged value still hashes (to something else).
pub fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_else(|_| vec![json.to_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_and_the_previous_hash_change_the_hash() {
        let r = Record { seq: 1, path: b"/etc/a".to_vec(), user: "alice".into(), ..Default::default() };
        let h = r.hash(None);
        assert_ne!(h, r.hash(Some(&[0; 32])));
        let mut other = r.clone();
        other.argv = vec!["vi".into()];
        assert_ne!(h, other.hash(None));
        // Adjacent fields cannot trade bytes: each is length-prefixed.
        let (mut a, mut b) = (r.clone(), r.clone());
        (a.exe, a.argv) = ("ab".into(), vec![]);
        (b.exe, b.argv) = ("a".into(), vec!["b".into()]);
        assert_ne!(a.hash(None), b.hash(None));
        let mut none = r.clone();
        none.named_path = Some(vec![]);
        assert_ne!(h, none.hash(None), "NULL is not empty");
    }
}
