//! What Gerrit confirms about the event a mail reports: the change, the
//! event's patch set (its ref, committer and files) and, for comment mails,
//! the change message the mail is about, with its author as Gerrit knows
//! them, once Gerrit shows the mail's votes and commands (in that message
//! or in comments published with it). Nothing in a mail is trusted; the
//! policy decides on these facts.

use std::collections::BTreeMap;

use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::event::{
    ChangeFacts, ChangeStatus, Command, CommentFacts, GerritEvent, MessageType,
};
use bionicbb_core::gerrit::types::parse_timestamp;
use bionicbb_core::gerrit::{
    ChangeInfo, ChangeMessageInfo, ChangeRef, CommentInfo, GerritClient, QueryOption, Revision,
};
use bionicbb_core::mail::votes;

/// How far a change message's date may be from the mail's comment date.
/// Gerrit writes the footer to the second and stores nanoseconds; a
/// second either way absorbs rounding.
const DATE_SLACK_SECS: i64 = 1;

/// The change the event names: by number when the mail gives one (with the
/// project, so a number from another project does not resolve), else by
/// the unambiguous `project~branch~Change-Id`.
pub fn change_ref(event: &GerritEvent) -> Result<ChangeRef, String> {
    let made = match event.change_number {
        Some(number) => ChangeRef::project_number(&event.project, number),
        None => ChangeRef::triplet(&event.project, &event.branch, &event.change_id),
    };
    made.map_err(|e| format!("the mail names no valid change: {e}"))
}

/// True when deciding needs the patch set's committer and files: builds,
/// and comments that carry commands.
pub fn needs_patch_set_details(event: &GerritEvent) -> bool {
    match event.message_type {
        MessageType::NewChange | MessageType::NewPatchSet => true,
        MessageType::Comment => !event.commands.is_empty(),
        _ => false,
    }
}

/// Asks Gerrit about the event. `Ok(None)` when Gerrit does not know the
/// change (a forged mail, or a change deleted since): the mail is done and
/// nothing runs. `Err` for anything else that failed; the caller decides
/// whether to try again.
pub async fn gather(
    gerrit: &GerritClient,
    event: &GerritEvent,
) -> Result<Option<ChangeFacts>, ApiError> {
    let change_ref = match change_ref(event) {
        Ok(r) => r,
        Err(reason) => {
            tracing::warn!(%reason, "treating the mail as naming no change");
            return Ok(None);
        }
    };
    // ALL_REVISIONS: the event's patch set may no longer be current, and
    // only this option lists the refs of older patch sets.
    let options = [
        QueryOption::AllRevisions,
        QueryOption::Messages,
        QueryOption::DetailedAccounts,
    ];
    let change = match gerrit.change(&change_ref, &options).await {
        Ok(change) => change,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let ps = event.patch_set;
    let patch_set_ref = change.patch_set_ref(ps).map(str::to_string);
    let mut committer_email = None;
    let mut files = Vec::new();
    if patch_set_ref.is_some() && needs_patch_set_details(event) {
        // The change was found a moment ago; a 404 now means it vanished.
        let commit = match gerrit.commit(&change_ref, Revision::PatchSet(ps)).await {
            Ok(c) => c,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        committer_email = Some(commit.committer.email).filter(|e| !e.is_empty());
        let listed = match gerrit.files(&change_ref, Revision::PatchSet(ps)).await {
            Ok(f) => f,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // Gerrit's magic files (`/COMMIT_MSG`, `/MERGE_LIST`,
        // `/PATCHSET_LEVEL`) are not in the tree.
        files = listed.into_keys().filter(|f| !f.starts_with('/')).collect();
    }
    let comment = if event.message_type == MessageType::Comment {
        // Comments are fetched only when the change messages alone do not
        // show the mail's commands.
        let comments = if needs_comments(event, &change.messages) {
            match gerrit.comments(&change_ref).await {
                Ok(c) => c,
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        } else {
            Comments::new()
        };
        match_comment(event, &change.messages, &comments)
    } else {
        None
    };
    Ok(Some(ChangeFacts {
        number: change.number,
        project: change.project.clone(),
        branch: change.branch.clone(),
        status: status_of(&change),
        current_patch_set: current_patch_set(&change),
        patch_set_ref,
        committer_email,
        files,
        comment,
    }))
}

fn status_of(change: &ChangeInfo) -> ChangeStatus {
    use bionicbb_core::gerrit::ChangeStatus as Gerrit;
    match change.status {
        Gerrit::New | Gerrit::Draft => ChangeStatus::New,
        Gerrit::Merged => ChangeStatus::Merged,
        // A status this version does not know: never build it.
        Gerrit::Abandoned | Gerrit::Unknown => ChangeStatus::Abandoned,
    }
}

/// The current patch set; the highest listed one when Gerrit did not say.
fn current_patch_set(change: &ChangeInfo) -> u32 {
    change
        .current_patch_set()
        .or_else(|| change.revisions.values().map(|r| r.number).max())
        .unwrap_or(0)
}

/// Published comments as `GET /changes/{id}/comments` returns them:
/// path → comments (`/PATCHSET_LEVEL` for patchset-level ones).
pub type Comments = BTreeMap<String, Vec<CommentInfo>>;

/// True when confirming the mail may need the change's published comments:
/// a comment mail with commands and a comment date, whose change messages
/// at that date do not show the commands themselves (Gerrit 3.3+ puts text
/// typed in the reply box in a patchset-level comment, leaving only
/// `(1 comment)` in the change message).
pub fn needs_comments(event: &GerritEvent, messages: &[ChangeMessageInfo]) -> bool {
    event.message_type == MessageType::Comment
        && !event.commands.is_empty()
        && event.comment_date.is_some()
        && match_comment(event, messages, &Comments::new()).is_none()
}

/// Finds the change message a comment mail is about and checks that Gerrit
/// shows everything the mail claims, since nothing in a mail is trusted:
///
/// - candidates are the messages on the mail's patch set written by the
///   mail's sender (the `From:` name Gerrit gives the actor, matched to the
///   message author's name, e-mail or username), at the mail's comment date
///   (to the second, ±1 s), or all of them when the mail has no date (then
///   the mail must claim a vote or a command); a mail naming no sender
///   confirms nothing;
/// - every vote of the mail must be on the message's `Patch Set N:` line;
/// - every command must be in the message text, or in a published comment
///   (patchset-level or inline) on that patch set by the message's author,
///   published within ±1 s of the comment date.
///
/// The latest candidate that confirms the mail wins; `None` when none does,
/// so that a forged mail copying the date of a real comment and adding a
/// command, or claiming another sender, confirms nothing. The message's
/// `id` is the identity of its commands: a copy of the mail (a new
/// Message-ID, the same sender) finds the same message and so the same
/// effects, already done. The author is who Gerrit says acted
/// (`real_author` when someone posted on another's behalf, so trust
/// follows the account that acted).
pub fn match_comment(
    event: &GerritEvent,
    messages: &[ChangeMessageInfo],
    comments: &Comments,
) -> Option<CommentFacts> {
    let sender = event.author.as_deref()?;
    let on_patch_set = messages
        .iter()
        .filter(|m| m.revision_number == Some(event.patch_set))
        .filter(|m| written_by(m, sender));
    let (found, extra) = match event.comment_date {
        Some(date) => on_patch_set
            .filter(|m| parse_timestamp(&m.date).is_some_and(|t| near(t, date)))
            .rev()
            .find_map(|m| confirm(event, m, comments, Some(date)).map(|extra| (m, extra)))?,
        None if event.votes.is_empty() && event.commands.is_empty() => return None,
        None => on_patch_set
            .rev()
            .find_map(|m| confirm(event, m, comments, None).map(|extra| (m, extra)))?,
    };
    // Gerrit may repeat the author as `real_author`; only a different
    // account means someone posted on another's behalf.
    let author = match (&found.author, &found.real_author) {
        (Some(a), Some(r)) if a.account_id != r.account_id => Some(r),
        (Some(a), _) => Some(a),
        (None, r) => r.as_ref(),
    };
    let mut message = found.message.clone();
    for text in extra {
        message.push_str("\n\n");
        message.push_str(text);
    }
    Some(CommentFacts {
        message_id: found.id.clone(),
        author_account_id: author.map(|a| a.account_id),
        author_email: author.and_then(|a| a.email.clone()),
        message,
    })
}

/// True when `sender` (the mail's `From:` display name) names the
/// message's author, or the account that posted on their behalf: by full
/// name, e-mail or username, ignoring case (Gerrit names the actor by full
/// name, falling back to the e-mail or username when there is none).
fn written_by(message: &ChangeMessageInfo, sender: &str) -> bool {
    let sender = sender.trim();
    !sender.is_empty()
        && [message.author.as_ref(), message.real_author.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|a| [&a.name, &a.email, &a.username])
            .flatten()
            .any(|n| n.trim().eq_ignore_ascii_case(sender))
}

fn near(t: i64, date: i64) -> bool {
    (t - date).abs() <= DATE_SLACK_SECS
}

/// Checks `message` against the mail. `Some` with the texts of the
/// comments that were needed to show its commands (empty when the message
/// shows them, or the mail has none); `None` when Gerrit does not confirm
/// the mail through this message.
fn confirm<'c>(
    event: &GerritEvent,
    message: &ChangeMessageInfo,
    comments: &'c Comments,
    date: Option<i64>,
) -> Option<Vec<&'c str>> {
    let line = message.message.lines().next().and_then(votes::parse_line);
    let votes_shown = event.votes.iter().all(|v| {
        line.as_ref()
            .is_some_and(|l| l.patch_set == event.patch_set && l.added.contains(v))
    });
    if !votes_shown {
        return None;
    }
    let missing: Vec<&Command> = event
        .commands
        .iter()
        .filter(|c| !carries_command(c, &message.message))
        .collect();
    if missing.is_empty() {
        return Some(Vec::new());
    }
    // Only a comment published with this review, by the same account.
    let date = date?;
    let author = message.author.as_ref()?.account_id;
    let companions: Vec<&str> = comments
        .values()
        .flatten()
        .filter(|c| c.patch_set == Some(event.patch_set))
        .filter(|c| c.author.as_ref().is_some_and(|a| a.account_id == author))
        .filter(|c| parse_timestamp(&c.updated).is_some_and(|t| near(t, date)))
        .map(|c| c.message.as_str())
        .collect();
    let mut used: Vec<&str> = Vec::new();
    for command in missing {
        let text = companions
            .iter()
            .find(|text| carries_command(command, text))?;
        if !used.contains(text) {
            used.push(text);
        }
    }
    Some(used)
}

/// True when `text` has a line `bionicbb:<name>` (spaces allowed after the
/// colon, arguments after a space) for `command`. A quoted line (`> ...`)
/// does not count.
fn carries_command(command: &Command, text: &str) -> bool {
    text.lines().any(|line| {
        line.trim()
            .strip_prefix("bionicbb:")
            .map(str::trim_start)
            .is_some_and(|rest| {
                rest.strip_prefix(command.name.as_str())
                    .is_some_and(|after| after.is_empty() || after.starts_with(' '))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bionicbb_core::event::{Command, Vote};
    use bionicbb_core::gerrit::AccountInfo;

    fn event(comment_date: Option<i64>) -> GerritEvent {
        GerritEvent {
            message_type: MessageType::Comment,
            change_id: "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b".into(),
            change_number: Some(123456),
            patch_set: 2,
            project: "platform/bionic".into(),
            branch: "master".into(),
            owner: None,
            author: Some("Sam Reviewer".into()),
            comment_date,
            date: None,
            votes: vec![],
            commands: vec![Command {
                name: "retry".into(),
                args: vec![],
            }],
        }
    }

    /// An account named after its e-mail: `sam@example.com` is "Sam
    /// Reviewer", any other `x@...` is "x".
    fn account(id: u64, email: &str) -> AccountInfo {
        let local = email.split('@').next().unwrap_or(email);
        AccountInfo {
            account_id: id,
            name: Some(match local {
                "sam" => "Sam Reviewer".to_string(),
                other => other.to_string(),
            }),
            email: Some(email.into()),
            username: Some(local.into()),
        }
    }

    fn message(
        id: &str,
        ps: u32,
        author: u64,
        email: &str,
        date: &str,
        text: &str,
    ) -> ChangeMessageInfo {
        ChangeMessageInfo {
            id: id.into(),
            author: Some(account(author, email)),
            real_author: None,
            date: date.into(),
            message: text.into(),
            tag: None,
            revision_number: Some(ps),
        }
    }

    // 2019-03-14 17:02:11 UTC
    const T: i64 = 1_552_582_931;

    #[test]
    fn matches_by_date_within_a_second() {
        let msgs = vec![
            message(
                "a",
                2,
                1,
                "early@example.com",
                "2019-03-14 17:00:00.000000000",
                "Patch Set 2:\n\nbionicbb:retry",
            ),
            message(
                "b",
                2,
                2,
                "sam@example.com",
                "2019-03-14 17:02:11.999000000",
                "Patch Set 2:\n\nbionicbb:retry",
            ),
            message(
                "c",
                3,
                3,
                "other@example.com",
                "2019-03-14 17:02:11.000000000",
                "Patch Set 3:\n\nbionicbb:retry",
            ),
        ];
        let c = match_comment(&event(Some(T)), &msgs, &none()).expect("match");
        assert_eq!(c.author_account_id, Some(2));
        assert_eq!(c.author_email.as_deref(), Some("sam@example.com"));
        let c = match_comment(&event(Some(T + 1)), &msgs, &none()).expect("one second later");
        assert_eq!(c.author_account_id, Some(2));
        assert!(match_comment(&event(Some(T + 2)), &msgs, &none()).is_none());
        assert!(match_comment(&event(Some(T - 200)), &msgs, &none()).is_none());
    }

    #[test]
    fn among_messages_of_one_second_prefers_the_one_with_the_command() {
        let msgs = vec![
            message(
                "a",
                2,
                1,
                "sam@example.com",
                "2019-03-14 17:02:11.100000000",
                "Patch Set 2:\n\nbionicbb:retry",
            ),
            message(
                "b",
                2,
                9,
                "bionicbb@example.com",
                "2019-03-14 17:02:11.900000000",
                "Patch Set 2:\n\nbuild queued",
            ),
        ];
        let c = match_comment(&event(Some(T)), &msgs, &none()).expect("match");
        assert_eq!(c.author_account_id, Some(1));
    }

    #[test]
    fn without_a_date_takes_the_latest_message_with_the_command() {
        let msgs = vec![
            message(
                "a",
                2,
                1,
                "first@example.com",
                "2019-03-14 17:00:00.000000000",
                "Patch Set 2:\n\nbionicbb: retry",
            ),
            message(
                "b",
                2,
                2,
                "second@example.com",
                "2019-03-14 17:01:00.000000000",
                "Patch Set 2:\n\nbionicbb:retry",
            ),
            message(
                "c",
                2,
                3,
                "third@example.com",
                "2019-03-14 17:03:00.000000000",
                "Patch Set 2: Code-Review+1",
            ),
            message(
                "d",
                2,
                4,
                "fourth@example.com",
                "2019-03-14 17:04:00.000000000",
                "Patch Set 2:\n\nbionicbb:retryall",
            ),
        ];
        let mut by_second = event(None);
        by_second.author = Some("second".into());
        let c = match_comment(&by_second, &msgs, &none()).expect("match");
        assert_eq!(c.author_email.as_deref(), Some("second@example.com"));
        assert_eq!(c.message_id, "b");
        let mut by_first = event(None);
        by_first.author = Some("First".into());
        let c = match_comment(&by_first, &msgs, &none()).expect("match");
        assert_eq!(
            c.message_id, "a",
            "the sender's own message, not the latest"
        );
        let mut e = event(None);
        e.author = Some("third".into());
        e.commands.clear();
        e.votes = vec![Vote {
            label: "Code-Review".into(),
            value: 1,
        }];
        let c = match_comment(&e, &msgs, &none()).expect("vote match");
        assert_eq!(c.author_email.as_deref(), Some("third@example.com"));
        e.votes.clear();
        assert!(
            match_comment(&e, &msgs, &none()).is_none(),
            "nothing to recognise it by"
        );
    }

    #[test]
    fn a_message_by_another_account_than_the_sender_confirms_nothing() {
        let msgs = vec![message(
            "Zq3-Kd",
            2,
            2,
            "sam@example.com",
            "2019-03-14 17:02:11.000000000",
            "Patch Set 2:\n\nbionicbb:retry",
        )];
        for sender in ["Sam Reviewer", "sam reviewer", "sam@example.com", "sam"] {
            let mut e = event(None);
            e.author = Some(sender.into());
            let c = match_comment(&e, &msgs, &none()).expect(sender);
            assert_eq!(c.message_id, "Zq3-Kd", "{sender}");
            e.comment_date = Some(T);
            assert!(match_comment(&e, &msgs, &none()).is_some(), "{sender}");
        }
        for sender in [Some("Mallory"), Some("Sam R."), Some(""), None] {
            for date in [None, Some(T)] {
                let mut e = event(date);
                e.author = sender.map(str::to_string);
                assert!(
                    match_comment(&e, &msgs, &none()).is_none(),
                    "{sender:?} {date:?}"
                );
            }
        }
    }

    #[test]
    fn only_the_events_patch_set_counts_and_real_author_wins() {
        let mut other = message(
            "a",
            1,
            1,
            "sam@example.com",
            "2019-03-14 17:02:11.000000000",
            "Patch Set 1:\n\nbionicbb:retry",
        );
        assert!(match_comment(&event(Some(T)), std::slice::from_ref(&other), &none()).is_none());
        other.revision_number = Some(2);
        other.real_author = Some(account(7, "robot@elsewhere.org"));
        let c = match_comment(&event(Some(T)), &[other], &none()).expect("match");
        assert_eq!(c.author_account_id, Some(7));
        assert_eq!(c.author_email.as_deref(), Some("robot@elsewhere.org"));
        // The same account repeated as real_author (without details) changes nothing.
        let mut same = message(
            "b",
            2,
            1,
            "sam@example.com",
            "2019-03-14 17:02:11.000000000",
            "Patch Set 2:\n\nbionicbb:retry",
        );
        same.real_author = Some(AccountInfo {
            account_id: 1,
            name: None,
            email: None,
            username: None,
        });
        let c = match_comment(&event(Some(T)), &[same], &none()).expect("match");
        assert_eq!(c.author_email.as_deref(), Some("sam@example.com"));
    }

    fn none() -> Comments {
        Comments::new()
    }

    fn comment(id: &str, ps: u32, author: u64, updated: &str, text: &str) -> CommentInfo {
        CommentInfo {
            id: id.into(),
            path: None,
            patch_set: Some(ps),
            line: None,
            message: text.into(),
            updated: updated.into(),
            author: Some(account(author, "ignored@example.com")),
            in_reply_to: None,
        }
    }

    fn comments(path: &str, list: Vec<CommentInfo>) -> Comments {
        Comments::from([(path.to_string(), list)])
    }

    /// The mail of a 3.x review: `Verified+1` and `bionicbb:retry` typed
    /// in the reply box, on patch set 2 at `T`.
    fn review_event() -> GerritEvent {
        let mut e = event(Some(T));
        e.votes = vec![Vote {
            label: "Verified".into(),
            value: 1,
        }];
        e
    }

    /// What Gerrit 3.3+ stores for that review: the votes and `(1 comment)`.
    fn one_comment_message(author: u64, email: &str) -> Vec<ChangeMessageInfo> {
        vec![message(
            "m",
            2,
            author,
            email,
            "2019-03-14 17:02:11.000000000",
            "Patch Set 2: Verified+1\n\n(1 comment)",
        )]
    }

    #[test]
    fn commands_carried_in_the_message_need_no_comments() {
        let msgs = vec![message(
            "m",
            2,
            2,
            "sam@example.com",
            "2019-03-14 17:02:11.000000000",
            "Patch Set 2: Verified+1\n\nbionicbb:retry please",
        )];
        let e = review_event();
        assert!(!needs_comments(&e, &msgs));
        let c = match_comment(&e, &msgs, &none()).expect("confirmed by the message");
        assert_eq!(c.author_email.as_deref(), Some("sam@example.com"));
        assert_eq!(c.message, msgs[0].message);
    }

    #[test]
    fn commands_carried_in_a_patchset_level_comment_by_the_same_author() {
        let msgs = one_comment_message(2, "sam@example.com");
        let e = review_event();
        assert!(needs_comments(&e, &msgs));
        let level = comments(
            "/PATCHSET_LEVEL",
            vec![comment(
                "c1",
                2,
                2,
                "2019-03-14 17:02:11.000000000",
                "bionicbb:retry\nThe first run hit the pthread flake.",
            )],
        );
        let c = match_comment(&e, &msgs, &level).expect("confirmed by the comment");
        assert_eq!(c.author_account_id, Some(2));
        assert_eq!(c.author_email.as_deref(), Some("sam@example.com"));
        assert!(c.message.starts_with("Patch Set 2: Verified+1"), "{c:?}");
        assert!(c.message.contains("bionicbb:retry\nThe first run"), "{c:?}");
        // An inline comment published with the review counts too.
        let mut inline = comment(
            "c2",
            2,
            2,
            "2019-03-14 17:02:12.000000000",
            "bionicbb:retry",
        );
        inline.line = Some(42);
        let files = comments("libc/bionic/strtod.cpp", vec![inline]);
        assert!(match_comment(&e, &msgs, &files).is_some());
    }

    #[test]
    fn forged_text_with_a_real_date_confirms_nothing() {
        let msgs = one_comment_message(2, "sam@example.com");
        let e = review_event();
        assert!(match_comment(&e, &msgs, &none()).is_none());
        // The real comment says something else, or quotes the command.
        for text in [
            "LGTM, flake",
            "> bionicbb:retry\nno, not yet",
            "bionicbb:retryall",
        ] {
            let level = comments(
                "/PATCHSET_LEVEL",
                vec![comment("c1", 2, 2, "2019-03-14 17:02:11.000000000", text)],
            );
            assert!(match_comment(&e, &msgs, &level).is_none(), "{text:?}");
        }
        // A second command the mail adds is not confirmed by the first.
        let level = comments(
            "/PATCHSET_LEVEL",
            vec![comment(
                "c1",
                2,
                2,
                "2019-03-14 17:02:11.000000000",
                "bionicbb:retry",
            )],
        );
        let mut more = review_event();
        more.commands.push(Command {
            name: "clean".into(),
            args: vec![],
        });
        assert!(match_comment(&more, &msgs, &level).is_none());
        // A vote the message line does not show is not confirmed either.
        let mut vote = review_event();
        vote.votes.push(Vote {
            label: "Code-Review".into(),
            value: 2,
        });
        assert!(match_comment(&vote, &msgs, &level).is_none());
    }

    #[test]
    fn a_carrier_by_another_author_or_patch_set_confirms_nothing() {
        let msgs = one_comment_message(2, "sam@example.com");
        let e = review_event();
        let by_other = comments(
            "/PATCHSET_LEVEL",
            vec![comment(
                "c1",
                2,
                3,
                "2019-03-14 17:02:11.000000000",
                "bionicbb:retry",
            )],
        );
        assert!(match_comment(&e, &msgs, &by_other).is_none());
        let mut anonymous = comment(
            "c1",
            2,
            2,
            "2019-03-14 17:02:11.000000000",
            "bionicbb:retry",
        );
        anonymous.author = None;
        let anonymous = comments("/PATCHSET_LEVEL", vec![anonymous]);
        assert!(match_comment(&e, &msgs, &anonymous).is_none());
        let other_ps = comments(
            "/PATCHSET_LEVEL",
            vec![comment(
                "c1",
                1,
                2,
                "2019-03-14 17:02:11.000000000",
                "bionicbb:retry",
            )],
        );
        assert!(match_comment(&e, &msgs, &other_ps).is_none());
    }

    #[test]
    fn a_carrier_outside_the_date_slack_confirms_nothing() {
        let msgs = one_comment_message(2, "sam@example.com");
        let e = review_event();
        for (updated, confirmed) in [
            ("2019-03-14 17:02:10.000000000", true),
            ("2019-03-14 17:02:12.999000000", true),
            ("2019-03-14 17:02:13.000000000", false),
            ("2019-03-14 17:00:00.000000000", false),
            ("not a date", false),
        ] {
            let level = comments(
                "/PATCHSET_LEVEL",
                vec![comment("c1", 2, 2, updated, "bionicbb:retry")],
            );
            assert_eq!(
                match_comment(&e, &msgs, &level).is_some(),
                confirmed,
                "{updated}"
            );
        }
        // Without a comment date, only the message itself can confirm.
        let mut undated = review_event();
        undated.comment_date = None;
        assert!(!needs_comments(&undated, &msgs));
        let level = comments(
            "/PATCHSET_LEVEL",
            vec![comment(
                "c1",
                2,
                2,
                "2019-03-14 17:02:11.000000000",
                "bionicbb:retry",
            )],
        );
        assert!(match_comment(&undated, &msgs, &level).is_none());
    }

    #[test]
    fn change_ref_prefers_the_number() {
        let e = event(None);
        assert_eq!(
            change_ref(&e).unwrap().to_string(),
            "platform/bionic~123456"
        );
        let mut e = event(None);
        e.change_number = None;
        assert!(change_ref(&e).unwrap().to_string().contains("master"));
    }
}
