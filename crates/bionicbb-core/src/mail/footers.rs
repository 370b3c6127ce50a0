//! Gerrit's metadata footers: `Gerrit-<Key>: value` lines at the end of the
//! body.
//!
//! Only the footer block counts, so that a `Change-Id:` trailer in a commit
//! message or a `Gerrit-...` line typed or quoted in a comment cannot inject
//! values:
//! - in a text/plain body, the footer block is everything after the last
//!   change-footer separator line (`-- `, or `--` in the oldest template);
//! - in text converted from HTML (no separator there: the footers are hidden
//!   `<div>`s), and in a plain body without separator, it is the run of
//!   footer and blank lines that ends the body.
//!
//! Footer names drift across Gerrit versions; keys are compared without the
//! `Gerrit-` prefix, without hyphens and ignoring case, so `Gerrit-ChangeId`
//! and `Gerrit-Change-Id`, `Gerrit-HasLabels` and `Gerrit-Has-Labels`,
//! `Gerrit-Comment-In-Reply-To` and `Comment-In-Reply-To` are the same key.
//! Zero or more spaces may follow the colon (`Gerrit-PatchSetId:3`).

use std::collections::BTreeMap;

use super::mime::Source;

/// At most this many footer lines are read from a block (a genuine block
/// has a few dozen; one `Gerrit-Reviewer` line per reviewer).
pub const MAX_FOOTER_LINES: usize = 1000;

/// At most this many distinct values of one key are reported: two already
/// make a single-valued key contradict itself.
pub const MAX_DISTINCT: usize = 8;

/// Footers as an unordered multimap from normalized key to values in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footers {
    map: BTreeMap<String, Vec<String>>,
}

impl Footers {
    /// Reads the footer block of `body` (lines separated by `\n`): its
    /// first [`MAX_FOOTER_LINES`] footer lines.
    pub fn from_body(body: &str, source: Source) -> Footers {
        let block = &body[block_start(body, source).start..];
        let mut footers = Footers::default();
        for (key, value) in block
            .split('\n')
            .filter_map(parse_line)
            .take(MAX_FOOTER_LINES)
        {
            footers.map.entry(key).or_default().push(value);
        }
        footers
    }

    /// Every value of `key` (any spelling, see the module doc).
    pub fn all(&self, key: &str) -> &[String] {
        self.map
            .get(&normalize_key(key))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The distinct non-empty values of a single-valued key: none when absent
    /// or blank, more than one when the mail contradicts itself (then at most
    /// [`MAX_DISTINCT`] of them).
    pub fn distinct(&self, key: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for value in self.all(key) {
            if !value.is_empty() && !out.contains(&value.as_str()) {
                out.push(value);
                if out.len() == MAX_DISTINCT {
                    break;
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Where the footer block of a body starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockStart {
    /// Byte offset of the block's first line (the body's length when the
    /// block is empty).
    pub start: usize,
    /// Byte offset of the separator line the block follows, if it does.
    pub separator: Option<usize>,
}

/// Finds the footer block of `body`, scanning from its end: one pass.
pub fn block_start(body: &str, source: Source) -> BlockStart {
    if source == Source::Plain {
        if let Some((at, line)) = lines_rev(body).find(|(_, l)| is_separator(l)) {
            return BlockStart {
                start: (at + line.len() + 1).min(body.len()),
                separator: Some(at),
            };
        }
    }
    let mut start = body.len();
    for (at, line) in lines_rev(body) {
        if line.trim().is_empty() || parse_line(line).is_some() {
            start = at;
        } else {
            break;
        }
    }
    BlockStart {
        start,
        separator: None,
    }
}

/// The lines of `text` (split on `\n`), last first, with their byte
/// offsets.
pub fn lines_rev(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut end = Some(text.len());
    std::iter::from_fn(move || {
        let stop = end?;
        match text[..stop].rfind('\n') {
            Some(nl) => {
                end = Some(nl);
                Some((nl + 1, &text[nl + 1..stop]))
            }
            None => {
                end = None;
                Some((0, &text[..stop]))
            }
        }
    })
}

/// The change-footer separator: `-- ` (Soy and later Velocity templates) or
/// `--` (the oldest one). Trailing whitespace is ignored.
pub fn is_separator(line: &str) -> bool {
    line.trim_end() == "--"
}

/// `Gerrit-<Key>:<spaces>value` or `Comment-In-Reply-To: value` at the start
/// of a line (leading whitespace allowed, for text converted from HTML).
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let (key, value) = line.split_once(':')?;
    let bare = match key.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("gerrit-") => &key[7..],
        _ if key.eq_ignore_ascii_case("comment-in-reply-to") => key,
        _ => return None,
    };
    if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    Some((normalize_key(bare), value.trim().to_string()))
}

/// `Gerrit-Change-Id` → `changeid`; `Has-Labels` → `haslabels`.
fn normalize_key(key: &str) -> String {
    let key = match key.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("gerrit-") => &key[7..],
        _ => key,
    };
    key.chars()
        .filter(|&c| c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_variants() {
        assert_eq!(
            parse_line("Gerrit-PatchSetId:3"),
            Some(("patchsetid".into(), "3".into()))
        );
        assert_eq!(
            parse_line("Gerrit-Change-Id:   Iabc  "),
            Some(("changeid".into(), "Iabc".into()))
        );
        assert_eq!(
            parse_line("  Gerrit-Has-Labels: Yes "),
            Some(("haslabels".into(), "Yes".into()))
        );
        assert_eq!(
            parse_line("Comment-In-Reply-To: Dana <d@example.com>"),
            Some(("commentinreplyto".into(), "Dana <d@example.com>".into()))
        );
        assert_eq!(parse_line("Change-Id: I123"), None);
        assert_eq!(parse_line("Gerrit-: x"), None);
        assert_eq!(parse_line("Gerrit-Patch Set: 3"), None);
        assert_eq!(parse_line("> Gerrit-PatchSet: 3"), None);
        assert_eq!(parse_line("Gerrit-PatchSet 3"), None);
    }

    #[test]
    fn spellings_share_a_key() {
        let f = Footers::from_body(
            "x\n-- \nGerrit-HasLabels: Yes\nGerrit-Has-Labels: No\nGerrit-ChangeId: I1\n\
             Gerrit-Comment-In-Reply-To: a\nComment-In-Reply-To: b",
            Source::Plain,
        );
        assert_eq!(f.all("Gerrit-HasLabels"), ["Yes", "No"]);
        assert_eq!(f.all("Has-Labels"), ["Yes", "No"]);
        assert_eq!(f.all("Change-Id"), ["I1"]);
        assert_eq!(f.all("Comment-In-Reply-To"), ["a", "b"]);
        assert_eq!(f.distinct("haslabels"), ["Yes", "No"]);
        assert!(f.all("Branch").is_empty());
    }

    #[test]
    fn only_the_block_after_the_last_separator_counts() {
        let body = "Patch Set 2:\n\nGerrit-PatchSet: 9\n-- \nmy signature\nGerrit-Project: evil\n\n\
                    commit\nChange-Id: I999\n-- \nTo view, visit x\n\nGerrit-PatchSet: 2\nGerrit-Branch: master\n";
        let f = Footers::from_body(body, Source::Plain);
        assert_eq!(f.all("PatchSet"), ["2"]);
        assert!(f.all("Project").is_empty());
        assert!(f.all("Change-Id").is_empty());
    }

    #[test]
    fn without_separator_the_trailing_run_counts() {
        let body = "Gerrit-PatchSet: 9\nTo view, visit change 1.\n\nGerrit-PatchSet: 2\n\nGerrit-Branch: master\n\n";
        for source in [Source::Html, Source::Plain] {
            let f = Footers::from_body(body, source);
            assert_eq!(f.all("PatchSet"), ["2"]);
            assert_eq!(f.all("Branch"), ["master"]);
        }
        // A `--` typed in a comment is not a separator in HTML-derived text.
        let html = "text\n--\nGerrit-PatchSet: 9\nTo view, visit change 1.\nGerrit-PatchSet: 2";
        assert_eq!(
            Footers::from_body(html, Source::Html).all("PatchSet"),
            ["2"]
        );
    }

    #[test]
    fn separators() {
        assert!(is_separator("-- "));
        assert!(is_separator("--"));
        assert!(is_separator("--  "));
        assert!(!is_separator("---"));
        assert!(!is_separator(" --"));
    }
}
