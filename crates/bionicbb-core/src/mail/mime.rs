//! From a parsed MIME message to the body text the rest of the parser reads.
//!
//! The MIME tree is walked depth-first (a `multipart/mixed` may wrap the
//! `multipart/alternative` Gerrit sends). The first `text/plain` part that is
//! not an attachment wins; without one, the first `text/html` part is turned
//! into text (see [`super::html`]). `mail-parser` has already undone the
//! transfer encoding (quoted-printable, base64) and the charset. A
//! `format=flowed` part is then un-flowed (RFC 3676), and line ends become
//! `\n`.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::MailError;
use super::html;

/// Where the body text came from; decides how the footer block is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Plain,
    Html,
}

/// The body of a mail as `\n`-separated lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub text: String,
    pub source: Source,
}

/// At most this many multipart containers in one mail. Gerrit sends one
/// (`multipart/alternative`), two when something wraps it.
pub const MAX_MULTIPARTS: usize = 64;

/// Refuses a mail with more than [`MAX_MULTIPARTS`] `Content-Type:
/// multipart/...` header fields, before the MIME parser sees it: for each
/// multipart whose boundary never appears, the parser scans to the end of
/// the mail, so a mail made of many such parts costs time quadratic in its
/// size. One pass over the bytes; a header field folded over several lines
/// counts once.
pub fn check_multiparts(raw: &[u8]) -> Result<(), MailError> {
    let mut found = 0;
    let mut in_content_type = false;
    let mut counted = false;
    for line in raw.split(|&b| b == b'\n') {
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded {
            in_content_type = starts_with_ignore_case(line, b"content-type:");
            counted = false;
        }
        if in_content_type && !counted && contains_ignore_case(line, b"multipart/") {
            counted = true;
            found += 1;
            if found > MAX_MULTIPARTS {
                return Err(MailError::TooManyMultiparts {
                    max: MAX_MULTIPARTS,
                });
            }
        }
    }
    Ok(())
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn contains_ignore_case(line: &[u8], needle: &[u8]) -> bool {
    line.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Picks and decodes the body text of `message`.
pub fn body(message: &Message<'_>) -> Result<Body, MailError> {
    let mut html_part: Option<&MessagePart<'_>> = None;
    let mut other_problem = false;
    for part in &message.parts {
        if part
            .content_disposition()
            .is_some_and(|d| d.is_attachment())
        {
            continue;
        }
        match &part.body {
            PartType::Text(text) if is_plain(part) => {
                let text = if is_flowed(part) {
                    let delsp = part
                        .content_type()
                        .and_then(|ct| ct.attribute("delsp"))
                        .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
                    unflow(&normalize_newlines(text), delsp)
                } else {
                    normalize_newlines(text)
                };
                return Ok(Body {
                    text,
                    source: Source::Plain,
                });
            }
            PartType::Html(_) if html_part.is_none() => html_part = Some(part),
            PartType::Binary(_) | PartType::InlineBinary(_) if is_textual(part) => {
                other_problem = true
            }
            _ => {}
        }
    }
    if let Some(part) = html_part {
        let html = part.text_contents().unwrap_or_default();
        return Ok(Body {
            text: html::to_text(&normalize_newlines(html)),
            source: Source::Html,
        });
    }
    if other_problem {
        return Err(MailError::Undecodable(
            "the text part could not be decoded".into(),
        ));
    }
    Err(MailError::Undecodable(
        "no text/plain or text/html part".into(),
    ))
}

/// Drops a parsed message without recursion. `mail-parser` builds an
/// attached message (`message/rfc822`) as a value nested in its parent
/// part, as deep as the mail nests them, and the default drop recurses once
/// per level: a mail of a few hundred kilobytes nesting tens of thousands of
/// attached messages would overflow the stack. The nested messages are
/// taken out into a list and dropped one at a time instead.
pub fn drop_flat(message: Message<'_>) {
    let mut pending = vec![message];
    while let Some(mut message) = pending.pop() {
        for part in &mut message.parts {
            if matches!(part.body, PartType::Message(_)) {
                if let PartType::Message(inner) = std::mem::take(&mut part.body) {
                    pending.push(inner);
                }
            }
        }
    }
}

/// `text/plain`, or no Content-Type at all (RFC 2045 default).
fn is_plain(part: &MessagePart<'_>) -> bool {
    match part.content_type() {
        None => true,
        Some(ct) => {
            ct.ctype().eq_ignore_ascii_case("text")
                && ct.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain"))
        }
    }
}

fn is_textual(part: &MessagePart<'_>) -> bool {
    part.content_type()
        .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("text"))
}

fn is_flowed(part: &MessagePart<'_>) -> bool {
    part.content_type()
        .and_then(|ct| ct.attribute("format"))
        .is_some_and(|v| v.eq_ignore_ascii_case("flowed"))
}

/// CRLF and lone CR become LF.
pub fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Undoes RFC 3676 `format=flowed`: a line ending in a space is soft-broken
/// and joins the next line of the same quote depth (with `delsp=yes` that
/// space belongs to the wrapping and is removed); space-stuffing (one leading
/// space added by the sender) is removed; the signature separator `-- ` is
/// never flowed. Quoted lines keep their `>` markers.
pub fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    // The quote depth of the flowed paragraph being joined at the end of
    // `out`, if one is open.
    let mut open: Option<usize> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let depth = raw.bytes().take_while(|&b| b == b'>').count();
        let content = &raw[depth..];
        let content = content.strip_prefix(' ').unwrap_or(content);
        let is_signature = content == "-- ";
        let flowed = !is_signature && content.ends_with(' ');
        // A line of the open paragraph's depth joins it; any other line
        // (quote depth changed, signature) starts a line of its own.
        if open.take() != Some(depth) || is_signature {
            if i > 0 {
                out.push('\n');
            }
            if depth > 0 {
                out.extend(std::iter::repeat_n('>', depth));
                out.push(' ');
            }
        }
        out.push_str(content);
        if flowed {
            if delsp {
                out.pop();
            }
            open = Some(depth);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flowed_lines_join_and_delsp_removes_the_marker_space() {
        let text =
            "Dana Dev has posted comments on this change. (  \nhttps://g.example/1 )\n\nfixed";
        assert_eq!(
            unflow(text, true),
            "Dana Dev has posted comments on this change. ( https://g.example/1 )\n\nfixed"
        );
        assert_eq!(unflow("a \nb", false), "a b");
        assert_eq!(unflow("a \nb", true), "ab");
    }

    #[test]
    fn long_footer_and_command_lines_are_rejoined() {
        let text = "bionicbb:retry \nx86_64\n-- \nTo view\n\nGerrit-Comment-Date: Tue, 14 Mar \n2023 17:02:11 +0000\nGerrit-PatchSet: 4";
        assert_eq!(
            unflow(text, true),
            "bionicbb:retryx86_64\n-- \nTo view\n\nGerrit-Comment-Date: Tue, 14 Mar2023 17:02:11 +0000\nGerrit-PatchSet: 4"
        );
        let text =
            "bionicbb:retry  \nx86_64\nGerrit-Comment-Date: Tue, 14 Mar  \n2023 17:02:11 +0000";
        assert_eq!(
            unflow(text, true),
            "bionicbb:retry x86_64\nGerrit-Comment-Date: Tue, 14 Mar 2023 17:02:11 +0000"
        );
    }

    #[test]
    fn signature_separator_and_stuffing() {
        assert_eq!(unflow("end \n-- \nsig", true), "end\n-- \nsig");
        assert_eq!(
            unflow(" From here\n >not a quote", true),
            "From here\n>not a quote"
        );
    }

    #[test]
    fn quote_depth_limits_joining() {
        assert_eq!(
            unflow("> quoted \n> more\nmine", true),
            "> quotedmore\nmine"
        );
        assert_eq!(unflow("> quoted  \nmine", true), "> quoted \nmine");
    }

    #[test]
    fn newlines_are_normalized() {
        assert_eq!(normalize_newlines("a\r\nb\rc\n"), "a\nb\nc\n");
    }
}
