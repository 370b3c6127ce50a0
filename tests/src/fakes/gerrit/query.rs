//! `GET /changes/?q=...`: the fake's change search, as far as a reconcile
//! pass uses it.
//!
//! - `q` is an AND of space-separated terms (no `OR`, no parentheses, no
//!   negation): `status:open|closed|new|merged|abandoned` (and `is:open`,
//!   `is:closed`), `project:NAME`, `after:TIME` / `since:TIME` (changes
//!   updated at or after TIME, inclusive, to the second). A value may be
//!   quoted with `"`; TIME is `YYYY-MM-DD[ hh:mm:ss[.fff]]` in UTC. Any
//!   other term is a 400, as Gerrit refuses an operator it does not know.
//! - Results are sorted by `updated`, most recent first (then by number,
//!   highest first); `S` (or `start`) skips that many, `n` (or `limit`)
//!   caps the page, and so does the server's query limit. When more
//!   results exist, the last change of the page carries
//!   `"_more_changes": true`.
//! - Every change is rendered with the request's `o=` options, exactly as
//!   the single-change endpoint renders it; a private change the caller
//!   may not see is left out.

use serde_json::Value;

use super::render::{self, Options};
use super::{Change, Model, Status};

/// Which statuses a `status:` term accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusTerm {
    Open,
    Closed,
    Merged,
    Abandoned,
}

/// One term of the query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Status(StatusTerm),
    Project(String),
    /// Updated at or after this many seconds since the epoch.
    After(i64),
}

/// The query parameters of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Search {
    terms: Vec<Term>,
    limit: Option<usize>,
    start: usize,
}

/// Answers `GET /changes/?...` (`query` is the raw query string); `Err`
/// with Gerrit's message for a 400.
pub fn search(
    model: &Model,
    query: Option<&str>,
    opts: Options,
    caller: Option<u64>,
) -> Result<Value, String> {
    let search = parse_params(query.unwrap_or_default())?;
    let mut found: Vec<&Change> = model
        .changes
        .values()
        .filter(|c| model.visible(c, caller))
        .filter(|c| search.terms.iter().all(|t| matches(t, c)))
        .collect();
    // The timestamps share one format, so text order is time order.
    found.sort_by(|a, b| (&b.updated, b.number).cmp(&(&a.updated, a.number)));
    let limit = search
        .limit
        .filter(|n| *n > 0)
        .unwrap_or(model.query_limit)
        .min(model.query_limit);
    let total = found.len();
    let page: Vec<&Change> = found.into_iter().skip(search.start).take(limit).collect();
    let more = search.start + page.len() < total;
    let mut out: Vec<Value> = page
        .iter()
        .map(|c| render::change(model, c, opts, None))
        .collect();
    if more && let Some(Value::Object(last)) = out.last_mut() {
        last.insert("_more_changes".into(), Value::Bool(true));
    }
    Ok(Value::Array(out))
}

fn matches(term: &Term, c: &Change) -> bool {
    match term {
        Term::Status(s) => match s {
            StatusTerm::Open => c.status == Status::New,
            StatusTerm::Closed => c.status != Status::New,
            StatusTerm::Merged => c.status == Status::Merged,
            StatusTerm::Abandoned => c.status == Status::Abandoned,
        },
        Term::Project(p) => c.project == *p,
        Term::After(t) => bionicbb_core::timefmt::parse_gerrit(&c.updated).is_some_and(|u| u >= *t),
    }
}

/// Reads `q`, `n`/`limit` and `S`/`start` (`o` is read by the caller).
fn parse_params(query: &str) -> Result<Search, String> {
    let mut q = None;
    let mut limit = None;
    let mut start = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("\"{v}\" is not a valid value for \"{key}\""))
        };
        match key {
            "q" if q.is_some() => return Err("the fake answers one q= only".to_string()),
            "q" => q = Some(value),
            "n" | "limit" => limit = Some(number(&value)?),
            "S" | "start" => start = number(&value)?,
            _ => {}
        }
    }
    let terms = parse_query(q.as_deref().unwrap_or(""))?;
    Ok(Search {
        terms,
        limit,
        start,
    })
}

/// A query parameter as a servlet decodes it: `+` is a space, then
/// percent-decoding.
fn decode(value: &str) -> Result<String, String> {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "Invalid UTF-8 in query".to_string())
}

/// The terms of `q`.
fn parse_query(q: &str) -> Result<Vec<Term>, String> {
    tokens(q)?.into_iter().map(|t| term(&t)).collect()
}

/// Splits `q` on spaces outside double quotes, keeping the quotes.
fn tokens(q: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in q.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                current.push(ch);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(format!("line 1:{} mismatched character '<EOF>'", q.len()));
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn term(token: &str) -> Result<Term, String> {
    let unsupported = || format!("Unsupported operator {token}");
    let (operator, value) = token.split_once(':').ok_or_else(unsupported)?;
    let value = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(unsupported)?,
        None => value,
    };
    if value.is_empty() || value.contains('"') {
        return Err(unsupported());
    }
    match (operator, value) {
        ("status", "open") | ("is", "open") => Ok(Term::Status(StatusTerm::Open)),
        ("status", "new") => Ok(Term::Status(StatusTerm::Open)),
        ("status", "closed") | ("is", "closed") => Ok(Term::Status(StatusTerm::Closed)),
        ("status", "merged") => Ok(Term::Status(StatusTerm::Merged)),
        ("status", "abandoned") => Ok(Term::Status(StatusTerm::Abandoned)),
        ("status", other) => Err(format!("Unrecognized value: {other}")),
        ("project", name) => Ok(Term::Project(name.to_string())),
        ("after" | "since", time) => parse_time(time)
            .map(Term::After)
            .ok_or_else(|| format!("Invalid timestamp: {time}")),
        _ => Err(unsupported()),
    }
}

/// `YYYY-MM-DD[ hh:mm:ss[.fff]]`, UTC.
fn parse_time(text: &str) -> Option<i64> {
    let full = if text.len() == 10 {
        format!("{text} 00:00:00")
    } else {
        text.to_string()
    };
    bionicbb_core::timefmt::parse_gerrit(&full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_read_with_and_without_quotes() {
        let search = parse_params(
            "q=status:open%20project:platform/bionic%20after:%222026-11-30%2010:00:00%22\
             &o=MESSAGES&n=25&S=50",
        )
        .unwrap();
        assert_eq!(
            search,
            Search {
                terms: vec![
                    Term::Status(StatusTerm::Open),
                    Term::Project("platform/bionic".into()),
                    Term::After(1_796_032_800),
                ],
                limit: Some(25),
                start: 50,
            }
        );
        // `+` is a space, quoted project names and `since:` work too.
        let search = parse_params("q=is:open+project:%22a/b%22+since:2026-11-30").unwrap();
        assert_eq!(
            search.terms,
            vec![
                Term::Status(StatusTerm::Open),
                Term::Project("a/b".into()),
                Term::After(1_795_996_800),
            ]
        );
        assert_eq!(search.limit, None);
        assert_eq!(search.start, 0);
        assert_eq!(parse_params("").unwrap().terms, Vec::new());
    }

    #[test]
    fn what_the_fake_does_not_know_is_refused() {
        for bad in [
            "q=owner:self",
            "q=status:open%20OR%20status:merged",
            "q=-is:wip",
            "q=status:later",
            "q=after:yesterday",
            "q=project:%22unterminated",
            "q=status:open&q=status:merged",
            "q=status:open&n=many",
            "q=status:open&S=-1",
        ] {
            assert!(parse_params(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn after_is_inclusive_to_the_second() {
        let change = |updated: &str| Change {
            number: 1,
            project: "p".into(),
            branch: "master".into(),
            key: "I1".into(),
            subject: "s".into(),
            owner: 1,
            status: Status::New,
            created: updated.into(),
            updated: updated.into(),
            patch_sets: Vec::new(),
            messages: Vec::new(),
            comments: Vec::new(),
            work_in_progress: false,
            is_private: false,
        };
        let after = Term::After(1_796_032_800);
        assert!(matches(&after, &change("2026-11-30 10:00:00.000000000")));
        assert!(matches(&after, &change("2026-11-30 10:00:00.999000000")));
        assert!(!matches(&after, &change("2026-11-30 09:59:59.999999999")));
        let mut merged = change("2026-11-30 10:00:00.000000000");
        merged.status = Status::Merged;
        assert!(!matches(&Term::Status(StatusTerm::Open), &merged));
        assert!(matches(&Term::Status(StatusTerm::Closed), &merged));
        assert!(!matches(&Term::Project("q".into()), &merged));
    }
}
