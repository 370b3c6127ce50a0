//! A fake Gerrit server that speaks the REST wire format of the real one,
//! including the parts that break naive clients: the `)]}'` guard on every
//! JSON answer (and on GET errors that contain `<` or `&`), plain-text
//! errors otherwise, `/a/` + Basic auth, every change-id form with its
//! ambiguity, labels that are always the current patch set's, unknown labels
//! silently dropped, and the 409s of closed changes.
//!
//! Tests seed it (accounts, changes, patch sets, votes, messages) and inspect
//! what clients did (votes, messages, reviews posted, raw requests through
//! [`GerritFake::faults`]).

mod query;
mod render;
mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use tokio::task::JoinHandle;

use crate::fault::{self, Faults};

/// Status of a fake change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    New,
    Merged,
    Abandoned,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Merged => "MERGED",
            Status::Abandoned => "ABANDONED",
        }
    }
}

/// A change message as stored by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    pub id: String,
    /// `None` for messages Gerrit generates itself.
    pub author: Option<u64>,
    pub date: String,
    pub message: String,
    pub tag: Option<String>,
    pub patch_set: u32,
}

/// A published comment as stored by the fake: inline (`line`), file-level
/// or patchset-level (path `/PATCHSET_LEVEL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeComment {
    pub id: String,
    pub patch_set: u32,
    pub author: u64,
    pub path: String,
    pub line: Option<u32>,
    pub message: String,
    pub date: String,
}

/// One successful `POST .../review`, as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedReview {
    pub number: u64,
    pub patch_set: u32,
    /// The ReviewInput as sent (a `text/plain` body shows up as `{"message": body}`).
    pub body: serde_json::Value,
    /// The authenticated caller.
    pub account: u64,
    /// The change's current patch set when the review was applied.
    pub current_patch_set: u32,
}

#[derive(Debug, Clone)]
struct Account {
    id: u64,
    name: String,
    email: String,
    username: String,
    http_password: String,
}

#[derive(Debug, Clone)]
struct LabelConfig {
    min: i32,
    max: i32,
    /// Gerrit's `label.X.allowPostSubmit`.
    allow_post_submit: bool,
}

#[derive(Debug, Clone)]
struct Vote {
    value: i32,
    date: String,
}

#[derive(Debug, Clone)]
struct PatchSet {
    number: u32,
    sha: String,
    parent: String,
    committer_email: String,
    created: String,
    files: Vec<String>,
    /// label → account → vote (absent = no vote).
    votes: BTreeMap<String, BTreeMap<u64, Vote>>,
}

#[derive(Debug, Clone)]
struct Change {
    number: u64,
    project: String,
    branch: String,
    key: String,
    subject: String,
    owner: u64,
    status: Status,
    created: String,
    /// When anything about the change last changed (a patch set, a
    /// message, a vote, a comment, its status): what `after:` compares.
    updated: String,
    patch_sets: Vec<PatchSet>,
    messages: Vec<FakeMessage>,
    comments: Vec<FakeComment>,
}

impl Change {
    fn current(&self) -> Option<&PatchSet> {
        self.patch_sets.last()
    }

    /// Records that the change was updated now.
    fn touch(&mut self) {
        self.updated = now();
    }
}

#[derive(Debug)]
struct Model {
    accounts: Vec<Account>,
    changes: BTreeMap<u64, Change>,
    labels: BTreeMap<String, LabelConfig>,
    reviews: Vec<PostedReview>,
    /// Delays of the next review posts to apply late, in arrival order.
    late_reviews: std::collections::VecDeque<Duration>,
    /// Late review posts received and not yet applied (or refused).
    late_in_progress: u32,
    next_account: u64,
    next_change: u64,
    next_message: u64,
    /// Leave `commit` and `files` out of every RevisionInfo.
    revision_details_unavailable: bool,
    /// The most changes one query page holds, whatever `n` asks (Gerrit's
    /// `queryLimit` capability).
    query_limit: usize,
}

impl Model {
    fn new() -> Self {
        let mut labels = BTreeMap::new();
        // Typical CI setup: Verified may not change after submit, Code-Review may.
        labels.insert(
            "Verified".to_string(),
            LabelConfig {
                min: -1,
                max: 1,
                allow_post_submit: false,
            },
        );
        labels.insert(
            "Code-Review".to_string(),
            LabelConfig {
                min: -2,
                max: 2,
                allow_post_submit: true,
            },
        );
        Model {
            accounts: Vec::new(),
            changes: BTreeMap::new(),
            labels,
            reviews: Vec::new(),
            late_reviews: std::collections::VecDeque::new(),
            late_in_progress: 0,
            next_account: 1_000_000,
            next_change: 123_456,
            next_message: 1,
            revision_details_unavailable: false,
            query_limit: 500,
        }
    }

    /// The delay of the review post that just arrived, if it is to be late.
    fn take_late_review(&mut self) -> Option<Duration> {
        let delay = self.late_reviews.pop_front()?;
        self.late_in_progress += 1;
        Some(delay)
    }

    fn account(&self, id: u64) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// The change, for a change to it: its `updated` moves to now.
    fn change_mut(&mut self, number: u64) -> &mut Change {
        let change = self
            .changes
            .get_mut(&number)
            .unwrap_or_else(|| panic!("fake Gerrit: no change {number}"));
        change.touch();
        change
    }

    /// The change, to read it.
    fn change(&self, number: u64) -> &Change {
        self.changes
            .get(&number)
            .unwrap_or_else(|| panic!("fake Gerrit: no change {number}"))
    }

    fn patch_set(&self, number: u64, ps: u32) -> &PatchSet {
        self.change(number)
            .patch_sets
            .iter()
            .find(|p| p.number == ps)
            .unwrap_or_else(|| panic!("fake Gerrit: change {number} has no patch set {ps}"))
    }

    fn patch_set_mut(&mut self, number: u64, ps: u32) -> &mut PatchSet {
        self.change_mut(number)
            .patch_sets
            .iter_mut()
            .find(|p| p.number == ps)
            .unwrap_or_else(|| panic!("fake Gerrit: change {number} has no patch set {ps}"))
    }

    fn push_message(
        &mut self,
        number: u64,
        ps: u32,
        author: Option<u64>,
        text: String,
        date: String,
        tag: Option<String>,
    ) {
        let id = format!("msg{:06}", self.next_message);
        self.next_message += 1;
        self.change_mut(number).messages.push(FakeMessage {
            id,
            author,
            date,
            message: text,
            tag,
            patch_set: ps,
        });
    }
}

type Shared = Arc<Mutex<Model>>;

fn lock(model: &Shared) -> MutexGuard<'_, Model> {
    // A panicking test thread must not take every later request down with it.
    model.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running fake. Dropping it stops the server.
pub struct GerritFake {
    url: url::Url,
    faults: Faults,
    model: Shared,
    task: JoinHandle<()>,
}

impl Drop for GerritFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GerritFake {
    /// Starts the fake at the root of `http://127.0.0.1:<port>/`.
    pub async fn start() -> GerritFake {
        Self::start_under("").await
    }

    /// Starts the fake under a path prefix (`"gerrit"` serves
    /// `http://127.0.0.1:<port>/gerrit/...`), like a server behind a proxy.
    pub async fn start_under(prefix: &str) -> GerritFake {
        let prefix = prefix.trim_matches('/').to_string();
        let model: Shared = Arc::new(Mutex::new(Model::new()));
        let faults = Faults::default();
        let state = server::State {
            model: model.clone(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("/{prefix}")
            },
        };
        let app = Router::new()
            .fallback(server::handle)
            .with_state(state)
            .layer(axum::middleware::from_fn_with_state(
                faults.clone(),
                fault::inject,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Gerrit: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(crate::fault::no_delay(listener), app).await;
        });
        let base = if prefix.is_empty() {
            format!("http://127.0.0.1:{port}/")
        } else {
            format!("http://127.0.0.1:{port}/{prefix}/")
        };
        GerritFake {
            url: url::Url::parse(&base).expect("fake Gerrit URL"),
            faults,
            model,
            task,
        }
    }

    /// The base URL (ends with `/`).
    pub fn url(&self) -> url::Url {
        self.url.clone()
    }

    /// Fault injection and the log of requests seen.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Adds an account; `http_password` is what Basic auth on `/a/` checks.
    pub fn add_account(&self, name: &str, email: &str, username: &str, http_password: &str) -> u64 {
        let mut m = lock(&self.model);
        let id = m.next_account;
        m.next_account += 1;
        m.accounts.push(Account {
            id,
            name: name.to_string(),
            email: email.to_string(),
            username: username.to_string(),
            http_password: http_password.to_string(),
        });
        id
    }

    /// Configures a label with its allowed range (votes outside it, and on
    /// unconfigured labels, are silently dropped as Gerrit does).
    /// Defaults: `Verified` -1..+1 (no voting after submit), `Code-Review` -2..+2.
    pub fn configure_label(&self, name: &str, min: i32, max: i32, allow_post_submit: bool) {
        lock(&self.model).labels.insert(
            name.to_string(),
            LabelConfig {
                min,
                max,
                allow_post_submit,
            },
        );
    }

    /// Creates a change without patch sets; returns its number (numbers
    /// start at 123456). The same `change_key` may be used on several
    /// branches (a cherry-pick), which makes the bare key ambiguous.
    pub fn create_change(
        &self,
        project: &str,
        branch: &str,
        change_key: &str,
        owner: u64,
        subject: &str,
    ) -> u64 {
        let mut m = lock(&self.model);
        assert!(
            m.account(owner).is_some(),
            "fake Gerrit: no account {owner}"
        );
        let number = m.next_change;
        m.next_change += 1;
        m.changes.insert(
            number,
            Change {
                number,
                project: project.to_string(),
                branch: branch.trim_start_matches("refs/heads/").to_string(),
                key: change_key.to_string(),
                subject: subject.to_string(),
                owner,
                status: Status::New,
                created: now(),
                updated: now(),
                patch_sets: Vec::new(),
                messages: Vec::new(),
                comments: Vec::new(),
            },
        );
        number
    }

    /// Uploads a new patch set (it becomes current) committed by
    /// `committer_email`, touching `files`; returns its number.
    pub fn add_patch_set(&self, number: u64, committer_email: &str, files: &[&str]) -> u32 {
        let mut m = lock(&self.model);
        let change = m.change_mut(number);
        let ps = change.patch_sets.len() as u32 + 1;
        change.patch_sets.push(PatchSet {
            number: ps,
            sha: fake_sha(number, ps, 0),
            parent: fake_sha(number, ps, 1),
            committer_email: committer_email.to_string(),
            created: now(),
            files: files.iter().map(|f| f.to_string()).collect(),
            votes: BTreeMap::new(),
        });
        let owner = change.owner;
        m.push_message(
            number,
            ps,
            Some(owner),
            format!("Uploaded patch set {ps}."),
            now(),
            Some("autogenerated:gerrit:newPatchSet".to_string()),
        );
        ps
    }

    /// Caps every query page at `limit` changes whatever `n` asks, like
    /// Gerrit's `queryLimit` capability (500 by default).
    pub fn set_query_limit(&self, limit: usize) {
        lock(&self.model).query_limit = limit.max(1);
    }

    /// Sets when the change was last updated (Gerrit format, UTC), as if
    /// nothing had happened to it since `date`; the next change to it
    /// moves it to now again.
    pub fn set_updated(&self, number: u64, date: &str) {
        let mut m = lock(&self.model);
        let change = m
            .changes
            .get_mut(&number)
            .unwrap_or_else(|| panic!("fake Gerrit: no change {number}"));
        change.updated = date.to_string();
    }

    /// Every change's number, in order.
    pub fn change_numbers(&self) -> Vec<u64> {
        lock(&self.model).changes.keys().copied().collect()
    }

    /// When the change was last updated (Gerrit format, UTC).
    pub fn updated(&self, number: u64) -> String {
        lock(&self.model).change(number).updated.clone()
    }

    /// Leaves `commit` and `files` out of every RevisionInfo whatever the
    /// options, as Gerrit does when it cannot load a patch set's info or
    /// diff (it logs a warning and answers without them); `.../commit` and
    /// `.../files` still answer.
    pub fn set_revision_details_unavailable(&self, unavailable: bool) {
        lock(&self.model).revision_details_unavailable = unavailable;
    }

    /// The commit SHA-1 of a patch set.
    pub fn sha(&self, number: u64, ps: u32) -> String {
        lock(&self.model).patch_set(number, ps).sha.clone()
    }

    /// The fetchable ref of a patch set, `refs/changes/56/123456/4`.
    pub fn patch_set_ref(number: u64, ps: u32) -> String {
        format!("refs/changes/{:02}/{number}/{ps}", number % 100)
    }

    /// Merges or abandons (or restores) a change.
    pub fn set_status(&self, number: u64, status: Status) {
        lock(&self.model).change_mut(number).status = status;
    }

    pub fn status(&self, number: u64) -> Status {
        lock(&self.model).change(number).status
    }

    /// Records a vote (0 removes it) as if `account` had voted in the UI,
    /// without a change message.
    pub fn vote(&self, number: u64, ps: u32, account: u64, label: &str, value: i32) {
        let mut m = lock(&self.model);
        let votes = m
            .patch_set_mut(number, ps)
            .votes
            .entry(label.to_string())
            .or_default();
        if value == 0 {
            votes.remove(&account);
        } else {
            votes.insert(account, Vote { value, date: now() });
        }
    }

    /// Adds a change message on patch set `ps` by `author`, dated `date`
    /// (Gerrit format, UTC: `2023-03-14 17:02:11.000000000`).
    pub fn add_message(&self, number: u64, ps: u32, author: u64, text: &str, date: &str) {
        lock(&self.model).push_message(
            number,
            ps,
            Some(author),
            text.to_string(),
            date.to_string(),
            None,
        );
    }

    /// Publishes a comment on patch set `ps` by `author` on `path`
    /// (`/PATCHSET_LEVEL` for what Gerrit 3.3+ posts from the reply box),
    /// dated `date` (Gerrit format, UTC). Like Gerrit, this adds no change
    /// message: add the `(1 comment)` message with [`Self::add_message`].
    // One argument per field of the comment keeps call sites readable.
    #[allow(clippy::too_many_arguments)]
    pub fn add_comment(
        &self,
        number: u64,
        ps: u32,
        author: u64,
        path: &str,
        line: Option<u32>,
        message: &str,
        date: &str,
    ) {
        let mut m = lock(&self.model);
        assert!(
            m.account(author).is_some(),
            "fake Gerrit: no account {author}"
        );
        // Panics for an unknown change or patch set, like the other seeders.
        m.patch_set_mut(number, ps);
        let id = format!("{:08x}_{:08x}", m.next_message, number);
        m.next_message += 1;
        m.change_mut(number).comments.push(FakeComment {
            id,
            patch_set: ps,
            author,
            path: path.to_string(),
            line,
            message: message.to_string(),
            date: date.to_string(),
        });
    }

    /// Votes on a patch set: label → account → value (no zero entries).
    pub fn votes(&self, number: u64, ps: u32) -> BTreeMap<String, BTreeMap<u64, i32>> {
        lock(&self.model)
            .patch_set(number, ps)
            .votes
            .iter()
            .map(|(label, by)| {
                let by: BTreeMap<u64, i32> = by.iter().map(|(a, v)| (*a, v.value)).collect();
                (label.clone(), by)
            })
            .filter(|(_, by)| !by.is_empty())
            .collect()
    }

    /// The change messages, oldest first.
    pub fn messages(&self, number: u64) -> Vec<FakeMessage> {
        lock(&self.model).change(number).messages.clone()
    }

    /// The next `times` review posts are applied `delay` after they arrive
    /// (and answered then), like a Gerrit that is slow to take the change
    /// lock: a client that gave up in the meantime does not stop them, the
    /// review lands after the client's timeout.
    pub fn apply_reviews_late(&self, times: u32, delay: Duration) {
        let mut m = lock(&self.model);
        for _ in 0..times {
            m.late_reviews.push_back(delay);
        }
    }

    /// Whether every review post told to be late has arrived and been
    /// applied (or refused).
    pub fn late_reviews_settled(&self) -> bool {
        let m = lock(&self.model);
        m.late_reviews.is_empty() && m.late_in_progress == 0
    }

    /// Every review accepted so far, in order.
    pub fn reviews_posted(&self) -> Vec<PostedReview> {
        lock(&self.model).reviews.clone()
    }
}

/// A deterministic 40-hex SHA-1 look-alike for (change, patch set, salt).
fn fake_sha(number: u64, ps: u32, salt: u64) -> String {
    let mut x = number
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(ps) << 32 | salt);
    let mut out = String::new();
    while out.len() < 40 {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    out.truncate(40);
    out
}

/// The current time as a Gerrit timestamp.
fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_timestamp(since.as_secs() as i64, since.subsec_nanos())
}

/// Formats epoch seconds as `YYYY-MM-DD hh:mm:ss.nnnnnnnnn` (UTC).
pub fn format_timestamp(secs: i64, nanos: u32) -> String {
    bionicbb_core::timefmt::format_gerrit(secs, nanos)
}
