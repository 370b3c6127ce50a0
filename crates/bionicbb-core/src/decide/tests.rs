use super::*;
use crate::event::{ChangeKind, CommentFacts, UploadFacts, Verdict, Vote};
use std::path::Path;

const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";

fn config() -> Config {
    Config::parse(
        r#"
        state_dir = "/tmp/bionicbb-test"
        [gerrit]
        url = "https://gerrit.example.org/"
        bot_email = "bionicbb@example.com"
        [jenkins]
        url = "https://jenkins.example.org/"
        user = "bionicbb"
        api_token = "token"
        [build_listener]
        secret = "s3cret"
        [jobs]
        default = "bionic-presubmit"
        clean = "clean-bionic-presubmit"
        [jobs.roles]
        bionic-presubmit = "verify"
        clean-bionic-presubmit = "clean"
        [policy]
        trusted_committer_domains = ["example.com"]
        trusted_commenter_domains = ["example.com"]
        trusted_commenters = ["friend@elsewhere.org"]
        "#,
        Path::new("test.toml"),
    )
    .expect("test config")
}

fn event(message_type: MessageType, patch_set: u32) -> GerritEvent {
    GerritEvent {
        message_type,
        change_id: KEY.to_string(),
        change_number: Some(123456),
        patch_set,
        project: "platform/bionic".into(),
        branch: "master".into(),
        owner: Some("Dana Dev <dana@example.com>".into()),
        author: Some("Sam Reviewer".into()),
        comment_date: Some(1_552_582_931),
        date: Some(1_552_582_931),
        votes: vec![],
        commands: vec![],
    }
}

fn facts(current: u32) -> ChangeFacts {
    ChangeFacts {
        number: 123456,
        project: "platform/bionic".into(),
        branch: "master".into(),
        status: ChangeStatus::New,
        current_patch_set: current,
        patch_set_ref: Some(format!("refs/changes/56/123456/{current}")),
        committer_email: Some("dana@example.com".into()),
        files: vec!["libc/bionic/strtod.cpp".into()],
        comment: None,
        subject: "Fix strtod rounding for denormals".into(),
        owner: Some("Dana Dev".into()),
        upload: UploadFacts::default(),
        vouch: None,
    }
}

fn comment_by(email: &str) -> Option<CommentFacts> {
    Some(CommentFacts {
        message_id: "Zq3-Kd".into(),
        author_account_id: Some(1000097),
        author_email: Some(email.into()),
        author_name: Some("Sam Reviewer".into()),
        message: "Patch Set 2:\n\nbionicbb:retry".into(),
    })
}

fn cmd(name: &str) -> Command {
    Command {
        name: name.into(),
        args: vec![],
    }
}

fn only_skip(decisions: &[Decision]) -> &str {
    match decisions {
        [Decision::Skip { reason }] => reason,
        other => panic!("expected one skip, got {other:?}"),
    }
}

#[test]
fn new_patch_set_builds_with_the_original_parameters() {
    let d = decide(
        &event(MessageType::NewPatchSet, 2),
        Some(&facts(2)),
        &config(),
    );
    let [
        Decision::Build { job, params, .. },
        Decision::CancelSuperseded {
            change_number: 123456,
            below: Some(2),
        },
    ] = d.as_slice()
    else {
        panic!("{d:?}")
    };
    assert_eq!(job, "bionic-presubmit");
    assert_eq!(params["REF"], "refs/changes/56/123456/2");
    assert_eq!(params["CHANGE_ID"], KEY);
    assert_eq!(params["PROJECT"], "bionic");
    assert_eq!(params["CHANGE_NUMBER"], "123456");
    assert_eq!(params["PATCHSET"], "2");
    assert!(!params.contains_key("LUNCH_TARGET"));
    let d = decide(
        &event(MessageType::NewChange, 2),
        Some(&facts(2)),
        &config(),
    );
    assert!(matches!(
        d.as_slice(),
        [Decision::Build { .. }, Decision::CancelSuperseded { .. }]
    ));
}

#[test]
fn superseded_patch_sets_and_closed_changes_are_skipped() {
    let d = decide(
        &event(MessageType::NewPatchSet, 2),
        Some(&facts(3)),
        &config(),
    );
    assert!(only_skip(&d).contains("superseded by patch set 3"));
    let mut merged = facts(2);
    merged.status = ChangeStatus::Merged;
    let d = decide(
        &event(MessageType::NewPatchSet, 2),
        Some(&merged),
        &config(),
    );
    assert!(only_skip(&d).contains("merged"));
    let mut abandoned = facts(2);
    abandoned.status = ChangeStatus::Abandoned;
    let d = decide(
        &event(MessageType::NewPatchSet, 2),
        Some(&abandoned),
        &config(),
    );
    assert!(only_skip(&d).contains("abandoned"));
}

#[test]
fn forged_mails_do_nothing() {
    let d = decide(&event(MessageType::NewPatchSet, 2), None, &config());
    assert!(only_skip(&d).contains("forged"));
    let mut elsewhere = facts(2);
    elsewhere.project = "platform/build".into();
    let d = decide(
        &event(MessageType::NewPatchSet, 2),
        Some(&elsewhere),
        &config(),
    );
    assert!(only_skip(&d).contains("platform/build"));
    let mut no_ps = facts(2);
    no_ps.patch_set_ref = None;
    let d = decide(&event(MessageType::NewPatchSet, 2), Some(&no_ps), &config());
    assert!(only_skip(&d).contains("no patch set 2"));
}

#[test]
fn skip_policy_applies() {
    let mut c = config();
    c.review.explain_skips = false;
    let mut f = facts(2);
    f.committer_email = Some("x@example.com.evil.org".into());
    let d = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &c);
    assert!(only_skip(&d).contains("not in a trusted domain"));
    let mut f = facts(2);
    f.files.push("libc/CleanSpec.mk".into());
    let d = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &c);
    assert!(only_skip(&d).contains("CleanSpec.mk"));
    let mut f = facts(2);
    f.files.push("tools/bionicbb/gmail_listener.py".into());
    let d = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &c);
    assert!(only_skip(&d).contains("tools/bionicbb"));
    let mut f = facts(2);
    f.project = "bionic".into();
    let mut e = event(MessageType::NewPatchSet, 2);
    e.project = "bionic".into();
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("single component"));
}

#[test]
fn other_types_are_skipped() {
    for t in [
        "merged",
        "abandon",
        "restore",
        "revert",
        "merge-failed",
        "deleteVote",
        "setassignee",
    ] {
        let d = decide(
            &event(MessageType::from(t.to_string()), 2),
            Some(&facts(2)),
            &config(),
        );
        assert!(only_skip(&d).starts_with(t), "{t}: {d:?}");
    }
}

#[test]
fn trusted_commands_run_in_order() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("retry"), cmd("clean"), cmd("arm"), cmd("retry")];
    let mut f = facts(2);
    f.comment = comment_by("sam@example.com");
    let mut c = config();
    c.review.acknowledge_commands = false;
    let d = decide(&e, Some(&f), &c);
    assert_eq!(d.len(), 4, "{d:?}");
    assert!(matches!(&d[0], Decision::Build { params, reason, .. }
        if !params.contains_key("LUNCH_TARGET") && reason == "bionicbb:retry by sam@example.com"));
    assert!(
        matches!(&d[1], Decision::Clean { job, params } if job == "clean-bionic-presubmit" && params["CHANGE_NUMBER"] == "123456")
    );
    assert!(
        matches!(&d[2], Decision::Build { params, .. } if params["LUNCH_TARGET"] == "aosp_arm-eng")
    );
    assert_eq!(
        d[3],
        Decision::CancelSuperseded {
            change_number: 123456,
            below: Some(2)
        },
        "one cancel, after the builds, of the older patch sets only"
    );
    f.comment = comment_by("friend@elsewhere.org");
    assert_eq!(decide(&e, Some(&f), &c).len(), 4);
}

#[test]
fn what_a_command_starts_is_acknowledged_right_after_it_with_the_gerrit_name() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("retry"), cmd("clean"), cmd("arm"), cmd("help")];
    let mut f = facts(2);
    f.comment = comment_by("sam@example.com");
    let d = decide(&e, Some(&f), &config());
    let ack = |command: &str| Decision::Acknowledge {
        change_number: 123456,
        patch_set: 2,
        command: command.into(),
        by: "Sam Reviewer".into(),
    };
    assert!(matches!(&d[0], Decision::Reply { .. }), "help first: {d:?}");
    assert!(matches!(&d[1], Decision::Build { .. }), "{d:?}");
    assert_eq!(d[2], ack("retry"));
    assert!(matches!(&d[3], Decision::Clean { .. }), "{d:?}");
    assert_eq!(d[4], ack("clean"));
    assert!(matches!(&d[5], Decision::Build { .. }), "{d:?}");
    assert_eq!(d[6], ack("arm"));
    assert!(matches!(&d[7], Decision::CancelSuperseded { .. }), "{d:?}");
    assert_eq!(d.len(), 8, "help starts nothing, so no ack: {d:?}");
    // Without a name on Gerrit, the e-mail.
    f.comment.as_mut().unwrap().author_name = None;
    e.commands = vec![cmd("retry")];
    let d = decide(&e, Some(&f), &config());
    assert!(
        matches!(&d[1], Decision::Acknowledge { by, .. } if by == "sam@example.com"),
        "{d:?}"
    );
    // Nothing started (no clean job), nothing acknowledged.
    let mut c = config();
    c.jobs.clean = None;
    e.commands = vec![cmd("clean")];
    let d = decide(&e, Some(&f), &c);
    assert!(only_skip(&d).contains("no clean job"), "{d:?}");
}

#[test]
fn automatic_builds_are_never_acknowledged() {
    let d = decide(
        &event(MessageType::NewPatchSet, 2),
        Some(&facts(2)),
        &config(),
    );
    assert!(
        !d.iter().any(|d| matches!(d, Decision::Acknowledge { .. })),
        "{d:?}"
    );
}

#[test]
fn why_carries_what_the_policy_decides_now_about_an_upload_of_the_patch_set() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("why")];
    let mut f = facts(2);
    f.comment = comment_by("sam@example.com");
    f.files.push("libc/CleanSpec.mk".into());
    let d = decide(&e, Some(&f), &config());
    let [
        Decision::Why {
            change_number: 123456,
            patch_set: 2,
            automatic,
        },
    ] = d.as_slice()
    else {
        panic!("one why, and nothing built: {d:?}")
    };
    assert!(only_skip(automatic).contains("libc/CleanSpec.mk"), "{d:?}");
    // An untrusted committer: the rule names the e-mail.
    f.files.pop();
    f.committer_email = Some("dana@evil.org".into());
    let d = decide(&e, Some(&f), &config());
    let [Decision::Why { automatic, .. }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert!(
        only_skip(automatic).contains("committer dana@evil.org"),
        "{d:?}"
    );
    // A buildable patch set: the build it would get (no cancel: why
    // starts nothing).
    f.committer_email = Some("dana@example.com".into());
    let d = decide(&e, Some(&f), &config());
    let [Decision::Why { automatic, .. }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert!(
        matches!(automatic.as_slice(), [Decision::Build { reason, .. }] if reason == "new patch set"),
        "{d:?}"
    );
}

#[test]
fn why_is_answered_on_a_closed_change_but_never_for_an_untrusted_commenter() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("why"), cmd("help")];
    let mut f = facts(2);
    f.status = ChangeStatus::Merged;
    f.comment = comment_by("sam@example.com");
    let d = decide(&e, Some(&f), &config());
    assert!(matches!(&d[0], Decision::Reply { .. }), "{d:?}");
    assert!(
        matches!(&d[1], Decision::Why { automatic, .. } if only_skip(automatic).contains("merged")),
        "{d:?}"
    );
    assert_eq!(d.len(), 2, "{d:?}");
    f.comment = comment_by("stranger@evil.org");
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("not a trusted commenter"), "{d:?}");
}

#[test]
fn untrusted_or_unconfirmed_commenters_run_nothing() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("retry")];
    let mut f = facts(2);
    f.comment = comment_by("stranger@evil.org");
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("stranger@evil.org"));
    f.comment = None;
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("no comment"));
    f.comment = comment_by("bionicbb@example.com");
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("bot's own"));
}

#[test]
fn unknown_commands_get_one_reply() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("rebuild"), cmd("frobnicate")];
    let mut f = facts(2);
    f.comment = comment_by("sam@example.com");
    let d = decide(&e, Some(&f), &config());
    let [
        Decision::Reply {
            change_number: 123456,
            patch_set: 2,
            message,
        },
    ] = d.as_slice()
    else {
        panic!("{d:?}")
    };
    assert!(
        message.contains("rebuild") && message.contains("frobnicate"),
        "{message}"
    );
    assert!(
        message.contains("retry") && message.contains("clean"),
        "{message}"
    );
    assert!(!message.contains("did you mean"), "{message}");
    e.commands = vec![cmd("rety")];
    let d = decide(&e, Some(&f), &config());
    let [Decision::Reply { message, .. }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert!(
        message.starts_with("Unknown command bionicbb:rety (did you mean bionicbb:retry?)."),
        "{message}"
    );
}

#[test]
fn help_is_answered_in_the_one_reply_even_on_a_closed_change() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("help"), cmd("rety")];
    let mut f = facts(2);
    f.status = ChangeStatus::Merged;
    f.comment = comment_by("sam@example.com");
    let d = decide(&e, Some(&f), &config());
    let [Decision::Reply { message, .. }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert!(
        message.starts_with("Unknown command bionicbb:rety"),
        "{message}"
    );
    assert!(
        message.contains("\n\nbionicbb runs the commands of trusted accounts"),
        "{message}"
    );
    assert!(message.contains("bionicbb:arm - build this patch set again for aosp_arm-eng"));
    // The test configuration's build-listener is on localhost: no link.
    assert!(!message.contains("status?change="), "{message}");
    // From a stranger, nothing.
    f.comment = comment_by("stranger@evil.org");
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("not a trusted commenter"));
}

#[test]
fn the_status_link_is_given_only_for_a_reachable_build_listener() {
    let with = |url: &str| {
        let mut c = config();
        c.build_listener.public_url = url::Url::parse(url).unwrap();
        status_link(&c, 123456)
    };
    assert_eq!(
        with("https://bb.example.org/").as_deref(),
        Some("https://bb.example.org/status?change=123456")
    );
    assert_eq!(
        with("https://bb.example.org/bionicbb").as_deref(),
        Some("https://bb.example.org/bionicbb/status?change=123456")
    );
    assert_eq!(
        with("http://10.1.2.3:8080/").as_deref(),
        Some("http://10.1.2.3:8080/status?change=123456")
    );
    for local in [
        "http://127.0.0.1:8080/",
        "http://localhost:8080/",
        "http://[::1]:8080/",
        "http://0.0.0.0:8080/",
        "http://169.254.1.1/",
        "http://bb.localhost/",
    ] {
        assert_eq!(with(local), None, "{local}");
    }
}

#[test]
fn human_verified_plus_one_drops_the_rejection() {
    let mut e = event(MessageType::Comment, 2);
    e.votes = vec![Vote {
        label: "Verified".into(),
        value: 1,
    }];
    let mut f = facts(3);
    f.comment = comment_by("sam@example.com");
    let d = decide(&e, Some(&f), &config());
    assert_eq!(
        d,
        vec![Decision::DropRejection {
            change_number: 123456,
            patch_set: 2
        }]
    );
    e.votes = vec![Vote {
        label: "Code-Review".into(),
        value: 2,
    }];
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("without votes or commands"));
}

#[test]
fn commands_on_a_superseded_patch_set_do_not_build() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("retry")];
    let mut f = facts(3);
    f.comment = comment_by("sam@example.com");
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("superseded"));
}

fn without_cancelling() -> Config {
    let mut config = config();
    config.jobs.cancel_superseded = false;
    config
}

#[test]
fn a_build_cancels_the_older_patch_sets_and_nothing_else_does() {
    let d = decide(
        &event(MessageType::NewPatchSet, 3),
        Some(&facts(3)),
        &config(),
    );
    assert_eq!(
        d.last(),
        Some(&Decision::CancelSuperseded {
            change_number: 123456,
            below: Some(3)
        })
    );
    // Nothing built, nothing cancelled: a superseded patch set, a
    // skipped one, a comment without commands, a clean.
    let superseded = decide(
        &event(MessageType::NewPatchSet, 2),
        Some(&facts(3)),
        &config(),
    );
    let mut untrusted = facts(3);
    untrusted.committer_email = Some("x@evil.org".into());
    let skipped = decide(
        &event(MessageType::NewPatchSet, 3),
        Some(&untrusted),
        &config(),
    );
    let mut e = event(MessageType::Comment, 3);
    e.commands = vec![cmd("clean")];
    let mut f = facts(3);
    f.comment = comment_by("sam@example.com");
    let clean = decide(&e, Some(&f), &config());
    for d in [superseded, skipped, clean] {
        assert!(
            !d.iter()
                .any(|d| matches!(d, Decision::CancelSuperseded { .. })),
            "{d:?}"
        );
    }
    // Turned off: the build alone.
    let d = decide(
        &event(MessageType::NewPatchSet, 3),
        Some(&facts(3)),
        &without_cancelling(),
    );
    assert!(matches!(d.as_slice(), [Decision::Build { .. }]), "{d:?}");
}

#[test]
fn a_closed_change_cancels_all_its_builds_once_gerrit_confirms_it() {
    for (kind, status) in [
        ("merged", ChangeStatus::Merged),
        ("abandon", ChangeStatus::Abandoned),
    ] {
        let e = event(MessageType::from(kind.to_string()), 2);
        let mut closed = facts(2);
        closed.status = status;
        assert_eq!(
            decide(&e, Some(&closed), &config()),
            vec![Decision::CancelSuperseded {
                change_number: 123456,
                below: None
            }],
            "{kind}"
        );
        // Nothing in a mail is trusted: Gerrit not asked (or not
        // knowing the change), the change still open (restored since),
        // another branch, or cancelling off: the old skip.
        let mut elsewhere = closed.clone();
        elsewhere.branch = "stable".into();
        let open = facts(2);
        for (facts, config) in [
            (None, config()),
            (Some(&open), config()),
            (Some(&elsewhere), config()),
            (Some(&closed), without_cancelling()),
        ] {
            let d = decide(&e, facts, &config);
            assert_eq!(only_skip(&d), format!("{kind}: nothing to do"), "{facts:?}");
        }
    }
}

#[test]
fn project_parameter_drops_the_first_component() {
    assert_eq!(
        project_parameter("platform/external/jemalloc"),
        Some("external/jemalloc")
    );
    assert_eq!(project_parameter("platform/bionic"), Some("bionic"));
    assert_eq!(project_parameter("bionic"), None);
}

/// Facts of patch set 2 of `kind`, after the bot's `previous` verdict
/// on patch set 1, with `on_it` the bot's vote Gerrit shows on 2.
fn upload(kind: ChangeKind, previous: Option<i32>, on_it: Option<i32>) -> ChangeFacts {
    let mut f = facts(2);
    f.upload = UploadFacts {
        kind,
        previous_verdict: previous.map(|value| Verdict {
            patch_set: 1,
            value,
        }),
        bot_vote: on_it,
        ..UploadFacts::default()
    };
    f
}

#[test]
fn a_skipped_kind_carries_the_previous_verdict_over() {
    let e = event(MessageType::NewPatchSet, 2);
    let d = decide(
        &e,
        Some(&upload(ChangeKind::NoCodeChange, Some(1), None)),
        &config(),
    );
    assert_eq!(
        d,
        vec![Decision::CarryOver {
            change_number: 123456,
            patch_set: 2,
            from_patch_set: 1,
            label: "Verified".into(),
            value: 1,
            message: "Verified+1 carried over from patch set 1: commit message only \
                      (NO_CODE_CHANGE)."
                .into(),
        }]
    );
    let d = decide(
        &e,
        Some(&upload(ChangeKind::NoChange, Some(-1), None)),
        &config(),
    );
    let [Decision::CarryOver { value, message, .. }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!(*value, -1);
    assert!(message.ends_with("bionicbb:retry"), "{message}");
    // newchange is an automatic build too.
    let e = event(MessageType::NewChange, 2);
    let d = decide(
        &e,
        Some(&upload(ChangeKind::NoChange, Some(1), None)),
        &config(),
    );
    assert!(
        matches!(d.as_slice(), [Decision::CarryOver { .. }]),
        "{d:?}"
    );
}

/// The decisions without the cancel of superseded builds a build
/// brings along (rule 5).
fn but_cancels(d: &[Decision]) -> Vec<&Decision> {
    d.iter()
        .filter(|d| !matches!(d, Decision::CancelSuperseded { .. }))
        .collect()
}

#[test]
fn kinds_outside_the_list_and_patch_sets_without_a_verdict_build() {
    let e = event(MessageType::NewPatchSet, 2);
    for kind in [
        ChangeKind::Rework,
        ChangeKind::TrivialRebase,
        ChangeKind::MergeFirstParentUpdate,
        ChangeKind::TrivialRebaseWithMessageUpdate,
    ] {
        let d = decide(&e, Some(&upload(kind, Some(1), None)), &config());
        assert!(
            matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
            "{kind}: {d:?}"
        );
    }
    // Never built, still building, or its vote removed: no verdict.
    let d = decide(
        &e,
        Some(&upload(ChangeKind::NoCodeChange, None, None)),
        &config(),
    );
    assert!(
        matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
        "{d:?}"
    );
    // An empty list builds every kind.
    let mut c = config();
    c.policy.skip_kinds.clear();
    let d = decide(&e, Some(&upload(ChangeKind::NoChange, Some(1), None)), &c);
    assert!(
        matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
        "{d:?}"
    );
}

#[test]
fn a_verdict_gerrit_already_shows_is_not_voted_again() {
    let e = event(MessageType::NewPatchSet, 2);
    let copied = upload(ChangeKind::NoCodeChange, Some(1), Some(1));
    let reason = only_skip(&decide(&e, Some(&copied), &config())).to_string();
    assert!(
        reason.contains("already shows the bot's Verified+1"),
        "{reason}"
    );
    assert!(reason.contains("copied from patch set 1"), "{reason}");
    let other = upload(ChangeKind::NoCodeChange, Some(1), Some(-1));
    let reason = only_skip(&decide(&e, Some(&other), &config())).to_string();
    assert!(
        reason.contains("already has the bot's Verified-1"),
        "{reason}"
    );
}

#[test]
fn work_in_progress_and_private_changes_follow_the_flags() {
    let e = event(MessageType::NewPatchSet, 2);
    let mut wip = facts(2);
    wip.upload.work_in_progress = true;
    let mut private = facts(2);
    private.upload.is_private = true;
    // The defaults build both.
    for f in [&wip, &private] {
        let d = decide(&e, Some(f), &config());
        assert!(
            matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
            "{d:?}"
        );
    }
    let mut c = config();
    c.policy.build_wip = false;
    c.policy.build_private = false;
    assert_eq!(
        only_skip(&decide(&e, Some(&wip), &c)),
        "change 123456 is work in progress"
    );
    assert_eq!(
        only_skip(&decide(&e, Some(&private), &c)),
        "change 123456 is private"
    );
    // The closed, superseded and trust checks come first.
    let mut superseded = wip.clone();
    superseded.current_patch_set = 3;
    assert!(only_skip(&decide(&e, Some(&superseded), &c)).contains("superseded"));
}

#[test]
fn commands_build_whatever_the_kind_and_state() {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd("retry")];
    let mut f = upload(ChangeKind::NoCodeChange, Some(1), None);
    f.upload.work_in_progress = true;
    f.upload.is_private = true;
    f.comment = comment_by("sam@example.com");
    let mut c = config();
    c.policy.build_wip = false;
    c.policy.build_private = false;
    let d = decide(&e, Some(&f), &c);
    assert!(
        matches!(
            but_cancels(&d).as_slice(),
            [Decision::Build { .. }, Decision::Acknowledge { .. }]
        ),
        "{d:?}"
    );
    // The file and committer rules still hold.
    f.files.push("libc/CleanSpec.mk".into());
    assert!(only_skip(&decide(&e, Some(&f), &c)).contains("CleanSpec.mk"));
}

mod vouch;
