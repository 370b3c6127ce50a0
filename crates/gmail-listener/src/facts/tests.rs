//! Matching a comment mail to Gerrit's change messages and comments.

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

#[test]
fn undated_mails_of_two_retries_by_one_person_find_their_own_messages() {
    // Sam asked for a retry twice, ten minutes apart; Gerrit 2.x mails carry
    // no comment date, only the mail's own `Date:`, a moment after each.
    let msgs = vec![
        message(
            "first",
            2,
            2,
            "sam@example.com",
            "2019-03-14 17:02:11.000000000",
            "Patch Set 2:\n\nbionicbb:retry",
        ),
        message(
            "second",
            2,
            2,
            "sam@example.com",
            "2019-03-14 17:12:11.000000000",
            "Patch Set 2:\n\nbionicbb:retry",
        ),
    ];
    let mut e = event(None);
    e.date = Some(T + 2);
    assert_eq!(
        match_comment(&e, &msgs, &none()).unwrap().message_id,
        "first"
    );
    e.date = Some(T + 600 + 2);
    assert_eq!(
        match_comment(&e, &msgs, &none()).unwrap().message_id,
        "second"
    );
    // A mail dated before any message of its text confirms nothing; one
    // without a date takes the latest.
    e.date = Some(T - 60);
    assert!(match_comment(&e, &msgs, &none()).is_none());
    e.date = None;
    assert_eq!(
        match_comment(&e, &msgs, &none()).unwrap().message_id,
        "second"
    );
}

#[test]
fn the_one_query_asks_for_commits_and_files_only_when_deciding_needs_them() {
    let names = |details| {
        query_options(details)
            .into_iter()
            .map(QueryOption::as_str)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(true),
        [
            "ALL_REVISIONS",
            "ALL_COMMITS",
            "ALL_FILES",
            "DETAILED_LABELS",
            "MESSAGES",
            "DETAILED_ACCOUNTS"
        ]
    );
    assert_eq!(
        names(false),
        ["ALL_REVISIONS", "MESSAGES", "DETAILED_ACCOUNTS"]
    );
    let mut comment = event(None);
    assert!(needs_patch_set_details(&comment), "a command builds");
    comment.commands.clear();
    assert!(!needs_patch_set_details(&comment));
}

/// A mail of a type decided without Gerrit gets the same decisions whatever
/// Gerrit would have said, so skipping the request loses nothing.
#[test]
fn mail_types_decided_without_gerrit_do_not_depend_on_it() {
    let config = crate::test_config::with(
        r#"[jobs]
        default = "bionic-presubmit"
        [policy]
        trusted_committer_domains = ["example.com"]
        trusted_commenter_domains = ["example.com"]"#,
    );
    let facts = ChangeFacts {
        number: 123456,
        project: "platform/bionic".into(),
        branch: "master".into(),
        status: ChangeStatus::New,
        current_patch_set: 2,
        patch_set_ref: Some("refs/changes/56/123456/2".into()),
        committer_email: Some("dana@example.com".into()),
        files: vec!["libc/bionic/strtod.cpp".into()],
        comment: None,
        subject: "Fix strtod rounding for denormals".into(),
        owner: Some("Dana Dev".into()),
        upload: Default::default(),
        vouch: None,
    };
    for kind in [
        "merged",
        "abandon",
        "restore",
        "revert",
        "merge-failed",
        "deleteVote",
        "deleteReviewer",
        "setassignee",
    ] {
        let mut e = event(Some(T));
        e.message_type = MessageType::from(kind.to_string());
        assert!(!needs_gerrit(&e), "{kind}");
        let without = bionicbb_core::decide::decide(&e, None, &config);
        let with = bionicbb_core::decide::decide(&e, Some(&facts), &config);
        assert_eq!(without, with, "{kind}");
    }
    for kind in ["newchange", "newpatchset", "comment"] {
        let mut e = event(Some(T));
        e.message_type = MessageType::from(kind.to_string());
        assert!(needs_gerrit(&e), "{kind}");
        assert!(!closes_change(&e), "{kind}");
    }
    // Closing mails are asked about only when there are builds to cancel.
    for kind in ["merged", "abandon"] {
        let mut e = event(Some(T));
        e.message_type = MessageType::from(kind.to_string());
        assert!(closes_change(&e), "{kind}");
    }
}

#[test]
fn facts_from_one_answer_name_the_patch_set_and_its_details() {
    let config = crate::test_config::with("[jobs]");
    let change: ChangeInfo = serde_json::from_value(serde_json::json!({
        "project": "platform/bionic",
        "branch": "master",
        "change_id": "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b",
        "status": "NEW",
        "_number": 123456,
        "owner": {"_account_id": 1},
        "current_revision": "bbbb",
        "revisions": {
            "aaaa": {"_number": 1, "ref": "refs/changes/56/123456/1"},
            "bbbb": {"_number": 2, "ref": "refs/changes/56/123456/2",
                     "created": "2019-03-14 17:00:00.000000000"}
        }
    }))
    .unwrap();
    let details = (
        Some("dana@example.com".to_string()),
        vec!["a.c".to_string()],
    );
    let current = from_change(&change, 2, Some(details.clone()), None, &config);
    assert_eq!(current.number, 123456);
    assert_eq!(current.status, ChangeStatus::New);
    assert_eq!(current.current_patch_set, 2);
    assert_eq!(
        current.patch_set_ref.as_deref(),
        Some("refs/changes/56/123456/2")
    );
    assert_eq!(current.committer_email.as_deref(), Some("dana@example.com"));
    assert_eq!(current.files, ["a.c"]);
    // An older patch set: its ref, no details; one the answer lacks: no ref.
    let older = from_change(&change, 1, None, None, &config);
    assert_eq!(
        older.patch_set_ref.as_deref(),
        Some("refs/changes/56/123456/1")
    );
    assert_eq!((older.committer_email, older.files.len()), (None, 0));
    assert_eq!(
        from_change(&change, 3, Some(details), None, &config).patch_set_ref,
        None
    );
}

#[test]
fn comment_facts_follow_the_acting_account_and_append_carriers() {
    let mut m = message(
        "m1",
        2,
        7,
        "sam@example.com",
        "2019-03-14 17:02:11.000000000",
        "Patch Set 2:\n\n(1 comment)",
    );
    let facts = comment_facts(&m, &["bionicbb:retry"]);
    assert_eq!(facts.message_id, "m1");
    assert_eq!(facts.author_account_id, Some(7));
    assert_eq!(facts.author_email.as_deref(), Some("sam@example.com"));
    assert_eq!(
        facts.message,
        "Patch Set 2:\n\n(1 comment)\n\nbionicbb:retry"
    );
    // Posted on Sam's behalf by another account: trust follows who acted.
    m.real_author = Some(account(9, "stranger@evil.org"));
    let facts = comment_facts(&m, &[]);
    assert_eq!(facts.author_account_id, Some(9));
    assert_eq!(facts.author_email.as_deref(), Some("stranger@evil.org"));
    // The same account repeated as real_author changes nothing.
    m.real_author = Some(account(7, "sam@example.com"));
    assert_eq!(comment_facts(&m, &[]).author_account_id, Some(7));
}
