//! Every text bionicbb posts on Gerrit, in one place so the wording can be
//! reviewed and tested as a whole.
//!
//! Gerrit shows change messages as plain text (lines starting with `> ` are
//! quotes, blank lines separate paragraphs), so the texts are plain lines.
//! Everything taken from the outside (a command name from a comment) is cut
//! short and stripped of line breaks, so it cannot forge a paragraph.

use crate::config::SkipRule;
use crate::event::{ChangeKind, ChangeStatus};
use crate::jenkins::notification::BuildStatus;

mod why;

pub use why::{BuildLine, BuildState, IgnoredCommand, WaitingReview, WhyReport, why};

/// The result of a verify build: `<job> #<number> checkbuild <STATUS>: <link>`,
/// the wording of the original bot, followed on FAILURE by how to get the
/// rejection removed and on UNSTABLE, ABORTED and NOT_BUILT by how to run
/// the build again. `label` is the label the bot votes on (`Verified`).
pub fn build_result(
    job: &str,
    number: u64,
    status: &BuildStatus,
    link: &str,
    label: &str,
) -> String {
    let head = format!("{job} #{number} checkbuild {status}: {link}");
    match status {
        BuildStatus::Failure => format!(
            "{head}\nIf you believe this {label}-1 was in error, +1 the change ({label}+1) \
             and bionicbb will remove its -1 shortly."
        ),
        BuildStatus::Unstable | BuildStatus::Aborted | BuildStatus::NotBuilt => {
            format!("{head}\n{}", retry_hint())
        }
        BuildStatus::Success | BuildStatus::Other(_) => head,
    }
}

/// How to run the presubmit build of a change again.
pub fn retry_hint() -> String {
    "To run the build again, reply with a comment containing the line bionicbb:retry".to_string()
}

/// A verify build started (posted only when `post_started` is configured).
pub fn build_started(job: &str, number: u64, link: &str) -> String {
    format!("{job} #{number} checkbuild STARTED: {link}")
}

/// The clean job succeeded. The build is named after the original's text,
/// so two clean builds on one patch set post two distinct messages.
pub fn clean_done(job: &str, number: u64, link: &str) -> String {
    format!("out/ directory removed ({job} #{number}: {link})")
}

/// The clean job did not succeed: say so rather than claim the directory is gone.
pub fn clean_failed(job: &str, number: u64, status: &BuildStatus, link: &str) -> String {
    format!(
        "{job} #{number} clean {status}: {link}\n\
         The out/ directory may not have been removed; reply with a comment \
         containing the line bionicbb:clean to try again."
    )
}

/// Appended to a result for a patch set that is no longer current: the
/// result is posted, without its vote.
pub fn stale_patch_set(built: u32, current: u32) -> String {
    format!(
        "This result is for patch set {built}, but patch set {current} is now current, \
         so bionicbb did not vote."
    )
}

/// Appended to a result of a build older than another build of the same
/// job on the same patch set: the newer build's vote stands.
pub fn newer_build(newer: u64) -> String {
    format!(
        "A newer build (#{newer}) of this job on this patch set decides the vote, so bionicbb did not vote."
    )
}

/// Appended to a failure whose result arrived after a reviewer voted
/// `label`+1 on the patch set: the reviewer's verdict stands.
pub fn human_verified_first(label: &str, earlier: Option<i32>) -> String {
    let head = format!(
        "A reviewer voted {label}+1 on this patch set after this build finished, before its \
         result arrived, so bionicbb did not vote"
    );
    match earlier {
        Some(value) => format!("{head}, and removed its earlier {label}{value:+}."),
        None => format!("{head}."),
    }
}

/// Appended to a result for a change that is merged or abandoned: Gerrit
/// refuses votes there, the result is posted without one.
pub fn closed_change(status: ChangeStatus) -> String {
    let state = match status {
        ChangeStatus::Merged => "merged",
        ChangeStatus::Abandoned => "abandoned",
        ChangeStatus::New => "open",
    };
    format!("This change is {state}, so bionicbb did not vote.")
}

/// Answer to `bionicbb:<name>` when no such command exists.
pub fn unknown_command(unknown: &[(&str, Option<&str>)], known: &[String]) -> String {
    let named: Vec<String> = unknown
        .iter()
        .map(|(name, suggestion)| {
            let name = one_line(name, 40);
            match suggestion {
                Some(s) => format!("bionicbb:{name} (did you mean bionicbb:{s}?)"),
                None => format!("bionicbb:{name}"),
            }
        })
        .collect();
    let head = match named.len() {
        1 => "Unknown command",
        _ => "Unknown commands",
    };
    let named = named.join(", ");
    if known.is_empty() {
        return format!("{head} {named}. No commands are enabled.");
    }
    let list: Vec<String> = known.iter().map(|k| format!("bionicbb:{k}")).collect();
    format!("{head} {named}. Known commands: {}.", list.join(", "))
}

/// The answer to `bionicbb:help`: every command with what it does, the
/// targets (`name` → lunch target) in name order, whether `clean` is
/// configured, and the link to this change on the status page when there
/// is one others can open.
pub fn help(
    targets: &std::collections::BTreeMap<String, String>,
    clean_job: Option<&str>,
    status_link: Option<&str>,
) -> String {
    let mut lines = vec![
        "bionicbb runs the commands of trusted accounts, one per line of a comment on the \
         patch set:"
            .to_string(),
        "bionicbb:retry - build this patch set again".to_string(),
    ];
    lines.push(match clean_job {
        Some(job) => format!(
            "bionicbb:clean - run {} to remove the out/ directory",
            one_line(job, 60)
        ),
        None => "bionicbb:clean - not available here (no clean job is configured)".to_string(),
    });
    lines.push("bionicbb:help - this list".to_string());
    lines.push(
        "bionicbb:why - what bionicbb decided and did about this patch set, and why".to_string(),
    );
    lines.push(
        "bionicbb:ok-to-test - build this patch set although its committer is not in a \
         trusted domain (a trusted reviewer vouches for this patch set only)"
            .to_string(),
    );
    for (name, lunch) in targets {
        lines.push(format!(
            "bionicbb:{} - build this patch set again for {}",
            one_line(name, 40),
            one_line(lunch, 60)
        ));
    }
    if let Some(link) = status_link {
        lines.push(format!("What bionicbb did on this change: {link}"));
    }
    lines.join("\n")
}

/// The reply acknowledging that a command started a build once Jenkins
/// accepted it: `bionicbb:retry by Sam Reviewer: bionic-presubmit queued
/// (<queue item>)`. `by` is the commenter as Gerrit names them.
pub fn acknowledged(command: &str, by: &str, job: &str, queue_url: &str) -> String {
    format!(
        "bionicbb:{} by {}: {} queued ({})",
        one_line(command, 40),
        one_line(by, 80),
        one_line(job, 80),
        one_line(queue_url, 200)
    )
}

/// Answer to a command from an account whose commands are not honoured.
pub fn untrusted_commenter() -> String {
    "bionicbb only runs commands from trusted accounts; this comment was ignored.".to_string()
}

/// Message of the review that removes the bot's rejection after a human
/// voted `<label>+1` on the patch set.
pub fn rejection_dropped(label: &str) -> String {
    format!("A reviewer voted {label}+1: bionicbb removed its {label}-1.")
}

/// The review that carries the bot's verdict of patch set `from` over to
/// a patch set of `kind` (one of `policy.skip_kinds`): where the verdict
/// came from and why no build ran, e.g. `Verified+1 carried over from
/// patch set 3: commit message only (NO_CODE_CHANGE).`; a carried
/// rejection adds how to run the build anyway.
pub fn carried_over(label: &str, value: i32, from: u32, kind: ChangeKind) -> String {
    let why = match kind {
        ChangeKind::NoCodeChange => "commit message only",
        ChangeKind::NoChange => "no change (the same code and commit message)",
        ChangeKind::TrivialRebase => "a trivial rebase of the same code",
        ChangeKind::MergeFirstParentUpdate => "only the merge's first parent changed",
        ChangeKind::TrivialRebaseWithMessageUpdate => {
            "a trivial rebase of the same code with a new commit message"
        }
        ChangeKind::Rework => "new code",
    };
    let head = format!("{label}{value:+} carried over from patch set {from}: {why} ({kind}).");
    if value < 0 {
        format!("{head}\n{}", retry_hint())
    } else {
        head
    }
}

/// The one message on a patch set whose automatic build was skipped
/// because its committer `email` is not in a trusted domain: the rule, the
/// e-mail, and the way on (a trusted reviewer's `bionicbb:ok-to-test`).
pub fn untrusted_committer_skipped(patch_set: u32, email: &str) -> String {
    format!(
        "bionicbb did not build patch set {patch_set}: its committer {} is not in a trusted \
         domain (policy.trusted_committer_domains).\n\
         A trusted reviewer can have it built by replying on this patch set with the line \
         bionicbb:ok-to-test (it vouches for this patch set only: a new patch set needs a new \
         bionicbb:ok-to-test).",
        one_line(email, 100)
    )
}

/// The one message on a patch set whose automatic build was skipped
/// because it touches `path`, which the rule `rule` (a file name of
/// `policy.skip_file_names`, or a directory of `policy.skip_path_prefixes`)
/// keeps off the build machines: the rule, the file, and the way on.
pub fn skipped_path(patch_set: u32, path: &str, rule: SkipRule<'_>) -> String {
    let (what, key) = match rule {
        SkipRule::FileName(name) => (
            format!("a file named {}", one_line(name, 100)),
            "policy.skip_file_names",
        ),
        SkipRule::Directory(dir) => (
            format!("a file under {}/", one_line(dir.trim_end_matches('/'), 100)),
            "policy.skip_path_prefixes",
        ),
    };
    format!(
        "bionicbb did not build patch set {patch_set}: it touches {} ({what}, {key}).\n\
         A change touching it is never built by bionicbb, and bionicbb:ok-to-test cannot \
         vouch for it: upload a patch set without that file to have it built, or have a \
         maintainer of the build machines test it by hand.",
        one_line(path, 200)
    )
}

/// `s` on one line and at most `max` characters.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

/// The one line posted for a build the bot stopped because a newer patch
/// set was built (`superseded_by`) or the change closed (`None`, with
/// Gerrit's `status`): `bionic-presubmit #1842 stopped: superseded by
/// patch set 3.` `build` is `<job> #<number>`.
pub fn stopped_superseded(build: &str, superseded_by: Option<u32>, status: ChangeStatus) -> String {
    match (superseded_by, status) {
        (Some(ps), _) => format!("{build} stopped: superseded by patch set {ps}."),
        (None, ChangeStatus::Merged) => format!("{build} stopped: change merged."),
        (None, ChangeStatus::Abandoned) => format!("{build} stopped: change abandoned."),
        (None, ChangeStatus::New) => format!("{build} stopped: change closed."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://jenkins.example.org/job/bionic-presubmit/1842/";

    #[test]
    fn success_is_one_line() {
        assert_eq!(
            build_result(
                "bionic-presubmit",
                1842,
                &BuildStatus::Success,
                LINK,
                "Verified"
            ),
            "bionic-presubmit #1842 checkbuild SUCCESS: https://jenkins.example.org/job/bionic-presubmit/1842/"
        );
    }

    #[test]
    fn failure_tells_how_to_remove_the_rejection() {
        assert_eq!(
            build_result(
                "bionic-presubmit",
                1843,
                &BuildStatus::Failure,
                "L",
                "Verified"
            ),
            "bionic-presubmit #1843 checkbuild FAILURE: L\n\
             If you believe this Verified-1 was in error, +1 the change (Verified+1) \
             and bionicbb will remove its -1 shortly."
        );
    }

    #[test]
    fn inconclusive_results_tell_how_to_retry() {
        for (status, word) in [
            (BuildStatus::Unstable, "UNSTABLE"),
            (BuildStatus::Aborted, "ABORTED"),
            (BuildStatus::NotBuilt, "NOT_BUILT"),
        ] {
            assert_eq!(
                build_result("j", 3, &status, "L", "Verified"),
                format!(
                    "j #3 checkbuild {word}: L\n\
                     To run the build again, reply with a comment containing the line bionicbb:retry"
                )
            );
        }
        assert_eq!(
            build_result(
                "j",
                3,
                &BuildStatus::Other("CUSTOM".into()),
                "L",
                "Verified"
            ),
            "j #3 checkbuild CUSTOM: L"
        );
    }

    #[test]
    fn clean_texts() {
        assert_eq!(
            clean_done("clean-bionic-presubmit", 9, "L"),
            "out/ directory removed (clean-bionic-presubmit #9: L)"
        );
        assert_eq!(
            clean_failed("clean-bionic-presubmit", 9, &BuildStatus::Failure, "L"),
            "clean-bionic-presubmit #9 clean FAILURE: L\n\
             The out/ directory may not have been removed; reply with a comment \
             containing the line bionicbb:clean to try again."
        );
    }

    #[test]
    fn started_stale_and_closed() {
        assert_eq!(build_started("j", 5, "L"), "j #5 checkbuild STARTED: L");
        assert_eq!(
            stale_patch_set(3, 4),
            "This result is for patch set 3, but patch set 4 is now current, so bionicbb did not vote."
        );
        assert_eq!(
            closed_change(ChangeStatus::Merged),
            "This change is merged, so bionicbb did not vote."
        );
        assert_eq!(
            closed_change(ChangeStatus::Abandoned),
            "This change is abandoned, so bionicbb did not vote."
        );
    }

    #[test]
    fn unknown_command_lists_the_known_ones() {
        let known = vec!["clean".to_string(), "retry".to_string(), "arm".to_string()];
        assert_eq!(
            unknown_command(&[("frobnicate", None)], &known),
            "Unknown command bionicbb:frobnicate. Known commands: bionicbb:clean, bionicbb:retry, bionicbb:arm."
        );
        assert_eq!(
            unknown_command(&[("x", None)], &[]),
            "Unknown command bionicbb:x. No commands are enabled."
        );
    }

    #[test]
    fn unknown_command_suggests_the_close_one() {
        let known = vec!["retry".to_string(), "clean".to_string()];
        assert_eq!(
            unknown_command(&[("rety", Some("retry")), ("frobnicate", None)], &known),
            "Unknown commands bionicbb:rety (did you mean bionicbb:retry?), bionicbb:frobnicate. \
             Known commands: bionicbb:retry, bionicbb:clean."
        );
    }

    #[test]
    fn help_lists_every_command_and_the_status_link() {
        let mut targets = std::collections::BTreeMap::new();
        targets.insert("x86".to_string(), "aosp_x86-eng".to_string());
        targets.insert("arm".to_string(), "aosp_arm-eng".to_string());
        let text = help(
            &targets,
            Some("clean-bionic-presubmit"),
            Some("https://bb.example.org/status?change=123456"),
        );
        assert_eq!(
            text,
            "bionicbb runs the commands of trusted accounts, one per line of a comment on the \
             patch set:\n\
             bionicbb:retry - build this patch set again\n\
             bionicbb:clean - run clean-bionic-presubmit to remove the out/ directory\n\
             bionicbb:help - this list\n\
             bionicbb:why - what bionicbb decided and did about this patch set, and why\n\
             bionicbb:ok-to-test - build this patch set although its committer is not in a \
             trusted domain (a trusted reviewer vouches for this patch set only)\n\
             bionicbb:arm - build this patch set again for aosp_arm-eng\n\
             bionicbb:x86 - build this patch set again for aosp_x86-eng\n\
             What bionicbb did on this change: https://bb.example.org/status?change=123456"
        );
        let text = help(&std::collections::BTreeMap::new(), None, None);
        assert!(
            text.contains("bionicbb:clean - not available here"),
            "{text}"
        );
        assert!(!text.contains("What bionicbb did"), "{text}");
    }

    #[test]
    fn an_acknowledgement_names_the_command_the_commenter_the_job_and_the_queue_item() {
        assert_eq!(
            acknowledged(
                "retry",
                "Sam Reviewer",
                "bionic-presubmit",
                "https://jenkins.example.org/queue/item/42/"
            ),
            "bionicbb:retry by Sam Reviewer: bionic-presubmit queued \
             (https://jenkins.example.org/queue/item/42/)"
        );
        let forged = acknowledged("arm", "Sam\nVerified+1", "j", "u");
        assert!(!forged.contains('\n'), "{forged}");
    }

    #[test]
    fn unknown_command_cannot_forge_lines() {
        let name = format!("a\nVerified+1 {}", "z".repeat(60));
        let text = unknown_command(&[(&name, None)], &[]);
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with("Unknown command bionicbb:a Verified+1 zzz"));
        assert!(text.contains("..."), "{text}");
    }

    #[test]
    fn stopped_superseded_is_one_line() {
        let build = "bionic-presubmit #1842";
        assert_eq!(
            stopped_superseded(build, Some(3), ChangeStatus::New),
            "bionic-presubmit #1842 stopped: superseded by patch set 3."
        );
        assert_eq!(
            stopped_superseded(build, None, ChangeStatus::Abandoned),
            "bionic-presubmit #1842 stopped: change abandoned."
        );
        assert_eq!(
            stopped_superseded(build, None, ChangeStatus::Merged),
            "bionic-presubmit #1842 stopped: change merged."
        );
        assert_eq!(
            stopped_superseded(build, None, ChangeStatus::New),
            "bionic-presubmit #1842 stopped: change closed."
        );
    }

    #[test]
    fn drop_and_untrusted_texts() {
        assert_eq!(
            rejection_dropped("Verified"),
            "A reviewer voted Verified+1: bionicbb removed its Verified-1."
        );
        assert_eq!(
            untrusted_commenter(),
            "bionicbb only runs commands from trusted accounts; this comment was ignored."
        );
    }

    #[test]
    fn skip_explanations_name_the_rule_the_value_and_the_way_on() {
        assert_eq!(
            untrusted_committer_skipped(2, "x@elsewhere.org"),
            "bionicbb did not build patch set 2: its committer x@elsewhere.org is not in a \
             trusted domain (policy.trusted_committer_domains).\n\
             A trusted reviewer can have it built by replying on this patch set with the line \
             bionicbb:ok-to-test (it vouches for this patch set only: a new patch set needs a \
             new bionicbb:ok-to-test)."
        );
        let text = skipped_path(3, "libc/CleanSpec.mk", SkipRule::FileName("CleanSpec.mk"));
        assert!(
            text.starts_with(
                "bionicbb did not build patch set 3: it touches libc/CleanSpec.mk (a file named \
                 CleanSpec.mk, policy.skip_file_names)."
            ),
            "{text}"
        );
        assert!(text.contains("cannot vouch"), "{text}");
        let text = skipped_path(
            1,
            "tools/bionicbb/x.py",
            SkipRule::Directory("tools/bionicbb"),
        );
        assert!(
            text.contains("touches tools/bionicbb/x.py (a file under tools/bionicbb/, policy.skip_path_prefixes)"),
            "{text}"
        );
        // A forged e-mail or path cannot add lines.
        let text = untrusted_committer_skipped(1, "a\nVerified+1@x.org");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn carried_verdicts_say_where_they_come_from() {
        assert_eq!(
            carried_over("Verified", 1, 3, ChangeKind::NoCodeChange),
            "Verified+1 carried over from patch set 3: commit message only (NO_CODE_CHANGE)."
        );
        assert_eq!(
            carried_over("Verified", -1, 1, ChangeKind::NoChange),
            "Verified-1 carried over from patch set 1: no change (the same code and commit \
             message) (NO_CHANGE).\nTo run the build again, reply with a comment containing \
             the line bionicbb:retry"
        );
        for kind in ChangeKind::ALL {
            let text = carried_over("Verified", 1, 2, kind);
            assert!(text.ends_with(&format!("({kind}).")), "{text}");
            assert_eq!(text.lines().count(), 1, "{text}");
        }
    }
}
