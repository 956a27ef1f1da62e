//! The host's signing key: each batch the fleet store accepts ends in a
//! checkpoint — (host, seq, record hash of that version) — signed with an
//! Ed25519 key only this host holds (`<db>.key`, root's, mode 0600, made
//! at the first shipping). The fleet store pins the public key at the
//! host's first signed batch; `collector verify` checks every checkpoint.
//!
//! What it adds to the chain (docs/security.md): the chain's hashes can be
//! recomputed by anyone who can write the fleet store, so a rewrite there
//! (a row edited with its hashes redone, the newest versions cut off with
//! the head moved back) keeps a whole chain; it cannot keep the signed
//! checkpoints, which need the host's key.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::{Error, Result};

/// The key file of the store `db`.
pub fn key_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

/// The host's key, made (from the kernel's random bytes) if there is none.
/// A key file readable by others, not ours, or not 32 bytes is refused.
pub fn load_or_create(path: &Path) -> Result<SigningKey> {
    let what = || format!("the host's signing key {}", path.display());
    let failed = |e: std::io::Error| Error::HostKey(format!("{}: {e}", what()));
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).custom_flags(libc::O_NOFOLLOW);
    match opts.open(path) {
        Ok(mut f) => {
            let meta = f.metadata().map_err(failed)?;
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
                return Err(Error::HostKey(format!(
                    "{}: must be a regular file of uid {me}, mode 0600 (it is uid {}, mode {:04o})",
                    what(),
                    meta.uid(),
                    meta.mode() & 0o7777
                )));
            }
            let mut seed = [0u8; 33];
            let n = f.read(&mut seed).map_err(failed)?;
            let seed: [u8; 32] = seed[..n].try_into().map_err(|_| {
                Error::HostKey(format!("{}: not a key (32 bytes expected, it has {})", what(), meta.len()))
            })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            // SAFETY: seed is writable for its length; 0: block until the pool is ready.
            let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
            if n != seed.len() as isize {
                return Err(failed(std::io::Error::last_os_error()));
            }
            let mut f =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(failed)?;
            f.write_all(&seed).and_then(|()| f.sync_all()).map_err(failed)?;
            let key = SigningKey::from_bytes(&seed);
            tracing::info!(key = %public(&key.verifying_key()), path = %path.display(), "made the host's signing key");
            Ok(key)
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Err(Error::HostKey(format!("{}: a symbolic link, refused", what())))
        }
        Err(e) => Err(failed(e)),
    }
}

/// What a checkpoint's signature covers.
fn message(host: &str, seq: i64, head: &[u8]) -> Vec<u8> {
    let mut m = b"filetrail checkpoint 1\0".to_vec();
    m.extend_from_slice(host.as_bytes());
    m.push(0);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m
}

/// The signature of `host`'s checkpoint at version `seq` whose record hash is `head`.
pub fn sign(key: &SigningKey, host: &str, seq: i64, head: &[u8]) -> Vec<u8> {
    key.sign(&message(host, seq, head)).to_bytes().to_vec()
}

/// Whether `signature` is `public`'s over that checkpoint.
pub fn verify(public: &[u8], host: &str, seq: i64, head: &[u8], signature: &[u8]) -> bool {
    let Ok(public) = <[u8; 32]>::try_from(public) else { return false };
    let (Ok(public), Ok(signature)) = (VerifyingKey::from_bytes(&public), Signature::from_slice(signature)) else {
        return false;
    };
    public.verify_strict(&message(host, seq, head), &signature).is_ok()
}

/// A public key as people compare it: `ed25519:` and its base64.
pub fn public(key: &VerifyingKey) -> String {
    shown(key.as_bytes())
}

/// Raw public key bytes as [`public`] shows them.
pub fn shown(bytes: &[u8]) -> String {
    format!("ed25519:{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_unchanged_and_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(&dir.path().join("store.db"));
        let key = load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&path).unwrap().to_bytes(), key.to_bytes(), "made once, then read");
        let public = key.verifying_key().to_bytes();
        let sig = sign(&key, "h1", 42, &[7; 32]);
        assert!(verify(&public, "h1", 42, &[7; 32], &sig));
        assert!(!verify(&public, "h2", 42, &[7; 32], &sig), "another host");
        assert!(!verify(&public, "h1", 41, &[7; 32], &sig), "another version");
        assert!(!verify(&public, "h1", 42, &[8; 32], &sig), "another head");
        let other = load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(!verify(&other.verifying_key().to_bytes(), "h1", 42, &[7; 32], &sig), "another key");
        assert!(!verify(&public[..31], "h1", 42, &[7; 32], &sig));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db.key");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let e = load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("mode 0600"), "{e}");
        std::fs::write(dir.path().join("short.key"), b"x").unwrap();
        std::fs::set_permissions(dir.path().join("short.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let e = load_or_create(&dir.path().join("short.key")).unwrap_err().to_string();
        assert!(e.contains("32 bytes expected, it has 1"), "{e}");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("link.key")).unwrap();
        let e = load_or_create(&dir.path().join("link.key")).unwrap_err().to_string();
        assert!(e.contains("a symbolic link, refused"), "{e}");
        assert!(!dir.path().join("elsewhere").exists(), "nothing made through the link");
    }
}
