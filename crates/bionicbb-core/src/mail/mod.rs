//! Gerrit notification e-mails → [`GerritEvent`]s. Pure: bytes in, value out.
//!
//! Steps (see the submodules):
//! 1. [`mime`]: parse the RFC 822 message, pick the text/plain part (or turn
//!    the HTML part into text), decode it, un-flow `format=flowed`.
//! 2. [`footers`]: read the `Gerrit-*` footer block at the end of the body;
//!    where a footer is missing, fall back on the `X-Gerrit-*` headers.
//! 3. For `comment` mails only, [`comment`] finds the commenter's own text:
//!    votes from the `Patch Set N:` line ([`votes`]) and `bionicbb:` command
//!    lines ([`crate::command`]).
//!
//! Nothing here is trusted: the caller confirms the change, patch set and
//! comment with Gerrit before acting.
//!
//! Decisions:
//! - A `Patch Set N:` line naming another patch set than the mail's
//!   (`Gerrit-PatchSet`) never happens in a genuine mail; its votes are
//!   dropped (noted in [`ParsedMail::notes`]) rather than applied to the
//!   wrong patch set. Commands still apply to the mail's patch set.
//! - The oldest servers' numeric `X-Gerrit-ChangeId` header (and a numeric
//!   `Gerrit-ChangeId` footer) give the change number, not the Change-Id.
//! - Comment dates that do not parse are left out (`None`), not an error.

mod comment;
pub mod footers;
pub mod html;
pub mod mime;
pub mod votes;

use mail_parser::{DateTime, Message, MessageParser};
use serde_json::{Value, json};

use crate::command;
use crate::config::CommandsConfig;
use crate::event::{GerritEvent, MessageType};
use crate::gerrit::id::{ChangeKey, validate_branch, validate_project};
pub use footers::Footers;
use mime::Body;

/// A parsed notification with the envelope details callers log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    pub event: GerritEvent,
    /// `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The `From:` address (Gerrit's sender address, not the actor's).
    pub from: Option<String>,
    /// Labels whose vote the comment removed (`-Verified`).
    pub removed_votes: Vec<String>,
    /// Oddities that did not stop the parse, for the log.
    pub notes: Vec<String>,
}

/// Why a mail is not a usable Gerrit change notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("not an RFC 822 message")]
    Malformed,
    #[error(
        "not a Gerrit notification: no Gerrit-MessageType footer nor X-Gerrit-MessageType header"
    )]
    NotGerrit,
    #[error(
        "not a change notification: Gerrit message type `{0}` carries no change footers (account or error mail)"
    )]
    NotChange(String),
    #[error("missing required footer Gerrit-{0} (and no X-Gerrit-* header supplies it)")]
    MissingFooter(&'static str),
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidValue {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("conflicting values for Gerrit-{field}: {values:?}")]
    Conflicting {
        field: &'static str,
        values: Vec<String>,
    },
    #[error("undecodable body: {0}")]
    Undecodable(String),
    #[error("the mail body is empty")]
    EmptyBody,
    #[error("more than {max} multipart containers: not a Gerrit notification")]
    TooManyMultiparts { max: usize },
}

/// Parses one raw mail (RFC 822 bytes, CRLF or LF line ends).
pub fn parse(raw: &[u8]) -> Result<ParsedMail, MailError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(MailError::EmptyBody);
    }
    mime::check_multiparts(raw)?;
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(MailError::Malformed)?;
    let parsed = parse_message(&message);
    mime::drop_flat(message);
    parsed
}

fn parse_message(message: &Message<'_>) -> Result<ParsedMail, MailError> {
    let body = mime::body(message);
    let footers = match &body {
        Ok(b) => Footers::from_body(&b.text, b.source),
        Err(_) => Footers::default(),
    };
    let fields = Fields {
        footers: &footers,
        message,
    };
    let message_type = fields
        .single("MessageType", "X-Gerrit-MessageType")?
        .ok_or(MailError::NotGerrit)?;
    let body = body?;
    if body.text.trim().is_empty() {
        return Err(MailError::EmptyBody);
    }
    let message_type = MessageType::from(message_type);
    if !fields.has_change_data() {
        return Err(MailError::NotChange(excerpt(message_type.as_str())));
    }
    let (change_id, change_number) = fields.change_ids()?;
    let patch_set = fields.patch_set()?;
    let project = fields
        .single("Project", "X-Gerrit-Project")?
        .ok_or(MailError::MissingFooter("Project"))?;
    validate_project(&project).map_err(|reason| invalid("project", &project, reason))?;
    let branch = fields
        .single("Branch", "")?
        .ok_or(MailError::MissingFooter("Branch"))?;
    let branch = branch
        .strip_prefix("refs/heads/")
        .map(str::to_string)
        .unwrap_or(branch);
    validate_branch(&branch).map_err(|reason| invalid("branch", &branch, reason))?;
    let comment_date = fields
        .single("Comment-Date", "X-Gerrit-Comment-Date")?
        .and_then(|d| timestamp(&d));
    let mut parsed = ParsedMail {
        event: GerritEvent {
            message_type,
            change_id,
            change_number,
            patch_set,
            project,
            branch,
            owner: footers.all("Owner").first().cloned(),
            author: author(message),
            comment_date,
            date: message
                .date()
                .filter(|d| d.is_valid())
                .map(DateTime::to_timestamp),
            votes: Vec::new(),
            commands: Vec::new(),
        },
        message_id: message.message_id().map(str::to_string),
        subject: message.subject().map(str::to_string),
        from: message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string),
        removed_votes: Vec::new(),
        notes: Vec::new(),
    };
    if parsed.event.message_type == MessageType::Comment {
        read_comment(&body, &mut parsed);
    }
    Ok(parsed)
}

/// The footer block of a mail, for diagnostics (`Gerrit-Reviewer`,
/// `Gerrit-Has-Labels`, ... are not part of the event).
pub fn read_footers(raw: &[u8]) -> Result<Footers, MailError> {
    mime::check_multiparts(raw)?;
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(MailError::Malformed)?;
    let footers = mime::body(&message).map(|body| Footers::from_body(&body.text, body.source));
    mime::drop_flat(message);
    footers
}

/// At most this many commands are read from one comment (a person types
/// one or two).
pub const MAX_COMMANDS: usize = 16;

/// A command line is read up to this many bytes (a command and a few
/// arguments); the rest of a longer line is ignored.
pub const MAX_COMMAND_LINE: usize = 256;

/// Fills votes and commands of a comment mail.
fn read_comment(body: &Body, parsed: &mut ParsedMail) {
    let comment = comment::read(&body.text, body.source);
    let mut commands = comment
        .lines
        .iter()
        .filter_map(|line| command::parse_line(prefix(line, MAX_COMMAND_LINE)));
    parsed.event.commands = commands.by_ref().take(MAX_COMMANDS).collect();
    if commands.next().is_some() {
        parsed.notes.push(format!(
            "only the first {MAX_COMMANDS} commands of the comment are read"
        ));
    }
    match comment.vote_line {
        Some(line) if line.patch_set == parsed.event.patch_set => {
            parsed.event.votes = line.added;
            parsed.removed_votes = line.removed;
        }
        Some(line) => parsed.notes.push(format!(
            "votes ignored: the change message is on patch set {} but the mail is about patch set {}",
            line.patch_set, parsed.event.patch_set
        )),
        None => parsed
            .notes
            .push("no `Patch Set N:` line in the comment".into()),
    }
}

/// Footers first, then headers.
struct Fields<'a, 'm> {
    footers: &'a Footers,
    message: &'a Message<'m>,
}

impl Fields<'_, '_> {
    /// The one value of a single-valued footer, else of `header` (when not
    /// empty). Two different footer values are an error.
    fn single(&self, footer: &'static str, header: &str) -> Result<Option<String>, MailError> {
        match self.footers.distinct(footer).as_slice() {
            [] => Ok(self.header(header)),
            [one] => Ok(Some(one.to_string())),
            many => Err(MailError::Conflicting {
                field: footer,
                values: many.iter().map(|v| excerpt(v)).collect(),
            }),
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        if name.is_empty() {
            return None;
        }
        let value = self.message.header(name)?;
        let text = value.as_text().or_else(|| {
            value
                .as_text_list()
                .and_then(|l| l.first().map(|s| s.as_ref()))
        })?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    /// Whether the mail names a change at all.
    fn has_change_data(&self) -> bool {
        [
            "Change-Id",
            "Change-Number",
            "PatchSet",
            "PatchSetId",
            "Project",
            "Branch",
        ]
        .iter()
        .any(|k| !self.footers.all(k).is_empty())
            || [
                "X-Gerrit-Change-Id",
                "X-Gerrit-ChangeId",
                "X-Gerrit-Change-Number",
                "X-Gerrit-PatchSet",
                "X-Gerrit-Project",
            ]
            .iter()
            .any(|h| self.header(h).is_some())
    }

    /// The Change-Id (required) and the change number (optional). Each of
    /// `Gerrit-Change-Id`/`Gerrit-ChangeId` and `X-Gerrit-Change-Id`/
    /// `X-Gerrit-ChangeId` may hold either, depending on the server's age.
    fn change_ids(&self) -> Result<(String, Option<u64>), MailError> {
        let id_footer = self.single("Change-Id", "")?;
        let id_header = self
            .header("X-Gerrit-Change-Id")
            .or_else(|| self.header("X-Gerrit-ChangeId"));
        let number_footer = self.single("Change-Number", "X-Gerrit-Change-Number")?;
        let mut key = None;
        let mut number = None;
        for value in [id_footer, id_header].into_iter().flatten() {
            if value.starts_with('I') {
                if key.is_none() {
                    let k = ChangeKey::parse(&value)
                        .map_err(|e| invalid("Change-Id", &value, e.reason))?;
                    key = Some(k.as_str().to_string());
                }
            } else if number.is_none() {
                number = Some(change_number(&value, "Change-Id")?);
            }
        }
        if let Some(value) = number_footer {
            number = Some(change_number(&value, "Change-Number")?);
        }
        let key = key.ok_or(MailError::MissingFooter("Change-Id"))?;
        Ok((key, number))
    }

    fn patch_set(&self) -> Result<u32, MailError> {
        let value = match self.single("PatchSet", "")? {
            Some(v) => Some(v),
            None => self.single("PatchSetId", "X-Gerrit-PatchSet")?,
        };
        let value = value.ok_or(MailError::MissingFooter("PatchSet"))?;
        parse_number(&value)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid("patch set", &value, "a patch set is a positive number"))
    }
}

fn change_number(value: &str, field: &'static str) -> Result<u64, MailError> {
    parse_number(value).ok_or_else(|| {
        invalid(
            field,
            value,
            "neither a Change-Id (I + 40 hex) nor a positive change number",
        )
    })
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n > 0)
}

fn invalid(field: &'static str, value: &str, reason: &'static str) -> MailError {
    MailError::InvalidValue {
        field,
        value: excerpt(value),
        reason,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Values from a mail go into error messages; keep them short.
fn excerpt(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// RFC 2822 date (any zone) → seconds since the epoch.
fn timestamp(s: &str) -> Option<i64> {
    DateTime::parse_rfc822(s)
        .filter(DateTime::is_valid)
        .map(|d| d.to_timestamp())
}

/// The actor: `From:` display name without Gerrit's ` (Code Review)` /
/// ` (Gerrit)` suffix.
fn author(message: &Message<'_>) -> Option<String> {
    let name = message.from()?.first()?.name()?.trim();
    let name = name
        .strip_suffix("(Code Review)")
        .or_else(|| name.strip_suffix("(Gerrit)"))
        .unwrap_or(name)
        .trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The JSON object `gmail-listener parse FILE` prints for one mail: the
/// event's fields, the commands split into known and unknown names, and the
/// Message-ID; or `{"error": "..."}`.
pub fn report(raw: &[u8], known: &CommandsConfig) -> Value {
    let parsed = match parse(raw) {
        Ok(p) => p,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let e = &parsed.event;
    let unknown: Vec<&str> = e
        .commands
        .iter()
        .map(|c| c.name.as_str())
        .filter(|name| !command::is_known(name, known))
        .collect();
    json!({
        "message_type": e.message_type.as_str(),
        "change_id": e.change_id,
        "change_number": e.change_number,
        "patch_set": e.patch_set,
        "project": e.project,
        "branch": e.branch,
        "owner": e.owner,
        "author": e.author,
        "comment_date": e.comment_date,
        "votes": e.votes.iter().map(|v| json!({"label": v.label, "value": v.value})).collect::<Vec<_>>(),
        "commands": e.commands.iter().map(|c| json!({"name": c.name, "args": c.args})).collect::<Vec<_>>(),
        "unknown_commands": unknown,
        "message_id": parsed.message_id,
    })
}
