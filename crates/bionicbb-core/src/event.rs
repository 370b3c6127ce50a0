//! The domain: what a Gerrit e-mail says ([`GerritEvent`]), what Gerrit
//! confirms about it ([`ChangeFacts`]), and what the bot decides to do
//! ([`Decision`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `Gerrit-MessageType`, with the types bionicbb treats specially named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum MessageType {
    NewChange,
    NewPatchSet,
    Comment,
    Merged,
    Abandon,
    Restore,
    Revert,
    MergeFailed,
    DeleteVote,
    DeleteReviewer,
    /// Any other type (`setassignee`, `addToAttentionSet`, ...): logged and skipped.
    Other(String),
}

impl MessageType {
    pub fn as_str(&self) -> &str {
        match self {
            MessageType::NewChange => "newchange",
            MessageType::NewPatchSet => "newpatchset",
            MessageType::Comment => "comment",
            MessageType::Merged => "merged",
            MessageType::Abandon => "abandon",
            MessageType::Restore => "restore",
            MessageType::Revert => "revert",
            MessageType::MergeFailed => "merge-failed",
            MessageType::DeleteVote => "deleteVote",
            MessageType::DeleteReviewer => "deleteReviewer",
            MessageType::Other(s) => s,
        }
    }
}

impl From<String> for MessageType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "newchange" => MessageType::NewChange,
            "newpatchset" => MessageType::NewPatchSet,
            "comment" => MessageType::Comment,
            "merged" => MessageType::Merged,
            "abandon" => MessageType::Abandon,
            "restore" => MessageType::Restore,
            "revert" => MessageType::Revert,
            "merge-failed" => MessageType::MergeFailed,
            "deleteVote" => MessageType::DeleteVote,
            "deleteReviewer" => MessageType::DeleteReviewer,
            _ => MessageType::Other(s),
        }
    }
}

impl From<MessageType> for String {
    fn from(t: MessageType) -> String {
        t.as_str().to_string()
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vote added by the action a mail reports, e.g. `Verified+1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub label: String,
    pub value: i32,
}

/// A `bionicbb:<name> [args]` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub name: String,
    pub args: Vec<String>,
}

/// One Gerrit notification, as read from an e-mail. Nothing in it is trusted
/// until Gerrit confirms it (see [`ChangeFacts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GerritEvent {
    pub message_type: MessageType,
    /// The `I...` Change-Id.
    pub change_id: String,
    pub change_number: Option<u64>,
    pub patch_set: u32,
    pub project: String,
    pub branch: String,
    /// `Gerrit-Owner`, as written (`Name <email>`).
    pub owner: Option<String>,
    /// The person whose action the mail reports, as the mail names them
    /// (display name from `From:`); never used for trust decisions.
    pub author: Option<String>,
    /// `Gerrit-Comment-Date` / `X-Gerrit-Comment-Date` as seconds since the
    /// epoch, for matching the comment on Gerrit.
    pub comment_date: Option<i64>,
    /// The mail's `Date:` as seconds since the epoch.
    pub date: Option<i64>,
    /// Votes added by this action (comment mails).
    pub votes: Vec<Vote>,
    /// Every `bionicbb:` command in the comment's own text, in order.
    pub commands: Vec<Command>,
}

/// Gerrit's `status` of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeStatus {
    New,
    Merged,
    Abandoned,
}

/// What Gerrit says about the change an event names. Gathered by the
/// gmail-listener before deciding; a forged mail finds no facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFacts {
    pub number: u64,
    pub project: String,
    pub branch: String,
    pub status: ChangeStatus,
    pub current_patch_set: u32,
    /// `revisions.{sha}.ref` of the event's patch set; `None` when Gerrit has
    /// no such patch set.
    pub patch_set_ref: Option<String>,
    /// Committer e-mail of the event's patch set.
    pub committer_email: Option<String>,
    /// Files the event's patch set touches (without `/COMMIT_MSG`).
    pub files: Vec<String>,
    /// For comment events: the change message on that patch set matching the
    /// mail, if Gerrit has one.
    pub comment: Option<CommentFacts>,
    /// The change's subject and owner (name, else e-mail), for display only.
    pub subject: String,
    pub owner: Option<String>,
    /// What the event's patch set changed and what verdicts stand around
    /// it: what the policy of automatic builds reads.
    pub upload: UploadFacts,
    /// The trusted commenter's `bionicbb:ok-to-test` on the event's patch
    /// set, if any (for a comment, one posted no later than it).
    pub vouch: Option<Vouch>,
}

/// A trusted commenter's `bionicbb:ok-to-test` on a patch set, as Gerrit's
/// change messages show it: the patch set may be built whoever committed
/// it (the file and directory rules still apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vouch {
    /// The change message's `id`.
    pub message_id: String,
    /// The account that acted, as Gerrit reports it.
    pub by_email: String,
    /// Its full name, when Gerrit shows one.
    pub by_name: Option<String>,
}

impl Vouch {
    /// Who vouched, for people: the name, else the e-mail.
    pub fn who(&self) -> &str {
        self.by_name.as_deref().unwrap_or(&self.by_email)
    }
}

/// Gerrit's `kind` of a patch set (RevisionInfo `kind`, a ChangeKind):
/// what it changed against the previous patch set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// New code: only a build can give its verdict. Also what an absent
    /// or unknown kind counts as.
    #[default]
    Rework,
    /// The same change rebased onto a new parent without conflicts.
    TrivialRebase,
    /// A merge commit whose first parent changed, and nothing else.
    MergeFirstParentUpdate,
    /// The same tree; only the commit message changed.
    NoCodeChange,
    /// The same tree and commit message (a re-upload).
    NoChange,
    /// A trivial rebase with a new commit message (newer servers).
    TrivialRebaseWithMessageUpdate,
}

impl ChangeKind {
    /// Every kind Gerrit names.
    pub const ALL: [ChangeKind; 6] = [
        ChangeKind::Rework,
        ChangeKind::TrivialRebase,
        ChangeKind::MergeFirstParentUpdate,
        ChangeKind::NoCodeChange,
        ChangeKind::NoChange,
        ChangeKind::TrivialRebaseWithMessageUpdate,
    ];

    /// Gerrit's name (`NO_CODE_CHANGE`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Rework => "REWORK",
            ChangeKind::TrivialRebase => "TRIVIAL_REBASE",
            ChangeKind::MergeFirstParentUpdate => "MERGE_FIRST_PARENT_UPDATE",
            ChangeKind::NoCodeChange => "NO_CODE_CHANGE",
            ChangeKind::NoChange => "NO_CHANGE",
            ChangeKind::TrivialRebaseWithMessageUpdate => "TRIVIAL_REBASE_WITH_MESSAGE_UPDATE",
        }
    }

    /// The kind Gerrit names exactly `name`; `None` for any other text.
    pub fn from_name(name: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind of a RevisionInfo: absent or unknown (a newer server's)
    /// counts as `REWORK`, so it is built.
    pub fn from_gerrit(kind: Option<&str>) -> ChangeKind {
        kind.and_then(ChangeKind::from_name).unwrap_or_default()
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bot's vote standing on a patch set, as its change messages show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub patch_set: u32,
    pub value: i32,
}

/// What the event's patch set changed, and the bot's votes around it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadFacts {
    /// The patch set's kind.
    pub kind: ChangeKind,
    pub work_in_progress: bool,
    pub is_private: bool,
    /// The bot's verdict on the review label standing on the previous
    /// patch set; `None` when it has none (never built, still building,
    /// or its vote was removed).
    pub previous_verdict: Option<Verdict>,
    /// The bot's vote on the review label on this patch set as Gerrit's
    /// labels show it (copied by a label's rules, or carried over);
    /// `None` when it has none, or when this patch set is not current
    /// (labels show only the current one's).
    pub bot_vote: Option<i32>,
}

/// A change message Gerrit confirms, with its author as Gerrit reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentFacts {
    /// The change message's `id`: the identity of the commands it carries,
    /// whichever mail (or copy of one) reported it.
    pub message_id: String,
    pub author_account_id: Option<u64>,
    pub author_email: Option<String>,
    /// The author's full name as Gerrit reports it (for the bot's words
    /// only, never for trust); `None` when the account has none.
    pub author_name: Option<String>,
    /// The message text as Gerrit stores it.
    pub message: String,
}

/// What the bot will do about an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Trigger `job` with `params`.
    Build {
        job: String,
        params: BTreeMap<String, String>,
        reason: String,
        /// True for the patch set's automatic build, built once whoever
        /// asks (its upload's mails, a reconcile pass, an `ok-to-test`
        /// comment); false for a command's build, once per command
        /// (`retry`, a target: the comment's identity narrows the key).
        per_patch_set: bool,
    },
    /// Trigger the clean job.
    Clean {
        job: String,
        params: BTreeMap<String, String>,
    },
    /// Ask build-listener to drop the bot's rejection on this patch set.
    DropRejection { change_number: u64, patch_set: u32 },
    /// Post `message` on the change's patch set (no vote).
    Reply {
        change_number: u64,
        patch_set: u32,
        message: String,
    },
    /// Nothing to do, and why.
    Skip { reason: String },
    /// Record in the ledger that a trusted commenter vouched for this patch
    /// set (`bionicbb:ok-to-test`), whose build was decided on that vouch.
    Vouch {
        change_number: u64,
        patch_set: u32,
        by_name: Option<String>,
        by_email: String,
        message_id: String,
    },
    /// Post `message` on the patch set once: why its automatic build was
    /// skipped and what its uploader can do about it.
    ExplainSkip {
        change_number: u64,
        patch_set: u32,
        message: String,
    },
    /// Vote `label` = `value` with `message` on the patch set: the verdict
    /// of `from_patch_set`, which a patch set of a skipped kind keeps.
    CarryOver {
        change_number: u64,
        patch_set: u32,
        from_patch_set: u32,
        label: String,
        value: i32,
        message: String,
    },
    /// Cancel the bot's own queued items and stop its running builds of
    /// change `change_number`: those of patch sets below `below` (a newer
    /// patch set is being built), or all of them (`None`: the change is
    /// merged or abandoned).
    CancelSuperseded {
        change_number: u64,
        below: Option<u32>,
    },
    /// Tell the commenter that their command `command` started what the
    /// decision just before this one asked for (a build or the clean job),
    /// once Jenkins accepted it: one short reply naming `by` (the
    /// commenter's name as Gerrit reports it), the job and its queue item.
    Acknowledge {
        change_number: u64,
        patch_set: u32,
        command: String,
        by: String,
    },
    /// Answer `bionicbb:why`: one reply explaining what the bot decided and
    /// did about the patch set, from the ledger. `automatic` is what the
    /// policy decides now, on Gerrit's current facts, about an automatic
    /// build of the patch set (the rule that applies, with its file or
    /// e-mail).
    Why {
        change_number: u64,
        patch_set: u32,
        automatic: Vec<Decision>,
    },
}
