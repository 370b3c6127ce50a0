//! What one change found by a reconcile query calls for, as the events a
//! mail would have reported: its current patch set as a `newpatchset`, and
//! each newer change message carrying `bionicbb:` commands as a `comment`,
//! confirmed against that very message (its `id` is the identity of its
//! commands, as on the mail path). Pure: the caller brings the change, the
//! published comments when [`needs_comments`] says so, and the window.
//!
//! Never an event: a message Gerrit wrote itself (no author), one by the
//! bot's own account, one older than the window, one without commands. The
//! policy ([`decide`](bionicbb_core::decide::decide)) judges the rest as it
//! judges a mail: trust, superseded patch sets, closed changes.

use bionicbb_core::command;
use bionicbb_core::config::GerritConfig;
use bionicbb_core::event::{CommentFacts, GerritEvent, MessageType};
use bionicbb_core::gerrit::{ChangeInfo, ChangeMessageInfo, parse_timestamp};
use bionicbb_core::mail::votes;

use crate::facts::{self, Comments};

/// What an event found by reconcile is, for the count of what mail missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PatchSet,
    Command,
}

impl Kind {
    /// The `kind` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PatchSet => "patch_set",
            Kind::Command => "command",
        }
    }
}

/// One event found on a change, and for a comment the message it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: Kind,
    pub event: GerritEvent,
    pub comment: Option<CommentFacts>,
}

/// The events of `change`: its current patch set when it was uploaded at
/// or after `patch_sets_since` (or Gerrit does not say when), then every
/// message dated at or after `messages_since` that carries commands, in
/// the order they were posted. `comments` are the change's published
/// comments (empty when not read).
pub fn events(
    change: &ChangeInfo,
    patch_sets_since: i64,
    messages_since: i64,
    comments: &Comments,
    gerrit: &GerritConfig,
) -> Vec<Found> {
    let mut found = Vec::new();
    if let Some(event) = patch_set_event(change, patch_sets_since) {
        found.push(Found {
            kind: Kind::PatchSet,
            event,
            comment: None,
        });
    }
    for message in candidates(change, messages_since, gerrit) {
        if let Some(command) = command_event(change, message, comments) {
            found.push(command);
        }
    }
    found
}

/// True when a candidate message may carry commands only in comments
/// published with it: it shows `(N comments)` (Gerrit 3.3+ puts the text
/// typed in the reply box in a patchset-level comment). Then the change's
/// comments are read, once.
pub fn needs_comments(change: &ChangeInfo, messages_since: i64, gerrit: &GerritConfig) -> bool {
    candidates(change, messages_since, gerrit).any(|m| m.message.lines().any(counts_comments))
}

/// The current patch set as a `newpatchset`, when recent enough.
fn patch_set_event(change: &ChangeInfo, since: i64) -> Option<GerritEvent> {
    let ps = facts::current_patch_set(change);
    let (_, revision) = change.revision(ps)?;
    let created = revision.created.as_deref().and_then(parse_timestamp);
    if created.is_some_and(|t| t < since) {
        return None;
    }
    Some(event(change, MessageType::NewPatchSet, ps))
}

/// Messages that may be commands: by an account (not Gerrit itself), not
/// the bot, on a patch set, dated at or after `since`.
fn candidates<'c>(
    change: &'c ChangeInfo,
    since: i64,
    gerrit: &'c GerritConfig,
) -> impl Iterator<Item = &'c ChangeMessageInfo> {
    change.messages.iter().filter(move |m| {
        let author = facts::acting_author(m);
        let bot = [m.author.as_ref(), author]
            .into_iter()
            .flatten()
            .filter_map(|a| a.email.as_deref())
            .any(|e| gerrit.is_bot(e));
        author.is_some()
            && !bot
            && m.revision_number.is_some()
            && parse_timestamp(&m.date).is_some_and(|t| t >= since)
    })
}

/// The message as a comment event, when it carries commands in its text
/// or in comments its author published with it.
fn command_event(
    change: &ChangeInfo,
    message: &ChangeMessageInfo,
    comments: &Comments,
) -> Option<Found> {
    let ps = message.revision_number?;
    let date = parse_timestamp(&message.date)?;
    let mut commands = command::parse_all(message.message.lines());
    let mut carriers = Vec::new();
    if let Some(author) = message.author.as_ref() {
        for text in facts::published_with(comments, ps, author.account_id, date) {
            let more = command::parse_all(text.lines());
            if !more.is_empty() {
                commands.extend(more);
                carriers.push(text);
            }
        }
    }
    if commands.is_empty() {
        return None;
    }
    let mut event = event(change, MessageType::Comment, ps);
    let author = facts::acting_author(message);
    event.author = author.and_then(|a| a.name.clone().or_else(|| a.email.clone()));
    event.comment_date = Some(date);
    event.votes = message
        .message
        .lines()
        .next()
        .and_then(votes::parse_line)
        .filter(|line| line.patch_set == ps)
        .map(|line| line.added)
        .unwrap_or_default();
    event.commands = commands;
    Some(Found {
        kind: Kind::Command,
        event,
        comment: Some(facts::comment_facts(message, &carriers)),
    })
}

/// An event about patch set `ps` of `change`, as a mail would report it.
fn event(change: &ChangeInfo, message_type: MessageType, ps: u32) -> GerritEvent {
    GerritEvent {
        message_type,
        change_id: change.change_id.clone(),
        change_number: Some(change.number),
        patch_set: ps,
        project: change.project.clone(),
        branch: change.branch.clone(),
        owner: None,
        author: None,
        comment_date: None,
        date: None,
        votes: Vec::new(),
        commands: Vec::new(),
    }
}

/// `(1 comment)`, `(12 comments)`: the line Gerrit writes in a message
/// whose review published comments.
fn counts_comments(line: &str) -> bool {
    let Some(inner) = line
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
    else {
        return false;
    };
    let Some((count, word)) = inner.split_once(' ') else {
        return false;
    };
    !count.is_empty()
        && count.bytes().all(|b| b.is_ascii_digit())
        && matches!(word, "comment" | "comments")
}

#[cfg(test)]
mod tests;
