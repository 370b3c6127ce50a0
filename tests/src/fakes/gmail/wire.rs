//! JSON rendering of the fake's answers: Google's error objects, labels,
//! and the Message resource in its `minimal`, `metadata` and `full` forms.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};

use super::{LabelRec, Msg};

/// Google's error object.
pub fn google_error(code: u16, status: &str, domain: &str, reason: &str, message: &str) -> Value {
    json!({"error": {
        "code": code,
        "message": message,
        "errors": [{"domain": domain, "reason": reason, "message": message}],
        "status": status,
    }})
}

pub(super) fn error_response(code: u16, status: &str, reason: &str, message: &str) -> Response {
    let http = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = google_error(code, status, "global", reason, message);
    (
        http,
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn not_found() -> Response {
    error_response(
        404,
        "NOT_FOUND",
        "notFound",
        "Requested entity was not found.",
    )
}

pub(super) fn bad_request(message: &str) -> Response {
    error_response(400, "INVALID_ARGUMENT", "invalidArgument", message)
}

pub(super) fn ok(value: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=UTF-8")],
        value.to_string(),
    )
        .into_response()
}

pub(super) fn unauthenticated() -> Response {
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

pub(super) fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(super) fn label_json(l: &LabelRec) -> Value {
    if l.system {
        json!({"id": l.id, "name": l.name, "type": "system"})
    } else {
        json!({"id": l.id, "name": l.name, "type": "user",
               "messageListVisibility": "show", "labelListVisibility": "labelShow"})
    }
}

/// The Message resource without `payload` or `raw` (`format=minimal`).
pub(super) fn minimal(x: &Msg) -> Value {
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
pub(super) fn headers_json(
    raw: &[u8],
    headers: &[mail_parser::Header<'_>],
    only: &[String],
) -> Vec<Value> {
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
pub(super) fn part_json(msg: &mail_parser::Message<'_>, index: u32, part_id: String) -> Value {
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
