//! Credentials for a host from a netrc file.
//!
//! The bot's Gerrit HTTP password lives in a netrc file (the original bot
//! read `~/.netrc` with Python's `netrc` module). [`credentials_for`] finds
//! the file (`gerrit.netrc` from the config, else `$NETRC`, else
//! `~/.netrc`), parses it and returns the entry for the host, falling back
//! to the `default` entry.
//!
//! The grammar, as real files use it (ftp(1), curl, Python):
//! - whitespace (spaces, tabs, newlines, `\r`) separates tokens; entries may
//!   share a line or spread over several;
//! - `machine NAME` or `default` starts an entry; `login` (or its alias
//!   `user`), `password` and `account` each take one value;
//! - a token starting with an unquoted `#` starts a comment that runs to the
//!   end of the line, both on its own line and after a value;
//! - a value in double quotes may contain spaces and `#`; inside or outside
//!   quotes a backslash takes the next character literally (as Python does);
//! - `macdef NAME` starts a macro whose body runs from the next line to the
//!   first empty line (or the end of the file); the body is skipped unread,
//!   whatever its characters.
//!
//! When a host appears twice the first entry wins (as in ftp and curl), and
//! host names compare case-insensitively. A password never reaches a log, an
//! error message or `Debug` output: values are held as [`Secret`], and
//! syntax errors report a line number and what was expected, never the text.

use std::path::{Path, PathBuf};

use crate::config::Secret;

/// A login and password for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub login: String,
    pub password: Secret,
}

/// Why no credentials could be read. Messages name the file, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum NetrcError {
    #[error(
        "no netrc file: set [gerrit] netrc in the configuration (or NETRC, or HOME for ~/.netrc)"
    )]
    NoFile,
    #[error("{}: cannot read netrc file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: the entry used for {host} has no {missing}", path.display())]
    Incomplete {
        path: PathBuf,
        host: String,
        missing: &'static str,
    },
}

/// A syntax error in netrc text: a 1-based line and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// One `machine` or `default` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The host; `None` for the `default` entry.
    pub machine: Option<String>,
    pub login: Option<String>,
    pub password: Option<Secret>,
    pub account: Option<Secret>,
}

/// A parsed netrc file: its entries in file order (macros are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Netrc {
    pub entries: Vec<Entry>,
}

impl Netrc {
    /// Parses netrc text.
    pub fn parse(text: &str) -> Result<Netrc, SyntaxError> {
        let mut lexer = Lexer {
            chars: text.chars().peekable(),
            line: 1,
        };
        let mut entries: Vec<Entry> = Vec::new();
        // Whether the last entry in `entries` is still taking keywords
        // (false at the start and after a macro).
        let mut in_entry = false;
        while let Some(token) = lexer.next_token()? {
            let keyword = if token.quoted {
                ""
            } else {
                token.text.as_str()
            };
            match keyword {
                "machine" => {
                    let name = lexer.value("machine", token.line)?;
                    entries.push(Entry::new(Some(name)));
                    in_entry = true;
                }
                "default" => {
                    entries.push(Entry::new(None));
                    in_entry = true;
                }
                "macdef" => {
                    lexer.value("macdef", token.line)?;
                    lexer.skip_macro_body();
                    in_entry = false;
                }
                "login" | "user" | "password" | "account" => {
                    let entry = match entries.last_mut() {
                        Some(entry) if in_entry => entry,
                        _ => {
                            return Err(SyntaxError {
                                line: token.line,
                                message: format!(
                                    "`{keyword}` outside a `machine` or `default` entry"
                                ),
                            });
                        }
                    };
                    let value = lexer.value(keyword, token.line)?;
                    match keyword {
                        "password" => entry.password = Some(Secret::new(value)),
                        "account" => entry.account = Some(Secret::new(value)),
                        _ => entry.login = Some(value),
                    }
                }
                // The word is not echoed: it may be part of a password.
                _ => {
                    return Err(SyntaxError {
                        line: token.line,
                        message: "unexpected word; expected machine, default, macdef, login, \
                                  password or account (quote a value that contains spaces)"
                            .into(),
                    });
                }
            }
        }
        Ok(Netrc { entries })
    }

    /// The first entry for `host` (case-insensitive), else the first
    /// `default` entry.
    pub fn lookup(&self, host: &str) -> Option<&Entry> {
        let exact = self.entries.iter().find(|e| {
            e.machine
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(host))
        });
        exact.or_else(|| self.entries.iter().find(|e| e.machine.is_none()))
    }
}

impl Entry {
    fn new(machine: Option<String>) -> Self {
        Entry {
            machine,
            login: None,
            password: None,
            account: None,
        }
    }
}

/// The netrc file to read: `explicit`, else `$NETRC` (when set and not
/// empty), else `$HOME/.netrc`.
pub fn netrc_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("NETRC").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".netrc"))
}

/// Whether a file with this Unix mode is readable or writable by group or
/// others (a netrc file should be 0600).
pub fn too_open(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Credentials for `host` from the netrc file (see [`netrc_path`]): the
/// host's own entry, else the `default` entry, else `None`. An entry that is
/// used but lacks a login or password is an error. Warns when the file is
/// open to group or others (unless it is a credential systemd handed over).
pub fn credentials_for(path: Option<&Path>, host: &str) -> Result<Option<Credentials>, NetrcError> {
    let path = netrc_path(path).ok_or(NetrcError::NoFile)?;
    let read_err = |source| NetrcError::Read {
        path: path.clone(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(read_err)?;
    // systemd's copy of a credential has the mode systemd chose.
    if !crate::config::credential::is_loaded(
        &path,
        crate::config::credential::directory().as_deref(),
    ) {
        warn_if_open(&path);
    }
    let netrc = Netrc::parse(&text).map_err(|e| NetrcError::Syntax {
        path: path.clone(),
        line: e.line,
        message: e.message,
    })?;
    let Some(entry) = netrc.lookup(host) else {
        return Ok(None);
    };
    let incomplete = |missing| NetrcError::Incomplete {
        path: path.clone(),
        host: host.to_string(),
        missing,
    };
    let login = entry.login.clone().ok_or_else(|| incomplete("login"))?;
    let password = entry
        .password
        .clone()
        .ok_or_else(|| incomplete("password"))?;
    Ok(Some(Credentials { login, password }))
}

#[cfg(unix)]
fn warn_if_open(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if too_open(mode) {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "netrc file is accessible by group or others; it holds passwords: chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_open(_path: &Path) {}

struct Token {
    text: String,
    /// A quoted token is always a value, never a keyword or a comment.
    quoted: bool,
    line: usize,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl Lexer<'_> {
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    /// The next token, skipping whitespace and comments.
    fn next_token(&mut self) -> Result<Option<Token>, SyntaxError> {
        loop {
            match self.chars.peek() {
                None => return Ok(None),
                Some(c) if c.is_ascii_whitespace() => {
                    self.bump();
                }
                Some('#') => self.skip_line(),
                Some('"') => {
                    let line = self.line;
                    self.bump();
                    let mut text = String::new();
                    loop {
                        match self.bump() {
                            Some('"') => break,
                            Some('\\') => text.extend(self.bump()),
                            Some(c) => text.push(c),
                            None => {
                                return Err(SyntaxError {
                                    line,
                                    message: "quoted value is never closed".into(),
                                });
                            }
                        }
                    }
                    let quoted = true;
                    return Ok(Some(Token { text, quoted, line }));
                }
                Some(_) => {
                    let line = self.line;
                    let mut text = String::new();
                    while let Some(&c) = self.chars.peek() {
                        if c.is_ascii_whitespace() {
                            break;
                        }
                        self.bump();
                        if c == '\\' {
                            text.extend(self.bump());
                        } else {
                            text.push(c);
                        }
                    }
                    let quoted = false;
                    return Ok(Some(Token { text, quoted, line }));
                }
            }
        }
    }

    /// The value after `keyword` (any token, even one spelled like a keyword).
    fn value(&mut self, keyword: &str, line: usize) -> Result<String, SyntaxError> {
        match self.next_token()? {
            Some(token) => Ok(token.text),
            None => Err(SyntaxError {
                line,
                message: format!("`{keyword}` has no value before the end of the file"),
            }),
        }
    }

    /// Skips to just after the next newline.
    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                return;
            }
        }
    }

    /// Skips the rest of the `macdef` line and the body up to and including
    /// the first empty line (a line holding nothing, or only `\r`).
    fn skip_macro_body(&mut self) {
        self.skip_line();
        loop {
            let mut empty = true;
            loop {
                match self.bump() {
                    None => return,
                    Some('\n') if empty => return,
                    Some('\n') => break,
                    Some('\r') => {}
                    Some(_) => empty = false,
                }
            }
        }
    }
}
