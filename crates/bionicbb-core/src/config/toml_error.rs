//! A TOML error as one line that names the line, the column and the key,
//! without quoting the file: toml's own message shows the faulty line, and
//! that line may hold a secret (`api_token = "..." oops`).
//!
//! The key is found by walking the document's syntax events (the parser
//! toml itself uses, which recovers from errors) up to the error. As a
//! second guard, any text given as the value of a secret-bearing key, and
//! the password of any URL, is masked wherever it shows up in the message.

use toml_parser::parser::{Event, EventKind, parse_document};

/// `line L, column C: [section] key: what is wrong` for an error in `text`.
pub fn describe(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end().to_string();
    let walk = Walk::new(text);
    let Some(offset) = err.span().map(|s| s.start.min(text.len())) else {
        return walk.mask(&message);
    };
    let (line, column) = line_and_column(text, offset);
    let mut out = format!("line {line}, column {column}: ");
    if let Some(key) = walk.key_at(offset) {
        out.push_str(&key);
        out.push_str(": ");
    }
    out.push_str(&message);
    walk.mask(&out)
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset;
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Whether a key's value is a secret: `api_token`, `secret`, and any
/// `*token`, `*secret` or `*password` that is not a file name.
fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !name.ends_with("_file")
        && (name.ends_with("token") || name.ends_with("secret") || name.ends_with("password"))
}

/// Where a key starts, and its path (tables included).
struct Mark {
    start: usize,
    path: Vec<String>,
    /// A table header, not a key.
    header: bool,
    /// A key never followed by `=`: only named when it is bare and looks
    /// like one of the configuration's own keys, so stray text is never
    /// echoed.
    pending: bool,
    bare: bool,
}

/// What the walk over the syntax events found.
#[derive(Default)]
struct Walk {
    marks: Vec<Mark>,
    /// Text given as the value of a secret-bearing key, line by line.
    secrets: Vec<String>,
}

impl Walk {
    fn new(text: &str) -> Walk {
        let source = toml_parser::Source::new(text);
        let tokens = source.lex().into_vec();
        let mut events: Vec<Event> = Vec::new();
        let mut errors: Vec<toml_parser::ParseError> = Vec::new();
        parse_document(&tokens, &mut |e: Event| events.push(e), &mut errors);
        let mut state = State::default();
        for event in events {
            state.event(text, event);
        }
        state.walk
    }

    /// The key the error at `offset` is in: the last one that starts before it.
    fn key_at(&self, offset: usize) -> Option<String> {
        let mark = self.marks.iter().rev().find(|m| {
            if m.pending {
                m.bare && m.start < offset && m.path.last().is_some_and(|k| looks_like_a_key(k))
            } else {
                m.start <= offset
            }
        })?;
        Some(display_path(&mark.path, mark.header))
    }

    /// `text` with every secret value replaced by `***`.
    fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }
}

fn looks_like_a_key(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `[a.b] c` for key `c` in table `a.b`; `[a.b]` for the table itself;
/// `c` for a top-level key.
fn display_path(path: &[String], header: bool) -> String {
    if header {
        return format!("[{}]", path.join("."));
    }
    match path.split_last() {
        Some((key, [])) => key.clone(),
        Some((key, tables)) => format!("[{}] {key}", tables.join(".")),
        None => String::new(),
    }
}

#[derive(Default)]
struct State {
    walk: Walk,
    /// The path of the current `[table]`.
    table: Vec<String>,
    /// A header being read: where it starts, its keys so far.
    header: Option<(usize, Vec<String>)>,
    /// The paths of the open inline tables.
    nested: Vec<Vec<String>>,
    /// The (dotted) key being read, relative to `prefix()`.
    key: Vec<String>,
    after_key_sep: bool,
    /// The path whose value is being read.
    value_of: Option<Vec<String>>,
}

impl State {
    fn prefix(&self) -> Vec<String> {
        self.nested.last().unwrap_or(&self.table).clone()
    }

    fn event(&mut self, text: &str, event: Event) {
        let span = event.span();
        let raw = text.get(span.start()..span.end()).unwrap_or_default();
        match event.kind() {
            EventKind::StdTableOpen | EventKind::ArrayTableOpen => {
                self.header = Some((span.start(), Vec::new()));
                self.nested.clear();
                self.value_of = None;
            }
            EventKind::StdTableClose | EventKind::ArrayTableClose => {
                if let Some((start, path)) = self.header.take() {
                    self.walk.marks.push(Mark {
                        start,
                        path: path.clone(),
                        header: true,
                        pending: false,
                        bare: true,
                    });
                    self.table = path;
                }
            }
            EventKind::SimpleKey => {
                let name = key_name(raw);
                if let Some((_, path)) = &mut self.header {
                    path.push(name);
                } else if self.after_key_sep {
                    self.key.push(name);
                    self.after_key_sep = false;
                } else {
                    self.key = vec![name];
                    let mut path = self.prefix();
                    path.extend(self.key.iter().cloned());
                    self.walk.marks.push(Mark {
                        start: span.start(),
                        path,
                        header: false,
                        pending: true,
                        bare: event.encoding().is_none(),
                    });
                }
            }
            EventKind::KeySep => self.after_key_sep = true,
            // An empty `=` is one the parser made up to recover from an error.
            EventKind::KeyValSep if !raw.is_empty() => {
                let mut path = self.prefix();
                path.extend(self.key.iter().cloned());
                if let Some(mark) = self.walk.marks.last_mut()
                    && !mark.header
                {
                    mark.path = path.clone();
                    mark.pending = false;
                }
                self.value_of = Some(path);
                self.after_key_sep = false;
            }
            EventKind::Scalar => {
                let secret = self
                    .value_of
                    .as_ref()
                    .and_then(|p| p.last())
                    .is_some_and(|k| is_secret_key(k));
                if secret {
                    self.remember_secret(raw);
                } else if let Some(password) = url_password(raw) {
                    self.remember_secret(password);
                }
            }
            EventKind::InlineTableOpen => {
                let path = self.value_of.clone().unwrap_or_else(|| self.prefix());
                self.nested.push(path);
                self.key.clear();
            }
            EventKind::InlineTableClose => {
                self.value_of = self.nested.pop();
            }
            _ => {}
        }
    }

    /// Keeps each line of a secret value (quotes dropped) for masking.
    fn remember_secret(&mut self, raw: &str) {
        let value = raw.trim_matches(['"', '\'']);
        for line in value.split(['\n', '\r']) {
            let line = line.trim();
            if !line.is_empty() && !self.walk.secrets.iter().any(|s| s == line) {
                self.walk.secrets.push(line.to_string());
            }
        }
        // Longest first, so that a value containing another is masked whole.
        self.walk
            .secrets
            .sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// The password of a `scheme://user:password@host` value, found without
/// parsing the URL (the error may be that it does not parse).
fn url_password(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once("://")?;
    let userinfo = &rest[..rest.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    Some(password)
}

/// A key as written, without its quotes.
fn key_name(raw: &str) -> String {
    let raw = raw.trim();
    let unquoted = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')));
    unquoted.unwrap_or(raw).to_string()
}
