//! After the storm: what the oracle expected against what the fakes saw,
//! and the summary the test prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::driver::bot_vote;
use super::env::{BuildKey, CLEAN_JOB, Env, LABEL, QUARANTINE, VERIFY_JOB, build_key};

#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub events: usize,
    pub changes: usize,
    pub faults: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    pub kills: [u32; 2],
    pub exits: Vec<String>,
    pub expected_builds: u32,
    pub builds: u32,
    pub reviews: usize,
    pub elapsed: Duration,
    pub logs: String,
    /// Invariant → what broke it.
    pub broken: BTreeMap<&'static str, Vec<String>>,
    /// Steps that did not settle in time (context for a failure).
    pub unsettled: Vec<String>,
}

impl Report {
    fn add(&mut self, invariant: &'static str, what: String) {
        self.broken.entry(invariant).or_default().push(what);
    }

    fn count(&self, invariant: &str) -> usize {
        self.broken.get(invariant).map_or(0, Vec::len)
    }

    pub fn ok(&self) -> bool {
        self.broken.is_empty()
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "chaos: seed {} (replay with BIONICBB_CHAOS_SEED={}), {} events over {} changes in {:.0?}",
            self.seed, self.seed, self.events, self.changes, self.elapsed
        );
        for (server, kinds) in &self.faults {
            let total: u64 = kinds.values().sum();
            let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            let _ = writeln!(s, "  faults on {server}: {total} ({})", list.join(", "));
        }
        let _ = writeln!(
            s,
            "  kills: build-listener {}, gmail-listener {}; exits by themselves: {}",
            self.kills[0],
            self.kills[1],
            self.exits.len()
        );
        let _ = writeln!(
            s,
            "  builds: {} expected, {} reached Jenkins; bot reviews posted: {}",
            self.expected_builds, self.builds, self.reviews
        );
        let _ = writeln!(
            s,
            "  lost builds {}, duplicated builds {}, lost reviews {}, duplicated reviews {}, \
             reviews on the wrong patch set {}, stale votes {}, wrong final votes {}, \
             mails trashed early {}, left in the label {}, quarantined {}, unfinished builds {}, \
             votes for stopped builds {}",
            self.count(LOST_BUILD),
            self.count(DUP_BUILD),
            self.count(LOST_REVIEW),
            self.count(DUP_REVIEW),
            self.count(WRONG_PS),
            self.count(STALE),
            self.count(WRONG_VOTE),
            self.count(EARLY_TRASH),
            self.count(LEFT),
            self.count(QUARANTINED),
            self.count(UNFINISHED),
            self.count(STOPPED_VOTE),
        );
        for (invariant, items) in &self.broken {
            let _ = writeln!(s, "  BROKEN {invariant}: {}", items.len());
            for item in items.iter().take(12) {
                let _ = writeln!(s, "    - {item}");
            }
            if items.len() > 12 {
                let _ = writeln!(s, "    - ... {} more", items.len() - 12);
            }
        }
        if !self.unsettled.is_empty() {
            let _ = writeln!(
                s,
                "  steps that did not settle in time: {}",
                self.unsettled.len()
            );
            for item in self.unsettled.iter().take(12) {
                let _ = writeln!(s, "    - {item}");
            }
        }
        if !self.logs.is_empty() {
            let _ = writeln!(s, "  daemon logs: {}", self.logs);
        }
        s
    }
}

pub const LOST_BUILD: &str = "every expected build triggered (lost builds)";
pub const DUP_BUILD: &str = "no build triggered twice (duplicated builds)";
pub const LOST_REVIEW: &str = "every finished build reviewed (lost reviews)";
pub const DUP_REVIEW: &str = "one review per build (duplicated reviews)";
pub const WRONG_PS: &str = "reviews on the build's own patch set";
pub const STALE: &str = "no vote on a stale patch set";
pub const WRONG_VOTE: &str = "the bot's final vote on each change's latest patch set";
pub const EARLY_TRASH: &str = "no mail trashed before its work was done";
pub const LEFT: &str = "no mail left in the label";
pub const QUARANTINED: &str = "no valid mail quarantined";
pub const UNFINISHED: &str = "no build left waiting or running";
pub const STOPPED_VOTE: &str = "no vote for a build the bot stopped as superseded";

/// The start of the one line posted for verify build `number` when the
/// bot stopped it as superseded.
pub fn stopped_line(number: u64) -> String {
    format!("{VERIFY_JOB} #{number} stopped: ")
}

/// Checks every invariant against the fakes' final state.
pub fn check(env: &Env, report: &mut Report) {
    let oracle = env.oracle();
    let expected = oracle.builds.clone();
    let optional = oracle.optional.clone();
    let votes = oracle.votes.clone();
    report.events = oracle.events;
    report.unsettled = oracle.unsettled.clone();
    for early in &oracle.early_trash {
        report.add(EARLY_TRASH, early.clone());
    }
    drop(oracle);

    // Builds: exactly what the scenario asked for.
    let actual = env.triggered();
    report.expected_builds = expected.values().sum();
    report.builds = actual.values().sum();
    let keys: std::collections::BTreeSet<&BuildKey> =
        expected.keys().chain(actual.keys()).collect();
    for key in keys {
        let want = expected.get(key).copied().unwrap_or(0);
        let got = actual.get(key).copied().unwrap_or(0);
        let may_miss = optional.get(key).copied().unwrap_or(0);
        let (job, change, ps) = key;
        if got + may_miss < want {
            report.add(
                LOST_BUILD,
                format!("{job} for change {change} patch set {ps}: {got} of {want}"),
            );
        } else if got > want {
            report.add(
                DUP_BUILD,
                format!("{job} for change {change} patch set {ps}: {got} instead of {want}"),
            );
        }
    }
    for q in env.jenkins.queue() {
        report.add(UNFINISHED, format!("queue item {} of {}", q.id, q.job));
    }

    // Reviews: one per finished build, on its patch set, never a stale vote.
    let reviews: Vec<_> = env
        .gerrit
        .reviews_posted()
        .into_iter()
        .filter(|r| r.account == env.bot)
        .collect();
    report.reviews = reviews.len();
    let text = |r: &crate::fakes::gerrit::PostedReview| {
        r.body["message"].as_str().unwrap_or_default().to_string()
    };
    for r in &reviews {
        let vote = r.body["labels"]["Verified"].as_i64().unwrap_or(0);
        if vote != 0 && r.patch_set < r.current_patch_set {
            report.add(
                STALE,
                format!(
                    "Verified{vote:+} on change {} patch set {} while {} was current ({})",
                    r.number,
                    r.patch_set,
                    r.current_patch_set,
                    text(r).lines().next().unwrap_or_default()
                ),
            );
        }
    }
    let unheard = super::driver::unheard_builds(env);
    let deliveries = env.jenkins.deliveries();
    let mut cleans: BTreeMap<(u64, u32), (usize, usize, usize)> = BTreeMap::new();
    for b in env.jenkins.builds() {
        let (_, change, ps) = build_key(&b.job, &b.params);
        if b.result.is_none() {
            report.add(UNFINISHED, format!("{} #{} still running", b.job, b.number));
            continue;
        }
        if b.job == CLEAN_JOB {
            let entry = cleans.entry((change, ps)).or_default();
            entry.0 += 1;
            if unheard.contains(&(b.job.clone(), b.number)) {
                entry.2 += 1;
            }
            continue;
        }
        let needle = format!("{VERIFY_JOB} #{} checkbuild", b.number);
        // Only the bot stops builds here: a newer patch set superseded
        // it. Its review is the one line, or none at all.
        let stopped = b.result.as_deref() == Some("ABORTED");
        let line = stopped_line(b.number);
        let mine: Vec<_> = reviews
            .iter()
            .filter(|r| text(r).contains(&needle) || (stopped && text(r).starts_with(&line)))
            .collect();
        if stopped {
            for r in mine
                .iter()
                .filter(|r| r.body["labels"]["Verified"].as_i64().is_some())
            {
                report.add(
                    STOPPED_VOTE,
                    format!(
                        "{VERIFY_JOB} #{} (change {change} patch set {ps}): {}",
                        b.number, r.body["labels"]
                    ),
                );
            }
        }
        match mine.len() {
            0 if stopped => {}
            0 => {
                let how = if unheard.contains(&(b.job.clone(), b.number)) {
                    let why: Vec<String> = deliveries
                        .iter()
                        .filter(|d| d.number == b.number && d.job_url == format!("job/{}/", b.job))
                        .filter(|d| d.phase == "COMPLETED" || d.phase == "FINALIZED")
                        .map(|d| match &d.outcome {
                            Ok(status) => format!("{}: HTTP {status}", d.phase),
                            Err(e) => format!("{}: {e}", d.phase),
                        })
                        .collect();
                    format!(
                        "no completion document reached build-listener ({})",
                        why.join("; ")
                    )
                } else {
                    "build-listener accepted its result".to_string()
                };
                report.add(
                    LOST_REVIEW,
                    format!("{needle} (change {change} patch set {ps}): none; {how}"),
                );
            }
            1 => {}
            n => report.add(
                DUP_REVIEW,
                format!("{needle} (change {change} patch set {ps}): {n} reviews"),
            ),
        }
        for r in mine {
            if (r.number, r.patch_set) != (change, ps) {
                report.add(
                    WRONG_PS,
                    format!(
                        "{needle} built change {change} patch set {ps}, reviewed on change {} patch set {}",
                        r.number, r.patch_set
                    ),
                );
            }
        }
    }
    for r in &reviews {
        if text(r).contains("out/ directory removed") {
            cleans.entry((r.number, r.patch_set)).or_default().1 += 1;
        }
    }
    for ((change, ps), (built, reviewed, unheard)) in cleans {
        let what = format!(
            "{CLEAN_JOB} on change {change} patch set {ps}: {built} builds, {reviewed} reviews; \
             {unheard} builds' completion documents never reached build-listener"
        );
        if reviewed < built {
            report.add(LOST_REVIEW, what);
        } else if reviewed > built {
            report.add(DUP_REVIEW, what);
        }
    }
    // The final vote is checked on each change's latest patch set, the one
    // whose verdict counts. On a superseded patch set it depends on timing,
    // not on correctness: a result that reaches Gerrit after the next upload
    // (its notification was lost and the catch-up found it later) is posted
    // without a vote, and a human Verified+1 handled after the next upload
    // cannot drop a vote there (Gerrit only changes votes on the current
    // patch set). Votes on stale patch sets, lost and duplicated reviews are
    // checked above for every patch set.
    let mut latest: BTreeMap<u64, u32> = BTreeMap::new();
    for (change, ps) in votes.keys() {
        let last = latest.entry(*change).or_default();
        *last = (*last).max(*ps);
    }
    for ((change, ps), want) in votes {
        if latest.get(&change).is_some_and(|last| ps < *last) {
            continue;
        }
        let got = bot_vote(env, change, ps);
        if got != want {
            report.add(
                WRONG_VOTE,
                format!("change {change} patch set {ps}: Verified {got:+}, expected {want:+}"),
            );
        }
    }

    // Mail: every one handled and out of the label, none quarantined.
    let trash = env.gmail.in_trash();
    for id in env.gmail.messages_with_label(LABEL) {
        if !trash.contains(&id) {
            report.add(LEFT, id);
        }
    }
    for id in env.gmail.messages_with_label(QUARANTINE) {
        report.add(QUARANTINED, id);
    }
}
