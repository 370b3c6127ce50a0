//! Request handling of the fake: framing, authentication, change and
//! revision resolution, and `POST .../review` with Gerrit's label rules.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::render::{self, Options};
use super::{Change, Model, PostedReview, Shared, Status, Vote, lock, now};

/// Router state.
#[derive(Clone)]
pub struct State {
    pub model: Shared,
    /// `""` or `/prefix`.
    pub prefix: String,
}

/// A handler failure: status and Gerrit's message.
struct Fail(StatusCode, String);

fn fail(status: StatusCode, message: impl Into<String>) -> Fail {
    Fail(status, message.into())
}

/// A JSON answer with the XSSI guard.
fn json_answer(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        format!(")]}}'\n{value}"),
    )
        .into_response()
}

/// Gerrit's error framing: plain text, except on GET/HEAD when the message
/// contains `<` or `&`, which is sent as a guarded JSON string.
fn error_answer(method: &Method, Fail(status, message): Fail) -> Response {
    let read = *method == Method::GET || *method == Method::HEAD;
    let mut response = if read && (message.contains('<') || message.contains('&')) {
        (
            status,
            [(CONTENT_TYPE, "application/json; charset=utf-8")],
            format!(")]}}'\n{}\n", Value::String(message)),
        )
            .into_response()
    } else {
        (
            status,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response()
    };
    if status == StatusCode::UNAUTHORIZED
        && let Ok(value) = "Basic realm=\"Gerrit Code Review\"".parse()
    {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// The one handler: everything is routed by hand on the raw path, so that
/// `%2F` inside a change id stays part of its segment.
///
/// A review post told to be late ([`super::GerritFake::apply_reviews_late`])
/// is handled in a task of its own, as Gerrit finishes a request whatever
/// became of its connection: a client that gives up does not stop it.
pub async fn handle(
    AxumState(state): AxumState<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let late = if method == Method::POST && uri.path().ends_with("/review") {
        lock(&state.model).take_late_review()
    } else {
        None
    };
    let Some(delay) = late else {
        return answer(&state, &method, &uri, &headers, &body);
    };
    let task = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let response = answer(&state, &method, &uri, &headers, &body);
        lock(&state.model).late_in_progress -= 1;
        response
    });
    task.await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn answer(
    state: &State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    match route(state, method, uri, headers, body) {
        Ok(value) => json_answer(&value),
        Err(f) => error_answer(method, f),
    }
}

fn route(
    state: &State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, Fail> {
    let not_found = || fail(StatusCode::NOT_FOUND, "Not Found");
    let path = uri
        .path()
        .strip_prefix(state.prefix.as_str())
        .ok_or_else(not_found)?;
    let mut model = lock(&state.model);
    let (caller, path) = match path.strip_prefix("/a/") {
        Some(rest) => (Some(authenticate(&model, headers)?), rest),
        None => (None, path.strip_prefix('/').ok_or_else(not_found)?),
    };
    if caller.is_none() && *method != Method::GET && *method != Method::HEAD {
        return Err(fail(StatusCode::FORBIDDEN, "Authentication required"));
    }
    let segments: Vec<String> = path
        .split('/')
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| fail(StatusCode::BAD_REQUEST, "Invalid UTF-8 in path"))
        })
        .collect::<Result<_, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let opts = options(uri.query())?;
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match segments.as_slice() {
        ["changes", ""] if get => super::query::search(&model, uri.query(), opts, caller)
            .map_err(|message| fail(StatusCode::BAD_REQUEST, message)),
        ["changes", id] if get => {
            let c = resolve_change(&model, id, caller)?;
            Ok(render::change(&model, c, opts, None))
        }
        ["changes", id, "detail"] if get => {
            let c = resolve_change(&model, id, caller)?;
            Ok(render::change(&model, c, opts.detail(), None))
        }
        ["changes", id, "comments"] if get => {
            let c = resolve_change(&model, id, caller)?;
            Ok(render::comments(&model, c))
        }
        ["changes", id, "revisions", rev, "review"] if get => {
            let c = resolve_change(&model, id, caller)?;
            let ps = resolve_revision(c, rev)?;
            let opts = Options {
                labels: true,
                detailed_labels: true,
                detailed_accounts: true,
                ..opts
            };
            Ok(render::change(&model, c, opts, Some(ps)))
        }
        ["changes", id, "revisions", rev, "files"] if get => {
            let c = resolve_change(&model, id, caller)?;
            let ps = resolve_revision(c, rev)?;
            Ok(render::files(c, patch_set(c, ps)?))
        }
        ["changes", id, "revisions", rev, "commit"] if get => {
            let c = resolve_change(&model, id, caller)?;
            let ps = resolve_revision(c, rev)?;
            Ok(render::commit(&model, c, patch_set(c, ps)?))
        }
        ["changes", id, "revisions", rev, "review"] if post => {
            let caller =
                caller.ok_or_else(|| fail(StatusCode::FORBIDDEN, "Authentication required"))?;
            let number = resolve_change(&model, id, Some(caller))?.number;
            let ps = resolve_revision(resolve_change(&model, id, Some(caller))?, rev)?;
            let input = review_input(headers, body)?;
            post_review(&mut model, number, ps, caller, input)
        }
        ["accounts", id] if get => account(&model, id, caller),
        ["changes", ..] | ["accounts", ..] if !get => {
            Err(fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"))
        }
        _ => Err(not_found()),
    }
}

/// Basic auth against the accounts' HTTP passwords.
fn authenticate(model: &Model, headers: &HeaderMap) -> Result<u64, Fail> {
    let unauthorized = || fail(StatusCode::UNAUTHORIZED, "Unauthorized");
    let value = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or_else(unauthorized)?
        .trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| unauthorized())?;
    let decoded = String::from_utf8(decoded).map_err(|_| unauthorized())?;
    let (user, password) = decoded.split_once(':').ok_or_else(unauthorized)?;
    model
        .accounts
        .iter()
        .find(|a| a.username == user && a.http_password == password)
        .map(|a| a.id)
        .ok_or_else(unauthorized)
}

/// `o=` options; an unknown one is a 400 like Gerrit's argument parser gives.
fn options(query: Option<&str>) -> Result<Options, Fail> {
    let mut opts = Options::default();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "o" {
            continue;
        }
        let value = percent_decode_str(value).decode_utf8_lossy();
        if !opts.set(&value) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("\"{value}\" is not a valid value for \"-o\""),
            ));
        }
    }
    Ok(opts)
}

/// Resolves every `{change-id}` form the way `ChangesCollection.parse` does,
/// among the changes `caller` may see (a private change is not found).
fn resolve_change<'m>(model: &'m Model, id: &str, caller: Option<u64>) -> Result<&'m Change, Fail> {
    let not_found = || fail(StatusCode::NOT_FOUND, format!("Not found: {id}"));
    let parts: Vec<&str> = id.split('~').collect();
    let found: Vec<&Change> = match parts.as_slice() {
        [number] if number.bytes().all(|b| b.is_ascii_digit()) => {
            let number: u64 = number.parse().map_err(|_| not_found())?;
            model.changes.get(&number).into_iter().collect()
        }
        [key] => model.changes.values().filter(|c| c.key == *key).collect(),
        [project, number] => {
            let number: u64 = number.parse().map_err(|_| not_found())?;
            model
                .changes
                .get(&number)
                .filter(|c| c.project == *project)
                .into_iter()
                .collect()
        }
        [project, branch, key] => {
            let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
            model
                .changes
                .values()
                .filter(|c| c.project == *project && c.branch == branch && c.key == *key)
                .collect()
        }
        _ => Vec::new(),
    };
    let found: Vec<&Change> = found
        .into_iter()
        .filter(|c| model.visible(c, caller))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(not_found()),
        _ => Err(fail(
            StatusCode::NOT_FOUND,
            format!("Multiple changes found for {id}"),
        )),
    }
}

/// `{revision-id}`: `current`, a patch set number, or a (prefix of a) SHA-1.
fn resolve_revision(c: &Change, rev: &str) -> Result<u32, Fail> {
    let not_found = || fail(StatusCode::NOT_FOUND, format!("Not found: {rev}"));
    if rev == "current" {
        return c.current().map(|p| p.number).ok_or_else(not_found);
    }
    if let Ok(n) = rev.parse::<u32>()
        && c.patch_sets.iter().any(|p| p.number == n)
    {
        return Ok(n);
    }
    let matches: Vec<u32> = c
        .patch_sets
        .iter()
        .filter(|p| rev.len() >= 4 && p.sha.starts_with(rev))
        .map(|p| p.number)
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        _ => Err(not_found()),
    }
}

fn patch_set(c: &Change, ps: u32) -> Result<&super::PatchSet, Fail> {
    c.patch_sets
        .iter()
        .find(|p| p.number == ps)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("Not found: {ps}")))
}

fn account(model: &Model, id: &str, caller: Option<u64>) -> Result<Value, Fail> {
    let found = if id == "self" {
        let caller =
            caller.ok_or_else(|| fail(StatusCode::FORBIDDEN, "Authentication required"))?;
        model.account(caller)
    } else {
        model.accounts.iter().find(|a| {
            a.id.to_string() == id || a.username == id || (!a.email.is_empty() && a.email == id)
        })
    };
    found
        .map(render::full_account)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("Not found: {id}")))
}

/// The ReviewInput as Gerrit reads it from the body, by content type.
fn review_input(headers: &HeaderMap, body: &Bytes) -> Result<Value, Fail> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let text = String::from_utf8_lossy(body).into_owned();
    if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")))?;
        if !value.is_object() {
            return Err(fail(StatusCode::BAD_REQUEST, "Expected JSON object"));
        }
        Ok(value)
    } else if content_type.starts_with("text/plain") {
        // The whole body becomes the @DefaultInput field: the message.
        Ok(json!({ "message": text }))
    } else {
        Err(fail(
            StatusCode::BAD_REQUEST,
            "Expected Content-Type: application/json",
        ))
    }
}

/// `PostReview` + `PostReviewOp`, for labels and the message.
fn post_review(
    model: &mut Model,
    number: u64,
    ps: u32,
    caller: u64,
    input: Value,
) -> Result<Value, Fail> {
    let bad = |m: &str| fail(StatusCode::BAD_REQUEST, m);
    let message = match input.get("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(bad("message must be a string")),
    };
    let tag = match input.get("tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("tag must be a string")),
    };
    let requested = match input.get("labels") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => return Err(bad("labels must be an object")),
    };
    // checkLabels without strictLabels: unknown labels and out-of-range
    // values are dropped silently; 0 (or null) always passes.
    let mut applied: BTreeMap<String, i32> = BTreeMap::new();
    for (label, value) in requested.iter().flatten() {
        let value = match value {
            Value::Null => 0,
            v => match v.as_i64().and_then(|v| i32::try_from(v).ok()) {
                Some(v) => v,
                None => return Err(bad("label values must be integers")),
            },
        };
        if let Some(config) = model.labels.get(label)
            && (value == 0 || (config.min..=config.max).contains(&value))
        {
            applied.insert(label.clone(), value);
        }
    }
    let change = model.change(number);
    let status = change.status;
    let patch_set = change
        .patch_sets
        .iter()
        .find(|p| p.number == ps)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("Not found: {ps}")))?;
    // (label, old, new) for the votes that actually change.
    let changes: Vec<(String, i32, i32)> = applied
        .iter()
        .filter_map(|(label, new)| {
            let old = patch_set
                .votes
                .get(label)
                .and_then(|by| by.get(&caller))
                .map_or(0, |v| v.value);
            (old != *new).then(|| (label.clone(), old, *new))
        })
        .collect();
    if !changes.is_empty() {
        match status {
            Status::New => {}
            Status::Abandoned => return Err(fail(StatusCode::CONFLICT, "change is closed")),
            Status::Merged => {
                let labels = &model.labels;
                let disallowed: Vec<&str> = changes
                    .iter()
                    .filter(|(l, _, _)| !labels.get(l).is_some_and(|c| c.allow_post_submit))
                    .map(|(l, _, _)| l.as_str())
                    .collect();
                if !disallowed.is_empty() {
                    return Err(fail(
                        StatusCode::CONFLICT,
                        format!(
                            "Voting on labels disallowed after submit: {}",
                            disallowed.join(", ")
                        ),
                    ));
                }
                let reduced: Vec<&str> = changes
                    .iter()
                    .filter(|(_, old, new)| new < old)
                    .map(|(l, _, _)| l.as_str())
                    .collect();
                if !reduced.is_empty() {
                    return Err(fail(
                        StatusCode::CONFLICT,
                        format!(
                            "Cannot reduce vote on labels for closed change: {}",
                            reduced.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    let date = now();
    let patch_set = model.patch_set_mut(number, ps);
    for (label, _, new) in &changes {
        let by = patch_set.votes.entry(label.clone()).or_default();
        if *new == 0 {
            by.remove(&caller);
        } else {
            by.insert(
                caller,
                Vote {
                    value: *new,
                    date: date.clone(),
                    tag: tag.clone(),
                },
            );
        }
    }
    if !changes.is_empty() || !message.is_empty() {
        let mut votes: Vec<String> = changes
            .iter()
            .map(|(label, _, new)| {
                if *new == 0 {
                    format!("-{label}")
                } else {
                    format!("{label}{new:+}")
                }
            })
            .collect();
        votes.sort();
        let mut text = format!("Patch Set {ps}:");
        for vote in &votes {
            text.push(' ');
            text.push_str(vote);
        }
        if !message.is_empty() {
            text.push_str("\n\n");
            text.push_str(&message);
        }
        model.push_message(number, ps, Some(caller), text, date, tag);
    }
    let current_patch_set = model.change(number).current().map_or(ps, |p| p.number);
    model.reviews.push(PostedReview {
        number,
        patch_set: ps,
        body: input,
        account: caller,
        current_patch_set,
    });
    Ok(match requested {
        Some(_) => json!({ "labels": applied }),
        None => json!({}),
    })
}
