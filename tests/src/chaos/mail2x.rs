//! Gerrit 2.13-style notification mails (Velocity templates): a single
//! text/plain 8bit part, footers in the 2.x order, no `Gerrit-Change-Number`
//! and no `Gerrit-Comment-Date`, a Message-ID of Gerrit's own making.
//! The layout follows `tests/data/emails/*-2.x.eml`.

use std::fmt::Write as _;

use crate::mailgen::{MailChange, Person, rfc2822};

/// A `newchange` (patch set 1) or `newpatchset` mail.
pub fn patch_set_uploaded(
    change: &MailChange,
    patch_set: u32,
    commit: &str,
    date: i64,
    nonce: u64,
) -> Vec<u8> {
    let (kind, intro) = if patch_set == 1 {
        (
            "newchange",
            format!(
                "{} has uploaded a new change for review.\n\n  https://{}/{}\n",
                change.owner.name, change.host, change.number
            ),
        )
    } else {
        (
            "newpatchset",
            format!(
                "Hello Bionic Buildbot,\n\nI'd like you to reexamine a change.  Please visit\n\n    https://{}/{}\n\nto look at the new patch set (#{patch_set}).\n",
                change.host, change.number
            ),
        )
    };
    let body = format!(
        "{intro}\nChange subject: {subject}\n{dots}\n\n{subject}\n\nChange-Id: {key}\n---\nM libc/bionic/strtod.cpp\n\n  git pull ssh://{host}:29418/{project} refs/changes/{shard:02}/{number}/{patch_set}\n",
        subject = change.subject,
        dots = ".".repeat(70),
        key = change.change_key,
        host = change.host,
        project = change.project,
        shard = change.number % 100,
        number = change.number,
    );
    render(
        change,
        patch_set,
        kind,
        &change.owner,
        commit,
        date,
        nonce,
        &body,
        None,
    )
}

/// A `comment` mail: the change message as Gerrit stored it
/// (`Patch Set N: <votes>` then the text).
// One argument per field of the mail keeps call sites readable.
#[allow(clippy::too_many_arguments)]
pub fn comment(
    change: &MailChange,
    patch_set: u32,
    author: &Person,
    votes: &str,
    text: &str,
    commit: &str,
    date: i64,
    nonce: u64,
) -> Vec<u8> {
    let mut body = format!(
        "{} has posted comments on this change.\n\nChange subject: {}\n{}\n\n\nPatch Set {patch_set}:{}{}\n",
        author.name,
        change.subject,
        ".".repeat(70),
        if votes.is_empty() { "" } else { " " },
        votes
    );
    if !text.is_empty() {
        let _ = write!(body, "\n{text}\n");
    }
    render(
        change,
        patch_set,
        "comment",
        author,
        commit,
        date,
        nonce,
        &body,
        Some("Gerrit-HasComments: No"),
    )
}

#[allow(clippy::too_many_arguments)]
fn render(
    change: &MailChange,
    patch_set: u32,
    kind: &str,
    actor: &Person,
    commit: &str,
    date: i64,
    nonce: u64,
    body: &str,
    extra_footer: Option<&str>,
) -> Vec<u8> {
    let host = &change.host;
    let mut mail = String::new();
    let _ = write!(
        mail,
        "Date: {date_hdr}\nFrom: \"{actor} (Code Review)\" <gerrit@{host}>\nTo: Bionic Buildbot <bionicbb@example.com>\n\
Message-ID: <{millis}-{nonce:08x}@{host}>\nIn-Reply-To: <gerrit.{created}.{key}@{host}>\nReferences: <gerrit.{created}.{key}@{host}>\n\
Reply-To: {actor_email}\nX-Gerrit-MessageType: {kind}\nX-Gerrit-Change-Id: {key}\n\
List-Id: <gerrit-{list}.{host}>\nX-Gerrit-ChangeURL: <https://{host}/{number}>\nX-Gerrit-Commit: {commit}\n\
Subject: Change in {project}[{branch}]: {subject}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\
Content-Transfer-Encoding: 8bit\nContent-Disposition: inline\nUser-Agent: Gerrit/2.13.5\n\n",
        date_hdr = rfc2822(date),
        actor = actor.name,
        actor_email = actor.email,
        millis = date * 1000 + (nonce % 1000) as i64,
        created = 1_456_172_445_000u64 + change.number,
        key = change.change_key,
        list = change.project.replace('/', "-"),
        number = change.number,
        project = change.project,
        branch = change.branch,
        subject = change.subject,
    );
    mail.push_str(body);
    let _ = write!(
        mail,
        "\n-- \nTo view, visit https://{host}/{number}\nTo unsubscribe, visit https://{host}/settings\n\n\
Gerrit-MessageType: {kind}\nGerrit-Change-Id: {key}\nGerrit-PatchSet: {patch_set}\nGerrit-Project: {project}\n\
Gerrit-Branch: {branch}\nGerrit-Owner: {owner} <{owner_email}>\nGerrit-Reviewer: Bionic Buildbot <bionicbb@example.com>\n",
        number = change.number,
        key = change.change_key,
        project = change.project,
        branch = change.branch,
        owner = change.owner.name,
        owner_email = change.owner.email,
    );
    if let Some(footer) = extra_footer {
        mail.push_str(footer);
        mail.push('\n');
    }
    mail.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> MailChange {
        crate::mailgen::sample_change()
    }

    #[test]
    fn parse_as_what_they_say() {
        let sam = Person::new("Sam Reviewer", "sam@example.com");
        let raw = comment(
            &change(),
            3,
            &sam,
            "Verified+1",
            "bionicbb:retry",
            "ab",
            1_678_813_331,
            7,
        );
        let e = bionicbb_core::mail::parse(&raw)
            .expect("comment parses")
            .event;
        assert_eq!(e.message_type.as_str(), "comment");
        assert_eq!((e.change_number, e.patch_set), (None, 3));
        assert_eq!(e.comment_date, None);
        assert_eq!(e.votes.len(), 1);
        assert_eq!(e.commands.len(), 1);
        for ps in [1, 2] {
            let raw = patch_set_uploaded(&change(), ps, "ab", 1_678_813_331, 8);
            let e = bionicbb_core::mail::parse(&raw)
                .expect("upload parses")
                .event;
            let kind = if ps == 1 { "newchange" } else { "newpatchset" };
            assert_eq!(e.message_type.as_str(), kind);
            assert_eq!(e.patch_set, ps);
            assert!(e.commands.is_empty());
        }
    }
}
