//! Gerrit change identifiers, validated before they reach a URL.
//!
//! Accepted forms (Gerrit REST `{change-id}`):
//! - `123456`: the change number;
//! - `platform/bionic~123456`: project and number (unambiguous, preferred);
//! - `platform/bionic~master~I<40 hex>`: the triplet (`refs/heads/` optional);
//! - `I<40 hex>`: a bare Change-Id. Gerrit answers 404 "Multiple changes
//!   found" when it was cherry-picked, so it is kept only for inputs that
//!   carry nothing better.
//!
//! Anything else (a path, `..`, a control character, an empty part) is refused.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters left as they are in a URL path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (`platform/bionic` → `platform%2Fbionic`).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Gerrit change id {input:?}: {reason}")]
pub struct InvalidId {
    pub input: String,
    pub reason: &'static str,
}

/// A Gerrit `Change-Id` (`I` followed by 40 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChangeKey(String);

impl ChangeKey {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = s.len() == 41
            && s.starts_with('I')
            && s[1..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(ChangeKey(s.to_string()))
        } else {
            Err(InvalidId {
                input: s.to_string(),
                reason: "a Change-Id is I followed by 40 lowercase hex digits",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to one change, in a form Gerrit's REST API accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeRef {
    Number(u64),
    ProjectNumber {
        project: String,
        number: u64,
    },
    Triplet {
        project: String,
        branch: String,
        key: ChangeKey,
    },
    Bare(ChangeKey),
}

impl ChangeRef {
    /// Parses any accepted form, refusing everything else.
    pub fn parse(input: &str) -> Result<Self, InvalidId> {
        let bad = |reason| InvalidId {
            input: input.to_string(),
            reason,
        };
        let parts: Vec<&str> = input.split('~').collect();
        match parts.as_slice() {
            [one] if one.starts_with('I') => ChangeKey::parse(one).map(ChangeRef::Bare),
            [one] => parse_number(one)
                .map(ChangeRef::Number)
                .ok_or(bad("not a change number")),
            [project, number] => {
                validate_project(project).map_err(bad)?;
                let number = parse_number(number).ok_or(bad("not a change number"))?;
                Ok(ChangeRef::ProjectNumber {
                    project: project.to_string(),
                    number,
                })
            }
            [project, branch, key] => {
                validate_project(project).map_err(bad)?;
                let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
                validate_branch(branch).map_err(bad)?;
                let key = ChangeKey::parse(key)?;
                Ok(ChangeRef::Triplet {
                    project: project.to_string(),
                    branch: branch.to_string(),
                    key,
                })
            }
            _ => Err(bad("too many '~' separators")),
        }
    }

    /// Builds the triplet from already-separate parts (e-mail footers).
    pub fn triplet(project: &str, branch: &str, key: &str) -> Result<Self, InvalidId> {
        Self::parse(&format!("{project}~{branch}~{key}"))
    }

    /// Builds `project~number` from already-separate parts.
    pub fn project_number(project: &str, number: u64) -> Result<Self, InvalidId> {
        Self::parse(&format!("{project}~{number}"))
    }

    /// The identifier as one URL path segment, e.g. `platform%2Fbionic~123456`.
    pub fn url_segment(&self) -> String {
        match self {
            ChangeRef::Number(n) => n.to_string(),
            ChangeRef::ProjectNumber { project, number } => {
                format!("{}~{number}", encode_segment(project))
            }
            ChangeRef::Triplet {
                project,
                branch,
                key,
            } => format!(
                "{}~{}~{}",
                encode_segment(project),
                encode_segment(branch),
                key
            ),
            ChangeRef::Bare(key) => key.to_string(),
        }
    }
}

impl fmt::Display for ChangeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeRef::Number(n) => write!(f, "{n}"),
            ChangeRef::ProjectNumber { project, number } => write!(f, "{project}~{number}"),
            ChangeRef::Triplet {
                project,
                branch,
                key,
            } => write!(f, "{project}~{branch}~{key}"),
            ChangeRef::Bare(key) => write!(f, "{key}"),
        }
    }
}

impl std::str::FromStr for ChangeRef {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n > 0)
}

/// A Gerrit project name: `/`-separated non-empty components, none of them
/// `.` or `..`, no control characters, no `~`, no leading or trailing `/`.
pub fn validate_project(project: &str) -> Result<(), &'static str> {
    validate_path(project, "project")
}

/// A short branch name (no `refs/heads/`), with the same rules as a project.
pub fn validate_branch(branch: &str) -> Result<(), &'static str> {
    validate_path(branch, "branch")
}

fn validate_path(s: &str, _what: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty project or branch");
    }
    if s.len() > 255 {
        return Err("project or branch is too long");
    }
    if s.chars()
        .any(|c| c.is_control() || c == '~' || c == '\\' || c.is_whitespace())
    {
        return Err("project or branch contains a control character, whitespace, '~' or '\\'");
    }
    if s.split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("project or branch has an empty, '.' or '..' component");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";

    #[test]
    fn accepted_forms_encode_for_urls() {
        assert_eq!(ChangeRef::parse("123456").unwrap().url_segment(), "123456");
        assert_eq!(
            ChangeRef::parse("platform/bionic~123456")
                .unwrap()
                .url_segment(),
            "platform%2Fbionic~123456"
        );
        let t = ChangeRef::parse(&format!("platform/bionic~refs/heads/release/1.0~{KEY}")).unwrap();
        assert_eq!(
            t.url_segment(),
            format!("platform%2Fbionic~release%2F1.0~{KEY}")
        );
        assert_eq!(t.to_string(), format!("platform/bionic~release/1.0~{KEY}"));
        assert_eq!(
            ChangeRef::parse(KEY).unwrap(),
            ChangeRef::Bare(ChangeKey::parse(KEY).unwrap())
        );
    }

    #[test]
    fn path_like_and_malformed_ids_are_refused() {
        for bad in [
            "",
            "0",
            "-1",
            "12a",
            "../../accounts/self",
            "a/../b~1",
            "/platform~1",
            "platform/~1",
            "platform/bionic~master~Inothex",
            &format!("{KEY}x"),
            &KEY.to_uppercase(),
            "p~b~c~d",
            "p r~1",
            "p\n~1",
            "99999999999999999999",
        ] {
            assert!(ChangeRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn encoding_escapes_everything_reserved() {
        assert_eq!(encode_segment("a/b c?d#e%f"), "a%2Fb%20c%3Fd%23e%25f");
    }
}
