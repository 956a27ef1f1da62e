//! The gate between assembled versions and the store: every version is
//! checked (could this writer have made it?), redacted where the config
//! says, and counted against its user's quota before it is queued for the
//! writer. Refusals are logged, never silent.

use std::sync::Arc;

use filetrail_wire::Policy;
use filetrail_wire::path::escape_bytes;
use filetrail_wire::policy::Globs;

use crate::access;
use crate::delivery::Delivery;
use crate::model::{Draft, NewVersion};
use crate::quota::{Exceeded, Quotas};
use crate::who::Identity;
use crate::writer::VersionSender;

pub struct Intake {
    /// What is tracked: versions of other paths are refused.
    scope: Policy,
    redact: Globs,
    quotas: Quotas,
    tx: VersionSender,
}

impl Intake {
    pub fn new(scope: Policy, redact: Globs, quotas: Quotas, tx: VersionSender) -> Self {
        Intake { scope, redact, quotas, tx }
    }

    /// Checks and queues one version. `delivery` (from a client that numbers
    /// its events) is settled here when the version is refused for good;
    /// else the writer settles it.
    pub fn submit(&self, mut draft: Draft, who: &Arc<Identity>, delivery: Option<Delivery>) {
        let path = escape_bytes(&draft.path);
        if let Err(why) = access::check(&self.scope, who, &mut draft) {
            tracing::warn!(pid = who.pid, euid = who.euid, %path, "rejected a version: {}", why.as_str());
            if let Some(d) = delivery {
                d.done();
            }
            return;
        }
        let named_redacted = draft.named_path.as_deref().is_some_and(|n| self.redact.matches(n));
        let draft = if self.redact.matches(&draft.path) || named_redacted { draft.redacted() } else { draft };
        let now = jiff::Timestamp::now().as_second();
        if let Err((kind, first)) = self.quotas.charge(who.uid, draft.content_bytes(), now) {
            if first {
                let what = match kind {
                    Exceeded::VersionsPerMinute => "versions per minute",
                    Exceeded::BytesPerDay => "bytes per day",
                };
                tracing::warn!(uid = who.uid, user = %who.user, %path, "quota of {what} exceeded: dropping this user's versions until the window ends");
            }
            if let Some(d) = delivery {
                d.done();
            }
            return;
        }
        let _ = self.tx.send(NewVersion { draft, who: who.clone(), delivery });
    }
}
