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
    let mut out = Writer::new(output_limit(html.len()));
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

/// The most text [`to_text`] makes of `len` bytes of HTML: four times as
/// much, plus a little. Text is never longer than its markup except for the
/// quote markers of lines inside `<blockquote>`, and a genuine mail is far
/// from the bound; only a crafted one (thousands of one-letter lines deep in
/// quotes) loses its tail.
pub fn output_limit(len: usize) -> usize {
    len.saturating_mul(4).saturating_add(64 << 10)
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

/// How many `> ` markers a quoted line gets at most: deeper quotes are still
/// quotes (a line starting with `>` never counts), so nesting beyond this
/// adds nothing but bytes.
pub const MAX_QUOTE_MARKS: usize = 4;

/// Builds the output in one string, trimming each line as it ends. The
/// output never grows past its `limit`: text beyond it is dropped (a hostile
/// mail cannot make the text larger than a bounded multiple of its HTML).
struct Writer {
    out: String,
    /// Where the current line starts in `out`.
    line_start: usize,
    /// Whether the current line has had non-blank text (leading blanks are
    /// dropped, as the line is trimmed).
    started: bool,
    quote_depth: usize,
    limit: usize,
}

impl Writer {
    fn new(limit: usize) -> Writer {
        Writer {
            out: String::new(),
            line_start: 0,
            started: false,
            quote_depth: 0,
            limit,
        }
    }

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

    /// Appends text to the current line. A quoted line gets its `> `
    /// markers when its first non-blank text arrives, so whitespace or an
    /// inline element before the text cannot unquote it.
    fn push(&mut self, s: &str) {
        let s = if self.started { s } else { s.trim_start() };
        if s.is_empty() {
            return;
        }
        if !self.started {
            self.started = true;
            for _ in 0..self.quote_depth.min(MAX_QUOTE_MARKS) {
                self.append("> ");
            }
        }
        for piece in s.split('\r') {
            self.append(piece);
        }
    }

    fn append(&mut self, s: &str) {
        let room = self.limit.saturating_sub(self.out.len());
        if s.len() <= room {
            self.out.push_str(s);
        } else {
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.out.push_str(&s[..end]);
        }
    }

    /// Ends the current line (trimmed).
    fn newline(&mut self) {
        self.trim_line_end();
        if self.out.len() < self.limit {
            self.out.push('\n');
        }
        self.line_start = self.out.len();
        self.started = false;
    }

    fn trim_line_end(&mut self) {
        let kept = self.out[self.line_start..].trim_end().len();
        self.out.truncate(self.line_start + kept);
    }

    fn finish(mut self) -> String {
        self.trim_line_end();
        self.out
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
        // A reference we decode is at most MAX_ENTITY bytes before its `;`:
        // look no further, so a flood of `&` stays linear.
        let window = &after.as_bytes()[..after.len().min(MAX_ENTITY + 1)];
        let decoded = window
            .iter()
            .position(|&b| b == b';')
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

/// The longest reference name decoded (`#x10FFFF` is 8; names are shorter).
const MAX_ENTITY: usize = 10;

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
    fn blanks_or_inline_tags_before_quoted_text_keep_it_quoted() {
        let text = to_text("<blockquote> <span>bionicbb:retry</span>\n  more</blockquote>x");
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines, ["> bionicbb:retry", "> more", "x"]);
    }

    #[test]
    fn quote_markers_and_output_are_bounded() {
        let html = format!(
            "{}deep<br>{}",
            "<blockquote>".repeat(1000),
            "</blockquote>".repeat(1000)
        );
        let text = to_text(&html);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines, [format!("{}deep", "> ".repeat(MAX_QUOTE_MARKS))]);
        let html = format!("<blockquote>{}", "x<br>".repeat(1000));
        assert!(to_text(&html).len() <= output_limit(html.len()));
        // One-letter lines deep in quotes: five bytes of text for each two
        // of HTML, cut at the bound.
        let html = format!("{}{}", "<blockquote>".repeat(4), "x\n".repeat(100_000));
        let text = to_text(&html);
        assert!(text.len() <= output_limit(html.len()));
        assert!(text.len() > output_limit(html.len()) - 16);
        assert!(text.trim_start().starts_with("> > > > x\n> > > > x\n"));
    }

    #[test]
    fn truncated_html_does_not_panic() {
        assert_eq!(to_text("<p>abc</p><div style=\"disp").trim(), "abc");
        assert_eq!(to_text("<!-- never closed").trim(), "");
        assert_eq!(to_text("x &#xZZ; <").trim(), "x &#xZZ; <");
    }
}
