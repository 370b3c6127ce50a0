//! The commenter's own words in a `comment` mail: its votes and commands.
//!
//! A comment mail's text part is: a header line (`X has posted comments on
//! this change.`, 3.x may put `Attention is currently required from: ...`
//! first), `Change subject: ...`, a line of dots, the change message ("cover
//! letter", starting `Patch Set N: <votes>`), the comment groups (`Patchset:`
//! for 3.x patchset-level comments, `File <path>:` for inline ones), then the
//! footer separator and footers.
//!
//! Commands are read from the cover letter and the comment groups, never
//! from the change subject, the `To view, visit` lines or the footers:
//! - the region starts after the cover letter's `Patch Set N:` line (or, when
//!   a mail has none, and always in text converted from HTML, where 3.x puts
//!   the votes paragraph after the cover letter, after the dotted line or at
//!   the top of the body) and
//!   ends at the footer separator (`-- `) or, in text converted from HTML,
//!   at the `To view, visit` line or the footer block;
//! - a line quoted with `>` (a parent comment, quoted code) never counts;
//! - 3.x patchset-level and file-level comments are introduced by a
//!   `PS<N>: ` line; whatever follows that prefix on the same line is comment
//!   text (`PS4: bionicbb:retry` counts, as does a command on the next line);
//! - inline comments on code are introduced by `PS<N>, Line <L>: <code>`
//!   (2.x: `Line <L>: <code>`), then `   : <code>` continuation lines: those
//!   lines show the source file, not the comment, and never count; the
//!   comment text below them does (a command typed as an inline comment runs,
//!   which is friendlier than ignoring it).
//!
//! Votes come only from the cover letter's first line (see [`super::votes`]).

use super::footers;
use super::mime::Source;
use super::votes::{self, VoteLine};
use crate::command;

/// What a comment mail says in the commenter's own words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comment<'a> {
    /// The cover letter's `Patch Set N: <votes>` line, when present.
    pub vote_line: Option<VoteLine>,
    /// Lines that may hold commands (those that mention the command
    /// prefix), with code and quotes removed and `PS<N>: ` prefixes
    /// stripped.
    pub lines: Vec<&'a str>,
}

/// Reads the comment part of `body`. One pass per step, nothing copied: the
/// lines returned borrow from `body`.
pub fn read(body: &str, source: Source) -> Comment<'_> {
    let region = &body[..region_end(body, source)];
    let vote_at = region.split('\n').enumerate().find_map(|(i, l)| {
        if l.trim_start().starts_with('>') {
            return None;
        }
        votes::parse_line(l).map(|v| (i, v))
    });
    let start = match (source, &vote_at) {
        // The votes line itself holds votes, not text.
        (Source::Plain, Some((i, _))) => i + 1,
        // The 3.x HTML part puts the votes paragraph after the cover letter.
        _ => region.split('\n').position(is_dots).map_or(0, |i| i + 1),
    };
    Comment {
        vote_line: vote_at.map(|(_, v)| v),
        lines: own_lines(region.split('\n').skip(start)),
    }
}

/// Byte offset of the end of the comment region.
fn region_end(body: &str, source: Source) -> usize {
    let block = footers::block_start(body, source);
    match (source, block.separator) {
        // The region ends where the separator line starts.
        (Source::Plain, Some(separator)) => separator,
        _ => {
            let before = &body[..block.start];
            footers::lines_rev(before)
                .find(|(_, l)| l.trim_start().starts_with("To view, visit"))
                .map_or(block.start, |(at, _)| at)
        }
    }
}

/// The 70-dot rule under `Change subject:`.
fn is_dots(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 20 && line.bytes().all(|b| b == b'.')
}

/// The lines that may hold a command: only those that mention the command
/// prefix can, the others are left out.
fn own_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out = Vec::new();
    for line in lines {
        if !line.contains(command::PREFIX) {
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('>') || is_code_line(trimmed) {
            continue;
        }
        out.push(strip_ps_prefix(trimmed).unwrap_or(line));
    }
    out
}

/// `PS<N>:` introducing a patchset-level or file-level comment; returns the
/// text after it (often empty).
fn strip_ps_prefix(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("PS")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    Some(rest[digits..].strip_prefix(':')?.trim_start())
}

/// A line that shows source code: `PS<N>, Line <L>: `, 2.x `Line <L>: `, or
/// the `: ` continuation Gerrit pads to the prefix width.
fn is_code_line(line: &str) -> bool {
    if line.starts_with(": ") || line == ":" {
        return true;
    }
    let rest = match line.strip_prefix("PS") {
        Some(rest) => {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            match rest[digits..].strip_prefix(", ") {
                Some(r) if digits > 0 => r,
                _ => return false,
            }
        }
        None => line,
    };
    let Some(rest) = rest.strip_prefix("Line ") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(body: &str, source: Source) -> Vec<String> {
        let c = read(body, source);
        command::parse_all(c.lines.iter().copied())
            .into_iter()
            .map(|c| c.name)
            .collect()
    }

    const HEAD: &str = "Dana Dev has posted comments on this change.\n\nChange subject: bionicbb:retry\n\
                        ......................................................................\n\n\n";
    const TAIL: &str = "\n-- \nTo view, visit https://g.example/1\n\nGerrit-MessageType: comment\n";

    #[test]
    fn cover_letter_commands_and_votes() {
        let body = format!(
            "{HEAD}Patch Set 2: Verified+1\n\nbionicbb:retry\nplease run bionicbb:clean\n{TAIL}"
        );
        let c = read(&body, Source::Plain);
        assert_eq!(c.vote_line.as_ref().map(|v| v.patch_set), Some(2));
        assert_eq!(c.vote_line.unwrap().added.len(), 1);
        assert_eq!(commands(&body, Source::Plain), ["retry"]);
    }

    #[test]
    fn patchset_level_and_inline_comments() {
        let body = format!(
            "{HEAD}Patch Set 4:\n\n(3 comments)\n\nPatchset:\n\nPS4: \nbionicbb:clean\n\n\nPS4: bionicbb:x86\n\n\n\
             File libc/bionic/strtod.c:\n\nhttps://g.example/c/1/4/libc@12 \nPS4, Line 12: bionicbb:arm\n\
             \x20           : bionicbb:mips\n> bionicbb:retry\nbionicbb:x86_64\n{TAIL}"
        );
        assert_eq!(commands(&body, Source::Plain), ["clean", "x86", "x86_64"]);
    }

    #[test]
    fn old_inline_code_lines_and_quotes_never_count() {
        let body = format!(
            "{HEAD}Patch Set 2:\n\n(1 comment)\n\nFile tests/a.cpp:\n\nLine 7: bionicbb:retry\n  > bionicbb:clean\nok\n{TAIL}"
        );
        assert!(commands(&body, Source::Plain).is_empty());
    }

    #[test]
    fn footers_and_view_lines_are_outside_the_region() {
        let body = format!(
            "{HEAD}Patch Set 2:\n\nhello\n-- \nbionicbb:retry\nTo view, visit x\n\nGerrit-X: y\n"
        );
        assert!(commands(&body, Source::Plain).is_empty());
        let html = "Patch set 2:\nbionicbb:clean\nTo view, visit change 1.\nbionicbb:retry\n\nGerrit-MessageType: comment";
        assert_eq!(commands(html, Source::Html), ["clean"]);
    }

    #[test]
    fn without_cover_letter_the_region_starts_after_the_dots() {
        let body = format!("{HEAD}bionicbb:clean\n{TAIL}");
        let c = read(&body, Source::Plain);
        assert_eq!(c.vote_line, None);
        assert_eq!(commands(&body, Source::Plain), ["clean"]);
    }

    #[test]
    fn a_quoted_votes_line_is_not_the_cover_letter() {
        let body = format!("{HEAD}> Patch Set 1: Verified+1\nPatch Set 2:\n\nok\n{TAIL}");
        assert_eq!(read(&body, Source::Plain).vote_line.unwrap().patch_set, 2);
    }

    #[test]
    fn code_line_detection() {
        assert!(is_code_line("PS4, Line 12: int x;"));
        assert!(is_code_line("Line 7: foo"));
        assert!(is_code_line(": more code"));
        assert!(!is_code_line("PS4: "));
        assert!(!is_code_line("Line of thought: x"));
        assert!(!is_code_line("PS, Line 3: x"));
        assert_eq!(
            strip_ps_prefix("PS4: bionicbb:retry"),
            Some("bionicbb:retry")
        );
        assert_eq!(
            strip_ps_prefix("PS4:bionicbb:retry"),
            Some("bionicbb:retry")
        );
        assert_eq!(strip_ps_prefix("PS: x"), None);
        assert_eq!(strip_ps_prefix("PS4, Line 1: x"), None);
    }
}
