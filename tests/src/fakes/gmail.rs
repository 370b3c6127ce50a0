//! A fake Gmail API v1 (the subset bionicbb uses), speaking the real wire
//! format: string ids, `messages` absent from empty list pages, newest
//! first, page tokens bound to the query they were issued for, PADDED
//! base64url in `raw` but UNPADDED base64url in `format=full` part bodies,
//! and Google's error JSON.
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
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};

use crate::fault::{self, Fault, Faults};

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
            let _ = axum::serve(listener, app).await;
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

/// Google's error object.
pub fn google_error(code: u16, status: &str, domain: &str, reason: &str, message: &str) -> Value {
    json!({"error": {
        "code": code,
        "message": message,
        "errors": [{"domain": domain, "reason": reason, "message": message}],
        "status": status,
    }})
}

fn error_response(code: u16, status: &str, reason: &str, message: &str) -> Response {
    let http = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = google_error(code, status, "global", reason, message);
    (
        http,
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    error_response(
        404,
        "NOT_FOUND",
        "notFound",
        "Requested entity was not found.",
    )
}

fn bad_request(message: &str) -> Response {
    error_response(400, "INVALID_ARGUMENT", "invalidArgument", message)
}

fn ok(value: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=UTF-8")],
        value.to_string(),
    )
        .into_response()
}

fn unauthenticated() -> Response {
    let body = json!({"error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "errors": [{"domain": "global", "reason": "authError", "message": "Invalid Credentials",
                    "locationType": "header", "location": "Authorization"}],
        "status": "UNAUTHENTICATED",
    }});
    (
        StatusCode::UNAUTHORIZED,
        [
            ("content-type", "application/json; charset=UTF-8"),
            (
                "www-authenticate",
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Checks the bearer token and the user id; on success the model is locked.
fn admit<'a>(
    model: &'a Shared,
    headers: &HeaderMap,
    user: &str,
) -> Result<MutexGuard<'a, Model>, Box<Response>> {
    let m = model.lock().unwrap();
    if let Some(expected) = &m.token {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(expected.as_str()) {
            return Err(Box::new(unauthenticated()));
        }
    }
    if user != "me" && user != OWNER {
        return Err(Box::new(error_response(
            403,
            "PERMISSION_DENIED",
            "forbidden",
            &format!("Delegation denied for {OWNER}"),
        )));
    }
    Ok(m)
}

fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn label_json(l: &LabelRec) -> Value {
    if l.system {
        json!({"id": l.id, "name": l.name, "type": "system"})
    } else {
        json!({"id": l.id, "name": l.name, "type": "user",
               "messageListVisibility": "show", "labelListVisibility": "labelShow"})
    }
}

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

async fn labels_list(
    State(model): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Response {
    let m = match admit(&model, &headers, &user) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    ok(json!({"labels": m.labels.iter().map(label_json).collect::<Vec<_>>()}))
}

async fn labels_create(
    State(model): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut m = match admit(&model, &headers, &user) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let Some(name) = request["name"].as_str().filter(|n| !n.trim().is_empty()) else {
        return bad_request("Invalid label name");
    };
    match create_label(&mut m, name) {
        Some(id) => {
            let label = m.labels.iter().find(|l| l.id == id).map(label_json);
            ok(label.unwrap_or(Value::Null))
        }
        None => error_response(409, "ABORTED", "aborted", "Label name exists or conflicts"),
    }
}

async fn messages_list(
    State(model): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut m = match admit(&model, &headers, &user) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let pairs = query_pairs(&query);
    let mut label_ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "labelIds")
        .map(|(_, v)| v.clone())
        .collect();
    label_ids.sort();
    label_ids.dedup();
    let include_spam_trash = param(&pairs, "includeSpamTrash") == Some("true");
    let max_results = match param(&pairs, "maxResults").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if n >= 1 => n.min(500),
        Some(_) => return bad_request("Invalid value for maxResults"),
    };
    let page_size = m
        .page_size_cap
        .map_or(max_results, |cap| cap.min(max_results));
    // A page token is only valid with the query it was issued for.
    let fingerprint = format!(
        "{}|{}|{include_spam_trash}",
        label_ids.join(","),
        param(&pairs, "q").unwrap_or("")
    );
    let offset = match param(&pairs, "pageToken") {
        None => 0,
        Some(token) => match m.page_tokens.get(token) {
            Some((issued_for, offset)) if *issued_for == fingerprint => *offset,
            _ => return bad_request("Invalid pageToken"),
        },
    };
    let mut matching: Vec<&Msg> = m
        .messages
        .iter()
        .filter(|x| label_ids.iter().all(|l| x.labels.contains(l)))
        .filter(|x| {
            include_spam_trash
                || ["SPAM", "TRASH"].iter().all(|hidden| {
                    !x.labels.contains(*hidden) || label_ids.iter().any(|l| l == hidden)
                })
        })
        .collect();
    matching.sort_by_key(|x| std::cmp::Reverse(x.seq)); // newest first
    let total = matching.len();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|x| json!({"id": x.id, "threadId": x.id}))
        .collect();
    let end = offset + page.len();
    let mut out = json!({"resultSizeEstimate": total});
    if !page.is_empty() {
        out["messages"] = Value::Array(page);
    }
    if end < total {
        m.next_page_token += 1;
        let token = format!("{:020}", 13_570_000_000_000_000_000u64 + m.next_page_token);
        m.page_tokens.insert(token.clone(), (fingerprint, end));
        out["nextPageToken"] = Value::String(token);
    }
    ok(out)
}

/// The Message resource without `payload` or `raw` (`format=minimal`).
fn minimal(x: &Msg) -> Value {
    let snippet = MessageParser::default()
        .parse(&x.raw)
        .and_then(|p| {
            p.body_text(0)
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .map(|t| t.chars().take(100).collect::<String>())
        .unwrap_or_default();
    json!({
        "id": x.id, "threadId": x.id,
        "labelIds": x.labels.iter().collect::<Vec<_>>(),
        "snippet": snippet,
        "sizeEstimate": x.raw.len(),
        "historyId": x.history_id.to_string(),
        "internalDate": x.internal_date.to_string(),
    })
}

/// Header fields as they appear in the mail (unfolded), in order.
fn headers_json(raw: &[u8], headers: &[mail_parser::Header<'_>], only: &[String]) -> Vec<Value> {
    headers
        .iter()
        .filter_map(|h| {
            let field = raw.get(h.offset_field as usize..h.offset_end as usize)?;
            let field = String::from_utf8_lossy(field);
            let (name, value) = field.split_once(':')?;
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            let keep = only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(name.trim()));
            keep.then(|| json!({"name": name.trim(), "value": value}))
        })
        .collect()
}

/// The payload tree of `format=full`, from the MIME structure.
fn part_json(msg: &mail_parser::Message<'_>, index: u32, part_id: String) -> Value {
    let Some(part) = msg.part(index) else {
        return json!({"partId": part_id, "mimeType": "text/plain", "body": {"size": 0}});
    };
    let mime = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "text/plain".into())
        .to_ascii_lowercase();
    let mut out = json!({
        "partId": part_id,
        "mimeType": mime,
        "filename": part.attachment_name().unwrap_or(""),
        "headers": headers_json(msg.raw_message(), &part.headers, &[]),
    });
    match &part.body {
        PartType::Multipart(children) => {
            out["body"] = json!({"size": 0});
            let parts: Vec<Value> = children
                .iter()
                .enumerate()
                .map(|(i, child)| {
                    let id = if part_id.is_empty() {
                        i.to_string()
                    } else {
                        format!("{part_id}.{i}")
                    };
                    part_json(msg, *child, id)
                })
                .collect();
            out["parts"] = Value::Array(parts);
        }
        _ => {
            let data = part.contents();
            // The trap: part data is base64url WITHOUT padding.
            out["body"] = json!({"size": data.len(), "data": URL_SAFE_NO_PAD.encode(data)});
        }
    }
    out
}

async fn messages_get(
    State(model): State<Shared>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let m = match admit(&model, &headers, &user) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let Some(x) = m.messages.iter().find(|x| x.id == id) else {
        return not_found();
    };
    let pairs = query_pairs(&query);
    let mut out = minimal(x);
    match param(&pairs, "format").unwrap_or("full") {
        "minimal" => {}
        // `raw` is base64url WITH padding.
        "raw" => out["raw"] = Value::String(URL_SAFE.encode(&x.raw)),
        format @ ("full" | "metadata") => match MessageParser::default().parse(&x.raw) {
            Some(parsed) if format == "full" => {
                out["payload"] = part_json(&parsed, 0, String::new())
            }
            Some(parsed) => {
                let only: Vec<String> = pairs
                    .iter()
                    .filter(|(k, _)| k == "metadataHeaders")
                    .map(|(_, v)| v.clone())
                    .collect();
                let root = parsed.root_part();
                out["payload"] = json!({
                    "partId": "", "mimeType": root.content_type()
                        .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("plain")))
                        .unwrap_or_else(|| "text/plain".into()),
                    "filename": "",
                    "headers": headers_json(parsed.raw_message(), &root.headers, &only),
                    "body": {"size": 0},
                });
            }
            None => {
                out["payload"] = json!({"partId": "", "mimeType": "text/plain", "filename": "",
                    "headers": [], "body": {"size": x.raw.len(), "data": URL_SAFE_NO_PAD.encode(&x.raw)}});
            }
        },
        _ => return bad_request("Invalid value at 'format'"),
    }
    ok(out)
}

/// Applies a label change to message `id`, recording history; returns the
/// message in `minimal` form.
fn relabel(
    m: &mut Model,
    id: &str,
    add: &[String],
    remove: &[String],
) -> Result<Value, Box<Response>> {
    let known: BTreeSet<String> = m.labels.iter().map(|l| l.id.clone()).collect();
    if let Some(bad) = add.iter().chain(remove).find(|l| !known.contains(*l)) {
        return Err(Box::new(bad_request(&format!("Invalid label: {bad}"))));
    }
    let Some(index) = m.messages.iter().position(|x| x.id == id) else {
        return Err(Box::new(not_found()));
    };
    let added: Vec<String> = add
        .iter()
        .filter(|l| !m.messages[index].labels.contains(*l))
        .cloned()
        .collect();
    let removed: Vec<String> = remove
        .iter()
        .filter(|l| m.messages[index].labels.contains(*l))
        .cloned()
        .collect();
    let mut history_id = m.messages[index].history_id;
    if !added.is_empty() {
        history_id = m.record("labelAdded", id, added.clone());
    }
    if !removed.is_empty() {
        history_id = m.record("labelRemoved", id, removed.clone());
    }
    let x = &mut m.messages[index];
    x.labels.extend(added);
    for l in &removed {
        x.labels.remove(l);
    }
    x.history_id = history_id;
    let x = x.clone();
    Ok(json!({"id": x.id, "threadId": x.id, "labelIds": x.labels.iter().collect::<Vec<_>>()}))
}

async fn messages_trash(
    State(model): State<Shared>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut m = match admit(&model, &headers, &user) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    match relabel(&mut m, &id, &["TRASH".into()], &["INBOX".into()]) {
        Ok(v) => ok(v),
        Err(r) => *r,
    }
}

async fn messages_modify(
    State(model): State<Shared>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut m = match admit(&model, &headers, &user) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let list = |key: &str| -> Vec<String> {
        request[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (add, remove) = (list("addLabelIds"), list("removeLabelIds"));
    if add.is_empty() && remove.is_empty() {
        return bad_request("No label add or removes specified");
    }
    match relabel(&mut m, &id, &add, &remove) {
        Ok(v) => ok(v),
        Err(r) => *r,
    }
}

async fn history_list(
    State(model): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let m = match admit(&model, &headers, &user) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let pairs = query_pairs(&query);
    let Some(Ok(start)) = param(&pairs, "startHistoryId").map(str::parse::<u64>) else {
        return bad_request("Invalid startHistoryId");
    };
    if start < m.oldest_history {
        return not_found();
    }
    let label = param(&pairs, "labelId");
    let types: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "historyTypes")
        .map(|(_, v)| v.as_str())
        .collect();
    let key = |kind: &str| match kind {
        "messageAdded" => "messagesAdded",
        "labelAdded" => "labelsAdded",
        _ => "labelsRemoved",
    };
    let mut records = Vec::new();
    for h in m.history.iter().filter(|h| h.id > start) {
        if !types.is_empty() && !types.contains(&h.kind) {
            continue;
        }
        let Some(x) = m.messages.iter().find(|x| x.id == h.message_id) else {
            continue;
        };
        if label.is_some_and(|l| !x.labels.contains(l) && !h.label_ids.iter().any(|i| i == l)) {
            continue;
        }
        let message = json!({"id": x.id, "threadId": x.id,
            "labelIds": x.labels.iter().collect::<Vec<_>>()});
        let mut item = json!({"message": message.clone()});
        if h.kind != "messageAdded" {
            item["labelIds"] = json!(h.label_ids);
        }
        let mut record =
            json!({"id": h.id.to_string(), "messages": [{"id": x.id, "threadId": x.id}]});
        record[key(h.kind)] = json!([item]);
        records.push(record);
    }
    let mut out = json!({"historyId": m.history_id.to_string()});
    if !records.is_empty() {
        out["history"] = Value::Array(records);
    }
    ok(out)
}
