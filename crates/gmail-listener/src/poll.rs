//! The poll loop: list the label, handle its mails, and take every handled
//! mail out of the label. Mails of different changes are handled at once,
//! mails of one change one after the other in arrival order ([`drain`]);
//! handled mails leave the label in batches ([`take_out`]). One bad mail, a
//! network error or a Gmail outage never stops the loop; a mail whose
//! handling hit a passing fault stays for the next poll, and so do the later
//! mails of its change. Not even a mail that kills the process can stop it:
//! see [`guard`].

mod drain;
mod guard;
mod in_hand;
mod mail;
mod take_out;

pub(crate) use mail::details as event_details;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bionicbb_core::config::Config;
use bionicbb_core::gerrit::GerritClient;
use bionicbb_core::ledger::{self, Ledger, metric_names as names};
use bionicbb_core::runtime::StartupFailure;
use bionicbb_core::timefmt;
pub use drain::DOWNLOADS_PER_WORKER;
pub use guard::MAX_DEATHS;
use serde_json::json;
use tokio::sync::watch;

use crate::effects::Effects;
use crate::gmail::{Mailbox, MailboxError};
use crate::health::{Health, PollStatus};
use crate::reconcile::Reconciler;

/// How long a mail hit by passing faults (a Gerrit, Jenkins or
/// build-listener outage) is tried again before it is quarantined with its
/// last error: a week. An outage of hours must not cost a build.
pub const RETRY_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// After this many failed tries a mail is quarantined. A mail is tried once
/// per poll, so the limit is [`RETRY_FOR`] counted in polls of `interval`
/// (40,320 at the default 15 s; 2,016 at 5 minutes): the week holds
/// whatever the interval, and polls that take longer than an instant only
/// stretch it. Counting polls rather than time needs no clock in the ledger.
pub fn max_attempts(interval: Duration) -> u32 {
    let polls = RETRY_FOR.as_secs() / interval.as_secs().max(1);
    u32::try_from(polls).unwrap_or(u32::MAX).max(1)
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Mails listed in the label.
    pub mails: usize,
    pub done: usize,
    pub quarantined: usize,
    /// Mails left for the next poll because of a passing fault.
    pub pending: usize,
    /// Mails left for the next poll, untried, because an earlier mail of
    /// their change is pending (or the daemon is stopping).
    pub held_back: usize,
    /// Why Gmail could not be listed, if it could not.
    pub list_error: Option<String>,
}

impl PollReport {
    pub fn ok(&self) -> bool {
        self.list_error.is_none() && self.pending == 0 && self.held_back == 0
    }

    /// The poll in one line for `systemctl status` (`STATUS=`): when it
    /// ran, what it did and when the next one runs (times, not ages: the
    /// line stays true until the next poll replaces it).
    pub fn status_line(&self, at: i64, next: Option<i64>) -> String {
        let when = timefmt::format_utc(at);
        let what = match &self.list_error {
            Some(e) => format!("cannot list the label: {}", first_chars(e, 160)),
            None => format!(
                "{} {}, {} done, {} quarantined, {} left for the next poll",
                self.mails,
                if self.mails == 1 { "mail" } else { "mails" },
                self.done,
                self.quarantined,
                self.pending + self.held_back
            ),
        };
        match next {
            Some(next) => format!(
                "polled {when}: {what}; next poll {}",
                timefmt::format_utc(next)
            ),
            None => format!("polled {when}: {what}"),
        }
    }

    /// The poll as the health endpoint and the status page show it.
    pub fn status(&self, at: i64) -> PollStatus {
        let left = self.pending + self.held_back;
        let error = self
            .list_error
            .clone()
            .or_else(|| (left > 0).then(|| format!("{left} mails left for the next poll")));
        PollStatus {
            at,
            ok: self.ok(),
            mails: self.mails,
            error,
            listed: self.list_error.is_none(),
        }
    }
}

/// The first `n` characters of `text` (an error for a one-line status).
fn first_chars(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// What became of one mail.
enum Handled {
    /// Done in the ledger: to be taken out of the label.
    Done,
    /// Gone from Gmail before it was read: nothing left to take out.
    Gone,
    Quarantined,
    Pending(String),
}

/// The running listener.
pub struct Listener {
    config: Arc<Config>,
    mailbox: Mailbox,
    gerrit: GerritClient,
    /// `None` in a dry run when no ledger exists yet (nothing was handled).
    ledger: Option<Ledger>,
    /// `None` in a dry run: nothing is done.
    effects: Option<Effects>,
    label_id: String,
    quarantine_id: Option<String>,
    dry_run: bool,
    /// Held while the process works on one mail's content (see [`guard`]):
    /// at most one mail is marked in hand at any moment, so a death is
    /// blamed on the one mail that was being worked on.
    content: tokio::sync::Mutex<()>,
    /// The mark of the mail in hand; `None` in a dry run (it writes
    /// nothing).
    in_hand: Option<in_hand::InHand>,
    /// The passes that reconcile with Gerrit between polls; `None` when
    /// reconciling is off, and in a dry run.
    reconciler: Option<Reconciler>,
}

/// A Gmail failure at start: one that may pass (a network fault, a rate
/// limit) is worth a restart; anything else (no such label, no
/// authorization) needs the operator.
fn gmail_failure(message: String, transient: bool) -> StartupFailure {
    if transient {
        StartupFailure::passing(message)
    } else {
        StartupFailure::config(message)
    }
}

impl Listener {
    /// Opens the ledger and the clients and resolves the labels. The Gmail
    /// label must exist; the quarantine label is created (except in a dry
    /// run, which creates nothing). `once`: the process polls once (and
    /// runs one reconcile pass after that poll).
    pub async fn start(
        config: Arc<Config>,
        dry_run: bool,
        once: bool,
    ) -> Result<Listener, StartupFailure> {
        let ledger_path = config.ledger_path();
        let ledger = if dry_run && !ledger_path.exists() {
            None
        } else {
            Some(Ledger::open(&ledger_path).map_err(|e| StartupFailure::config(e.to_string()))?)
        };
        // A mail left in hand by a process that died is counted first.
        let in_hand = match (&ledger, dry_run) {
            (Some(ledger), false) => {
                let state_dir = ledger_path.parent().unwrap_or(std::path::Path::new("."));
                Some(in_hand::recover(state_dir, ledger).map_err(StartupFailure::config)?)
            }
            _ => None,
        };
        let gerrit = bionicbb_core::runtime::gerrit_client(&config)
            .map_err(|e| StartupFailure::config(e.to_string()))?;
        let jenkins = bionicbb_core::runtime::jenkins_client(&config)
            .map_err(|e| StartupFailure::config(e.to_string()))?;
        let http = bionicbb_core::http::client(
            bionicbb_core::error::Service::BuildListener,
            config.gerrit.timeout,
            false,
        )
        .map_err(|e| StartupFailure::config(format!("HTTP client: {e}")))?;
        let mailbox = Mailbox::from_config(&config.gmail).await.map_err(|e| {
            let transient = matches!(&e, MailboxError::Api(api) if api.is_transient());
            gmail_failure(e.to_string(), transient)
        })?;
        // One listing gives the ids of both labels.
        let label = &config.gmail.label;
        let labels = mailbox
            .labels()
            .await
            .map_err(|e| gmail_failure(format!("Gmail label `{label}`: {e}"), e.is_transient()))?;
        let label_id = labels
            .require(label)
            .map_err(|e| gmail_failure(format!("Gmail label `{label}`: {e}"), e.is_transient()))?;
        let quarantine = &config.gmail.quarantine_label;
        let quarantine_id = if dry_run {
            labels.id(quarantine).map(str::to_string)
        } else {
            Some(
                mailbox
                    .ensure_label_in(&labels, quarantine)
                    .await
                    .map_err(|e| {
                        gmail_failure(format!("Gmail label `{quarantine}`: {e}"), e.is_transient())
                    })?,
            )
        };
        let effects = match (&ledger, dry_run) {
            (Some(ledger), false) => Some(Effects {
                config: config.clone(),
                ledger: ledger.clone(),
                gerrit: gerrit.clone(),
                jenkins,
                http,
            }),
            _ => None,
        };
        let reconciler = match &effects {
            Some(effects) => {
                Reconciler::new(config.clone(), gerrit.clone(), effects.ledger.clone(), once)
            }
            None => None,
        };
        Ok(Listener {
            config,
            mailbox,
            gerrit,
            ledger,
            effects,
            label_id,
            quarantine_id,
            dry_run,
            content: tokio::sync::Mutex::new(()),
            in_hand,
            reconciler,
        })
    }

    /// Polls until `stop` turns true (or once), recording each poll in
    /// `health`. Tells systemd the daemon is ready before the first poll:
    /// the labels were resolved at start, so the mailbox works, a long
    /// first poll must not hold up the start, and a later outage shows on
    /// the health endpoint. `started` is when the process started, for the
    /// start-to-ready time. Returns true when the last poll went well.
    pub async fn run(
        &self,
        once: bool,
        mut stop: watch::Receiver<bool>,
        health: &Health,
        started: Instant,
    ) -> bool {
        let ready_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        bionicbb_core::runtime::notify_ready();
        bionicbb_core::runtime::notify_status("ready; first poll under way");
        let at = ledger::now();
        health.ready(at, ready_ms);
        self.record_ready(at, ready_ms).await;
        tracing::info!(start_to_ready_ms = ready_ms, "ready");
        loop {
            let report = self.poll(&stop).await;
            let ok = report.ok();
            let now = ledger::now();
            let next = (!once).then(|| now + self.config.gmail.poll_interval.as_secs() as i64);
            let status = report.status(now);
            health.record(status.clone(), next);
            self.record_status(&status, next).await;
            bionicbb_core::runtime::notify_status(&report.status_line(now, next));
            tracing::info!(
                mails = report.mails,
                done = report.done,
                quarantined = report.quarantined,
                pending = report.pending,
                held_back = report.held_back,
                ok,
                "poll finished"
            );
            if let (Some(reconciler), Some(effects)) = (&self.reconciler, &self.effects) {
                reconciler.run_if_due(effects, &stop).await;
            }
            if once || *stop.borrow() {
                return ok;
            }
            let wait = tokio::time::sleep(self.config.gmail.poll_interval);
            tokio::select! {
                _ = wait => {}
                _ = stop.wait_for(|s| *s) => return ok,
            }
        }
    }

    /// One poll over every mail in the label (see [`drain`]); stops
    /// between mails when `stop` turns true.
    pub async fn poll(&self, stop: &watch::Receiver<bool>) -> PollReport {
        let mut report = PollReport::default();
        let ids = match self.mailbox.list_all(&self.label_id).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the Gmail label; trying again next poll");
                report.list_error = Some(e.to_string());
                self.count(names::FAILURES, &[("component", "gmail-listener")])
                    .await;
                return report;
            }
        };
        report.mails = ids.len();
        self.drain(ids, stop, &mut report).await;
        report
    }

    /// The ledger this run writes to (`None` in a dry run).
    fn writer(&self) -> Option<&Ledger> {
        self.effects.as_ref().map(|e| &e.ledger)
    }

    /// Bumps a counter (nothing in a dry run).
    async fn count(&self, name: &'static str, labels: &[(&str, &str)]) {
        let Some(ledger) = self.writer() else {
            return;
        };
        let labels = names::labels(labels);
        let bumped = ledger
            .blocking("bump a counter", move |l| l.bump_counter(name, &labels, 1))
            .await;
        if let Err(e) = bumped {
            tracing::warn!(error = %e, counter = name, "cannot bump the counter");
        }
    }

    /// Records when the daemon became ready and how long it took, for the
    /// status page.
    async fn record_ready(&self, at: i64, ready_ms: u64) {
        let Some(ledger) = self.writer() else {
            return;
        };
        let value = json!({ "at": at, "start_to_ready_ms": ready_ms });
        let written = ledger
            .blocking("record readiness", move |l| {
                l.set_status("gmail-listener", "ready", &value, at)
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot record the start on the status page");
        }
    }

    /// Records the poll's outcome and the next poll's time for the status
    /// page, on the blocking pool like every ledger write of async code.
    async fn record_status(&self, status: &PollStatus, next: Option<i64>) {
        let Some(ledger) = self.writer() else {
            return;
        };
        let now = status.at;
        let last = serde_json::to_value(status).unwrap_or_default();
        let written = ledger
            .blocking("record the poll status", move |l| {
                l.set_status("gmail-listener", "last_poll", &last, now)?;
                if let Some(next) = next {
                    l.set_status("gmail-listener", "next_poll", &json!({ "at": next }), now)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot record the poll status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_limit_is_a_week_of_polls_whatever_the_interval() {
        assert_eq!(max_attempts(Duration::from_secs(15)), 40_320);
        assert_eq!(max_attempts(Duration::from_secs(300)), 2_016);
        assert_eq!(max_attempts(Duration::from_secs(1)), 604_800);
        assert_eq!(max_attempts(Duration::from_millis(1500)), 604_800);
        assert_eq!(max_attempts(Duration::from_secs(30 * 24 * 3600)), 1);
    }

    #[test]
    fn the_status_line_tells_when_what_and_the_next_poll() {
        let report = PollReport {
            mails: 5,
            done: 3,
            quarantined: 1,
            pending: 1,
            ..PollReport::default()
        };
        assert_eq!(
            report.status_line(1_700_000_000, Some(1_700_000_015)),
            "polled 2023-11-14 22:13:20 UTC: 5 mails, 3 done, 1 quarantined, \
             1 left for the next poll; next poll 2023-11-14 22:13:35 UTC"
        );
        let one = PollReport {
            mails: 1,
            done: 1,
            ..PollReport::default()
        };
        assert_eq!(
            one.status_line(1_700_000_000, None),
            "polled 2023-11-14 22:13:20 UTC: 1 mail, 1 done, 0 quarantined, 0 left for the next poll"
        );
    }

    #[test]
    fn a_listing_error_is_in_the_status_line_cut_to_one_short_line() {
        let report = PollReport {
            list_error: Some(format!("Gmail: HTTP 503 {}", "x".repeat(500))),
            ..PollReport::default()
        };
        let line = report.status_line(1_700_000_000, Some(1_700_000_015));
        assert!(
            line.starts_with(
                "polled 2023-11-14 22:13:20 UTC: cannot list the label: Gmail: HTTP 503 xx"
            ),
            "{line}"
        );
        assert!(
            line.ends_with("...; next poll 2023-11-14 22:13:35 UTC"),
            "{line}"
        );
        assert!(line.len() < 260, "{line}");
    }

    #[test]
    fn held_back_mails_make_the_poll_not_ok() {
        let report = PollReport {
            mails: 3,
            done: 1,
            pending: 1,
            held_back: 1,
            ..PollReport::default()
        };
        assert!(!report.ok());
        let status = report.status(1_700_000_000);
        assert!(status.listed);
        assert_eq!(
            status.error.as_deref(),
            Some("2 mails left for the next poll")
        );
    }
}
