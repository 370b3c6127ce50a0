//! What Gerrit confirms about the event a mail reports: the change, the
//! event's patch set (its ref, committer and files) and, for comment mails,
//! the change message the mail is about, with its author as Gerrit knows
//! them. Nothing in a mail is trusted; the policy decides on these facts.

use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::event::{ChangeFacts, ChangeStatus, CommentFacts, GerritEvent, MessageType};
use bionicbb_core::gerrit::types::parse_timestamp;
use bionicbb_core::gerrit::{
    ChangeInfo, ChangeMessageInfo, ChangeRef, GerritClient, QueryOption, Revision,
};

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
        match_comment(event, &change.messages)
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

/// Finds the change message a comment mail is about, among the messages on
/// the mail's patch set: by the mail's comment date when it has one (to the
/// second, ±1 s; among several, one whose text carries the mail's votes or
/// commands, else the latest), else the latest message whose text carries
/// them. The author is who Gerrit says acted (`real_author` when someone
/// posted on another's behalf, so trust follows the account that acted).
pub fn match_comment(event: &GerritEvent, messages: &[ChangeMessageInfo]) -> Option<CommentFacts> {
    let on_patch_set = messages
        .iter()
        .filter(|m| m.revision_number == Some(event.patch_set));
    let found = match event.comment_date {
        Some(date) => {
            let near: Vec<&ChangeMessageInfo> = on_patch_set
                .filter(|m| {
                    parse_timestamp(&m.date).is_some_and(|t| (t - date).abs() <= DATE_SLACK_SECS)
                })
                .collect();
            near.iter()
                .rev()
                .find(|m| carries(event, &m.message))
                .or(near.last())
                .copied()
        }
        None => on_patch_set.rev().find(|m| carries(event, &m.message)),
    }?;
    // Gerrit may repeat the author as `real_author`; only a different
    // account means someone posted on another's behalf.
    let author = match (&found.author, &found.real_author) {
        (Some(a), Some(r)) if a.account_id != r.account_id => Some(r),
        (Some(a), _) => Some(a),
        (None, r) => r.as_ref(),
    };
    Some(CommentFacts {
        author_account_id: author.map(|a| a.account_id),
        author_email: author.and_then(|a| a.email.clone()),
        message: found.message.clone(),
    })
}

/// True when `text` shows one of the event's votes (`Verified+1`) or
/// commands (a line `bionicbb:<name>`, spaces allowed after the colon).
/// An event with neither matches nothing.
fn carries(event: &GerritEvent, text: &str) -> bool {
    let vote = event
        .votes
        .iter()
        .any(|v| text.contains(&format!("{}{:+}", v.label, v.value)));
    let command = event.commands.iter().any(|c| {
        text.lines().any(|line| {
            line.trim()
                .strip_prefix("bionicbb:")
                .map(str::trim_start)
                .is_some_and(|rest| {
                    rest.strip_prefix(c.name.as_str())
                        .is_some_and(|after| after.is_empty() || after.starts_with(' '))
                })
        })
    });
    vote || command
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

    fn account(id: u64, email: &str) -> AccountInfo {
        AccountInfo {
            account_id: id,
            name: None,
            email: Some(email.into()),
            username: None,
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
        let c = match_comment(&event(Some(T)), &msgs).expect("match");
        assert_eq!(c.author_account_id, Some(2));
        assert_eq!(c.author_email.as_deref(), Some("sam@example.com"));
        let c = match_comment(&event(Some(T + 1)), &msgs).expect("one second later");
        assert_eq!(c.author_account_id, Some(2));
        assert!(match_comment(&event(Some(T + 2)), &msgs).is_none());
        assert!(match_comment(&event(Some(T - 200)), &msgs).is_none());
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
        let c = match_comment(&event(Some(T)), &msgs).expect("match");
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
        let c = match_comment(&event(None), &msgs).expect("match");
        assert_eq!(c.author_email.as_deref(), Some("second@example.com"));
        let mut e = event(None);
        e.commands.clear();
        e.votes = vec![Vote {
            label: "Code-Review".into(),
            value: 1,
        }];
        let c = match_comment(&e, &msgs).expect("vote match");
        assert_eq!(c.author_email.as_deref(), Some("third@example.com"));
        e.votes.clear();
        assert!(
            match_comment(&e, &msgs).is_none(),
            "nothing to recognise it by"
        );
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
        assert!(match_comment(&event(Some(T)), std::slice::from_ref(&other)).is_none());
        other.revision_number = Some(2);
        other.real_author = Some(account(7, "robot@elsewhere.org"));
        let c = match_comment(&event(Some(T)), &[other]).expect("match");
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
        let c = match_comment(&event(Some(T)), &[same]).expect("match");
        assert_eq!(c.author_email.as_deref(), Some("sam@example.com"));
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
