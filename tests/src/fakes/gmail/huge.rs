//! Huge mails: a message whose body goes on for any number of bytes
//! without the fake holding them. Its `format=raw` answer is produced and
//! streamed chunk by chunk, and the fake counts the bytes it handed to the
//! connection, so a test can tell how much of the answer a client read
//! before hanging up.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use bytes::Bytes;
use serde_json::Value;

/// Raw bytes per streamed chunk (a multiple of 3: only the last chunk's
/// base64 is padded, so the chunks join into one padded base64url text).
const CHUNK: usize = 48 * 1024 * 3;

/// One line of the filler the body goes on with.
const FILLER_LINE: &[u8] =
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";

/// The part of a huge mail after its stored bytes.
#[derive(Debug, Clone)]
pub(super) struct Huge {
    /// Filler bytes after the stored raw bytes.
    pub filler: u64,
    /// Bytes of `format=raw` answers handed to connections so far.
    pub sent: Arc<AtomicU64>,
}

/// The `format=raw` answer of a huge mail: `envelope` (the Message resource
/// without `raw`) with `raw` appended as a stream of base64url.
pub(super) fn raw_answer(mut envelope: Value, prefix: Vec<u8>, huge: &Huge) -> Response {
    let size = prefix.len() as u64 + huge.filler;
    envelope["sizeEstimate"] = Value::from(size);
    let mut head = envelope.to_string();
    head.pop(); // the closing brace
    head.push_str(",\"raw\":\"");
    let stream = RawStream {
        head: Some(Bytes::from(head)),
        prefix,
        size,
        offset: 0,
        closed: false,
        sent: huge.sent.clone(),
    };
    // No Content-Length: sent chunked, as Google's front ends stream
    // answers, so a client learns the length only by reading.
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=UTF-8")],
        Body::from_stream(stream),
    )
        .into_response()
}

struct RawStream {
    head: Option<Bytes>,
    prefix: Vec<u8>,
    size: u64,
    offset: u64,
    /// The closing `"}` was produced.
    closed: bool,
    sent: Arc<AtomicU64>,
}

impl RawStream {
    /// Raw bytes `[offset, offset + len)` of the mail.
    fn raw(&self, len: usize) -> Vec<u8> {
        (self.offset..self.offset + len as u64)
            .map(|i| match self.prefix.get(i as usize) {
                Some(b) => *b,
                None => {
                    let j = (i - self.prefix.len() as u64) as usize;
                    FILLER_LINE[j % FILLER_LINE.len()]
                }
            })
            .collect()
    }
}

impl futures_core::Stream for RawStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let chunk = if let Some(head) = self.head.take() {
            head
        } else if self.offset < self.size {
            let len = (self.size - self.offset).min(CHUNK as u64) as usize;
            let mut text = URL_SAFE.encode(self.raw(len));
            self.offset += len as u64;
            if self.offset == self.size {
                text.push_str("\"}");
                self.closed = true;
            }
            Bytes::from(text)
        } else if !self.closed {
            self.closed = true;
            Bytes::from_static(b"\"}")
        } else {
            return Poll::Ready(None);
        };
        self.sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        Poll::Ready(Some(Ok(chunk)))
    }
}
