//! The `bionicbb:` command grammar.
//!
//! Developers drive the bot by commenting on a change. One command per line:
//!
//! ```text
//! command-line = *WSP "bionicbb:" *WSP name *(1*WSP arg) *WSP
//! name         = 1*( ALPHA / DIGIT / "_" / "-" )   ; case-insensitive, stored lowercase
//! arg          = 1*( any character but whitespace )
//! ```
//!
//! - The prefix `bionicbb:` is the line's first non-blank token and is written
//!   in lowercase, as the original bot's documentation spells it:
//!   `BIONICBB:retry` is prose, not a command.
//! - Whitespace between the colon and the name is allowed (`bionicbb: retry`).
//! - The name is case-insensitive (`bionicbb:Retry` is `retry`). A trailing
//!   sentence mark (`.`, `,`, `;`, `!`) right after the name is dropped, so
//!   `bionicbb:retry.` still runs `retry`; any other character in the name
//!   makes the line prose.
//! - `bionicbb:` with no name is not a command.
//! - A mention anywhere but at the start of a line (`please run
//!   bionicbb:retry`, `` `bionicbb:retry` ``) is not a command.
//! - Which lines of a mail are the commenter's own text (not quoted with `>`,
//!   not the commit message, not the footers) is decided by
//!   [`crate::mail`]; this module only reads one line.
//!
//! Known names: `retry` (rebuild the patch set), `clean` (run the clean
//! job), `help` (list the commands), `why` (explain what the bot decided
//! and did about the patch set), `ok-to-test` (a trusted reviewer vouches
//! for the patch set of an untrusted committer, which builds it), and one
//! per configured lunch target
//! (`arm`, `x86_64`, ...: rebuild with that target). Unknown names are still returned, so the caller can
//! answer with the list of commands that exist.

use crate::config::CommandsConfig;
use crate::event::Command;

/// The prefix that starts a command line.
pub const PREFIX: &str = "bionicbb:";

/// Rebuild the patch set.
pub const RETRY: &str = "retry";
/// Run the clean job.
pub const CLEAN: &str = "clean";
/// List the commands.
pub const HELP: &str = "help";
/// Vouch for the patch set (build it despite an untrusted committer).
pub const OK_TO_TEST: &str = "ok-to-test";
/// Explain what the bot decided and did about the patch set.
pub const WHY: &str = "why";

/// Reads one line; `Some` when it is a command line (see the module grammar).
pub fn parse_line(line: &str) -> Option<Command> {
    let rest = line.trim_start().strip_prefix(PREFIX)?;
    let mut words = rest.split_whitespace();
    let raw_name = words.next()?;
    let name = raw_name
        .strip_suffix(['.', ',', ';', '!'])
        .unwrap_or(raw_name)
        .to_ascii_lowercase();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return None;
    }
    Some(Command {
        name,
        args: words.map(str::to_string).collect(),
    })
}

/// Every command line of `text`, in order. The text must already be limited
/// to the commenter's own words (no quotes, no commit message).
pub fn parse_all<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Command> {
    lines.into_iter().filter_map(parse_line).collect()
}

/// Whether `name` is a command the bot runs: a built-in or a target.
pub fn is_known(name: &str, config: &CommandsConfig) -> bool {
    BUILT_IN.contains(&name) || config.targets.contains_key(name)
}

/// The built-in commands, in the order the bot lists them.
pub const BUILT_IN: [&str; 5] = [RETRY, CLEAN, HELP, WHY, OK_TO_TEST];

/// The names of every command, for telling a commenter what exists: the
/// built-ins, then the targets in name order.
pub fn known_names(config: &CommandsConfig) -> Vec<String> {
    BUILT_IN
        .into_iter()
        .map(str::to_string)
        .chain(config.targets.keys().cloned())
        .collect()
}

/// The known command `name` is most likely a typo of, when it is close
/// enough to be one: at most two edits (a swap of two neighbouring letters
/// is one edit), and fewer than half the letters of the known name, so a
/// short name is never "corrected" into an unrelated one (`ab` is not
/// `arm`). The closest wins; on a tie, the first in `known`'s order.
pub fn closest<'k>(name: &str, known: &'k [String]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::osa_distance(name, k), k))
        .filter(|(d, k)| *d > 0 && *d <= 2 && 2 * d < k.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn close_typos_get_a_suggestion() {
        let known = names(&["retry", "clean", "arm", "x86_64"]);
        assert_eq!(closest("rety", &known), Some("retry"));
        assert_eq!(closest("retyr", &known), Some("retry"));
        assert_eq!(closest("rerty", &known), Some("retry"));
        assert_eq!(closest("retrry", &known), Some("retry"));
        assert_eq!(closest("claen", &known), Some("clean"));
        assert_eq!(closest("cleanup", &known), Some("clean"));
        assert_eq!(closest("amr", &known), Some("arm"));
        assert_eq!(closest("rm", &known), Some("arm"));
        assert_eq!(closest("x86-64", &known), Some("x86_64"));
    }

    #[test]
    fn far_or_short_names_get_none() {
        let known = names(&["retry", "clean", "arm", "x86_64"]);
        for far in ["rebuild", "frobnicate", "ab", "a", "x", "", "help"] {
            assert_eq!(closest(far, &known), None, "{far}");
        }
        // A known name is not a typo of itself.
        assert_eq!(closest("retry", &known), None);
        assert_eq!(closest("retry", &[]), None);
    }

    #[test]
    fn the_closest_wins_then_the_first() {
        let known = names(&["arm", "arm64"]);
        assert_eq!(closest("arm644", &known), Some("arm64"));
        assert_eq!(closest("arm6", &known), Some("arm"));
        let known = names(&["abcd", "abce"]);
        assert_eq!(closest("abcf", &known), Some("abcd"));
    }

    fn cmd(name: &str, args: &[&str]) -> Option<Command> {
        Some(Command {
            name: name.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        })
    }

    #[test]
    fn plain_commands() {
        assert_eq!(parse_line("bionicbb:retry"), cmd("retry", &[]));
        assert_eq!(parse_line("bionicbb:clean"), cmd("clean", &[]));
        assert_eq!(parse_line("bionicbb:x86_64"), cmd("x86_64", &[]));
        assert_eq!(parse_line("bionicbb:mips-64"), cmd("mips-64", &[]));
    }

    #[test]
    fn whitespace_around_the_name_is_allowed() {
        assert_eq!(parse_line("bionicbb: retry"), cmd("retry", &[]));
        assert_eq!(parse_line("bionicbb:\t  retry   "), cmd("retry", &[]));
        assert_eq!(parse_line("   bionicbb:retry"), cmd("retry", &[]));
        assert_eq!(parse_line("\tbionicbb:clean\r"), cmd("clean", &[]));
    }

    #[test]
    fn name_is_case_insensitive_but_prefix_is_not() {
        assert_eq!(parse_line("bionicbb:RETRY"), cmd("retry", &[]));
        assert_eq!(parse_line("bionicbb:Clean"), cmd("clean", &[]));
        assert_eq!(parse_line("BIONICBB:retry"), None);
        assert_eq!(parse_line("Bionicbb:retry"), None);
    }

    #[test]
    fn args_are_whitespace_separated() {
        assert_eq!(
            parse_line("bionicbb:retry arm  x86\tfoo=bar"),
            cmd("retry", &["arm", "x86", "foo=bar"])
        );
        assert_eq!(parse_line("bionicbb: lunch Arm"), cmd("lunch", &["Arm"]));
    }

    #[test]
    fn trailing_sentence_mark_is_dropped() {
        assert_eq!(parse_line("bionicbb:retry."), cmd("retry", &[]));
        assert_eq!(
            parse_line("bionicbb:retry! please"),
            cmd("retry", &["please"])
        );
    }

    #[test]
    fn empty_or_malformed_name_is_not_a_command() {
        assert_eq!(parse_line("bionicbb:"), None);
        assert_eq!(parse_line("bionicbb:   "), None);
        assert_eq!(parse_line("bionicbb:."), None);
        assert_eq!(parse_line("bionicbb:re/try"), None);
        assert_eq!(parse_line("bionicbb:`retry`"), None);
        assert_eq!(parse_line("bionicbb:rétry"), None);
    }

    #[test]
    fn mentions_that_do_not_start_the_line_are_prose() {
        assert_eq!(parse_line("please run bionicbb:retry"), None);
        assert_eq!(parse_line("`bionicbb:retry`"), None);
        assert_eq!(parse_line("> bionicbb:retry"), None);
        assert_eq!(parse_line("bionicbb retry"), None);
        assert_eq!(parse_line("bionicbb :retry"), None);
        assert_eq!(parse_line("xbionicbb:retry"), None);
    }

    #[test]
    fn parse_all_keeps_order() {
        let got = parse_all(["hi", "bionicbb:clean", "x", "bionicbb:retry arm"]);
        assert_eq!(
            got,
            vec![cmd("clean", &[]).unwrap(), cmd("retry", &["arm"]).unwrap()]
        );
    }

    #[test]
    fn known_names_and_is_known_follow_the_config() {
        let config = CommandsConfig::default();
        let names = known_names(&config);
        assert_eq!(&names[..5], ["retry", "clean", "help", "why", "ok-to-test"]);
        assert!(names.contains(&"x86_64".to_string()));
        assert_eq!(names.len(), BUILT_IN.len() + config.targets.len());
        assert!(is_known("help", &config));
        assert!(is_known("why", &config));
        assert!(is_known("ok-to-test", &config));
        assert!(is_known("retry", &config));
        assert!(is_known("clean", &config));
        assert!(is_known("aarch64", &config));
        assert!(!is_known("bogus", &config));
        let only = CommandsConfig {
            targets: [("riscv64".to_string(), "aosp_riscv64-eng".to_string())].into(),
        };
        assert_eq!(
            known_names(&only),
            ["retry", "clean", "help", "why", "ok-to-test", "riscv64"]
        );
        assert!(!is_known("arm", &only));
    }
}
