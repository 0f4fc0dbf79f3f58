//! A checklist: what `connection test`, `mailbox verify` and `doctor` print.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The step passed.
    Pass,
    /// The step failed: something must be fixed.
    Fail,
    /// Not wrong yet, but it will be (an expiring secret) or could not be checked fully.
    Warn,
    /// Not run because an earlier step failed.
    Skip,
}

impl Status {
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Warn => "!",
            Status::Skip => "-",
        }
    }
}

/// One step of a checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable machine name, e.g. `token`, `tenant`, `mailbox-scope`.
    pub id: String,
    pub status: Status,
    /// What was checked and what was found, in an administrator's words.
    pub summary: String,
    /// For a failure or warning: the exact fix (portal step or PowerShell line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Microsoft's error code behind a failure (`AADSTS7000215`, `ErrorAccessDenied`), for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Check {
    pub fn pass(id: &str, summary: impl Into<String>) -> Self {
        Check {
            id: id.to_owned(),
            status: Status::Pass,
            summary: summary.into(),
            fix: None,
            code: None,
        }
    }
    pub fn fail(id: &str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            id: id.to_owned(),
            status: Status::Fail,
            summary: summary.into(),
            fix: Some(fix.into()),
            code: None,
        }
    }
    pub fn warn(id: &str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            id: id.to_owned(),
            status: Status::Warn,
            summary: summary.into(),
            fix: Some(fix.into()),
            code: None,
        }
    }
    pub fn skip(id: &str, summary: impl Into<String>) -> Self {
        Check {
            id: id.to_owned(),
            status: Status::Skip,
            summary: summary.into(),
            fix: None,
            code: None,
        }
    }
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

/// The result of a diagnostic run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checklist {
    pub title: String,
    pub checks: Vec<Check>,
}

impl Checklist {
    pub fn new(title: impl Into<String>) -> Self {
        Checklist {
            title: title.into(),
            checks: Vec::new(),
        }
    }
    pub fn push(&mut self, c: Check) -> &mut Self {
        self.checks.push(c);
        self
    }
    /// Exit 0 only when every step passed (warnings do not fail).
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|c| matches!(c.status, Status::Pass | Status::Warn))
    }
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
    /// The text form: a title, then one line per step (`✓ …` / `✗ … — fix: …`).
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.title);
        for c in &self.checks {
            out.push_str(&format!("  {} {}\n", c.status.symbol(), c.summary));
            if let Some(fix) = &c.fix {
                for (i, line) in fix.lines().enumerate() {
                    let lead = if i == 0 { "fix: " } else { "     " };
                    out.push_str(&format!("      {lead}{line}\n"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_only_without_failures_and_renders_fixes() {
        let mut c = Checklist::new("Test settings: contoso");
        c.push(Check::pass("token", "token acquired"));
        c.push(Check::warn(
            "expiry",
            "secret expires in 10 days",
            "add a new secret",
        ));
        assert!(c.passed());
        c.push(
            Check::fail(
                "secret",
                "the client secret was rejected",
                "paste the Value",
            )
            .with_code("AADSTS7000215"),
        );
        assert!(!c.passed());
        let text = c.render();
        assert!(text.contains("✓ token acquired"));
        assert!(text.contains("✗ the client secret was rejected"));
        assert!(text.contains("fix: paste the Value"));
        let json = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(json["checks"][2]["code"], "AADSTS7000215");
        assert_eq!(json["checks"][0]["status"], "pass");
        assert!(json["checks"][0].get("fix").is_none());
    }
}
