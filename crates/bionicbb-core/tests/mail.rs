//! The mail parser over real-format Gerrit notification e-mails
//! (`tests/data/emails/` at the repository root): the five reference samples
//! and one fixture per case of the wire-format notes.

use bionicbb_core::config::CommandsConfig;
use bionicbb_core::event::{Command, MessageType, Vote};
use bionicbb_core::mail::{self, MailError, ParsedMail};
use serde_json::json;

const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/emails");

fn raw(name: &str) -> Vec<u8> {
    let path = format!("{DIR}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str) -> ParsedMail {
    mail::parse(&raw(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn err(name: &str) -> MailError {
    match mail::parse(&raw(name)) {
        Ok(p) => panic!("{name}: parsed as {:?}", p.event),
        Err(e) => e,
    }
}

fn vote(label: &str, value: i32) -> Vote {
    Vote {
        label: label.into(),
        value,
    }
}

fn cmd(name: &str, args: &[&str]) -> Command {
    Command {
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

/// Identity every fixture about the common change shares.
fn assert_common(p: &ParsedMail, patch_set: u32) {
    assert_eq!(p.event.change_id, KEY);
    assert_eq!(p.event.patch_set, patch_set);
    assert_eq!(p.event.project, "platform/bionic");
    assert_eq!(p.event.branch, "master");
}

// ---------------------------------------------------------------- samples

#[test]
fn sample_01_newchange_2x() {
    let p = parse("01-newchange-2.x.eml");
    assert_eq!(p.event.message_type, MessageType::NewChange);
    assert_common(&p, 1);
    assert_eq!(p.event.change_number, None);
    assert_eq!(
        p.event.owner.as_deref(),
        Some("Dana Dev <dana@example.com>")
    );
    assert_eq!(p.event.author.as_deref(), Some("Dana Dev"));
    assert_eq!(p.event.date, Some(1_456_172_445));
    assert_eq!(p.event.comment_date, None);
    // The commit message's `Change-Id:` trailer is not a footer, and a
    // newchange carries no commands or votes.
    assert!(p.event.commands.is_empty());
    assert!(p.event.votes.is_empty());
    assert_eq!(
        p.message_id.as_deref(),
        Some("gerrit.1456172445000.I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b@gerrit.example.org")
    );
    assert_eq!(p.from.as_deref(), Some("gerrit@example.org"));
    assert_eq!(
        p.subject.as_deref(),
        Some("Change in platform/bionic[master]: Fix strtod rounding for denormals")
    );
}

#[test]
fn sample_02_newpatchset_2x() {
    let p = parse("02-newpatchset-2.x.eml");
    assert_eq!(p.event.message_type, MessageType::NewPatchSet);
    assert_common(&p, 2);
    assert!(p.event.commands.is_empty());
}

#[test]
fn sample_04_comment_retry_2x() {
    let p = parse("04-comment-retry-2.x.eml");
    assert_eq!(p.event.message_type, MessageType::Comment);
    assert_common(&p, 2);
    assert_eq!(p.event.commands, [cmd("retry", &[])]);
    assert!(p.event.votes.is_empty());
    assert_eq!(p.event.author.as_deref(), Some("Dana Dev"));
}

#[test]
fn sample_07_merged_2x() {
    let p = parse("07-merged-2.x.eml");
    assert_eq!(p.event.message_type, MessageType::Merged);
    assert_common(&p, 3);
    assert!(p.event.commands.is_empty());
    assert!(p.event.votes.is_empty());
    assert_eq!(p.event.author.as_deref(), Some("Sam Reviewer"));
}

#[test]
fn sample_09_comment_verified_multipart_216() {
    let p = parse("09-comment-verified-multipart-2.16.eml");
    assert_eq!(p.event.message_type, MessageType::Comment);
    assert_common(&p, 3);
    assert_eq!(p.event.change_number, Some(123_456));
    assert_eq!(p.event.votes, [vote("Verified", 1)]);
    assert!(p.event.commands.is_empty());
    assert_eq!(p.event.comment_date, Some(1_552_582_931));
    assert_eq!(p.event.author.as_deref(), Some("Sam Reviewer"));
    let footers = mail::read_footers(&raw("09-comment-verified-multipart-2.16.eml")).unwrap();
    assert_eq!(footers.all("Gerrit-HasLabels"), ["Yes"]);
    assert_eq!(footers.all("Gerrit-Reviewer").len(), 3);
}

// ---------------------------------------------------------------- own fixtures

#[test]
fn patchset_level_command_in_3x_multipart_qp() {
    let p = parse("10-comment-patchset-level-3.x-qp.eml");
    assert_eq!(p.event.message_type, MessageType::Comment);
    assert_common(&p, 4);
    assert_eq!(p.event.change_number, Some(123_456));
    assert_eq!(p.event.votes, [vote("Code-Review", 1), vote("Verified", 1)]);
    assert_eq!(p.event.commands, [cmd("retry", &[])]);
    assert_eq!(p.event.comment_date, Some(1_678_813_331));
    assert_eq!(p.event.author.as_deref(), Some("Sam Reviewer"));
    assert!(
        p.message_id
            .as_deref()
            .unwrap()
            .ends_with("-HTML@gerrit.example.org")
    );
}

#[test]
fn message_type_last_and_has_labels_spelling_216() {
    let name = "11-comment-clean-text-2.16.eml";
    let p = parse(name);
    assert_eq!(p.event.message_type, MessageType::Comment);
    // `Gerrit-Branch: refs/heads/master` is shortened.
    assert_common(&p, 3);
    assert_eq!(p.event.commands, [cmd("clean", &[])]);
    assert!(p.event.votes.is_empty());
    assert_eq!(p.event.comment_date, Some(1_552_667_400));
    assert_eq!(p.event.date, Some(1_552_667_400));
    let footers = mail::read_footers(&raw(name)).unwrap();
    assert_eq!(footers.all("Gerrit-Has-Labels"), ["No"]);
    assert_eq!(footers.all("HasLabels"), ["No"]);
}

#[test]
fn oldest_template_change_id_and_patch_set_id() {
    let p = parse("12-comment-oldest-2.1.eml");
    assert_eq!(p.event.message_type, MessageType::Comment);
    assert_common(&p, 3);
    // The 2.1 `X-Gerrit-ChangeId` header is the change number.
    assert_eq!(p.event.change_number, Some(123_456));
    assert_eq!(p.event.commands, [cmd("clean", &[])]);
    assert_eq!(p.event.date, Some(1_287_709_473));
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn html_only_mail_with_hidden_footer_divs() {
    let p = parse("13-comment-html-only-3.x.eml");
    assert_eq!(p.event.message_type, MessageType::Comment);
    assert_common(&p, 4);
    assert_eq!(p.event.change_number, Some(123_456));
    assert_eq!(
        p.event.owner.as_deref(),
        Some("Dana Dev <dana@example.com>")
    );
    assert_eq!(p.event.comment_date, Some(1_678_867_965));
    assert_eq!(p.event.votes, [vote("Verified", 1)]);
    // Not the mid-line mention, not the code shown next to the inline
    // comment, not the blockquoted parent.
    assert_eq!(p.event.commands, [cmd("retry", &[])]);
    let footers = mail::read_footers(&raw("13-comment-html-only-3.x.eml")).unwrap();
    assert_eq!(
        footers.all("Comment-In-Reply-To"),
        ["Sam Reviewer <sam@example.com>"]
    );
}

#[test]
fn base64_text_part_wins_over_html() {
    let p = parse("14-comment-base64-3.x.eml");
    assert_common(&p, 4);
    assert_eq!(p.event.commands, [cmd("arm", &[])]);
    assert_eq!(p.event.author.as_deref(), Some("José Núñez"));
    assert_eq!(p.event.comment_date, Some(1_678_960_800));
    assert_eq!(p.event.date, Some(1_678_960_800));
}

#[test]
fn iso_8859_1_charset() {
    let p = parse("15-comment-iso-8859-1-2.x.eml");
    assert_common(&p, 2);
    assert_eq!(
        p.event.owner.as_deref(),
        Some("René Müller <rene@example.com>")
    );
    assert_eq!(p.event.author.as_deref(), Some("René Müller"));
    assert_eq!(p.event.votes, [vote("Code-Review", 1)]);
    assert_eq!(p.event.commands, [cmd("retry", &[])]);
    assert_eq!(p.event.date, Some(1_456_751_100));
}

#[test]
fn googlesource_format_flowed_delsp() {
    let p = parse("16-comment-googlesource-flowed.eml");
    assert_common(&p, 5);
    assert_eq!(p.event.author.as_deref(), Some("Dana Dev"));
    // The soft-wrapped footer is whole again.
    assert_eq!(
        p.event.owner.as_deref(),
        Some("Dana Dev With A Rather Long Display Name <dana.dev.with.a.long.address@example.com>")
    );
    assert_eq!(p.event.votes, [vote("Code-Review", 1)]);
    // The soft-wrapped command line is one line; the indented prose is not a
    // command.
    let args = "because the denormal path only regressed on 64-bit x86 builds last week";
    let args: Vec<&str> = args.split(' ').collect();
    assert_eq!(p.event.commands, [cmd("x86_64", &args)]);
}

#[test]
fn qp_soft_break_inside_footer_lines() {
    let p = parse("17-comment-qp-soft-break-in-footer-3.x.eml");
    assert_common(&p, 4);
    assert_eq!(p.event.comment_date, Some(1_679_060_710));
    assert_eq!(p.event.votes, [vote("Code-Review", -1)]);
    // The inline comment's code line mentions bionicbb:retry: not a command.
    assert!(p.event.commands.is_empty());
}

#[test]
fn missing_footer_is_supplied_by_x_gerrit_header() {
    let p = parse("18-comment-footer-from-header-3.x.eml");
    assert_common(&p, 4);
    assert_eq!(p.event.change_number, Some(123_456));
    assert_eq!(p.event.commands, [cmd("clean", &[])]);
    assert_eq!(p.event.comment_date, Some(1_679_124_000));
}

#[test]
fn newchange_commit_message_cannot_inject_commands_or_footers() {
    let p = parse("19-newchange-commit-message-trailer-3.x.eml");
    assert_eq!(p.event.message_type, MessageType::NewChange);
    assert_eq!(
        p.event.change_id,
        "I9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3"
    );
    assert_eq!(p.event.change_number, Some(123_457));
    assert_eq!(p.event.patch_set, 1);
    assert_eq!(p.event.project, "platform/bionic");
    assert!(p.event.commands.is_empty());
    assert!(p.event.votes.is_empty());
}

#[test]
fn quoted_command_is_not_a_command() {
    let p = parse("20-comment-quoted-clean-2.x.eml");
    assert_common(&p, 2);
    assert!(p.event.commands.is_empty(), "{:?}", p.event.commands);
}

#[test]
fn verified_in_prose_is_not_a_vote() {
    let p = parse("21-comment-verified-in-prose-2.x.eml");
    assert_common(&p, 2);
    assert!(p.event.votes.is_empty(), "{:?}", p.event.votes);
    assert!(p.removed_votes.is_empty());
}

#[test]
fn removed_vote_is_not_an_added_vote() {
    let p = parse("22-comment-remove-verified-2.x.eml");
    assert_common(&p, 2);
    assert!(p.event.votes.is_empty());
    assert_eq!(p.removed_votes, ["Verified"]);
    assert_eq!(p.event.author.as_deref(), Some("Bionic Buildbot"));
    // "Run `bionicbb:retry` ..." is prose, even from the bot.
    assert!(p.event.commands.is_empty());
}

#[test]
fn two_commands_and_an_unknown_one() {
    let name = "23-comment-two-commands-and-unknown-2.x.eml";
    let p = parse(name);
    assert_common(&p, 3);
    assert_eq!(p.event.votes, [vote("Code-Review", 1)]);
    assert_eq!(
        p.event.commands,
        [
            cmd("clean", &[]),
            cmd("retry", &["arm"]),
            cmd("frobnicate", &["now", "please"])
        ]
    );
    let report = mail::report(&raw(name), &CommandsConfig::default());
    assert_eq!(report["unknown_commands"], json!(["frobnicate"]));
    assert_eq!(
        report["commands"],
        json!([
            {"name": "clean", "args": []},
            {"name": "retry", "args": ["arm"]},
            {"name": "frobnicate", "args": ["now", "please"]}
        ])
    );
}

#[test]
fn lf_only_mail() {
    let bytes = raw("24-comment-lf-only-2.x.eml");
    assert!(!bytes.contains(&b'\r'));
    let p = parse("24-comment-lf-only-2.x.eml");
    assert_common(&p, 3);
    assert_eq!(p.event.commands, [cmd("x86", &[])]);
    // The CRLF sample read with LF line ends gives the same event.
    let crlf = raw("04-comment-retry-2.x.eml");
    let lf: Vec<u8> = crlf.iter().copied().filter(|&b| b != b'\r').collect();
    assert_eq!(
        mail::parse(&lf).unwrap().event,
        parse("04-comment-retry-2.x.eml").event
    );
}

#[test]
fn truncated_mid_text_is_a_clean_error() {
    let e = err("25-truncated-mid-text-3.x.eml");
    assert_eq!(e, MailError::MissingFooter("Branch"));
}

#[test]
fn truncated_mid_html_parses_from_the_complete_text_part() {
    let p = parse("26-truncated-mid-html-3.x.eml");
    assert_common(&p, 4);
    assert_eq!(p.event.commands, [cmd("retry", &[])]);
}

#[test]
fn non_gerrit_mail_is_refused() {
    let e = err("27-not-gerrit.eml");
    assert_eq!(e, MailError::NotGerrit);
    assert!(e.to_string().contains("not a Gerrit notification"));
}

#[test]
fn account_mail_is_not_a_change_notification() {
    let e = err("28-account-addkey-3.x.eml");
    assert_eq!(e, MailError::NotChange("addkey".into()));
    assert!(e.to_string().contains("not a change notification"));
}

// ---------------------------------------------------------------- across fixtures

fn all_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_case_has_a_fixture() {
    assert_eq!(all_fixtures().len(), 24);
}

#[test]
fn every_prefix_of_every_fixture_parses_or_fails_cleanly() {
    for name in all_fixtures() {
        let bytes = raw(&name);
        for end in (0..bytes.len()).step_by(23).chain([bytes.len()]) {
            // Neither may panic; errors must have a message.
            match mail::parse(&bytes[..end]) {
                Ok(p) => assert!(!p.event.change_id.is_empty()),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}

#[test]
fn report_has_every_key() {
    let report = mail::report(
        &raw("10-comment-patchset-level-3.x-qp.eml"),
        &CommandsConfig::default(),
    );
    assert_eq!(
        report,
        json!({
            "message_type": "comment",
            "change_id": KEY,
            "change_number": 123456,
            "patch_set": 4,
            "project": "platform/bionic",
            "branch": "master",
            "owner": "Dana Dev <dana@example.com>",
            "author": "Sam Reviewer",
            "comment_date": 1678813331,
            "votes": [{"label": "Code-Review", "value": 1}, {"label": "Verified", "value": 1}],
            "commands": [{"name": "retry", "args": []}],
            "unknown_commands": [],
            "message_id": format!("gerrit.1678813331000.{KEY}-HTML@gerrit.example.org"),
        })
    );
    let report = mail::report(&raw("01-newchange-2.x.eml"), &CommandsConfig::default());
    assert_eq!(report["change_number"], json!(null));
    assert_eq!(report["comment_date"], json!(null));
}

#[test]
fn report_of_a_refused_mail_is_an_error_object() {
    let report = mail::report(&raw("27-not-gerrit.eml"), &CommandsConfig::default());
    let object = report.as_object().unwrap();
    assert_eq!(object.len(), 1);
    assert!(
        object["error"]
            .as_str()
            .unwrap()
            .contains("not a Gerrit notification")
    );
    let report = mail::report(b"", &CommandsConfig::default());
    assert_eq!(report["error"], json!("the mail body is empty"));
}

// ---------------------------------------------------------------- error paths, on synthetic mails

/// A 2.x-style comment mail with the given extra headers, cover letter and
/// footer block.
fn synthetic(headers: &str, cover: &str, footers: &str) -> Vec<u8> {
    format!(
        "Date: Tue, 23 Feb 2016 10:41:09 +0000\n\
         From: \"Dana Dev (Code Review)\" <gerrit@example.org>\n\
         To: Bionic Buildbot <bionicbb@example.com>\n\
         Message-ID: <1456224069331-0c4d8e22@gerrit.example.org>\n\
         Subject: Change in platform/bionic[master]: Fix strtod rounding for denormals\n\
         {headers}\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=UTF-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         Dana Dev has posted comments on this change.\n\
         \n\
         Change subject: Fix strtod rounding for denormals\n\
         ......................................................................\n\
         \n\
         \n\
         {cover}\n\
         -- \n\
         To view, visit https://gerrit.example.org/123456\n\
         To unsubscribe, visit https://gerrit.example.org/settings\n\
         \n\
         {footers}"
    )
    .into_bytes()
}

fn footers_with(patch_set: &str, change_id: &str, project: &str) -> String {
    format!(
        "Gerrit-MessageType: comment\nGerrit-Change-Id: {change_id}\nGerrit-PatchSet: {patch_set}\n\
         Gerrit-Project: {project}\nGerrit-Branch: master\nGerrit-Owner: Dana Dev <dana@example.com>\n"
    )
}

fn synthetic_err(headers: &str, cover: &str, footers: &str) -> MailError {
    match mail::parse(&synthetic(headers, cover, footers)) {
        Ok(p) => panic!("parsed as {:?}", p.event),
        Err(e) => e,
    }
}

#[test]
fn synthetic_baseline_parses() {
    let p = mail::parse(&synthetic(
        "",
        "Patch Set 2:\n\nbionicbb:retry\n",
        &footers_with("2", KEY, "platform/bionic"),
    ))
    .unwrap();
    assert_common(&p, 2);
    assert_eq!(p.event.commands, [cmd("retry", &[])]);
}

#[test]
fn invalid_values_are_named() {
    let cover = "Patch Set 2:\n";
    let e = synthetic_err("", cover, &footers_with("two", KEY, "platform/bionic"));
    assert!(
        matches!(
            e,
            MailError::InvalidValue {
                field: "patch set",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("\"two\""), "{e}");
    let e = synthetic_err("", cover, &footers_with("0", KEY, "platform/bionic"));
    assert!(
        matches!(
            e,
            MailError::InvalidValue {
                field: "patch set",
                ..
            }
        ),
        "{e}"
    );
    let e = synthetic_err(
        "",
        cover,
        &footers_with("2", "I4c1b0f7a", "platform/bionic"),
    );
    assert!(
        matches!(
            e,
            MailError::InvalidValue {
                field: "Change-Id",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("40"), "{e}");
    let e = synthetic_err("", cover, &footers_with("2", KEY, "platform/../etc"));
    assert!(
        matches!(
            e,
            MailError::InvalidValue {
                field: "project",
                ..
            }
        ),
        "{e}"
    );
    let e = synthetic_err(
        "",
        cover,
        &format!(
            "{}Gerrit-Change-Number: 12x\n",
            footers_with("2", KEY, "platform/bionic")
        ),
    );
    assert!(
        matches!(
            e,
            MailError::InvalidValue {
                field: "Change-Number",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn missing_required_footers_are_named() {
    let footers = "Gerrit-MessageType: comment\nGerrit-PatchSet: 2\nGerrit-Project: platform/bionic\nGerrit-Branch: master\n";
    let e = synthetic_err("", "Patch Set 2:\n", footers);
    assert_eq!(e, MailError::MissingFooter("Change-Id"));
    assert!(e.to_string().contains("Gerrit-Change-Id"));
    let footers = format!(
        "Gerrit-MessageType: comment\nGerrit-Change-Id: {KEY}\nGerrit-PatchSet: 2\nGerrit-Branch: master\n"
    );
    assert_eq!(
        synthetic_err("", "Patch Set 2:\n", &footers),
        MailError::MissingFooter("Project")
    );
    let footers = format!(
        "Gerrit-MessageType: comment\nGerrit-Change-Id: {KEY}\nGerrit-Project: platform/bionic\nGerrit-Branch: master\n"
    );
    assert_eq!(
        synthetic_err("", "Patch Set 2:\n", &footers),
        MailError::MissingFooter("PatchSet")
    );
}

#[test]
fn contradicting_footers_are_refused() {
    let footers = format!(
        "{}Gerrit-PatchSet: 3\n",
        footers_with("2", KEY, "platform/bionic")
    );
    let e = synthetic_err("", "Patch Set 2:\n", &footers);
    assert!(
        matches!(
            e,
            MailError::Conflicting {
                field: "PatchSet",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn lines_typed_in_the_comment_cannot_inject_footers() {
    let cover = "Patch Set 2:\n\nGerrit-Project: platform/evil\nGerrit-PatchSet: 9\n-- \nGerrit-Branch: evil\n";
    let p = mail::parse(&synthetic(
        "",
        cover,
        &footers_with("2", KEY, "platform/bionic"),
    ))
    .unwrap();
    assert_common(&p, 2);
}

#[test]
fn votes_on_another_patch_set_are_dropped_with_a_note() {
    let cover = "Patch Set 1: Verified+1\n\nbionicbb:retry\n";
    let p = mail::parse(&synthetic(
        "",
        cover,
        &footers_with("2", KEY, "platform/bionic"),
    ))
    .unwrap();
    assert!(p.event.votes.is_empty());
    assert!(
        p.notes.iter().any(|n| n.contains("patch set 1")),
        "{:?}",
        p.notes
    );
    assert_eq!(p.event.commands, [cmd("retry", &[])]);
}

#[test]
fn numeric_change_id_footer_is_the_change_number() {
    let footers = "Gerrit-MessageType: comment\nGerrit-ChangeId: 123456\nGerrit-PatchSetId:2\n\
                   Gerrit-Project: platform/bionic\nGerrit-Branch: master\n";
    let headers = format!("X-Gerrit-Change-Id: {KEY}\n");
    let p = mail::parse(&synthetic(&headers, "Comments on Patch Set 2:\n", footers)).unwrap();
    assert_common(&p, 2);
    assert_eq!(p.event.change_number, Some(123_456));
}

#[test]
fn headers_only_mail_is_an_empty_body() {
    let raw = format!(
        "From: gerrit@example.org\nX-Gerrit-MessageType: comment\nX-Gerrit-Change-Id: {KEY}\n\n"
    );
    assert_eq!(
        mail::parse(raw.as_bytes()).unwrap_err(),
        MailError::EmptyBody
    );
    assert_eq!(mail::parse(b"").unwrap_err(), MailError::EmptyBody);
    assert_eq!(mail::parse(b" \r\n").unwrap_err(), MailError::EmptyBody);
}

#[test]
fn blank_footer_falls_back_on_the_header() {
    let footers = footers_with("2", KEY, "platform/bionic")
        .replace("Gerrit-MessageType: comment", "Gerrit-MessageType:");
    let p = mail::parse(&synthetic(
        "X-Gerrit-MessageType: comment\n",
        "Patch Set 2:\n",
        &footers,
    ))
    .unwrap();
    assert_eq!(p.event.message_type, MessageType::Comment);
    assert_eq!(
        synthetic_err("", "Patch Set 2:\n", &footers),
        MailError::NotGerrit
    );
}
