//! Reading one mail with one request, and never more of it than the size
//! limit allows.
//!
//! `messages.get?format=raw` answers a JSON Message whose `raw` field is the
//! whole RFC 822 mail in base64url. The hub would read any answer whole
//! before looking at it, so this request goes through the hub's own HTTP
//! client and authenticator (the same connections, token and scope) but
//! reads the body as a stream, and gives up on it as soon as it passes
//! [`answer_bound`]: what the answer for a mail of `max_mail_size` bytes
//! can weigh. A mail over the limit thus costs at most that much memory and
//! no second request (there is no need to ask `format=minimal` for Gmail's
//! size estimate first).
//!
//! The bound: a mail of `n` bytes is `4 * ceil(n / 3)` bytes of padded
//! base64url (the alphabet needs no JSON escaping; Google's encoder may
//! write a padding `=` as `\u003d`, 5 bytes more for each of at most two),
//! plus the envelope: the ids, `labelIds`, `snippet` (about 200 characters,
//! each at most a 6-byte JSON escape), `sizeEstimate`, `historyId` and
//! `internalDate`, and the field names, which [`ENVELOPE_ROOM`] covers with
//! a wide margin (a few hundred label ids of some 25 bytes each). An answer
//! longer than the bound cannot hold a mail within the limit; a shorter one
//! is decoded and its mail's size checked exactly.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use bionicbb_core::error::{ApiError, ErrorKind, Service};
use bionicbb_core::retry::retry;
use google_gmail1::common;
use google_gmail1::hyper;
use http_body_util::BodyExt;
use serde::Deserialize;
use url::Url;

use super::errors::{classify_answer, parse_retry_after, token_error};
use super::{MODIFY_SCOPE, Mailbox};

/// Room for everything in a `format=raw` answer but the base64 of the mail.
pub const ENVELOPE_ROOM: u64 = 64 * 1024;

/// How much of an error answer is read: enough for Google's error object.
const ERROR_BODY_CAP: u64 = 64 * 1024;

/// The call's name in messages and logs.
const WHAT: &str = "messages.get";

/// The most bytes the `format=raw` answer for a mail of `max_mail_size`
/// bytes can take (see the module documentation).
pub fn answer_bound(max_mail_size: u64) -> u64 {
    max_mail_size
        .div_ceil(3)
        .saturating_mul(4)
        .saturating_add(ENVELOPE_ROOM)
}

/// What reading a mail gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Download {
    /// The mail's RFC 822 bytes, within the limit.
    Mail(Vec<u8>),
    /// Over the limit; nothing of it is kept.
    TooLarge(Oversize),
}

/// How a mail was found over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    /// The mail's size, when the whole answer was read and decoded.
    pub mail_size: Option<u64>,
    /// Bytes of the answer received before giving up (at most the bound
    /// plus the last chunk the connection delivered); 0 when its
    /// `Content-Length` already said it was too long.
    pub received: u64,
    /// The answer's `Content-Length`, when it had one.
    pub announced: Option<u64>,
}

impl std::fmt::Display for Oversize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.mail_size, self.announced) {
            (Some(size), _) => write!(f, "{size} bytes"),
            (None, Some(length)) => write!(f, "an answer of {length} bytes"),
            (None, None) => write!(f, "an answer of more than {} bytes", self.received),
        }
    }
}

/// The one field of the Message resource this reads; borrowed from the
/// answer when it has no escapes.
#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, default)]
    raw: Option<Cow<'a, str>>,
}

/// base64url, padded or not (Gmail pads `raw`; nothing is lost accepting
/// both).
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl Mailbox {
    /// Message `id` as RFC 822 bytes, with one `messages.get?format=raw`
    /// (retried like every call), unless it is larger than `max_mail_size`.
    pub async fn download(&self, id: &str, max_mail_size: u64) -> Result<Download, ApiError> {
        let url = self.message_url(id)?;
        retry(&self.policy, Service::Gmail, WHAT, || {
            self.download_once(&url, id, max_mail_size)
        })
        .await
    }

    /// `{base}gmail/v1/users/me/messages/{id}?format=raw&prettyPrint=false`
    /// (the id is percent-encoded: it comes from the network).
    fn message_url(&self, id: &str) -> Result<Url, ApiError> {
        let invalid = |m: String| ApiError::new(Service::Gmail, ErrorKind::InvalidInput, m);
        let mut url = Url::parse(&self.base_url)
            .map_err(|e| invalid(format!("{WHAT}: bad Gmail base URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| invalid(format!("{WHAT}: the Gmail base URL cannot take a path")))?
            .pop_if_empty()
            .extend(["gmail", "v1", "users", super::ME, "messages", id]);
        url.query_pairs_mut()
            .append_pair("format", "raw")
            .append_pair("prettyPrint", "false");
        Ok(url)
    }

    async fn download_once(&self, url: &Url, id: &str, max: u64) -> Result<Download, ApiError> {
        let transient = |m: String| ApiError::new(Service::Gmail, ErrorKind::Transient, m);
        let token = self
            .hub
            .auth
            .get_token(&[MODIFY_SCOPE])
            .await
            .map_err(|e| token_error(WHAT, e.as_ref()))?;
        let mut request = hyper::Request::get(url.as_str()).header(
            hyper::header::USER_AGENT,
            concat!("bionicbb/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(common::to_body::<String>(None))
            .map_err(|e| transient(format!("{WHAT}: cannot build the request: {e}")))?;
        let response =
            self.hub.client.request(request).await.map_err(|e| {
                transient(format!("{WHAT}: {}", bionicbb_core::http::error_chain(&e)))
            })?;
        let (parts, mut body) = response.into_parts();
        let header =
            |name: hyper::header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        if !parts.status.is_success() {
            let retry_after = header(hyper::header::RETRY_AFTER).and_then(parse_retry_after);
            let bytes = match read_capped(&mut body, ERROR_BODY_CAP, None).await {
                Capped::Whole(bytes) => bytes,
                // An error answer is judged by its status alone then.
                Capped::Over(_) | Capped::Failed(_) => Vec::new(),
            };
            return Err(classify_answer(
                WHAT,
                parts.status.as_u16(),
                retry_after,
                &bytes,
            ));
        }
        let bound = answer_bound(max);
        let announced = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|length| length > bound) {
            return Ok(Download::TooLarge(Oversize {
                mail_size: None,
                received: 0,
                announced,
            }));
        }
        let answer = match read_capped(&mut body, bound, announced).await {
            Capped::Whole(answer) => answer,
            Capped::Over(received) => {
                tracing::info!(gmail_id = %id, received, bound, "stopped reading an oversized mail");
                return Ok(Download::TooLarge(Oversize {
                    mail_size: None,
                    received,
                    announced,
                }));
            }
            Capped::Failed(e) => return Err(transient(format!("{WHAT}: reading the answer: {e}"))),
        };
        decode(id, &answer, max, announced)
    }
}

/// What reading a body up to a cap gave.
enum Capped {
    /// The whole body.
    Whole(Vec<u8>),
    /// The body went past the cap after this many bytes; the rest is left
    /// unread (the connection is closed, not reused).
    Over(u64),
    /// The connection failed.
    Failed(String),
}

/// Reads `body`, keeping at most `cap` bytes; `expected` is its announced
/// length, room made for at once.
async fn read_capped<B>(body: &mut B, cap: u64, expected: Option<u64>) -> Capped
where
    B: hyper::body::Body<Data = hyper::body::Bytes> + Unpin,
    B::Error: std::error::Error,
{
    let room = expected.unwrap_or(0).min(cap);
    let mut out = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return Capped::Failed(bionicbb_core::http::error_chain(&e)),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let received = out.len() + data.len();
        if received as u64 > cap {
            return Capped::Over(received as u64);
        }
        // Grows by doubling, but never past the cap (a plain `extend`
        // could double to nearly twice the cap).
        if out.capacity() < received {
            let cap = usize::try_from(cap).unwrap_or(usize::MAX);
            let target = (out.capacity() * 2).max(received).min(cap);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&data);
    }
    Capped::Whole(out)
}

/// The mail in a complete `format=raw` answer.
pub(super) fn decode(
    id: &str,
    answer: &[u8],
    max: u64,
    announced: Option<u64>,
) -> Result<Download, ApiError> {
    let malformed = |m: String| ApiError::new(Service::Gmail, ErrorKind::Malformed, m);
    // Errors name where decoding failed, never the content (it is a mail).
    let message: RawMessage<'_> = serde_json::from_slice(answer)
        .map_err(|e| malformed(format!("{WHAT}: cannot decode Gmail's answer: {e}")))?;
    let raw = message
        .raw
        .ok_or_else(|| malformed(format!("{WHAT}: message {id} came without `raw`")))?;
    let mail = BASE64URL
        .decode(raw.as_bytes())
        .map_err(|e| malformed(format!("{WHAT}: message {id}: `raw` is not base64url: {e}")))?;
    let size = mail.len() as u64;
    if size > max {
        return Ok(Download::TooLarge(Oversize {
            mail_size: Some(size),
            received: answer.len() as u64,
            announced,
        }));
    }
    Ok(Download::Mail(mail))
}
