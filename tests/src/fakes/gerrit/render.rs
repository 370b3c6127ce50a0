//! JSON views of the fake's model, shaped by the query options the way
//! Gerrit's `ChangeJson` shapes them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{Account, Change, FakeComment, FakeMessage, Model, PatchSet};

/// The `o=` options the fake understands (unknown ones are a 400).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub labels: bool,
    pub detailed_labels: bool,
    pub current_revision: bool,
    pub all_revisions: bool,
    pub current_commit: bool,
    pub all_commits: bool,
    pub current_files: bool,
    pub all_files: bool,
    pub messages: bool,
    pub detailed_accounts: bool,
}

impl Options {
    /// Sets one option by its wire name; `false` for an unknown name.
    pub fn set(&mut self, name: &str) -> bool {
        let flag = match name.to_ascii_uppercase().as_str() {
            "LABELS" => &mut self.labels,
            "DETAILED_LABELS" => &mut self.detailed_labels,
            "CURRENT_REVISION" => &mut self.current_revision,
            "ALL_REVISIONS" => &mut self.all_revisions,
            "CURRENT_COMMIT" => &mut self.current_commit,
            "ALL_COMMITS" => &mut self.all_commits,
            "CURRENT_FILES" => &mut self.current_files,
            "ALL_FILES" => &mut self.all_files,
            "MESSAGES" => &mut self.messages,
            "DETAILED_ACCOUNTS" => &mut self.detailed_accounts,
            // Accepted and ignored, as they change nothing the fake models.
            "SUBMITTABLE" | "REVIEWER_UPDATES" | "DOWNLOAD_COMMANDS" | "CHECK" => return true,
            _ => return false,
        };
        *flag = true;
        true
    }

    /// What `/detail` adds to the caller's options.
    pub fn detail(mut self) -> Self {
        self.labels = true;
        self.detailed_labels = true;
        self.detailed_accounts = true;
        self.messages = true;
        self
    }
}

/// An AccountInfo: only the id unless `detailed`.
pub fn account(model: &Model, id: u64, detailed: bool) -> Value {
    let mut out = Map::new();
    out.insert("_account_id".into(), json!(id));
    if detailed && let Some(a) = model.account(id) {
        insert_details(&mut out, a);
    }
    Value::Object(out)
}

/// The full AccountInfo of `GET /accounts/{id}`.
pub fn full_account(a: &Account) -> Value {
    let mut out = Map::new();
    out.insert("_account_id".into(), json!(a.id));
    insert_details(&mut out, a);
    Value::Object(out)
}

fn insert_details(out: &mut Map<String, Value>, a: &Account) {
    out.insert("name".into(), json!(a.name));
    if !a.email.is_empty() {
        out.insert("email".into(), json!(a.email));
    }
    out.insert("username".into(), json!(a.username));
}

/// A ChangeInfo. `only_revision` restricts `revisions` to one patch set
/// (the `.../review` view) and sets `current_revision` only when it is current.
pub fn change(model: &Model, c: &Change, opts: Options, only_revision: Option<u32>) -> Value {
    let mut out = Map::new();
    out.insert(
        "id".into(),
        json!(format!(
            "{}~{}~{}",
            bionicbb_core::gerrit::id::encode_segment(&c.project),
            bionicbb_core::gerrit::id::encode_segment(&c.branch),
            c.key
        )),
    );
    out.insert("project".into(), json!(c.project));
    out.insert("branch".into(), json!(c.branch));
    out.insert("change_id".into(), json!(c.key));
    out.insert("subject".into(), json!(c.subject));
    out.insert("status".into(), json!(c.status.as_str()));
    out.insert("created".into(), json!(c.created));
    out.insert("updated".into(), json!(c.updated));
    out.insert("_number".into(), json!(c.number));
    // Gerrit leaves both flags out unless they are set.
    if c.work_in_progress {
        out.insert("work_in_progress".into(), json!(true));
    }
    if c.is_private {
        out.insert("is_private".into(), json!(true));
    }
    out.insert(
        "owner".into(),
        account(model, c.owner, opts.detailed_accounts),
    );
    if opts.labels || opts.detailed_labels {
        out.insert("labels".into(), labels(model, c, opts));
    }
    let current = c.current().map(|p| p.number);
    let shown: Vec<&PatchSet> = match only_revision {
        Some(ps) => c.patch_sets.iter().filter(|p| p.number == ps).collect(),
        None if opts.all_revisions => c.patch_sets.iter().collect(),
        None if opts.current_revision => c.current().into_iter().collect(),
        None => Vec::new(),
    };
    if !shown.is_empty() {
        let current_shown = shown.iter().any(|p| Some(p.number) == current);
        if current_shown && let Some(p) = c.current() {
            out.insert("current_revision".into(), json!(p.sha));
        }
        let mut revisions = Map::new();
        for p in shown {
            let is_current = Some(p.number) == current;
            revisions.insert(p.sha.clone(), revision(model, c, p, opts, is_current));
        }
        out.insert("revisions".into(), Value::Object(revisions));
    }
    if opts.messages {
        let messages: Vec<Value> = c
            .messages
            .iter()
            .map(|m| message(model, m, opts.detailed_accounts))
            .collect();
        out.insert("messages".into(), Value::Array(messages));
    }
    Value::Object(out)
}

/// `labels`: the votes of the **current** patch set, for every configured label.
fn labels(model: &Model, c: &Change, opts: Options) -> Value {
    let current = c.current();
    // Reviewers: everyone who voted or commented on any patch set (upload
    // notices do not make the owner a reviewer).
    let mut reviewers: BTreeSet<u64> = c
        .messages
        .iter()
        .filter(|m| {
            !m.tag
                .as_deref()
                .is_some_and(|t| t.starts_with("autogenerated:gerrit:"))
        })
        .filter_map(|m| m.author)
        .collect();
    for p in &c.patch_sets {
        for by in p.votes.values() {
            reviewers.extend(by.keys().copied());
        }
    }
    let mut out = Map::new();
    for (name, config) in &model.labels {
        let votes = current.and_then(|p| p.votes.get(name));
        let mut label = Map::new();
        if opts.detailed_labels {
            let all: Vec<Value> = reviewers
                .iter()
                .map(|id| {
                    let mut a = account(model, *id, opts.detailed_accounts);
                    let vote = votes.and_then(|v| v.get(id));
                    if let Value::Object(a) = &mut a {
                        a.insert("value".into(), json!(vote.map_or(0, |v| v.value)));
                        if let Some(v) = vote {
                            a.insert("date".into(), json!(v.date));
                            if let Some(tag) = &v.tag {
                                a.insert("tag".into(), json!(tag));
                            }
                        }
                        if c.status == super::Status::New {
                            let range = json!({"min": config.min, "max": config.max});
                            a.insert("permitted_voting_range".into(), range);
                        }
                    }
                    a
                })
                .collect();
            label.insert("all".into(), Value::Array(all));
            let mut values = Map::new();
            for v in config.min..=config.max {
                let key = if v == 0 {
                    " 0".to_string()
                } else {
                    format!("{v:+}")
                };
                let text = match (name.as_str(), v) {
                    (_, 0) => "No score".to_string(),
                    ("Verified", 1) => "Verified".to_string(),
                    ("Verified", -1) => "Fails".to_string(),
                    _ => format!("{name} {v:+}"),
                };
                values.insert(key, json!(text));
            }
            label.insert("values".into(), Value::Object(values));
            label.insert("default_value".into(), json!(0));
        } else if let Some(votes) = votes {
            // Summary form: who holds the extreme values.
            for (id, v) in votes {
                if v.value == config.max {
                    label.insert("approved".into(), account(model, *id, false));
                } else if v.value == config.min {
                    label.insert("rejected".into(), account(model, *id, false));
                }
            }
        }
        out.insert(name.clone(), Value::Object(label));
    }
    Value::Object(out)
}

/// A RevisionInfo. No `fetch` map: the fake has no download plugin. With
/// `ALL_COMMITS` (or `CURRENT_COMMIT` on the current one) a `commit`
/// without its own `commit` field (the map key is the SHA-1); with
/// `ALL_FILES` (or `CURRENT_FILES`) the files without the magic ones.
fn revision(model: &Model, c: &Change, p: &PatchSet, opts: Options, current: bool) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(p.kind));
    out.insert("_number".into(), json!(p.number));
    out.insert("created".into(), json!(p.created));
    out.insert(
        "uploader".into(),
        account(model, c.owner, opts.detailed_accounts),
    );
    out.insert(
        "ref".into(),
        json!(super::GerritFake::patch_set_ref(c.number, p.number)),
    );
    let details = !model.revision_details_unavailable;
    if details && (opts.all_commits || (opts.current_commit && current)) {
        let mut commit = commit(model, c, p);
        if let Value::Object(commit) = &mut commit {
            commit.remove("commit");
        }
        out.insert("commit".into(), commit);
    }
    if details && (opts.all_files || (opts.current_files && current)) {
        // Gerrit's `ChangeJson` drops the magic files from this map (only
        // `.../files` lists them).
        let mut files = files(c, p);
        if let Value::Object(files) = &mut files {
            files.retain(|path, _| !path.starts_with('/'));
        }
        out.insert("files".into(), files);
    }
    Value::Object(out)
}

/// A CommitInfo: authored by the owner, committed by the patch set's committer.
pub fn commit(model: &Model, c: &Change, p: &PatchSet) -> Value {
    let owner = model.account(c.owner);
    let committer_name = model
        .accounts
        .iter()
        .find(|a| a.email == p.committer_email)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| {
            p.committer_email
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string()
        });
    json!({
        "commit": p.sha,
        "parents": [{"commit": p.parent, "subject": "Parent commit"}],
        "author": {
            "name": owner.map(|a| a.name.clone()).unwrap_or_default(),
            "email": owner.map(|a| a.email.clone()).unwrap_or_default(),
            "date": p.created,
            "tz": 0
        },
        "committer": {
            "name": committer_name,
            "email": p.committer_email,
            "date": p.created,
            "tz": 0
        },
        "subject": c.subject,
        "message": commit_message(c),
    })
}

fn commit_message(c: &Change) -> String {
    format!("{}\n\nChange-Id: {}\n", c.subject, c.key)
}

/// The FileInfo map, with Gerrit's magic `/COMMIT_MSG` entry.
pub fn files(c: &Change, p: &PatchSet) -> Value {
    let mut out = Map::new();
    let message = commit_message(c);
    out.insert(
        "/COMMIT_MSG".into(),
        json!({
            "status": "A",
            "lines_inserted": message.lines().count() + 6,
            "size_delta": message.len(),
            "size": message.len()
        }),
    );
    for path in &p.files {
        out.insert(
            path.clone(),
            json!({"lines_inserted": 3, "lines_deleted": 1, "size_delta": 42, "size": 1000}),
        );
    }
    Value::Object(out)
}

/// A ChangeMessageInfo.
fn message(model: &Model, m: &FakeMessage, detailed: bool) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(m.id));
    if let Some(tag) = &m.tag {
        out.insert("tag".into(), json!(tag));
    }
    if let Some(author) = m.author {
        out.insert("author".into(), account(model, author, detailed));
        out.insert("real_author".into(), account(model, author, false));
    }
    out.insert("date".into(), json!(m.date));
    out.insert("message".into(), json!(m.message));
    out.insert("_revision_number".into(), json!(m.patch_set));
    Value::Object(out)
}

/// `GET /changes/{id}/comments`: path → CommentInfo list, sorted by path
/// and then by patch set, line and date as Gerrit sorts them; the path is
/// the key and not repeated in the entries; authors with details.
pub fn comments(model: &Model, c: &Change) -> Value {
    let mut by_path: BTreeMap<&str, Vec<&FakeComment>> = BTreeMap::new();
    for comment in &c.comments {
        by_path
            .entry(comment.path.as_str())
            .or_default()
            .push(comment);
    }
    let mut out = Map::new();
    for (path, mut list) in by_path {
        list.sort_by(|a, b| (a.patch_set, a.line, &a.date).cmp(&(b.patch_set, b.line, &b.date)));
        let entries: Vec<Value> = list
            .into_iter()
            .map(|comment| {
                let mut entry = Map::new();
                entry.insert("author".into(), account(model, comment.author, true));
                entry.insert("unresolved".into(), json!(false));
                entry.insert("patch_set".into(), json!(comment.patch_set));
                entry.insert("id".into(), json!(comment.id));
                if let Some(line) = comment.line {
                    entry.insert("line".into(), json!(line));
                }
                entry.insert("updated".into(), json!(comment.date));
                entry.insert("message".into(), json!(comment.message));
                if let Some(p) = c.patch_sets.iter().find(|p| p.number == comment.patch_set) {
                    entry.insert("commit_id".into(), json!(p.sha));
                }
                Value::Object(entry)
            })
            .collect();
        out.insert(path.to_string(), Value::Array(entries));
    }
    Value::Object(out)
}
