//! What the policy of automatic builds reads about a patch set, from the
//! same change answer as the rest of the facts (it needs `ALL_REVISIONS`
//! for the kind, `MESSAGES` with `DETAILED_ACCOUNTS` for the bot's
//! verdicts, `DETAILED_LABELS` for the votes Gerrit shows). Pure.
//!
//! - The kind of the patch set (`revisions.{sha}.kind`); absent or
//!   unknown counts as `REWORK`.
//! - `work_in_progress` and `is_private` of the change (absent = false).
//! - The bot's verdict standing on the previous patch set, read from the
//!   change messages, newest first, on that patch set: the bot's own
//!   review whose `Patch Set N:` line sets the label (a verdict) or
//!   removes it (`-Verified`: none), or Gerrit's `Removed Verified-1 by
//!   <the bot>` when someone deleted the bot's vote (none).
//! - The bot's vote on the event's patch set as Gerrit's labels show it,
//!   only when that patch set is current (labels are the current one's).

use bionicbb_core::config::{Config, GerritConfig};
use bionicbb_core::event::{ChangeKind, UploadFacts, Verdict};
use bionicbb_core::gerrit::{ChangeInfo, ChangeMessageInfo};
use bionicbb_core::mail::votes;

/// The upload facts of patch set `ps` of `change`; see the module
/// documentation.
pub fn upload_facts(change: &ChangeInfo, ps: u32, config: &Config) -> UploadFacts {
    let (gerrit, label) = (&config.gerrit, config.review.label.as_str());
    let kind = change.revision(ps).and_then(|(_, r)| r.kind.as_deref());
    let bot = bot_account(change, gerrit);
    let current = change.current_patch_set() == Some(ps);
    UploadFacts {
        kind: ChangeKind::from_gerrit(kind),
        work_in_progress: change.work_in_progress,
        is_private: change.is_private,
        previous_verdict: ps
            .checked_sub(1)
            .filter(|p| *p > 0)
            .and_then(|p| verdict_on(change, p, label, gerrit, bot)),
        bot_vote: bot
            .filter(|_| current)
            .and_then(|id| change.vote_of(label, id))
            .filter(|v| *v != 0),
    }
}

/// The bot's account id, as the labels or the messages show it with its
/// e-mail.
fn bot_account(change: &ChangeInfo, gerrit: &GerritConfig) -> Option<u64> {
    let voters = change
        .labels
        .values()
        .flat_map(|l| &l.all)
        .find(|a| a.email.as_deref().is_some_and(|e| gerrit.is_bot(e)))
        .map(|a| a.account_id);
    voters.or_else(|| {
        change
            .messages
            .iter()
            .filter_map(|m| m.author.as_ref())
            .find(|a| a.email.as_deref().is_some_and(|e| gerrit.is_bot(e)))
            .map(|a| a.account_id)
    })
}

/// The bot's verdict on `label` standing on patch set `ps`, if any.
fn verdict_on(
    change: &ChangeInfo,
    ps: u32,
    label: &str,
    gerrit: &GerritConfig,
    bot: Option<u64>,
) -> Option<Verdict> {
    for message in change
        .messages
        .iter()
        .rev()
        .filter(|m| m.revision_number == Some(ps))
    {
        let first = message.message.lines().next().unwrap_or("");
        if by_bot(message, gerrit) {
            let Some(line) = votes::parse_line(first).filter(|l| l.patch_set == ps) else {
                continue;
            };
            if line.removed.iter().any(|l| l == label) {
                return None;
            }
            if let Some(vote) = line.added.iter().find(|v| v.label == label) {
                return Some(Verdict {
                    patch_set: ps,
                    value: vote.value,
                })
                .filter(|v| v.value != 0);
            }
        } else if removes_bot_vote(first, label, gerrit, bot) {
            return None;
        }
    }
    None
}

/// True when the bot's account acted for `message`.
fn by_bot(message: &ChangeMessageInfo, gerrit: &GerritConfig) -> bool {
    super::acting_author(message)
        .and_then(|a| a.email.as_deref())
        .is_some_and(|e| gerrit.is_bot(e))
}

/// True for Gerrit's message of a deleted vote, `Removed Verified-1 by
/// Name <email>` (newer servers: `by <GERRIT_ACCOUNT_id>`), when the vote
/// removed is the bot's on `label`.
fn removes_bot_vote(first: &str, label: &str, gerrit: &GerritConfig, bot: Option<u64>) -> bool {
    let Some(rest) = first.trim().strip_prefix("Removed ") else {
        return false;
    };
    let Some((vote, whose)) = rest.split_once(" by ") else {
        return false;
    };
    let on_label = vote
        .strip_prefix(label)
        .is_some_and(|v| v.starts_with(['+', '-']));
    let whose = whose.trim();
    let inner = whose
        .rsplit_once('<')
        .and_then(|(_, r)| r.strip_suffix('>'))
        .unwrap_or("");
    let is_bot =
        gerrit.is_bot(inner) || bot.is_some_and(|id| inner == format!("GERRIT_ACCOUNT_{id}"));
    on_label && is_bot
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        crate::test_config::with("[jobs]\ndefault = \"bionic-presubmit\"")
    }

    const BOT: u64 = 1000096;

    fn msg(ps: u32, author: u64, email: &str, text: &str) -> serde_json::Value {
        json!({
            "id": format!("m{ps}{text}").replace(' ', ""),
            "author": {"_account_id": author, "email": email},
            "date": "2026-11-30 10:00:00.000000000",
            "message": text,
            "_revision_number": ps,
        })
    }

    /// Change 123456 with patch sets 1 and 2 (2 of `kind`), its
    /// `messages`, and the fields of `extra` on top.
    pub(in crate::facts) fn change(
        kind: Option<&str>,
        messages: Vec<serde_json::Value>,
        extra: serde_json::Value,
    ) -> ChangeInfo {
        let mut rev2 = json!({"_number": 2, "ref": "refs/changes/56/123456/2"});
        if let Some(kind) = kind {
            rev2["kind"] = json!(kind);
        }
        let mut value = json!({
            "project": "platform/bionic",
            "branch": "master",
            "status": "NEW",
            "_number": 123456,
            "owner": {"_account_id": 1},
            "current_revision": "bbbb",
            "revisions": {
                "aaaa": {"_number": 1, "ref": "refs/changes/56/123456/1", "kind": "REWORK"},
                "bbbb": rev2,
            },
            "messages": messages,
        });
        if let (Some(v), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        serde_json::from_value(value).unwrap()
    }

    fn bot(ps: u32, text: &str) -> serde_json::Value {
        msg(ps, BOT, "bionicbb@example.com", text)
    }

    #[test]
    fn the_kind_and_the_state_of_the_change() {
        let c = config();
        let f = upload_facts(&change(Some("NO_CODE_CHANGE"), vec![], json!({})), 2, &c);
        assert_eq!(f.kind, ChangeKind::NoCodeChange);
        assert!(!f.work_in_progress && !f.is_private);
        // Absent or unknown: REWORK.
        let f = upload_facts(&change(None, vec![], json!({})), 2, &c);
        assert_eq!(f.kind, ChangeKind::Rework);
        let f = upload_facts(&change(Some("SOMETHING_NEWER"), vec![], json!({})), 2, &c);
        assert_eq!(f.kind, ChangeKind::Rework);
        let flags = json!({"work_in_progress": true, "is_private": true});
        let f = upload_facts(&change(None, vec![], flags), 2, &c);
        assert!(f.work_in_progress && f.is_private);
    }

    #[test]
    fn the_previous_verdict_is_the_bots_latest_vote_line_on_that_patch_set() {
        let c = config();
        let verdict =
            |messages| upload_facts(&change(None, messages, json!({})), 2, &c).previous_verdict;
        assert_eq!(verdict(vec![]), None);
        let plus = Some(Verdict {
            patch_set: 1,
            value: 1,
        });
        assert_eq!(
            verdict(vec![bot(
                1,
                "Patch Set 1: Verified+1\n\nbionic-presubmit #1 SUCCESS"
            )]),
            plus
        );
        // The latest one wins; a message without the label does not count.
        assert_eq!(
            verdict(vec![
                bot(1, "Patch Set 1: Verified-1\n\nFAILURE"),
                bot(1, "Patch Set 1: Verified+1\n\nSUCCESS"),
                bot(1, "Patch Set 1:\n\nbionic-presubmit #2 STARTED"),
            ]),
            plus
        );
        // Removed by the bot, or deleted by someone else: no verdict.
        assert_eq!(
            verdict(vec![
                bot(1, "Patch Set 1: Verified-1\n\nFAILURE"),
                bot(1, "Patch Set 1: -Verified\n\nA reviewer voted Verified+1"),
            ]),
            None
        );
        for text in [
            "Removed Verified-1 by Bionic Buildbot <bionicbb@example.com>\n",
            "Removed Verified-1 by <GERRIT_ACCOUNT_1000096>\n",
        ] {
            assert_eq!(
                verdict(vec![
                    bot(1, "Patch Set 1: Verified-1\n\nFAILURE"),
                    msg(1, 7, "sam@example.com", text),
                ]),
                None,
                "{text}"
            );
        }
        // Someone else's vote, another label, another patch set: nothing.
        assert_eq!(
            verdict(vec![
                msg(1, 7, "sam@example.com", "Patch Set 1: Verified+1"),
                bot(1, "Patch Set 1: Code-Review+1"),
                bot(2, "Patch Set 2: Verified+1"),
            ]),
            None
        );
        // Someone else's deleted vote leaves the bot's standing.
        assert_eq!(
            verdict(vec![
                bot(1, "Patch Set 1: Verified+1"),
                msg(
                    1,
                    7,
                    "sam@example.com",
                    "Removed Verified-1 by Sam <sam@example.com>"
                ),
            ]),
            plus
        );
    }

    #[test]
    fn the_bots_vote_on_the_patch_set_comes_from_the_labels_of_the_current_one() {
        let c = config();
        let labels = json!({"labels": {"Verified": {"all": [
            {"_account_id": 7, "email": "sam@example.com", "value": -1},
            {"_account_id": BOT, "email": "bionicbb@example.com", "value": 1},
        ]}}});
        let on = upload_facts(&change(None, vec![], labels.clone()), 2, &c);
        assert_eq!(on.bot_vote, Some(1));
        // Patch set 1 is not current: the labels say nothing about it.
        assert_eq!(
            upload_facts(&change(None, vec![], labels), 1, &c).bot_vote,
            None
        );
        let zero = json!({"labels": {"Verified": {"all": [
            {"_account_id": BOT, "email": "bionicbb@example.com", "value": 0},
        ]}}});
        assert_eq!(
            upload_facts(&change(None, vec![], zero), 2, &c).bot_vote,
            None
        );
        assert_eq!(
            upload_facts(&change(None, vec![], json!({})), 2, &c).bot_vote,
            None
        );
    }
}
