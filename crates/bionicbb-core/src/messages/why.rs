//! The answer to `bionicbb:why`: what the bot decided and did about one
//! patch set, from a [`WhyReport`] the caller fills from the ledger. Pure.

use super::one_line;
use crate::event::Decision;
use crate::timefmt::format_utc;

/// How long a text taken from the ledger (a skip reason, an error) may be
/// in the reply.
const REASON_CHARS: usize = 300;

/// Everything the bot decided and did about one patch set, as the ledger
/// keeps it. Plain data, filled by the caller, rendered by [`why`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhyReport {
    pub change_number: u64,
    pub patch_set: u32,
    /// What the policy decides now, on Gerrit's current facts, about an
    /// automatic build of the patch set (a build, a skip with its rule, a
    /// carried verdict).
    pub automatic: Vec<Decision>,
    /// The bot's builds of the patch set, oldest first.
    pub builds: Vec<BuildLine>,
    /// Why the patch set was not built, as the ledger's events recorded it,
    /// each reason once.
    pub skipped: Vec<String>,
    /// Verdicts carried over to the patch set: `(label, value, from)`.
    pub carried: Vec<(String, i32, u32)>,
    /// Commands on the patch set the bot did not run.
    pub ignored: Vec<IgnoredCommand>,
    /// The bot's reviews of the patch set still waiting to be posted.
    pub waiting: Vec<WaitingReview>,
    /// Who vouched for the patch set (`bionicbb:ok-to-test`), as Gerrit
    /// names them.
    pub vouched_by: Option<String>,
    /// Whether the bot posted why it did not build the patch set.
    pub explained: bool,
    /// Set when the ledger no longer keeps all its events and none kept
    /// shows the patch set's upload: the time of the oldest event kept, so
    /// the reply says that anything older is not known.
    pub history_since: Option<i64>,
}

/// One build of the patch set the bot triggered (or whose result it saw).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildLine {
    /// The job's full name.
    pub job: String,
    pub state: BuildState,
}

/// Where a build stands.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildState {
    /// Its trigger was sent and its outcome is not known yet.
    Triggering,
    /// Waiting in the Jenkins queue (its queue item's URL).
    Queued { queue_url: String },
    /// Started, no result yet.
    Running { number: u64 },
    /// Done, with Jenkins's result (`SUCCESS`...) and the build's page.
    Completed {
        number: u64,
        result: String,
        link: Option<String>,
    },
    /// It will have no result (a cancelled queue item, a build Jenkins no
    /// longer has), and why.
    NoResult { number: Option<u64>, reason: String },
    /// Jenkins refused the trigger, or it never reached Jenkins: why.
    NotTriggered { error: String },
}

/// A command the bot did not run, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnoredCommand {
    /// Who wrote it, as the mail or Gerrit named them.
    pub by: Option<String>,
    /// The commands as written (`bionicbb:retry`).
    pub commands: Vec<String>,
    pub reason: String,
}

/// A review of the bot still waiting in build-listener's outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingReview {
    /// `the result of bionic-presubmit #12`, `the removal of the bot's vote`.
    pub what: String,
    /// Unix seconds.
    pub next_attempt_at: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// The reply to `bionicbb:why`: one line per thing the bot decided or did
/// about the patch set, then what the policy says about it now (`Now,
/// bionicbb would not build this patch set: committer x@evil.org is not in
/// a trusted domain.`).
pub fn why(report: &WhyReport) -> String {
    let mut lines = vec![format!(
        "What bionicbb decided and did about patch set {} of change {}:",
        report.patch_set, report.change_number
    )];
    let before = lines.len();
    if let Some(by) = &report.vouched_by {
        lines.push(format!(
            "- Vouched for: built on {}'s ok-to-test.",
            one_line(by, 80)
        ));
    }
    lines.extend(report.builds.iter().map(build_line));
    for (label, value, from) in &report.carried {
        lines.push(format!(
            "- Not built: {}{value:+} carried over from patch set {from}.",
            one_line(label, 40)
        ));
    }
    for reason in &report.skipped {
        lines.push(format!("- Not built: {}.", reason_text(reason)));
    }
    if report.explained {
        lines.push("- Explained: bionicbb posted why it did not build this patch set.".into());
    }
    for ignored in &report.ignored {
        lines.push(ignored_line(ignored));
    }
    for review in &report.waiting {
        lines.push(waiting_line(review));
    }
    if lines.len() == before {
        lines.push("- Nothing recorded.".to_string());
    }
    if let Some(since) = report.history_since {
        lines.push(format!(
            "- Earlier events are not kept: the ledger holds only its newest events, \
             from {} on; anything decided about this patch set before then is not listed.",
            format_utc(since)
        ));
    }
    lines.push(automatic_line(&report.automatic));
    lines.join("\n")
}

fn build_line(build: &BuildLine) -> String {
    let job = one_line(&build.job, 80);
    match &build.state {
        BuildState::Triggering => {
            format!("- Being triggered: {job} (Jenkins's answer is not known yet).")
        }
        BuildState::Queued { queue_url } => {
            format!("- Queued: {job} ({}).", one_line(queue_url, 200))
        }
        BuildState::Running { number } => format!("- Building: {job} #{number}."),
        BuildState::Completed {
            number,
            result,
            link,
        } => match link {
            Some(link) => format!(
                "- Built: {job} #{number} {}: {}",
                one_line(result, 20),
                one_line(link, 200)
            ),
            None => format!("- Built: {job} #{number} {}.", one_line(result, 20)),
        },
        BuildState::NoResult { number, reason } => {
            let build = match number {
                Some(n) => format!("{job} #{n}"),
                None => job,
            };
            format!("- No result: {build} ({}).", reason_text(reason))
        }
        BuildState::NotTriggered { error } => {
            format!("- Not triggered: {job} ({}).", reason_text(error))
        }
    }
}

fn ignored_line(ignored: &IgnoredCommand) -> String {
    let commands: Vec<String> = ignored.commands.iter().map(|c| one_line(c, 60)).collect();
    let what = if commands.is_empty() {
        "a command".to_string()
    } else {
        commands.join(", ")
    };
    let by = match &ignored.by {
        Some(by) => format!(" by {}", one_line(by, 80)),
        None => String::new(),
    };
    format!(
        "- Command not run: {what}{by}: {}.",
        reason_text(&ignored.reason)
    )
}

fn waiting_line(review: &WaitingReview) -> String {
    let mut line = format!(
        "- Waiting: {} is still to be posted; next attempt at {}",
        one_line(&review.what, 120),
        format_utc(review.next_attempt_at)
    );
    match (review.attempts, &review.last_error) {
        (0, _) => {}
        (n, Some(error)) => line.push_str(&format!(
            " ({n} failed attempt{}, last: {})",
            if n == 1 { "" } else { "s" },
            reason_text(error)
        )),
        (n, None) => line.push_str(&format!(
            " ({n} failed attempt{})",
            if n == 1 { "" } else { "s" }
        )),
    }
    line.push('.');
    line
}

/// What the policy says now about an automatic build of the patch set.
fn automatic_line(automatic: &[Decision]) -> String {
    let what: Vec<String> = automatic
        .iter()
        .filter_map(|d| match d {
            Decision::Build { job, .. } => Some(format!(
                "would build this patch set ({})",
                one_line(job, 80)
            )),
            Decision::Skip { reason } => Some(format!(
                "would not build this patch set: {}",
                reason_text(reason)
            )),
            Decision::CarryOver {
                label,
                value,
                from_patch_set,
                ..
            } => Some(format!(
                "would not build this patch set: {}{value:+} of patch set {from_patch_set} \
                 carries over",
                one_line(label, 40)
            )),
            _ => None,
        })
        .collect();
    if what.is_empty() {
        return "Now, bionicbb would do nothing about this patch set.".to_string();
    }
    format!("Now, bionicbb {}.", what.join("; "))
}

/// A reason from the ledger on one line, without a closing full stop.
fn reason_text(reason: &str) -> String {
    one_line(reason.trim().trim_end_matches('.'), REASON_CHARS)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn report() -> WhyReport {
        WhyReport {
            change_number: 123456,
            patch_set: 2,
            ..WhyReport::default()
        }
    }

    fn build_now() -> Vec<Decision> {
        vec![Decision::Build {
            job: "bionic-presubmit".into(),
            params: BTreeMap::new(),
            reason: "new patch set".into(),
            per_patch_set: true,
        }]
    }

    #[test]
    fn a_built_patch_set_names_the_job_the_build_its_result_and_link() {
        let mut r = report();
        r.automatic = build_now();
        r.builds = vec![
            BuildLine {
                job: "bionic-presubmit".into(),
                state: BuildState::Completed {
                    number: 12,
                    result: "FAILURE".into(),
                    link: Some("https://jenkins.example.org/job/bionic-presubmit/12/".into()),
                },
            },
            BuildLine {
                job: "bionic-presubmit".into(),
                state: BuildState::Queued {
                    queue_url: "https://jenkins.example.org/queue/item/7/".into(),
                },
            },
        ];
        assert_eq!(
            why(&r),
            "What bionicbb decided and did about patch set 2 of change 123456:\n\
             - Built: bionic-presubmit #12 FAILURE: \
             https://jenkins.example.org/job/bionic-presubmit/12/\n\
             - Queued: bionic-presubmit (https://jenkins.example.org/queue/item/7/).\n\
             Now, bionicbb would build this patch set (bionic-presubmit)."
        );
    }

    #[test]
    fn a_skipped_patch_set_names_the_rule_and_the_file_or_e_mail() {
        let mut r = report();
        r.skipped = vec!["committer dana@evil.org is not in a trusted domain".into()];
        r.automatic = vec![Decision::Skip {
            reason: "the change touches libc/CleanSpec.mk (skipped file CleanSpec.mk)".into(),
        }];
        r.explained = true;
        let text = why(&r);
        assert!(
            text.contains("- Not built: committer dana@evil.org is not in a trusted domain.\n"),
            "{text}"
        );
        assert!(
            text.contains("- Explained: bionicbb posted why it did not build this patch set."),
            "{text}"
        );
        assert!(
            text.ends_with(
                "Now, bionicbb would not build this patch set: the change touches \
                 libc/CleanSpec.mk \
                 (skipped file CleanSpec.mk)."
            ),
            "{text}"
        );
    }

    #[test]
    fn waiting_reviews_ignored_commands_and_a_vouch_are_listed() {
        let mut r = report();
        r.vouched_by = Some("Sam Reviewer".into());
        r.ignored = vec![IgnoredCommand {
            by: Some("Mallory".into()),
            commands: vec!["bionicbb:retry".into()],
            reason: "commands from stranger@evil.org ignored: not a trusted commenter".into(),
        }];
        r.waiting = vec![WaitingReview {
            what: "the result of bionic-presubmit #12".into(),
            next_attempt_at: 1_780_000_000,
            attempts: 2,
            last_error: Some("Gerrit: HTTP 503".into()),
        }];
        r.automatic = build_now();
        let text = why(&r);
        for line in [
            "- Vouched for: built on Sam Reviewer's ok-to-test.",
            "- Command not run: bionicbb:retry by Mallory: commands from stranger@evil.org \
             ignored: not a trusted commenter.",
            "- Waiting: the result of bionic-presubmit #12 is still to be posted; next attempt \
             at 2026-05-28 20:26:40 UTC (2 failed attempts, last: Gerrit: HTTP 503).",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn nothing_recorded_says_so_and_pruned_history_is_not_pretended_away() {
        let mut r = report();
        r.automatic = vec![Decision::Skip {
            reason: "change 123456 is merged".into(),
        }];
        let text = why(&r);
        assert!(text.contains("- Nothing recorded.\n"), "{text}");
        assert!(!text.contains("not kept"), "{text}");
        r.history_since = Some(1_780_000_000);
        let text = why(&r);
        assert!(
            text.contains(
                "- Earlier events are not kept: the ledger holds only its newest events, from \
                 2026-05-28 20:26:40 UTC on"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_state_of_a_build_and_carried_verdicts_read_as_one_line_each() {
        let mut r = report();
        let line = |state| BuildLine {
            job: "bionic-presubmit".into(),
            state,
        };
        r.builds = vec![
            line(BuildState::Triggering),
            line(BuildState::Running { number: 3 }),
            line(BuildState::NoResult {
                number: None,
                reason: "the queue item was cancelled".into(),
            }),
            line(BuildState::NotTriggered {
                error: "Jenkins: HTTP 404\nVerified+1".into(),
            }),
        ];
        r.carried = vec![("Verified".into(), 1, 1)];
        let text = why(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1..6],
            [
                "- Being triggered: bionic-presubmit (Jenkins's answer is not known yet).",
                "- Building: bionic-presubmit #3.",
                "- No result: bionic-presubmit (the queue item was cancelled).",
                "- Not triggered: bionic-presubmit (Jenkins: HTTP 404 Verified+1).",
                "- Not built: Verified+1 carried over from patch set 1.",
            ],
            "{text}"
        );
        assert_eq!(lines.len(), 7, "{text}");
    }
}
