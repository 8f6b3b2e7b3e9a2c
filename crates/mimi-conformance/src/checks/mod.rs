//! The checks, grouped by -06 section. Each returns a [`CheckResult`];
//! whatever the target answers (or fails to) becomes evidence, never a
//! panic.

mod bodies;
mod consent;
mod directory;
mod epoch;
mod hub;
mod identifier;
mod key_material;
mod notify;
mod transport;

use crate::Context;
use crate::report::{CheckResult, Level, Verdict};

/// What a check is, before it has a verdict.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check {
    pub id: &'static str,
    pub name: &'static str,
    pub section: &'static str,
    pub level: Level,
}

impl Check {
    pub const fn must(id: &'static str, section: &'static str, name: &'static str) -> Self {
        Self {
            id,
            name,
            section,
            level: Level::Must,
        }
    }

    pub const fn should(id: &'static str, section: &'static str, name: &'static str) -> Self {
        Self {
            id,
            name,
            section,
            level: Level::Should,
        }
    }

    pub fn result(self, verdict: Verdict, evidence: impl Into<String>) -> CheckResult {
        CheckResult {
            id: self.id,
            name: self.name.to_owned(),
            section: self.section,
            level: self.level,
            verdict,
            evidence: evidence.into(),
        }
    }

    pub fn pass(self, evidence: impl Into<String>) -> CheckResult {
        self.result(Verdict::Pass, evidence)
    }

    pub fn fail(self, evidence: impl Into<String>) -> CheckResult {
        self.result(Verdict::Fail, evidence)
    }

    pub fn skip(self, evidence: impl Into<String>) -> CheckResult {
        self.result(Verdict::Skip, evidence)
    }

    pub fn verdict(self, ok: bool, evidence: impl Into<String>) -> CheckResult {
        self.result(if ok { Verdict::Pass } else { Verdict::Fail }, evidence)
    }

    /// A check that could not be run for want of `fixture`.
    pub fn needs(self, fixture: &str) -> CheckResult {
        self.skip(format!("needs {fixture}"))
    }
}

/// Runs every check in order: the directory first (every other check
/// reaches the target through it, -06 §5.1), external joins last (they
/// change the fixture room).
pub(crate) async fn run_all(ctx: &mut Context) -> Vec<CheckResult> {
    let mut out = directory::run(ctx).await;
    out.extend(transport::run(ctx).await);
    out.extend(bodies::run(ctx).await);
    out.extend(key_material::run(ctx).await);
    out.extend(consent::run(ctx).await);
    out.extend(identifier::run(ctx).await);
    out.extend(notify::run(ctx).await);
    out.extend(hub::run(ctx).await);
    out.extend(epoch::run(ctx).await);
    out
}
