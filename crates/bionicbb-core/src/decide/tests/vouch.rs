//! The rules of `bionicbb:ok-to-test` and of explained skips.

use super::*;
use crate::event::Vouch;

fn untrusted(current: u32) -> ChangeFacts {
    let mut f = facts(current);
    f.committer_email = Some("x@outsider.org".into());
    f
}

fn sams_vouch() -> Option<Vouch> {
    Some(Vouch {
        message_id: "Ok-1".into(),
        by_email: "sam@example.com".into(),
        by_name: Some("Sam Reviewer".into()),
    })
}

fn comment(kind: &str, by: &str) -> (GerritEvent, Option<CommentFacts>) {
    let mut e = event(MessageType::Comment, 2);
    e.commands = vec![cmd(kind)];
    (e, comment_by(by))
}

/// The decisions but the cancel of older builds.
/// The decisions but the cancel of older builds and the acknowledgement of
/// the command (both tested on their own).
fn effects(d: &[Decision]) -> Vec<&Decision> {
    d.iter()
        .filter(|d| {
            !matches!(
                d,
                Decision::CancelSuperseded { .. } | Decision::Acknowledge { .. }
            )
        })
        .collect()
}

#[test]
fn a_vouched_patch_set_of_an_untrusted_committer_builds_once_per_patch_set() {
    let mut f = untrusted(2);
    f.vouch = sams_vouch();
    let d = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &config());
    let [vouch, build] = effects(&d)[..] else {
        panic!("{d:?}");
    };
    assert_eq!(
        vouch,
        &Decision::Vouch {
            change_number: 123456,
            patch_set: 2,
            by_name: Some("Sam Reviewer".into()),
            by_email: "sam@example.com".into(),
            message_id: "Ok-1".into(),
        }
    );
    assert!(
        matches!(build, Decision::Build { per_patch_set: true, params, .. } if params["PATCHSET"] == "2"),
        "{build:?}"
    );
}

#[test]
fn ok_to_test_builds_the_patch_set_as_its_automatic_build_does() {
    let (e, comment) = comment("ok-to-test", "sam@example.com");
    let mut f = untrusted(2);
    f.comment = comment;
    f.vouch = sams_vouch();
    let d = decide(&e, Some(&f), &config());
    let automatic = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &config());
    let [
        Decision::Vouch { .. },
        Decision::Build {
            job,
            params,
            reason,
            per_patch_set: true,
        },
    ] = effects(&d)[..]
    else {
        panic!("{d:?}");
    };
    let [
        _,
        Decision::Build {
            job: j2,
            params: p2,
            ..
        },
    ] = effects(&automatic)[..]
    else {
        panic!("{automatic:?}");
    };
    assert_eq!(
        (job, params),
        (j2, p2),
        "the same build, so the same effect"
    );
    assert!(reason.contains("vouched for by Sam Reviewer"), "{reason}");
}

#[test]
fn ok_to_test_on_a_trusted_committers_patch_set_just_builds_it_once() {
    let (e, comment) = comment("ok-to-test", "sam@example.com");
    let mut f = facts(2);
    f.comment = comment;
    f.vouch = sams_vouch();
    let d = decide(&e, Some(&f), &config());
    let [
        Decision::Build {
            reason,
            per_patch_set: true,
            ..
        },
    ] = effects(&d)[..]
    else {
        panic!("{d:?}");
    };
    assert!(reason.contains("nothing to vouch for"), "{reason}");
}

#[test]
fn a_vouch_lifts_the_committer_rule_only() {
    let mut f = untrusted(2);
    f.vouch = sams_vouch();
    f.files.push("libc/CleanSpec.mk".into());
    let d = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &config());
    assert!(
        d[0] == skip("the change touches libc/CleanSpec.mk (CleanSpec.mk)".into()),
        "{d:?}"
    );
    assert!(
        !d.iter()
            .any(|d| matches!(d, Decision::Build { .. } | Decision::Vouch { .. }))
    );
    // A vouch on another patch set is no vouch for this one: the facts
    // carry only this patch set's, so patch set 3 stands unvouched.
    let d = decide(
        &event(MessageType::NewPatchSet, 3),
        Some(&untrusted(3)),
        &config(),
    );
    assert!(
        d[0] == skip("committer x@outsider.org is not in a trusted domain".into()),
        "{d:?}"
    );
}

#[test]
fn retry_builds_a_vouched_patch_set_and_not_an_unvouched_one() {
    let (e, comment) = comment("retry", "sam@example.com");
    let mut f = untrusted(2);
    f.comment = comment;
    let d = decide(&e, Some(&f), &config());
    assert_eq!(
        only_skip(&d),
        "commands not run: committer x@outsider.org is not in a trusted domain"
    );
    f.vouch = sams_vouch();
    let d = decide(&e, Some(&f), &config());
    assert!(
        matches!(
            effects(&d)[..],
            [
                Decision::Vouch { .. },
                Decision::Build {
                    per_patch_set: false,
                    ..
                }
            ]
        ),
        "{d:?}"
    );
}

#[test]
fn an_untrusted_ok_to_test_vouches_for_nothing() {
    let (e, comment) = comment("ok-to-test", "stranger@evil.org");
    let mut f = untrusted(2);
    f.comment = comment;
    let d = decide(&e, Some(&f), &config());
    assert!(only_skip(&d).contains("not a trusted commenter"), "{d:?}");
}

fn explained(d: &[Decision]) -> Option<&str> {
    d.iter().find_map(|d| match d {
        Decision::ExplainSkip {
            change_number: 123456,
            patch_set: 2,
            message,
        } => Some(message.as_str()),
        _ => None,
    })
}

#[test]
fn an_actionable_skip_of_a_new_patch_set_is_explained() {
    let e = event(MessageType::NewPatchSet, 2);
    let d = decide(&e, Some(&untrusted(2)), &config());
    let message = explained(&d).expect("explained");
    assert!(
        message.contains("committer x@outsider.org is not in a trusted domain"),
        "{message}"
    );
    assert!(message.contains("bionicbb:ok-to-test"), "{message}");
    for (file, rule) in [
        ("libc/CleanSpec.mk", "a file named CleanSpec.mk"),
        ("tools/bionicbb/x.py", "a file under tools/bionicbb/"),
    ] {
        let mut f = facts(2);
        f.files.push(file.into());
        let d = decide(&e, Some(&f), &config());
        let message = explained(&d).expect("explained");
        assert!(
            message.contains(&format!("touches {file} ({rule}")),
            "{message}"
        );
        assert!(message.contains("cannot vouch"), "{message}");
    }
}

#[test]
fn other_skips_and_commands_stay_silent() {
    let e = event(MessageType::NewPatchSet, 2);
    let mut off = config();
    off.review.explain_skips = false;
    let mut superseded = untrusted(3);
    superseded.current_patch_set = 3;
    let mut closed = untrusted(2);
    closed.status = ChangeStatus::Abandoned;
    let mut wip = untrusted(2);
    wip.upload.work_in_progress = true;
    let mut quiet = config();
    quiet.policy.build_wip = false;
    let mut no_committer = facts(2);
    no_committer.committer_email = None;
    let (command, comment) = comment("retry", "sam@example.com");
    let mut commented = untrusted(2);
    commented.comment = comment;
    for (e, f, c) in [
        (&e, untrusted(2), &off),
        (&e, superseded, &config()),
        (&e, closed, &config()),
        (&e, wip, &quiet),
        (&e, no_committer, &config()),
        (&command, commented, &config()),
    ] {
        let d = decide(e, Some(&f), c);
        assert!(
            !d.iter().any(|d| matches!(d, Decision::ExplainSkip { .. })),
            "{f:?}: {d:?}"
        );
        assert!(!d.is_empty());
    }
}
