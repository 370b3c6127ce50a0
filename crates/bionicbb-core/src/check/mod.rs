//! `check`: what an operator runs before starting a daemon, and after
//! changing its configuration. It reads the configuration, each secret and
//! its file mode, and the netrc entry for the Gerrit host ([`files`]); with
//! `--online` it asks each server one cheap authenticated question
//! ([`servers`]) and whether each job declares the parameters the bot
//! sends ([`params`]). Each check is one line of a checklist: `ok`, `warn`
//! (works, but worth a look) or `FAIL` with the fix. The daemons add their
//! own lines (gmail-listener: the Gmail credentials and labels) to the same
//! [`Report`].

pub mod files;
pub mod params;
pub mod servers;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, credential};
use crate::netrc::Credentials;

/// Which daemon is being checked: each checks what it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// Triggers the jobs: their parameters are checked.
    GmailListener,
    /// Reads build results and votes: Gerrit and Jenkins only.
    BuildListener,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but something may not be what the operator wants.
    Warn,
    Fail,
    /// Not run: what it needs failed.
    Skipped,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        }
    }
}

/// One line of the checklist. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub status: Status,
    /// What was checked: a key (`[jenkins] api_token_file`), a file or a server.
    pub subject: String,
    /// What was found.
    pub detail: String,
    /// What to do about it (for a failure or a warning).
    pub fix: Option<String>,
}

impl Item {
    pub fn ok(subject: impl Into<String>, detail: impl Into<String>) -> Item {
        Item::new(Status::Ok, subject, detail, None)
    }

    pub fn warn(
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Item {
        Item::new(Status::Warn, subject, detail, Some(fix.into()))
    }

    pub fn fail(
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Item {
        Item::new(Status::Fail, subject, detail, Some(fix.into()))
    }

    pub fn skipped(subject: impl Into<String>, why: impl Into<String>) -> Item {
        Item::new(Status::Skipped, subject, why, None)
    }

    fn new(
        status: Status,
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Item {
        Item {
            status,
            subject: subject.into(),
            detail: detail.into(),
            fix,
        }
    }
}

/// The checklist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub items: Vec<Item>,
}

impl Report {
    pub fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    /// True when nothing failed and nothing was skipped (a skipped check
    /// is one whose prerequisite failed).
    pub fn passed(&self) -> bool {
        self.items
            .iter()
            .all(|i| matches!(i.status, Status::Ok | Status::Warn))
    }

    /// The checklist as printed: one line per check, then a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            let _ = write!(
                out,
                "{:<4}  {}: {}",
                item.status.label(),
                item.subject,
                item.detail
            );
            if let Some(fix) = &item.fix {
                let _ = write!(out, "; fix: {fix}");
            }
            out.push('\n');
        }
        let count = |s: Status| self.items.iter().filter(|i| i.status == s).count();
        let (failed, skipped, warned) = (
            count(Status::Fail),
            count(Status::Skipped),
            count(Status::Warn),
        );
        let total = self.items.len();
        if failed == 0 && skipped == 0 {
            let _ = write!(out, "all {total} checks passed");
        } else {
            let _ = write!(out, "{failed} of {total} checks failed");
            if skipped > 0 {
                let _ = write!(out, ", {skipped} skipped");
            }
        }
        if warned > 0 {
            let _ = write!(out, " ({warned} with a warning)");
        }
        out.push('\n');
        out
    }
}

/// A check in progress: the report so far, and what later checks need.
#[derive(Debug)]
pub struct Checkup {
    pub report: Report,
    /// The configuration, when it loads (its secrets read when readable).
    pub config: Option<Config>,
    /// The Gerrit credentials from the netrc file, when usable.
    pub credentials: Option<Credentials>,
    /// Whether the Jenkins API token was read.
    pub jenkins_token: bool,
}

impl Checkup {
    /// The checks made without any network: the configuration, its
    /// secrets, the netrc entry for the Gerrit host.
    pub fn offline(path: &Path) -> Checkup {
        files::check(path)
    }

    /// The questions to the servers: Gerrit's `accounts/self`, Jenkins'
    /// `api/json` and, for gmail-listener, each job it triggers. A question
    /// whose credentials did not pass the offline checks is skipped.
    pub async fn online(&mut self, daemon: Daemon) {
        servers::check(self, daemon).await;
    }

    /// Runs `checks` (the online ones) on a runtime of their own; a
    /// runtime that cannot start is a failed check.
    pub fn block_on(&mut self, checks: impl AsyncFnOnce(&mut Checkup)) {
        match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(checks(self)),
            Err(e) => self.report.push(Item::fail(
                "servers",
                format!("cannot start the async runtime: {e}"),
                "free some memory or threads and run the check again",
            )),
        }
    }

    /// Prints the checklist on standard output (with a reminder of
    /// `--online` when no server was asked about `servers`); the exit
    /// status: 0 when every check passed, 1 otherwise.
    pub fn finish(self, online: bool, servers: &str) -> ExitCode {
        print!("{}", self.report.render());
        if !online {
            println!("(no server was asked: add --online to ask {servers})");
        }
        if self.report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// `ok`, or `FAIL` with `chmod 600`, for a file that holds a secret: group
/// and others must not read it. `subject` names the key. A credential
/// systemd handed over (in `$CREDENTIALS_DIRECTORY`) is `ok` whatever its
/// mode: systemd made that copy and chose its mode.
pub fn private_file(subject: &str, path: &Path, ok: impl Into<String>) -> Item {
    if credential::is_loaded(path, credential::directory().as_deref()) {
        let ok = ok.into();
        return Item::ok(subject, format!("{ok} (a credential systemd handed over)"));
    }
    match files::open_mode(path) {
        Some(mode) => Item::fail(
            subject,
            format!(
                "{} is accessible by group or others (mode {mode:o}); it holds a secret",
                path.display()
            ),
            format!("chmod 600 {}", path.display()),
        ),
        None => Item::ok(subject, ok),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checklist_has_one_line_per_check_and_a_summary() {
        let mut report = Report::default();
        report.push(Item::ok("config", "/etc/bionicbb/config.toml"));
        report.push(Item::fail(
            "[jenkins] api_token_file",
            "/etc/bionicbb/jenkins-token is accessible by group or others (mode 644)",
            "chmod 600 /etc/bionicbb/jenkins-token",
        ));
        report.push(Item::warn("job x", "does not declare PROJECT", "add it"));
        report.push(Item::skipped("Jenkins", "the API token could not be read"));
        assert!(!report.passed());
        let text = report.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "ok    config: /etc/bionicbb/config.toml");
        assert_eq!(
            lines[1],
            "FAIL  [jenkins] api_token_file: /etc/bionicbb/jenkins-token is accessible by \
             group or others (mode 644); fix: chmod 600 /etc/bionicbb/jenkins-token"
        );
        assert_eq!(
            lines[2],
            "warn  job x: does not declare PROJECT; fix: add it"
        );
        assert_eq!(lines[3], "skip  Jenkins: the API token could not be read");
        assert_eq!(
            lines[4],
            "1 of 4 checks failed, 1 skipped (1 with a warning)"
        );
    }

    #[test]
    fn warnings_do_not_fail_the_check() {
        let mut report = Report::default();
        report.push(Item::ok("a", "fine"));
        report.push(Item::warn("b", "odd", "look"));
        assert!(report.passed());
        assert_eq!(
            report.render().lines().last(),
            Some("all 2 checks passed (1 with a warning)")
        );
    }
}
