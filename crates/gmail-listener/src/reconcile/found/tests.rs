//! Events found on a change from a reconcile query's answer.

use super::*;
use bionicbb_core::event::{Command, Vote};
use serde_json::json;

const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
// 2026-11-30 10:00:00 UTC
const T: i64 = 1_796_032_800;

fn gerrit() -> GerritConfig {
    crate::test_config::with("[jobs]\ndefault = \"bionic-presubmit\"").gerrit
}

fn date(secs: i64) -> String {
    bionicbb_core::timefmt::format_gerrit(secs, 0)
}

fn account(id: u64, name: &str, email: &str) -> serde_json::Value {
    json!({"_account_id": id, "name": name, "email": email})
}

/// A message as Gerrit's answer has it.
fn message(id: &str, ps: u32, author: serde_json::Value, at: i64, text: &str) -> serde_json::Value {
    json!({"id": id, "author": author, "date": date(at), "message": text,
           "_revision_number": ps})
}

/// Change 123456, patch set 2 current (uploaded at `uploaded`), with `messages`.
fn change(uploaded: i64, messages: Vec<serde_json::Value>) -> ChangeInfo {
    serde_json::from_value(json!({
        "project": "platform/bionic",
        "branch": "master",
        "change_id": KEY,
        "status": "NEW",
        "_number": 123456,
        "owner": {"_account_id": 1},
        "current_revision": "bbbb",
        "revisions": {
            "aaaa": {"_number": 1, "ref": "refs/changes/56/123456/1",
                     "created": date(uploaded - 3600)},
            "bbbb": {"_number": 2, "ref": "refs/changes/56/123456/2", "created": date(uploaded)}
        },
        "messages": messages
    }))
    .unwrap()
}

fn sam() -> serde_json::Value {
    account(2, "Sam Reviewer", "sam@example.com")
}

fn retry() -> Command {
    Command {
        name: "retry".into(),
        args: vec![],
    }
}

#[test]
fn the_current_patch_set_is_a_newpatchset_when_recent_enough() {
    let c = change(T, vec![]);
    let found = events(&c, T, T, &Comments::new(), &gerrit());
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!(f.kind, Kind::PatchSet);
    assert_eq!(f.event.message_type, MessageType::NewPatchSet);
    assert_eq!(f.event.patch_set, 2);
    assert_eq!(f.event.change_number, Some(123456));
    assert_eq!(f.event.change_id, KEY);
    assert_eq!(f.event.project, "platform/bionic");
    assert_eq!(f.event.branch, "master");
    assert!(f.comment.is_none());
    // Uploaded a second before the window: left alone.
    assert!(events(&c, T + 1, T, &Comments::new(), &gerrit()).is_empty());
}

#[test]
fn a_patch_set_marked_ready_for_review_in_the_window_is_a_newpatchset() {
    let mut ready = message("r", 2, sam(), T + 60, "Set Ready For Review");
    ready["tag"] = json!(READY_TAG);
    let c = change(T - 86_400, vec![ready.clone()]);
    let found = events(&c, T, T + 600, &Comments::new(), &gerrit());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, Kind::PatchSet);
    assert_eq!(found[0].event.patch_set, 2);
    // Marked ready before the window, or on another patch set: left alone.
    assert!(events(&c, T + 61, T + 600, &Comments::new(), &gerrit()).is_empty());
    ready["_revision_number"] = json!(1);
    let c = change(T - 86_400, vec![ready]);
    assert!(events(&c, T, T + 600, &Comments::new(), &gerrit()).is_empty());
}

#[test]
fn a_message_with_commands_is_a_comment_confirmed_against_itself() {
    let c = change(
        T - 86_400,
        vec![
            message("m0", 2, sam(), T - 10, "Patch Set 2:\n\nbionicbb:clean"),
            message(
                "m1",
                2,
                sam(),
                T,
                "Patch Set 2: Verified+1\n\nflake\nbionicbb:retry\n> bionicbb:arm",
            ),
            message("m2", 2, sam(), T + 5, "Patch Set 2: Code-Review+1\n\nLGTM"),
        ],
    );
    let found = events(&c, T, T, &Comments::new(), &gerrit());
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.kind, Kind::Command);
    assert_eq!(f.event.message_type, MessageType::Comment);
    assert_eq!(f.event.patch_set, 2);
    assert_eq!(f.event.commands, vec![retry()], "a quoted line is not one");
    assert_eq!(
        f.event.votes,
        vec![Vote {
            label: "Verified".into(),
            value: 1
        }]
    );
    assert_eq!(f.event.comment_date, Some(T));
    assert_eq!(f.event.author.as_deref(), Some("Sam Reviewer"));
    let comment = f.comment.as_ref().unwrap();
    assert_eq!(comment.message_id, "m1");
    assert_eq!(comment.author_email.as_deref(), Some("sam@example.com"));
    assert_eq!(comment.author_account_id, Some(2));
}

#[test]
fn the_bots_own_and_gerrits_messages_are_never_events() {
    let bot = account(3, "Bionic Buildbot", "BionicBB@example.com");
    let mut gerrit_own = message("m2", 2, sam(), T, "bionicbb:retry");
    gerrit_own.as_object_mut().unwrap().remove("author");
    let mut on_behalf = message("m3", 2, sam(), T, "Patch Set 2:\n\nbionicbb:retry");
    on_behalf["real_author"] = bot.clone();
    let c = change(
        T - 86_400,
        vec![
            message(
                "m1",
                2,
                bot,
                T,
                "Patch Set 2:\n\nUnknown command bionicbb:x.\nbionicbb:retry",
            ),
            gerrit_own,
            on_behalf,
        ],
    );
    assert!(events(&c, T, T, &Comments::new(), &gerrit()).is_empty());
    assert!(!needs_comments(&c, T, &gerrit()));
}

#[test]
fn commands_in_comments_published_with_the_message_count() {
    let c = change(
        T - 86_400,
        vec![message("m1", 2, sam(), T, "Patch Set 2:\n\n(2 comments)")],
    );
    assert!(needs_comments(&c, T, &gerrit()));
    assert!(
        !needs_comments(&c, T + 1, &gerrit()),
        "older than the window"
    );
    let comments: Comments = serde_json::from_value(json!({
        "/PATCHSET_LEVEL": [
            {"id": "c1", "patch_set": 2, "author": sam(), "updated": date(T),
             "message": "bionicbb:retry"},
            // Another patch set, another author, another time: not carriers.
            {"id": "c2", "patch_set": 1, "author": sam(), "updated": date(T),
             "message": "bionicbb:clean"},
            {"id": "c3", "patch_set": 2, "author": account(4, "Mallory", "m@evil.org"),
             "updated": date(T), "message": "bionicbb:clean"},
            {"id": "c4", "patch_set": 2, "author": sam(), "updated": date(T + 5),
             "message": "bionicbb:clean"}
        ],
        "libc/bionic/strtod.cpp": [
            {"id": "c5", "patch_set": 2, "line": 7, "author": sam(), "updated": date(T),
             "message": "Nit.\nbionicbb:arm"}
        ]
    }))
    .unwrap();
    let found = events(&c, T, T, &comments, &gerrit());
    assert_eq!(found.len(), 1);
    let names: Vec<&str> = found[0]
        .event
        .commands
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["retry", "arm"]);
    let message = &found[0].comment.as_ref().unwrap().message;
    assert!(
        message.ends_with("bionicbb:retry\n\nNit.\nbionicbb:arm"),
        "{message}"
    );
    // Without the comments read, the message alone carries nothing.
    assert!(events(&c, T, T, &Comments::new(), &gerrit()).is_empty());
}

#[test]
fn a_command_on_an_older_patch_set_is_still_found_for_the_policy_to_judge() {
    let c = change(
        T - 86_400,
        vec![message("m1", 1, sam(), T, "Patch Set 1:\n\nbionicbb:retry")],
    );
    let found = events(&c, T, T, &Comments::new(), &gerrit());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].event.patch_set, 1);
    assert!(found[0].event.votes.is_empty());
}

#[test]
fn comment_count_lines() {
    for yes in ["(1 comment)", "  (12 comments) ", "(0 comments)"] {
        assert!(counts_comments(yes), "{yes}");
    }
    for no in [
        "(comment)",
        "(1 remark)",
        "1 comment",
        "(x comments)",
        "(1 comment) and more",
        "",
    ] {
        assert!(!counts_comments(no), "{no}");
    }
}
