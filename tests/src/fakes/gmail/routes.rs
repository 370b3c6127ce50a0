//! The fake's request handlers, one per Gmail method.

use std::collections::BTreeSet;
use std::sync::MutexGuard;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

use super::wire::*;
use super::{Model, Msg, OWNER, Shared, create_label};

/// Checks the bearer token and the user id; on success the model is locked.
pub(super) fn admit<'a>(
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

pub(super) async fn labels_list(
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

pub(super) async fn labels_create(
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

pub(super) async fn messages_list(
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

pub(super) async fn messages_get(
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
        "raw" if m.huge.contains_key(&id) => {
            return super::huge::raw_answer(out, x.raw.clone(), &m.huge[&id]);
        }
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
pub(super) fn relabel(
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
    if let Some(hook) = &m.on_relabel {
        let names: Vec<String> = x.labels.iter().map(|l| m.label_name(l)).collect();
        (hook.0)(&x.id, &names, &x.raw);
    }
    Ok(json!({"id": x.id, "threadId": x.id, "labelIds": x.labels.iter().collect::<Vec<_>>()}))
}

pub(super) async fn messages_trash(
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

pub(super) async fn messages_modify(
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

pub(super) async fn history_list(
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

/// The most ids one `messages.batchModify` takes.
const BATCH_MODIFY_MAX: usize = 1000;

/// `POST /messages/batchModify`: the same label change on up to 1,000
/// messages, all or nothing; an empty body on success. Adding `TRASH`
/// moves a message to the trash as `messages.trash` does.
pub(super) async fn messages_batch_modify(
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
    let list = |key: &str| -> Option<Vec<String>> {
        match &request[key] {
            Value::Null => Some(Vec::new()),
            Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
            _ => None,
        }
    };
    let (Some(ids), Some(mut add), Some(mut remove)) =
        (list("ids"), list("addLabelIds"), list("removeLabelIds"))
    else {
        return bad_request("Invalid JSON payload received.");
    };
    if ids.is_empty() {
        return bad_request("ids must not be empty");
    }
    if ids.len() > BATCH_MODIFY_MAX {
        return bad_request(&format!(
            "Too many ids: {} (at most {BATCH_MODIFY_MAX})",
            ids.len()
        ));
    }
    if add.is_empty() && remove.is_empty() {
        return bad_request("No label add or removes specified");
    }
    let known: BTreeSet<&String> = m.labels.iter().map(|l| &l.id).collect();
    if let Some(bad) = add.iter().chain(&remove).find(|l| !known.contains(l)) {
        return bad_request(&format!("Invalid label: {bad}"));
    }
    if !ids.iter().all(|id| m.messages.iter().any(|x| &x.id == id)) {
        return not_found();
    }
    if add.iter().any(|l| l == "TRASH") && !remove.iter().any(|l| l == "INBOX") {
        remove.push("INBOX".into());
    }
    add.dedup();
    for id in &ids {
        if let Err(r) = relabel(&mut m, id, &add, &remove) {
            return *r;
        }
    }
    axum::http::StatusCode::NO_CONTENT.into_response()
}
