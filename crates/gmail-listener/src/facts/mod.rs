//! What Gerrit confirms about the event a mail reports: the change, the
//! event's patch set (its ref, committer and files) and, for comment mails,
//! the change message the mail is about, with its author as Gerrit knows
//! them, once Gerrit shows the mail's votes and commands (in that message
//! or in comments published with it). Nothing in a mail is trusted; the
//! policy decides on these facts.
//!
//! For automatic builds, the same answer gives what the upload policy
//! reads ([`upload`]): the patch set's kind, the change's work-in-progress
//! and private flags, and the bot's verdicts around the patch set.
//!
//! One change query answers all of it (see [`query_options`]); the
//! published comments are a second request only when the change messages
//! cannot confirm a comment mail's commands, or may hide the
//! `bionicbb:ok-to-test` that decides whether an untrusted committer's
//! patch set is built ([`vouch`]).

mod upload;
mod vouch;

pub use vouch::{vouch_hidden_in_comments, vouch_on};

use std::collections::BTreeMap;

use bionicbb_core::config::Config;
use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::event::{
    ChangeFacts, ChangeStatus, Command, CommentFacts, GerritEvent, MessageType,
};
use bionicbb_core::gerrit::types::parse_timestamp;
use bionicbb_core::gerrit::{
    AccountInfo, ChangeInfo, ChangeMessageInfo, ChangeRef, CommentInfo, GerritClient, QueryOption,
    Revision, RevisionInfo,
};
use bionicbb_core::mail::votes;

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

/// True when the decision depends on what Gerrit says: builds and
/// comments. Any other mail (merged, abandoned, ...) is "nothing to do"
/// whatever Gerrit would answer, so asking would be a wasted round trip.
pub fn needs_gerrit(event: &GerritEvent) -> bool {
    matches!(
        event.message_type,
        MessageType::NewChange | MessageType::NewPatchSet | MessageType::Comment
    )
}

/// True for the mails that close a change (`merged`, `abandon`): Gerrit
/// is asked about them only when the bot has builds of the change to
/// cancel (see [`gather_closing`]).
pub fn closes_change(event: &GerritEvent) -> bool {
    matches!(
        event.message_type,
        MessageType::Merged | MessageType::Abandon
    )
}

/// Asks Gerrit about the event. `Ok(None)` when Gerrit does not know the
/// change (a forged mail, or a change deleted since): the mail is done and
/// nothing runs; and, without asking, when the decision does not depend on
/// Gerrit ([`needs_gerrit`]). `Err` for anything else that failed; the
/// caller decides whether to try again.
pub async fn gather(
    gerrit: &GerritClient,
    event: &GerritEvent,
    config: &Config,
) -> Result<Option<ChangeFacts>, ApiError> {
    gather_closing(gerrit, event, config, false).await
}

/// [`gather`], also asking about a mail that closes a change
/// ([`closes_change`]) when `cancels` says the bot has builds of it to
/// cancel (once Gerrit confirms the change closed): a closing mail costs
/// a request only then.
pub async fn gather_closing(
    gerrit: &GerritClient,
    event: &GerritEvent,
    config: &Config,
    cancels: bool,
) -> Result<Option<ChangeFacts>, ApiError> {
    let asked = needs_gerrit(event) || (cancels && closes_change(event));
    if !asked {
        return Ok(None);
    }
    let change_ref = match change_ref(event) {
        Ok(r) => r,
        Err(reason) => {
            tracing::warn!(%reason, "treating the mail as naming no change");
            return Ok(None);
        }
    };
    let needs_details = needs_patch_set_details(event);
    let change = match gerrit
        .change(&change_ref, &query_options(needs_details))
        .await
    {
        Ok(change) => change,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let ps = event.patch_set;
    let mut details = None;
    if let Some((_, revision)) = change.revision(ps).filter(|_| needs_details) {
        let Some(found) = patch_set_details(gerrit, &change_ref, ps, revision).await? else {
            return Ok(None);
        };
        details = Some(found);
    }
    // Comments are fetched only when the change messages alone do not
    // show the mail's commands, or may hide a vouch that decides.
    let mut comments = None;
    let comment = if event.message_type == MessageType::Comment {
        if needs_comments(event, &change.messages) {
            match gerrit.comments(&change_ref).await {
                Ok(c) => comments = Some(c),
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let read = comments.as_ref().map_or(&NO_COMMENTS, |c| c);
        match_comment(event, &change.messages, read)
    } else {
        None
    };
    let mut facts = from_change(&change, ps, details, comment, config);
    if vouch_hidden_in_comments(&change, &facts, ps, config) {
        if comments.is_none() {
            match gerrit.comments(&change_ref).await {
                Ok(c) => comments = Some(c),
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let read = comments.as_ref().map_or(&NO_COMMENTS, |c| c);
        facts.vouch = vouch_on(&change, ps, facts.comment.as_ref(), read, config);
    }
    Ok(Some(facts))
}

/// No published comments (not read).
static NO_COMMENTS: Comments = Comments::new();

/// The committer's e-mail (when Gerrit shows one) and the files (without
/// Gerrit's magic ones) of a patch set.
pub type Details = (Option<String>, Vec<String>);

/// The facts about patch set `ps` of `change` as one Gerrit answer shows
/// them: the change's project, branch, status and current patch set, the
/// ref of `ps` (`None` when the answer has no such patch set), its
/// `details` when the decision needs them (else no committer and no
/// files), the `comment` Gerrit confirmed, what the upload policy reads
/// ([`upload::upload_facts`]; `config` names the bot and its label), and
/// the vouch the change messages show ([`vouch_on`]; without published
/// comments: see [`vouch_hidden_in_comments`]).
/// Pure: the mail path and the reconcile pass build their facts the same
/// way.
pub fn from_change(
    change: &ChangeInfo,
    ps: u32,
    details: Option<Details>,
    comment: Option<CommentFacts>,
    config: &Config,
) -> ChangeFacts {
    let (committer_email, files) = details.unwrap_or_default();
    ChangeFacts {
        number: change.number,
        project: change.project.clone(),
        branch: change.branch.clone(),
        status: status_of(change),
        current_patch_set: current_patch_set(change),
        patch_set_ref: change.patch_set_ref(ps).map(str::to_string),
        committer_email,
        files,
        subject: change.subject.clone(),
        owner: change
            .owner
            .name
            .clone()
            .or_else(|| change.owner.email.clone())
            .or_else(|| change.owner.username.clone()),
        upload: upload::upload_facts(change, ps, config),
        vouch: vouch_on(change, ps, comment.as_ref(), &NO_COMMENTS, config),
        comment,
    }
}

/// The options of the one change query a mail costs. `ALL_REVISIONS`: the
/// event's patch set may no longer be current, and only this option lists
/// the older ones (with their refs). When the decision needs the patch
/// set's committer and files, `ALL_COMMITS` and `ALL_FILES` put them in
/// each `RevisionInfo` (both are honoured only together with a revisions
/// option; `ALL_FILES` leaves out the magic `/COMMIT_MSG` and
/// `/MERGE_LIST`). With them `DETAILED_LABELS`: the votes on the current
/// patch set, for the upload policy. `MESSAGES` with `DETAILED_ACCOUNTS`:
/// the change messages and who wrote them, to confirm a comment mail and
/// find the bot's verdicts.
pub fn query_options(details: bool) -> Vec<QueryOption> {
    let mut options = vec![QueryOption::AllRevisions];
    if details {
        options.extend([
            QueryOption::AllCommits,
            QueryOption::AllFiles,
            QueryOption::DetailedLabels,
        ]);
    }
    options.extend([QueryOption::Messages, QueryOption::DetailedAccounts]);
    options
}

/// The committer's e-mail and the files of patch set `ps`, read from its
/// `RevisionInfo`. A server that could not compute one of them leaves it
/// out of the answer (and logs why); then it is asked for on its own.
/// `Ok(None)` when the change vanished in between.
pub async fn patch_set_details(
    gerrit: &GerritClient,
    change_ref: &ChangeRef,
    ps: u32,
    revision: &RevisionInfo,
) -> Result<Option<Details>, ApiError> {
    let committer = match &revision.commit {
        Some(commit) => commit.committer.email.clone(),
        None => match gerrit.commit(change_ref, Revision::PatchSet(ps)).await {
            Ok(commit) => commit.committer.email,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        },
    };
    let listed = match &revision.files {
        Some(files) => files.keys().cloned().collect::<Vec<_>>(),
        None => match gerrit.files(change_ref, Revision::PatchSet(ps)).await {
            Ok(files) => files.into_keys().collect(),
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        },
    };
    // Gerrit's magic files (`/COMMIT_MSG`, `/MERGE_LIST`) are not in the
    // tree; `.../files` lists them, `ALL_FILES` already leaves them out.
    let files = listed.into_iter().filter(|f| !f.starts_with('/')).collect();
    Ok(Some((Some(committer).filter(|e| !e.is_empty()), files)))
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
pub fn current_patch_set(change: &ChangeInfo) -> u32 {
    change
        .current_patch_set()
        .or_else(|| change.revisions.values().map(|r| r.number).max())
        .unwrap_or(0)
}

/// Published comments as `GET /changes/{id}/comments` returns them:
/// path → comments (`/PATCHSET_LEVEL` for patchset-level ones).
pub type Comments = BTreeMap<String, Vec<CommentInfo>>;

/// True when confirming the mail may need the change's published comments:
/// a comment mail with commands and a comment date, whose change messages
/// at that date do not show the commands themselves (Gerrit 3.3+ puts text
/// typed in the reply box in a patchset-level comment, leaving only
/// `(1 comment)` in the change message).
pub fn needs_comments(event: &GerritEvent, messages: &[ChangeMessageInfo]) -> bool {
    event.message_type == MessageType::Comment
        && !event.commands.is_empty()
        && event.comment_date.is_some()
        && match_comment(event, messages, &Comments::new()).is_none()
}

/// Finds the change message a comment mail is about and checks that Gerrit
/// shows everything the mail claims, since nothing in a mail is trusted:
///
/// - candidates are the messages on the mail's patch set written by the
///   mail's sender (the `From:` name Gerrit gives the actor, matched to the
///   message author's name, e-mail or username), at the mail's comment date
///   (to the second, ±1 s), or all of them when the mail has no date (then
///   the mail must claim a vote or a command); a mail naming no sender
///   confirms nothing;
/// - every vote of the mail must be on the message's `Patch Set N:` line;
/// - every command must be in the message text, or in a published comment
///   (patchset-level or inline) on that patch set by the message's author,
///   published within ±1 s of the comment date.
///
/// The latest candidate that confirms the mail wins; `None` when none does,
/// so that a forged mail copying the date of a real comment and adding a
/// command, or claiming another sender, confirms nothing. The message's
/// `id` is the identity of its commands: a copy of the mail (a new
/// Message-ID, the same sender) finds the same message and so the same
/// effects, already done. The author is who Gerrit says acted
/// (`real_author` when someone posted on another's behalf, so trust
/// follows the account that acted).
pub fn match_comment(
    event: &GerritEvent,
    messages: &[ChangeMessageInfo],
    comments: &Comments,
) -> Option<CommentFacts> {
    let sender = event.author.as_deref()?;
    let on_patch_set = messages
        .iter()
        .filter(|m| m.revision_number == Some(event.patch_set))
        .filter(|m| written_by(m, sender));
    let (found, extra) = match event.comment_date {
        Some(date) => on_patch_set
            .filter(|m| parse_timestamp(&m.date).is_some_and(|t| near(t, date)))
            .rev()
            .find_map(|m| confirm(event, m, comments, Some(date)).map(|extra| (m, extra)))?,
        None if event.votes.is_empty() && event.commands.is_empty() => return None,
        // Without a comment date (Gerrit 2.x), the mail's own `Date:`, a
        // moment after the message, tells two requests of the same text
        // apart: the latest message before it.
        None => on_patch_set
            .filter(|m| sent_before(m, event.date))
            .rev()
            .find_map(|m| confirm(event, m, comments, None).map(|extra| (m, extra)))?,
    };
    Some(comment_facts(found, &extra))
}

/// A change message as the facts of a comment: its `id` (the identity of
/// its commands), the account that acted (`real_author` when someone
/// posted on another's behalf, so trust follows the account that acted)
/// and its text, followed by the `extra` texts (comments published with
/// it that carry its commands). Pure.
pub fn comment_facts(message: &ChangeMessageInfo, extra: &[&str]) -> CommentFacts {
    // Gerrit may repeat the author as `real_author`; only a different
    // account means someone posted on another's behalf.
    let author = acting_author(message);
    let mut text = message.message.clone();
    for more in extra {
        text.push_str("\n\n");
        text.push_str(more);
    }
    CommentFacts {
        message_id: message.id.clone(),
        author_account_id: author.map(|a| a.account_id),
        author_email: author.and_then(|a| a.email.clone()),
        author_name: author.and_then(|a| a.name.clone()),
        message: text,
    }
}

/// The account that acted for `message`: `real_author` when it differs
/// from `author`, else `author`.
pub fn acting_author(message: &ChangeMessageInfo) -> Option<&AccountInfo> {
    match (&message.author, &message.real_author) {
        (Some(a), Some(r)) if a.account_id != r.account_id => Some(r),
        (Some(a), _) => Some(a),
        (None, r) => r.as_ref(),
    }
}

/// The texts of the comments `author` published on patch set `ps` with a
/// review dated `date` (within ±1 s): where Gerrit 3.3+ puts the text
/// typed in the reply box, and inline comments.
pub fn published_with(comments: &Comments, ps: u32, author: u64, date: i64) -> Vec<&str> {
    comments
        .values()
        .flatten()
        .filter(|c| c.patch_set == Some(ps))
        .filter(|c| c.author.as_ref().is_some_and(|a| a.account_id == author))
        .filter(|c| parse_timestamp(&c.updated).is_some_and(|t| near(t, date)))
        .map(|c| c.message.as_str())
        .collect()
}

/// True when `sender` (the mail's `From:` display name) names the
/// message's author, or the account that posted on their behalf: by full
/// name, e-mail or username, ignoring case (Gerrit names the actor by full
/// name, falling back to the e-mail or username when there is none).
fn written_by(message: &ChangeMessageInfo, sender: &str) -> bool {
    let sender = sender.trim();
    !sender.is_empty()
        && [message.author.as_ref(), message.real_author.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|a| [&a.name, &a.email, &a.username])
            .flatten()
            .any(|n| n.trim().eq_ignore_ascii_case(sender))
}

/// True unless the message is known to be newer than a mail dated
/// `mail_date` (Gerrit mails a message after storing it).
fn sent_before(message: &ChangeMessageInfo, mail_date: Option<i64>) -> bool {
    match (parse_timestamp(&message.date), mail_date) {
        (Some(t), Some(mail)) => t <= mail + DATE_SLACK_SECS,
        _ => true,
    }
}

fn near(t: i64, date: i64) -> bool {
    (t - date).abs() <= DATE_SLACK_SECS
}

/// Checks `message` against the mail. `Some` with the texts of the
/// comments that were needed to show its commands (empty when the message
/// shows them, or the mail has none); `None` when Gerrit does not confirm
/// the mail through this message.
fn confirm<'c>(
    event: &GerritEvent,
    message: &ChangeMessageInfo,
    comments: &'c Comments,
    date: Option<i64>,
) -> Option<Vec<&'c str>> {
    let line = message.message.lines().next().and_then(votes::parse_line);
    let votes_shown = event.votes.iter().all(|v| {
        line.as_ref()
            .is_some_and(|l| l.patch_set == event.patch_set && l.added.contains(v))
    });
    if !votes_shown {
        return None;
    }
    let missing: Vec<&Command> = event
        .commands
        .iter()
        .filter(|c| !carries_command(c, &message.message))
        .collect();
    if missing.is_empty() {
        return Some(Vec::new());
    }
    // Only a comment published with this review, by the same account.
    let date = date?;
    let author = message.author.as_ref()?.account_id;
    let companions = published_with(comments, event.patch_set, author, date);
    let mut used: Vec<&str> = Vec::new();
    for command in missing {
        let text = companions
            .iter()
            .find(|text| carries_command(command, text))?;
        if !used.contains(text) {
            used.push(text);
        }
    }
    Some(used)
}

/// True when `text` has a line `bionicbb:<name>` (spaces allowed after the
/// colon, arguments after a space) for `command`. A quoted line (`> ...`)
/// does not count.
fn carries_command(command: &Command, text: &str) -> bool {
    text.lines().any(|line| {
        line.trim()
            .strip_prefix("bionicbb:")
            .map(str::trim_start)
            .is_some_and(|rest| {
                rest.strip_prefix(command.name.as_str())
                    .is_some_and(|after| after.is_empty() || after.starts_with(' '))
            })
    })
}

/// `(1 comment)`, `(12 comments)`: the line Gerrit writes in a message
/// whose review published comments.
pub fn counts_comments(line: &str) -> bool {
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
