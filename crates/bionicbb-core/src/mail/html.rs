//! HTML → text, for mails that carry no text/plain part.
//!
//! Not a general renderer: just enough for Gerrit's templates. Tags are
//! dropped, entities decoded, and block elements (`<p>`, `<div>`, `<br>`,
//! `<li>`, `<tr>`, headings, `<pre>`, `<blockquote>`) break lines, so each
//! hidden footer `<div style="display:none"> Gerrit-X: v </div>` becomes a
//! line of its own. Text inside `<blockquote>` is prefixed with `> ` so it is
//! treated as quoted. Newlines in the source text are kept (Gerrit renders
//! comments in `white-space: pre-wrap` blocks). Every line is trimmed.
//!
//! A `<` that does not open a tag (`<dana@example.com>` written unescaped,
//! `a < b`) is kept as text.

/// Elements whose start and end break the line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

/// Inline elements that separate words (Gerrit's vote chips are `<span>`s).
const SPACED: &[&str] = &["span", "code"];

/// Elements whose content is not text.
const SKIPPED: &[&str] = &["head", "script", "style", "title"];

/// Converts an HTML body to plain text lines joined with `\n`.
pub fn to_text(html: &str) -> String {
    let mut out = Writer::default();
    let mut rest = html;
    // Inside a skipped element: the name whose end tag ends the skip.
    let mut skipping: Option<String> = None;
    while let Some(lt) = rest.find('<') {
        if skipping.is_none() {
            out.text(&rest[..lt]);
        }
        let after = &rest[lt..];
        if let Some(comment) = after.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        if after.starts_with("<!") || after.starts_with("<?") {
            rest = after.find('>').map_or("", |end| &after[end + 1..]);
            continue;
        }
        match parse_tag(after) {
            Some(tag) => {
                rest = &after[tag.len..];
                if let Some(name) = &skipping {
                    if tag.closing && tag.name == *name {
                        skipping = None;
                    }
                    continue;
                }
                if SKIPPED.contains(&tag.name.as_str()) && !tag.closing && !tag.self_closing {
                    skipping = Some(tag.name);
                    continue;
                }
                if SPACED.contains(&tag.name.as_str()) {
                    out.text(" ");
                }
                if BLOCKS.contains(&tag.name.as_str()) {
                    out.newline();
                    if tag.name == "blockquote" && !tag.self_closing {
                        out.quote_depth = if tag.closing {
                            out.quote_depth.saturating_sub(1)
                        } else {
                            out.quote_depth + 1
                        };
                    }
                }
            }
            None => {
                // Not a tag: a literal `<`.
                if skipping.is_none() {
                    out.text("<");
                }
                rest = &after[1..];
            }
        }
    }
    if skipping.is_none() {
        out.text(rest);
    }
    out.finish()
}

/// A parsed tag: its lowercase name, whether it is `</x>` or `<x/>`, and its
/// length in bytes.
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    len: usize,
}

/// `s` starts with `<`. A tag is `<` [`/`] letter *(alnum) followed by
/// whitespace, `/` or `>`, running to the next `>` outside quotes.
fn parse_tag(s: &str) -> Option<Tag> {
    let bytes = s.as_bytes();
    let mut i = 1;
    let closing = bytes.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let start = i;
    if !bytes.get(i)?.is_ascii_alphabetic() {
        return None;
    }
    while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric()) {
        i += 1;
    }
    let name = s[start..i].to_ascii_lowercase();
    match bytes.get(i)? {
        b'>' | b'/' => {}
        b if b.is_ascii_whitespace() => {}
        _ => return None,
    }
    let mut quote: Option<u8> = None;
    while let Some(&b) = bytes.get(i) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => {
                let self_closing = i > 0 && bytes[i - 1] == b'/';
                return Some(Tag {
                    name,
                    closing,
                    self_closing,
                    len: i + 1,
                });
            }
            None => {}
        }
        i += 1;
    }
    // Unterminated tag (a truncated mail): drop the rest.
    Some(Tag {
        name,
        closing,
        self_closing: false,
        len: s.len(),
    })
}

/// Builds the output line by line.
#[derive(Default)]
struct Writer {
    lines: Vec<String>,
    line: String,
    quote_depth: usize,
}

impl Writer {
    fn text(&mut self, raw: &str) {
        let decoded = decode_entities(raw);
        let mut parts = decoded.split('\n');
        if let Some(first) = parts.next() {
            self.push(first);
        }
        for part in parts {
            self.newline();
            self.push(part);
        }
    }

    fn push(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if self.line.is_empty() && self.quote_depth > 0 && !s.trim().is_empty() {
            self.line.push_str(&"> ".repeat(self.quote_depth));
        }
        self.line.push_str(&s.replace('\r', ""));
    }

    fn newline(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.lines.push(line.trim().to_string());
    }

    fn finish(mut self) -> String {
        self.newline();
        self.lines.join("\n")
    }
}

/// Decodes the character references Gerrit's templates produce: the named
/// ones for markup characters and spaces, and numeric ones. Unknown names are
/// kept as written.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after
            .find(';')
            .filter(|&semi| semi <= 10)
            .and_then(|semi| decode_entity(&after[..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        // A NUL or an invalid code point decodes to the replacement character.
        return Some(
            char::from_u32(code)
                .filter(|&c| c != '\0')
                .unwrap_or('\u{FFFD}'),
        );
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_footer_divs_become_lines() {
        let html = "<p>x</p><div style=\"display:none\"> Gerrit-MessageType: comment </div>\
                    <div style=\"display:none\"> Gerrit-PatchSet: 3 </div>";
        let text = to_text(html);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            ["x", "Gerrit-MessageType: comment", "Gerrit-PatchSet: 3"]
        );
    }

    #[test]
    fn unescaped_address_is_text_and_entities_decode() {
        let text = to_text("<div> Gerrit-Owner: Dana Dev <dana@example.com> </div>");
        assert_eq!(text.trim(), "Gerrit-Owner: Dana Dev <dana@example.com>");
        let text =
            to_text("<div>Gerrit-Owner: Dana &lt;dana@example.com&gt; &amp; co&#46;&#x21;</div>");
        assert_eq!(text.trim(), "Gerrit-Owner: Dana <dana@example.com> & co.!");
        assert_eq!(
            decode_entities("a &bogus; b & c &#0;"),
            "a &bogus; b & c \u{FFFD}"
        );
    }

    #[test]
    fn breaks_styles_comments_and_quotes() {
        let html = "<html><head><style>p { color: red }</style></head><body>\
                    <p>Patch set 4:<span>Verified +1</span><span>-Code-Review</span></p>a<br>b<br/>c\
                    <!-- hidden <p>no</p> --><blockquote>bionicbb:clean\nmore</blockquote>after \
                    1 < 2</body></html>";
        let text = to_text(html);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            [
                "Patch set 4: Verified +1  -Code-Review",
                "a",
                "b",
                "c",
                "> bionicbb:clean",
                "> more",
                "after 1 < 2"
            ]
        );
    }

    #[test]
    fn truncated_html_does_not_panic() {
        assert_eq!(to_text("<p>abc</p><div style=\"disp").trim(), "abc");
        assert_eq!(to_text("<!-- never closed").trim(), "");
        assert_eq!(to_text("x &#xZZ; <").trim(), "x &#xZZ; <");
    }
}
