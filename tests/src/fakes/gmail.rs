//! A fake Gmail API v1 (the subset bionicbb uses), speaking the real wire
//! format: string ids, `messages` absent from empty list pages, newest
//! first, page tokens bound to the query they were issued for, PADDED
//! base64url in `raw` but UNPADDED base64url in `format=full` part bodies,
//! and Google's error JSON. A huge mail ([`GmailFake::deliver_huge`]) is
//! never held whole: its `format=raw` answer is streamed chunked, counting
//! the bytes handed out.
//!
//! Simplifications: every message is its own thread; `q` is accepted and
//! ignored; in `format=full`, an attached `message/rfc822` part is a leaf
//! whose data is the attached message (Gmail expands it); text part data is
//! the decoded text in UTF-8 (Gmail keeps the part's charset), which is the
//! same for the ASCII and UTF-8 mail Gerrit sends. `history.list` serves one
//! page.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::{get, post};

use crate::fault::{self, Fault, Faults};

mod huge;
mod routes;
mod wire;

use routes::*;
pub use wire::google_error;

/// The address `me` stands for.
pub const OWNER: &str = "bionicbb@example.com";

const SYSTEM_LABELS: &[&str] = &[
    "INBOX",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "SENT",
    "DRAFT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
];

#[derive(Debug, Clone)]
struct LabelRec {
    id: String,
    name: String,
    system: bool,
}

#[derive(Debug, Clone)]
struct Msg {
    seq: u64,
    id: String,
    raw: Vec<u8>,
    labels: BTreeSet<String>,
    internal_date: u64,
    history_id: u64,
}

#[derive(Debug, Clone)]
struct HistoryRec {
    id: u64,
    kind: &'static str,
    message_id: String,
    label_ids: Vec<String>,
}

#[derive(Debug, Default)]
struct Model {
    token: Option<String>,
    labels: Vec<LabelRec>,
    next_label: u64,
    messages: Vec<Msg>,
    next_seq: u64,
    history_id: u64,
    /// History records older than this id are forgotten (404 on use).
    oldest_history: u64,
    history: Vec<HistoryRec>,
    page_size_cap: Option<usize>,
    /// Issued page tokens: token -> (query fingerprint, offset).
    page_tokens: HashMap<String, (String, usize)>,
    next_page_token: u64,
    on_relabel: Option<RelabelHook>,
    /// Messages whose body goes on past their stored bytes.
    huge: HashMap<String, huge::Huge>,
}

/// Called with a message's id, label names and raw bytes each time a client
/// changes its labels (trash included), while the change is being applied.
#[derive(Clone)]
pub struct RelabelHook(pub Arc<RelabelFn>);

/// The hook's function: (id, label names, raw bytes).
pub type RelabelFn = dyn Fn(&str, &[String], &[u8]) + Send + Sync;

impl std::fmt::Debug for RelabelHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelabelHook")
    }
}

impl Model {
    fn label_id(&self, name: &str) -> Option<String> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.id.clone())
    }

    fn label_name(&self, id: &str) -> String {
        self.labels
            .iter()
            .find(|l| l.id == id)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    fn bump(&mut self) -> u64 {
        self.history_id += 1 + self.history_id % 3; // increasing, not contiguous
        self.history_id
    }

    fn record(&mut self, kind: &'static str, message_id: &str, label_ids: Vec<String>) -> u64 {
        let id = self.bump();
        self.history.push(HistoryRec {
            id,
            kind,
            message_id: message_id.to_string(),
            label_ids,
        });
        id
    }
}

type Shared = Arc<Mutex<Model>>;

/// The running fake.
pub struct GmailFake {
    addr: SocketAddr,
    model: Shared,
    faults: Faults,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GmailFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl GmailFake {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start() -> GmailFake {
        let mut model = Model {
            history_id: 1000,
            next_seq: 1,
            next_label: 1,
            ..Model::default()
        };
        model.oldest_history = model.history_id;
        for name in SYSTEM_LABELS {
            model.labels.push(LabelRec {
                id: name.to_string(),
                name: name.to_string(),
                system: true,
            });
        }
        let model: Shared = Arc::new(Mutex::new(model));
        let faults = Faults::default();
        let base = "/gmail/v1/users/{user}";
        let app = Router::new()
            .route(
                &format!("{base}/labels"),
                get(labels_list).post(labels_create),
            )
            .route(&format!("{base}/messages"), get(messages_list))
            .route(&format!("{base}/messages/{{id}}"), get(messages_get))
            .route(
                &format!("{base}/messages/batchModify"),
                post(messages_batch_modify),
            )
            .route(
                &format!("{base}/messages/{{id}}/trash"),
                post(messages_trash),
            )
            .route(
                &format!("{base}/messages/{{id}}/modify"),
                post(messages_modify),
            )
            .route(&format!("{base}/history"), get(history_list))
            .with_state(model.clone())
            .layer(axum::middleware::from_fn_with_state(
                faults.clone(),
                fault::inject,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(crate::fault::no_delay(listener), app).await;
        });
        GmailFake {
            addr,
            model,
            faults,
            server,
        }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap()
    }

    /// `http://127.0.0.1:PORT/`: the hub's base URL (ends with `/`).
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Fault injection and the log of requests seen.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Requires `Authorization: Bearer <token>` (or nothing, with `None`).
    pub fn require_token(&self, token: Option<&str>) {
        self.model().token = token.map(str::to_string);
    }

    /// Creates a user label; returns its id (`Label_N`).
    pub fn add_label(&self, name: &str) -> String {
        let mut m = self.model();
        create_label(&mut m, name).expect("label name already used")
    }

    /// Delivers a mail with the labels named (system or user); returns its id.
    pub fn deliver(&self, raw: &[u8], labels: &[&str]) -> String {
        let mut m = self.model();
        let label_ids: BTreeSet<String> = labels
            .iter()
            .map(|n| {
                m.label_id(n)
                    .unwrap_or_else(|| panic!("no label named {n}: add_label first"))
            })
            .collect();
        let seq = m.next_seq;
        m.next_seq += 1;
        let id = format!("{:016x}", 0x18e0_0000_0000_0000u64 + seq * 0x1_0000);
        let history_id = m.record("messageAdded", &id, label_ids.iter().cloned().collect());
        m.messages.push(Msg {
            seq,
            id: id.clone(),
            raw: raw.to_vec(),
            labels: label_ids,
            internal_date: 1_700_000_000_000 + seq * 60_000,
            history_id,
        });
        id
    }

    /// Delivers a mail of `size` bytes: `head` (its header and the start of
    /// its body) followed by filler lines, never held in memory: its
    /// `format=raw` answer is streamed as it is produced (other formats see
    /// only `head`). Returns its id.
    pub fn deliver_huge(&self, head: &[u8], size: u64, labels: &[&str]) -> String {
        let id = self.deliver(head, labels);
        let huge = huge::Huge {
            filler: size.saturating_sub(head.len() as u64),
            sent: Arc::default(),
        };
        self.model().huge.insert(id.clone(), huge);
        id
    }

    /// Bytes of huge message `id`'s `format=raw` answers handed to
    /// connections so far (what a client that hung up early did not read
    /// stays unsent).
    pub fn huge_bytes_sent(&self, id: &str) -> u64 {
        self.model()
            .huge
            .get(id)
            .map_or(0, |h| h.sent.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The label names of message `id` (empty if there is no such message).
    pub fn message_labels(&self, id: &str) -> Vec<String> {
        let m = self.model();
        let Some(msg) = m.messages.iter().find(|x| x.id == id) else {
            return Vec::new();
        };
        msg.labels.iter().map(|l| m.label_name(l)).collect()
    }

    /// Ids of trashed messages, oldest first.
    pub fn in_trash(&self) -> Vec<String> {
        self.messages_with_label("TRASH")
    }

    /// Ids of the messages carrying the label named `name`, oldest first.
    pub fn messages_with_label(&self, name: &str) -> Vec<String> {
        let m = self.model();
        let Some(label) = m.label_id(name) else {
            return Vec::new();
        };
        let mut found: Vec<&Msg> = m
            .messages
            .iter()
            .filter(|x| x.labels.contains(&label))
            .collect();
        found.sort_by_key(|x| x.seq);
        found.into_iter().map(|x| x.id.clone()).collect()
    }

    /// Calls `hook` each time a client relabels or trashes a message, before
    /// the answer leaves (the hook must not call back into this fake).
    pub fn on_relabel(&self, hook: Option<RelabelHook>) {
        self.model().on_relabel = hook;
    }

    /// Serves at most `n` messages per list page whatever `maxResults` says.
    pub fn set_page_size_cap(&self, n: usize) {
        self.model().page_size_cap = Some(n.max(1));
    }

    /// Forgets history before the current point: older `startHistoryId`s
    /// now get 404, as an expired history id does.
    pub fn expire_history(&self) {
        let mut m = self.model();
        m.oldest_history = m.history_id;
        m.history.clear();
    }

    /// The next `n` Gmail requests fail with Google's rate-limit answer:
    /// 403 `userRateLimitExceeded` or 429 `rateLimitExceeded`.
    pub fn rate_limit_next(&self, n: u32, status: u16) {
        let body = if status == 429 {
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "usageLimits",
                "rateLimitExceeded",
                "Too many concurrent requests for user",
            )
        } else {
            google_error(
                status,
                "PERMISSION_DENIED",
                "usageLimits",
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
            )
        };
        self.faults
            .fail_next(None, "/gmail/v1/", n, Fault::json(status, body));
    }

    /// The next `n` Gmail requests fail with 500 `backendError`.
    pub fn backend_error_next(&self, n: u32) {
        let body = google_error(500, "INTERNAL", "global", "backendError", "Backend Error");
        self.faults
            .fail_next(None, "/gmail/v1/", n, Fault::json(500, body));
    }
}

/// Creates a user label `Label_N`; `None` when the name is taken (Gmail
/// compares label names without regard to case).
fn create_label(m: &mut Model, name: &str) -> Option<String> {
    if m.labels.iter().any(|l| l.name.eq_ignore_ascii_case(name)) {
        return None;
    }
    let id = format!("Label_{}", m.next_label);
    m.next_label += 1;
    m.labels.push(LabelRec {
        id: id.clone(),
        name: name.to_string(),
        system: false,
    });
    Some(id)
}
