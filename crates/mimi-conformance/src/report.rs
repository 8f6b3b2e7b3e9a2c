//! The report: one row per check, printed as a table or JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// How strongly -06 asks for what a check tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// A MUST of the draft, or the wire format itself: failing it breaks
    /// interoperability, and the run's exit code.
    Must,
    /// A SHOULD, or behaviour the draft describes without a keyword.
    Should,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run: a fixture it needs was not given, or a check it depends
    /// on did not get that far. Never counted as a pass.
    Skip,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Stable short name, e.g. `transport.host`.
    pub id: &'static str,
    /// What is checked, in the draft's words.
    pub name: String,
    /// The -06 section, e.g. `§4.1`.
    pub section: &'static str,
    pub level: Level,
    pub verdict: Verdict,
    /// What was sent and what came back.
    pub evidence: String,
}

/// Everything one run found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub target: String,
    pub tester: String,
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == verdict).count()
    }

    /// Failed MUST checks: any makes the run fail.
    pub fn must_failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail && c.level == Level::Must)
            .count()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A plain-text table: check, section, level, result, evidence; then
    /// a summary line.
    pub fn table(&self) -> String {
        let headers = ["check", "section", "level", "result", "evidence"];
        let rows: Vec<[String; 5]> = self
            .checks
            .iter()
            .map(|c| {
                [
                    c.id.to_owned(),
                    c.section.to_owned(),
                    match c.level {
                        Level::Must => "MUST".into(),
                        Level::Should => "SHOULD".into(),
                    },
                    match c.verdict {
                        Verdict::Pass => "pass".into(),
                        Verdict::Fail => "FAIL".into(),
                        Verdict::Skip => "skip".into(),
                    },
                    c.evidence.clone(),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row).take(4) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "MIMI -06 conformance of {} (tested as {})",
            self.target, self.tester
        );
        let line = |out: &mut String, cells: [&str; 5]| {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
            );
        };
        line(&mut out, headers);
        for row in &rows {
            line(&mut out, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
        let _ = writeln!(
            out,
            "{} checks: {} passed, {} failed ({} MUST), {} skipped",
            self.checks.len(),
            self.count(Verdict::Pass),
            self.count(Verdict::Fail),
            self.must_failures(),
            self.count(Verdict::Skip),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &'static str, level: Level, verdict: Verdict) -> CheckResult {
        CheckResult {
            id,
            name: id.to_owned(),
            section: "§4.1",
            level,
            verdict,
            evidence: format!("evidence of {id}"),
        }
    }

    /// Only failed MUST checks fail a run; skips are counted apart.
    #[test]
    fn must_failures_and_table() {
        let report = Report {
            target: "a.example".into(),
            tester: "b.example".into(),
            checks: vec![
                row("one", Level::Must, Verdict::Pass),
                row("two", Level::Should, Verdict::Fail),
                row("three", Level::Must, Verdict::Skip),
            ],
        };
        assert_eq!(report.must_failures(), 0);
        let table = report.table();
        assert!(
            table.contains("check  section  level   result  evidence"),
            "{table}"
        );
        assert!(
            table.contains("two    §4.1     SHOULD  FAIL    evidence of two"),
            "{table}"
        );
        assert!(table.ends_with("3 checks: 1 passed, 1 failed (0 MUST), 1 skipped\n"));
        let mut failing = report.clone();
        failing.checks.push(row("four", Level::Must, Verdict::Fail));
        assert_eq!(failing.must_failures(), 1);
        let json: serde_json::Value = serde_json::from_str(&failing.to_json()).unwrap();
        assert_eq!(json["checks"][3]["verdict"], "fail");
        assert_eq!(json["checks"][3]["level"], "MUST");
    }
}
