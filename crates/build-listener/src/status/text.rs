//! The only kinds of value the page shows: [`Text`] (network text with
//! secret-looking parts masked; the template escapes it), [`Href`] (an
//! `http(s)` URL, the only thing that becomes a link) and [`When`] (a time
//! as "12 s ago", with the UTC date as a tooltip).

use std::fmt;

use serde::Serialize;

use crate::redact;

/// Text to show: secret-looking parts (tokens in URLs, URL passwords) are
/// masked when it is made, and the template escapes it when it is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    pub fn new(text: &str) -> Text {
        Text(redact::scrub(text).into_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text::new(text)
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text::new(&text)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link target: an absolute `http(s)` URL, secrets masked. Anything else
/// (`javascript:`, a relative path, garbage) is never a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Href(String);

impl Href {
    pub fn new(url: &str) -> Option<Href> {
        is_http_url(url).then(|| Href(redact::scrub(url).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Href {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// `path` (relative to `base`, or absolute) as a link under `base` (whose
/// path is kept, with or without its trailing `/`).
pub fn join(base: &url::Url, path: &str) -> Option<Href> {
    let mut root = base.as_str().to_string();
    if !root.ends_with('/') {
        root.push('/');
    }
    let joined = url::Url::parse(&root)
        .ok()?
        .join(path.trim_start_matches('/'))
        .ok()?;
    Href::new(joined.as_str())
}

/// How something stands, from best to worst: its colour on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Good,
    /// Under way (a build running).
    Info,
    /// Nothing to say (nothing recorded, an aborted build).
    Idle,
    Warn,
    Bad,
}

impl Tone {
    /// The CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Info => "info",
            Tone::Idle => "idle",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
        }
    }
}

/// A time as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct When {
    /// Unix seconds.
    pub at: i64,
    /// `12 s ago`, `in 3 min`.
    pub relative: String,
    /// `2023-11-14 22:13:08 UTC`.
    pub utc: String,
}

impl When {
    pub fn new(now: i64, at: i64) -> When {
        When {
            at,
            relative: relative(now, at),
            utc: bionicbb_core::timefmt::format_utc(at),
        }
    }

    /// The time in ISO 8601 (`2023-11-14T22:13:08Z`), for `<time datetime>`.
    pub fn iso(&self) -> String {
        self.utc.replacen(' ', "T", 1).replace(" UTC", "Z")
    }
}

/// How long ago (or how soon) `at` is: `just now`, `12 s ago`, `in 48 s`.
pub fn relative(now: i64, at: i64) -> String {
    let delta = now.saturating_sub(at);
    match delta {
        0 => "just now".to_string(),
        d if d > 0 => format!("{} ago", span(d.unsigned_abs())),
        d => format!("in {}", span(d.unsigned_abs())),
    }
}

/// A length of time in the largest unit that keeps it readable: `45 s`,
/// `12 min`, `5 h`, `3 d`.
pub fn span(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A person as the page names them: the name of `Name <email>`, else the
/// address.
pub fn person(who: &str) -> Text {
    let who = who.trim();
    let name = match who.split_once('<') {
        Some((name, address)) if name.trim().is_empty() => address.trim_end_matches('>'),
        Some((name, _)) => name,
        None => who,
    };
    Text::new(name.trim().trim_matches('"'))
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
        None => text.to_string(),
    }
}

/// A vote as Gerrit writes it: `Verified +1`, `Verified -1`, `Code-Review 0`.
pub fn vote(label: &str, value: i64) -> Text {
    if value > 0 {
        Text::new(&format!("{label} +{value}"))
    } else {
        Text::new(&format!("{label} {value}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(relative(100, 88), "12 s ago");
        assert_eq!(relative(100, 148), "in 48 s");
        assert_eq!(relative(100, 100), "just now");
        assert_eq!(relative(1000, 400), "10 min ago");
        assert_eq!(relative(0, 3 * 3600), "in 3 h");
        assert_eq!(relative(10 * 86_400, 0), "10 d ago");
        assert_eq!(
            relative(i64::MAX, i64::MIN),
            format!("{} d ago", i64::MAX / 86_400)
        );
        let when = When::new(1_700_000_012, 1_700_000_000);
        assert_eq!(when.utc, "2023-11-14 22:13:20 UTC");
        assert_eq!(when.iso(), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn only_http_urls_are_links() {
        assert!(Href::new("https://jenkins.example.org/job/x/1/").is_some());
        assert!(Href::new("http://127.0.0.1:8080/").is_some());
        assert!(Href::new("javascript:alert(1)").is_none());
        assert!(Href::new("JAVASCRIPT:alert(1)").is_none());
        assert!(Href::new("data:text/html,<b>").is_none());
        assert!(Href::new("job/x/1/").is_none());
        assert!(Href::new("not a url").is_none());
        for root in [
            "https://jenkins.example.org/ci/",
            "https://jenkins.example.org/ci",
        ] {
            let base = url::Url::parse(root).unwrap();
            assert_eq!(
                join(&base, "job/x/1/").unwrap().as_str(),
                "https://jenkins.example.org/ci/job/x/1/"
            );
        }
        let base = url::Url::parse("https://jenkins.example.org/ci").unwrap();
        assert_eq!(
            join(&base, "https://other.example.org/job/x/1/")
                .unwrap()
                .as_str(),
            "https://other.example.org/job/x/1/"
        );
        assert!(join(&base, "javascript:alert(1)").is_none());
    }

    #[test]
    fn secrets_are_masked_in_texts_and_links() {
        let text = Text::new("see https://bot:pw@review.example.org/?token=abc&x=1");
        assert!(!text.as_str().contains("pw@") && !text.as_str().contains("abc"));
        let href = Href::new("https://j.example.org/job/x/build?token=abc").unwrap();
        assert_eq!(href.as_str(), "https://j.example.org/job/x/build?token=***");
    }

    #[test]
    fn people_are_named() {
        assert_eq!(person("Dana Dev <dana@example.com>").as_str(), "Dana Dev");
        assert_eq!(
            person("\"Dana Dev\" <dana@example.com>").as_str(),
            "Dana Dev"
        );
        assert_eq!(person("<dana@example.com>").as_str(), "dana@example.com");
        assert_eq!(person("Sam Reviewer").as_str(), "Sam Reviewer");
    }

    #[test]
    fn long_texts_are_clipped_on_characters() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(vote("Verified", -1).as_str(), "Verified -1");
        assert_eq!(vote("Verified", 1).as_str(), "Verified +1");
    }
}
