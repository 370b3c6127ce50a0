//! Votes, read from the change message's first line.
//!
//! Gerrit stores a review as `Patch Set N: Label+1 Label2-1 -Label3`
//! (`LabelVote.format()`: `Verified+1`, `Code-Review-2`, and `-Verified` for
//! a vote reset to 0), followed by the review text after a blank line. The
//! text part of every version shows that line verbatim; the 3.x HTML part
//! renders it as `Patch set N:` plus one chip per label (`Verified +1`, with a
//! space). The 2010 templates said `Comments on Patch Set N:`.
//!
//! Only that line carries votes: `Verified+1` in prose, in a `> ` quote or in
//! an inline comment is not a vote. A line whose tail is not entirely vote
//! tokens (`Patch Set 3: I think Verified+1 is wrong`) carries none.

use crate::event::Vote;

/// The votes line of a change message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoteLine {
    /// The `N` of `Patch Set N:`: the patch set the votes are on.
    pub patch_set: u32,
    /// Votes added or changed (`Verified+1`).
    pub added: Vec<Vote>,
    /// Labels whose vote was removed (`-Verified`).
    pub removed: Vec<String>,
}

/// Reads `Patch Set N: ...` (any case for "set", optional `Comments on `).
/// `None` when `line` is not such a line. Leading whitespace is allowed
/// (HTML-derived text); a quoted line (`> Patch Set ...`) never matches.
pub fn parse_line(line: &str) -> Option<VoteLine> {
    let line = line.trim();
    let rest = line.strip_prefix("Comments on ").unwrap_or(line);
    let rest = strip_prefix_ignore_case(rest, "patch set ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let patch_set: u32 = rest[..digits].parse().ok().filter(|&n| n > 0)?;
    let tail = rest[digits..].strip_prefix(':')?;
    let mut vote_line = VoteLine {
        patch_set,
        ..VoteLine::default()
    };
    if let Some((added, removed)) = parse_votes(tail) {
        vote_line.added = added;
        vote_line.removed = removed;
    }
    Some(vote_line)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A votes line names each label once; Gerrit sites have a handful.
/// A line with more vote tokens than this carries none.
pub const MAX_VOTES: usize = 64;

/// The tokens after the colon. `None` when one of them is not a vote, or
/// when there are more than [`MAX_VOTES`].
fn parse_votes(tail: &str) -> Option<(Vec<Vote>, Vec<String>)> {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut tokens = tail.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        if added.len() + removed.len() >= MAX_VOTES {
            return None;
        }
        if let Some((label, value)) = split_vote(token) {
            added.push(Vote { label, value });
        } else if let Some(label) = token.strip_prefix('-').filter(|l| is_label(l)) {
            removed.push(label.to_string());
        } else if is_label(token) {
            // HTML chip: `Verified +1`.
            let value = tokens.peek().and_then(|v| parse_value(v))?;
            tokens.next();
            added.push(Vote {
                label: token.to_string(),
                value,
            });
        } else {
            return None;
        }
    }
    Some((added, removed))
}

/// `Code-Review+2` → (`Code-Review`, 2); `Verified-1` → (`Verified`, -1).
fn split_vote(token: &str) -> Option<(String, i32)> {
    let sign = token.rfind(['+', '-'])?;
    let (label, value) = token.split_at(sign);
    if !is_label(label) {
        return None;
    }
    Some((label.to_string(), parse_value(value)?))
}

/// `+1`, `-2`: a sign and one or more digits.
fn parse_value(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-'])?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A label name: a letter, then letters, digits and hyphens, not ending in a
/// hyphen.
fn is_label(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(label: &str, value: i32) -> Vote {
        Vote {
            label: label.into(),
            value,
        }
    }

    #[test]
    fn text_form() {
        let v = parse_line("Patch Set 3: Code-Review+2 Verified+1").unwrap();
        assert_eq!(v.patch_set, 3);
        assert_eq!(v.added, [vote("Code-Review", 2), vote("Verified", 1)]);
        assert!(v.removed.is_empty());
        let v = parse_line("Patch Set 12: Verified-1").unwrap();
        assert_eq!((v.patch_set, v.added), (12, vec![vote("Verified", -1)]));
    }

    #[test]
    fn removed_votes_are_not_added() {
        let v = parse_line("Patch Set 3: -Verified Code-Review-1 -Code-Review").unwrap();
        assert_eq!(v.added, [vote("Code-Review", -1)]);
        assert_eq!(v.removed, ["Verified", "Code-Review"]);
    }

    #[test]
    fn html_form_and_old_prefix() {
        let v = parse_line("  Patch set 4: Verified +1  Code-Review -2 -Other").unwrap();
        assert_eq!(v.added, [vote("Verified", 1), vote("Code-Review", -2)]);
        assert_eq!(v.removed, ["Other"]);
        let v = parse_line("Comments on Patch Set 2:").unwrap();
        assert_eq!(v.patch_set, 2);
        assert!(v.added.is_empty());
        let v = parse_line("Patch set 4:Verified +1").unwrap();
        assert_eq!(v.added, [vote("Verified", 1)]);
    }

    #[test]
    fn no_votes() {
        let v = parse_line("Patch Set 2:").unwrap();
        assert_eq!((v.patch_set, v.added.len(), v.removed.len()), (2, 0, 0));
        let v = parse_line("Patch Set 3: I think Verified+1 is wrong").unwrap();
        assert!(v.added.is_empty());
        let v = parse_line("Patch Set 3: Verified").unwrap();
        assert!(v.added.is_empty());
        let v = parse_line("Patch Set 3: Verified+x").unwrap();
        assert!(v.added.is_empty());
    }

    #[test]
    fn not_a_votes_line() {
        assert_eq!(parse_line("> Patch Set 3: Verified+1"), None);
        assert_eq!(parse_line("Verified+1"), None);
        assert_eq!(parse_line("Patch Set: Verified+1"), None);
        assert_eq!(parse_line("Patch Set 0: Verified+1"), None);
        assert_eq!(parse_line("Patch Set 3 Verified+1"), None);
        assert_eq!(parse_line("Patch Set #4:"), None);
        assert_eq!(parse_line("I set Patch Set 3: Verified+1"), None);
        assert_eq!(parse_line("Patch Set 99999999999: Verified+1"), None);
    }
}
