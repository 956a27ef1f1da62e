//! The gate between assembled versions and the store: every version is
//! checked (could this writer have made it?), redacted where its names or
//! its content are secret ([`Secrets`]), and counted against the quota of
//! its writer's kernel-verified euid before it is queued for the writer.
//! Refusals are logged, never silent. What a live writer reports it lost, or
//! the collector could not take from it, goes to the writer as a gap in the
//! writer's name ([`Intake::gap`]).

use std::sync::Arc;

use filetrail_wire::Policy;
use filetrail_wire::path::quote;

use crate::access;
use crate::config::Quota;
use crate::delivery::Delivery;
use crate::model::{Draft, NewVersion};
use crate::quota::{Exceeded, Quotas};
use crate::secrets::Secrets;
use crate::store::gaps::Gap;
use crate::who::Identity;
use crate::writer::{GapSender, VersionSender};

/// Gap records one user (kernel euid) may add per minute; beyond, their
/// counts are added to that user's last gap of the same kind.
const GAPS_PER_MINUTE: u64 = 60;

pub struct Intake {
    /// What is tracked: versions of other paths are refused.
    scope: Policy,
    secrets: Arc<Secrets>,
    /// Shared by every intake of a collector: a version costs its user's
    /// quota once, however it arrives.
    quotas: Arc<Quotas>,
    tx: VersionSender,
    gaps: Option<GapSender>,
    gap_rate: Quotas,
}

impl Intake {
    pub fn new(scope: Policy, secrets: Arc<Secrets>, quotas: Arc<Quotas>, tx: VersionSender) -> Self {
        let gap_rate = Quotas::new(Quota { versions_per_minute: GAPS_PER_MINUTE, bytes_per_day: u64::MAX });
        Intake { scope, secrets, quotas, tx, gaps: None, gap_rate }
    }

    /// Gaps go to the writer through `gaps`; without, [`Intake::gap`] only logs.
    pub fn with_gaps(self, gaps: GapSender) -> Self {
        Intake { gaps: Some(gaps), ..self }
    }

    /// Records a gap in the name of `who` (a live writer, identified by the
    /// kernel): `versions` changes (the library counts events) of `bytes`
    /// could not be recorded, about `path` when known. The counts are the
    /// writer's claim (a process can only make its own record noisier); the
    /// rows are bounded per user ([`GAPS_PER_MINUTE`]).
    pub fn gap(&self, who: &Identity, what: &'static str, versions: u64, bytes: u64, path: Option<Vec<u8>>) {
        let now = jiff::Timestamp::now();
        let coalesce = self.gap_rate.charge(who.euid, 0, now.as_second()).is_err();
        if !coalesce {
            tracing::warn!(pid = who.pid, euid = who.euid, user = %who.user, what, versions, bytes, "gap: changes not recorded");
        }
        let Some(tx) = &self.gaps else { return };
        let _ = tx.send(Gap {
            time_us: now.as_microsecond(),
            uid: Some(who.euid),
            user: Some(who.user.clone()),
            what,
            versions,
            bytes,
            pid: Some(who.pid),
            exe: Some(who.exe.clone()),
            path,
            coalesce,
            ..Gap::default()
        });
    }

    /// Checks and queues one version. `delivery` (from a client that numbers
    /// its events) is settled here when the version is refused for good;
    /// else the writer settles it.
    pub fn submit(&self, mut draft: Draft, who: &Arc<Identity>, delivery: Option<Delivery>) {
        let path = quote(&draft.path).into_owned();
        if let Err(why) = access::check(&self.scope, who, &mut draft) {
            tracing::warn!(pid = who.pid, euid = who.euid, %path, "rejected a version: {}", why.as_str());
            if let Some(d) = delivery {
                d.done();
            }
            return;
        }
        self.redact_and_queue(draft, who, &path, delivery);
    }

    /// A change the collector observed itself (the kernel watch): no client
    /// claims it, so there is nothing to check against a client's rights;
    /// it must still be tracked, and is redacted and charged like any other
    /// (to the euid the kernel named, or to the unknown writer's).
    pub fn submit_observed(&self, draft: Draft, who: &Arc<Identity>) {
        let path = quote(&draft.path).into_owned();
        let renamed_away = draft.old_path.as_deref().is_some_and(|o| self.scope.is_tracked(o));
        if !self.scope.is_tracked(&draft.path) && !renamed_away {
            return;
        }
        self.redact_and_queue(draft, who, &path, None);
    }

    fn redact_and_queue(&self, draft: Draft, who: &Arc<Identity>, path: &str, delivery: Option<Delivery>) {
        let draft = self.secrets.redact(draft);
        let now = jiff::Timestamp::now().as_second();
        // The kernel's euid (SO_PEERCRED), never `uid`: that one may be a
        // value the client claimed.
        let draft = match self.quotas.charge(who.euid, draft.content_bytes(), now) {
            Ok(()) => draft,
            Err((kind, first)) => {
                if first {
                    let what = match kind {
                        Exceeded::VersionsPerMinute => "versions per minute",
                        Exceeded::BytesPerDay => "bytes per day",
                    };
                    tracing::warn!(euid = who.euid, user = %who.user, %path, "quota of {what} exceeded: this user's versions are recorded without content until the window ends");
                }
                // Never hidden: who, when, what and the hashes stay.
                draft.over_quota()
            }
        };
        let _ = self.tx.send(NewVersion { draft, who: who.clone(), delivery });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::model::{Action, Side, Stored};
    use crate::who::Trust;

    #[test]
    fn quotas_are_charged_to_the_kernel_euid_not_a_claimed_uid() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let quotas = Arc::new(Quotas::new(Quota { versions_per_minute: 3, bytes_per_day: 1 << 20 }));
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return eprintln!("not root: the access check cannot act as uid 4242; skipped");
        }
        let scope = Policy::new(&[dir.path().to_str().unwrap()], &[] as &[&str], 1 << 20).unwrap();
        let intake = Intake::new(scope, Arc::new(Secrets::new(Default::default(), HashSet::new())), quotas, tx);
        let draft = |name: &str| {
            let path = dir.path().join(name).into_os_string().into_encoded_bytes();
            Draft::new(
                path,
                Action::Create,
                None,
                Some(Side::from_bytes(b"x".to_vec(), None, true)),
                jiff::Timestamp::now(),
            )
        };
        // Its process was gone before /proc was read: uid 0 is only claimed.
        let mut liar = Identity { euid: 4242, uid: 0, gid: 4242, ..Default::default() };
        liar.trust.insert("uid", Trust::Claimed);
        let (liar, root) = (Arc::new(liar), Arc::new(Identity::default()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        for i in 0..10 {
            intake.submit(draft(&format!("flood{i}")), &liar, None);
        }
        intake.submit(draft("root.conf"), &root, None);
        let got: Vec<_> = rx.try_iter().map(|v| (v.who.euid, v.draft)).collect();
        assert_eq!(got.len(), 11, "every version is recorded: {got:?}");
        let with_content: Vec<_> =
            got.iter().filter(|v| v.1.after.as_ref().unwrap().stored == Stored::Stored).collect();
        assert_eq!(with_content.len(), 4, "three of the liar's with content, then root's: {got:?}");
        assert_eq!(with_content[3].0, 0);
    }
}
