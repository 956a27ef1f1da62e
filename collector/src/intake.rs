//! The gate between assembled versions and the store: every version is
//! checked (could this writer have made it?), redacted where the config
//! says, and counted against its user's quota before it is queued for the
//! writer. Refusals are logged, never silent.

use std::sync::Arc;

use filetrail_wire::path::escape_bytes;
use filetrail_wire::policy::Globs;

use crate::access;
use crate::identity::Identity;
use crate::model::{Draft, NewVersion};
use crate::quota::{Exceeded, Quotas};
use crate::writer::VersionSender;

pub struct Intake {
    redact: Globs,
    quotas: Quotas,
    tx: VersionSender,
}

impl Intake {
    pub fn new(redact: Globs, quotas: Quotas, tx: VersionSender) -> Self {
        Intake { redact, quotas, tx }
    }

    pub fn submit(&self, draft: Draft, who: &Arc<Identity>) {
        let path = escape_bytes(&draft.path);
        if !access::plausible(who, &draft) {
            tracing::warn!(pid = who.pid, euid = who.euid, %path, "rejected a version: this process could not have written that path");
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
            return;
        }
        let _ = self.tx.send(NewVersion { draft, who: who.clone() });
    }
}
