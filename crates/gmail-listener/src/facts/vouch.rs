//! Whether a trusted commenter vouched for a patch set
//! (`bionicbb:ok-to-test`), read from the change messages of the one change
//! answer (`MESSAGES` with `DETAILED_ACCOUNTS`). Pure.
//!
//! A vouch is a change message on that patch set by an account the policy
//! trusts as a commenter, as Gerrit reports who acted (never the bot's
//! own account), carrying a `bionicbb:ok-to-test` line: in its text, in
//! the comments its author published with it (Gerrit 3.3+ puts the text of
//! the reply box in a patchset-level comment, leaving `(1 comment)` in the
//! message), or, for the comment an event is about, in the text its
//! confirmation found. For a comment, only messages up to that comment
//! count, so a command is judged on what stood when it was given, whenever
//! (and however often) it is decided. The earliest vouch is the one kept.

use bionicbb_core::command::{self, OK_TO_TEST};
use bionicbb_core::config::Config;
use bionicbb_core::event::{ChangeFacts, ChangeStatus, CommentFacts, Vouch};
use bionicbb_core::gerrit::{AccountInfo, ChangeInfo, ChangeMessageInfo, parse_timestamp};

use super::{Comments, acting_author, counts_comments, published_with};

/// The vouch for patch set `ps` of `change`, if any; `comment` is the
/// comment the event is about, `comments` the change's published comments
/// (empty when not read). See the module documentation.
pub fn vouch_on(
    change: &ChangeInfo,
    ps: u32,
    comment: Option<&CommentFacts>,
    comments: &Comments,
    config: &Config,
) -> Option<Vouch> {
    candidates(change, ps, comment, config).find_map(|(message, author, email)| {
        let own = comment.filter(|c| c.message_id == message.id);
        let mut texts = vec![own.map_or(message.message.as_str(), |c| c.message.as_str())];
        if let Some(date) = parse_timestamp(&message.date) {
            texts.extend(published_with(comments, ps, author.account_id, date));
        }
        let vouches = texts.iter().any(|text| {
            command::parse_all(text.lines())
                .iter()
                .any(|c| c.name == OK_TO_TEST)
        });
        vouches.then(|| Vouch {
            message_id: message.id.clone(),
            by_email: email.to_string(),
            by_name: author.name.clone().filter(|n| !n.trim().is_empty()),
        })
    })
}

/// True when a vouch for the patch set of `facts` would decide something
/// and may be only in published comments, so they are worth a request:
/// the change is open, the patch set current, its committer untrusted,
/// no vouch found without them, and a trusted account's message on it
/// says it published comments.
pub fn vouch_hidden_in_comments(
    change: &ChangeInfo,
    facts: &ChangeFacts,
    ps: u32,
    config: &Config,
) -> bool {
    let untrusted = facts
        .committer_email
        .as_deref()
        .is_some_and(|e| !config.policy.committer_trusted(e));
    facts.status == ChangeStatus::New
        && ps >= facts.current_patch_set
        && untrusted
        && facts.vouch.is_none()
        && candidates(change, ps, facts.comment.as_ref(), config)
            .any(|(m, _, _)| m.message.lines().any(counts_comments))
}

/// The messages on patch set `ps` (up to `comment`'s, when given) by a
/// trusted commenter that is not the bot, with the account that acted and
/// its e-mail, oldest first.
fn candidates<'c>(
    change: &'c ChangeInfo,
    ps: u32,
    comment: Option<&CommentFacts>,
    config: &'c Config,
) -> impl Iterator<Item = (&'c ChangeMessageInfo, &'c AccountInfo, &'c str)> {
    let messages = match comment {
        Some(c) => match change.messages.iter().position(|m| m.id == c.message_id) {
            Some(at) => &change.messages[..=at],
            // Not among the messages: nothing is known to precede it.
            None => &change.messages[..0],
        },
        None => &change.messages[..],
    };
    messages
        .iter()
        .filter(move |m| m.revision_number == Some(ps))
        .filter_map(move |m| {
            let author = acting_author(m)?;
            let email = author.email.as_deref()?;
            let bot = [m.author.as_ref(), Some(author)]
                .into_iter()
                .flatten()
                .filter_map(|a| a.email.as_deref())
                .any(|e| config.gerrit.is_bot(e));
            (!bot && config.policy.commenter_trusted(email)).then_some((m, author, email))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        crate::test_config::with(
            "[jobs]\ndefault = \"bionic-presubmit\"\n\
             [policy]\ntrusted_commenter_domains = [\"example.com\"]",
        )
    }

    fn msg(id: &str, ps: u32, account: u64, email: &str, text: &str) -> serde_json::Value {
        json!({
            "id": id,
            "author": {"_account_id": account, "name": format!("Account {account}"), "email": email},
            "date": "2026-11-30 10:00:00.000000000",
            "message": text,
            "_revision_number": ps,
        })
    }

    fn change(messages: Vec<serde_json::Value>) -> ChangeInfo {
        crate::facts::upload::tests::change(None, messages, json!({}))
    }

    fn comment(id: &str, text: &str) -> CommentFacts {
        CommentFacts {
            message_id: id.into(),
            author_account_id: Some(7),
            author_email: Some("sam@example.com".into()),
            author_name: Some("Sam Reviewer".into()),
            message: text.into(),
        }
    }

    const OK: &str = "Patch Set 2:\n\nbionicbb:ok-to-test";

    #[test]
    fn a_trusted_commenters_ok_to_test_on_that_patch_set_vouches() {
        let c = config();
        let none = Comments::new();
        let found = vouch_on(
            &change(vec![msg("m1", 2, 7, "sam@example.com", OK)]),
            2,
            None,
            &none,
            &c,
        );
        assert_eq!(
            found,
            Some(Vouch {
                message_id: "m1".into(),
                by_email: "sam@example.com".into(),
                by_name: Some("Account 7".into()),
            })
        );
        // Another patch set, an untrusted account, the bot, a quote, prose:
        // no vouch.
        for (ps, email, text) in [
            (1, "sam@example.com", OK),
            (2, "stranger@evil.org", OK),
            (2, "bionicbb@example.com", OK),
            (
                2,
                "sam@example.com",
                "Patch Set 2:\n\n> bionicbb:ok-to-test",
            ),
            (
                2,
                "sam@example.com",
                "Patch Set 2:\n\nplease bionicbb:ok-to-test",
            ),
        ] {
            let ch = change(vec![msg("m1", ps, 7, email, text)]);
            assert_eq!(
                vouch_on(&ch, 2, None, &none, &c),
                None,
                "{ps} {email} {text}"
            );
        }
        // The earliest of two is kept.
        let ch = change(vec![
            msg("m1", 2, 7, "sam@example.com", OK),
            msg("m2", 2, 8, "dana@example.com", OK),
        ]);
        assert_eq!(vouch_on(&ch, 2, None, &none, &c).unwrap().message_id, "m1");
    }

    #[test]
    fn a_comment_is_judged_on_the_messages_up_to_it() {
        let c = config();
        let none = Comments::new();
        let ch = change(vec![
            msg(
                "retry",
                2,
                7,
                "sam@example.com",
                "Patch Set 2:\n\nbionicbb:retry",
            ),
            msg("ok", 2, 7, "sam@example.com", OK),
        ]);
        let retry = comment("retry", "Patch Set 2:\n\nbionicbb:retry");
        assert_eq!(vouch_on(&ch, 2, Some(&retry), &none, &c), None);
        let ok = comment("ok", OK);
        assert!(vouch_on(&ch, 2, Some(&ok), &none, &c).is_some());
        // A comment Gerrit does not list: nothing precedes it.
        let ghost = comment("ghost", OK);
        assert_eq!(vouch_on(&ch, 2, Some(&ghost), &none, &c), None);
    }

    #[test]
    fn the_reply_box_text_counts_from_the_confirmation_or_the_comments() {
        let c = config();
        let ch = change(vec![msg(
            "m1",
            2,
            7,
            "sam@example.com",
            "Patch Set 2:\n\n(1 comment)",
        )]);
        let none = Comments::new();
        assert_eq!(vouch_on(&ch, 2, None, &none, &c), None);
        // The comment's confirmation found the command in a comment.
        let confirmed = comment("m1", "Patch Set 2:\n\n(1 comment)\n\nbionicbb:ok-to-test");
        assert!(vouch_on(&ch, 2, Some(&confirmed), &none, &c).is_some());
        // The published patchset-level comment, by the same account, then.
        let comments: Comments = serde_json::from_value(json!({"/PATCHSET_LEVEL": [{
            "id": "c1",
            "author": {"_account_id": 7},
            "patch_set": 2,
            "updated": "2026-11-30 10:00:00.000000000",
            "message": "bionicbb:ok-to-test",
        }]}))
        .unwrap();
        assert!(vouch_on(&ch, 2, None, &comments, &c).is_some());
    }
}
