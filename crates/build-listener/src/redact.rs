//! Blanks secret-looking parts of text shown on the status page.
//!
//! The page shows URLs and texts recorded by both daemons and taken from
//! the network: a Jenkins trigger URL may carry its build token
//! (`...?token=...`), a notification URL the listener's own secret, a
//! configured URL a password (`https://user:password@host/`), and an error
//! message may quote any of them. Before anything is shown, the values of
//! secret-named query parameters and the passwords of URLs are replaced by
//! [`MASK`].

use std::borrow::Cow;

use serde_json::Value;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Parameter names whose values are secrets (compared case-insensitively).
const SECRET_KEYS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "api_token",
    "apitoken",
    "access_token",
    "refresh_token",
];

/// Whether a parameter or JSON key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// Where a parameter's value ends.
fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '&' | '#' | '"' | '\'' | '<' | '>' | ',' | ';' | ')' | ']'
        )
}

/// Where a URL's authority ends.
fn ends_authority(c: char) -> bool {
    c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>')
}

/// `text` with secret parameter values and URL passwords masked.
pub fn scrub(text: &str) -> Cow<'_, str> {
    if !text.contains('=') && !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let masked = mask_passwords(&mask_parameters(text));
    if masked == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(masked)
    }
}

/// Every string inside a JSON value scrubbed, and the values of
/// secret-named keys masked whatever their type (keys are kept).
pub fn scrub_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if is_secret_key(key) && !value.is_null() {
                    *value = Value::String(MASK.to_owned());
                } else {
                    scrub_json(value);
                }
            }
        }
        Value::String(s) => {
            if let Cow::Owned(masked) = scrub(s) {
                *s = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_json),
        _ => {}
    }
}

/// Masks `key=value` where `key` is secret-named and starts the text or
/// follows a separator (`?`, `&`, `;`, a space...).
fn mask_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let key_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        let key = &before[key_start..];
        out.push_str(before);
        out.push('=');
        let after = &after[1..];
        if is_secret_key(key) {
            let end = after.find(ends_value).unwrap_or(after.len());
            if end > 0 {
                out.push_str(MASK);
            }
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Masks the password of `scheme://user:password@host` URLs.
fn mask_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        let end = after.find(ends_authority).unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_query_parameters() {
        assert_eq!(
            scrub("POST https://j.example.org/job/x/buildWithParameters?token=abc&REF=r failed"),
            "POST https://j.example.org/job/x/buildWithParameters?token=***&REF=r failed"
        );
        assert_eq!(scrub("http://l/?Token=a%2Bb"), "http://l/?Token=***");
        assert_eq!(
            scrub("secret=xyz and api_token=q"),
            "secret=*** and api_token=***"
        );
        // Other names, and names that merely end with a secret key, stay.
        assert_eq!(scrub("a?notoken=1&x=2"), "a?notoken=1&x=2");
        assert_eq!(
            scrub("REF=refs/changes/56/123456/4"),
            "REF=refs/changes/56/123456/4"
        );
        assert_eq!(scrub("token="), "token=");
    }

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            scrub("see https://bot:hunter2@review.example.org/a/changes/1 now"),
            "see https://bot:***@review.example.org/a/changes/1 now"
        );
        assert_eq!(scrub("https://bot@h/"), "https://bot@h/");
        assert_eq!(scrub("https://h/p@q"), "https://h/p@q");
        assert!(matches!(scrub("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_strings_inside_json() {
        let mut v = serde_json::json!({
            "url": "http://x:pw@h/?token=t",
            "list": ["secret=s", 3, null],
            "token": "t0ps3cret",
            "inner": {"Password": 1234, "job": "j"}
        });
        scrub_json(&mut v);
        assert_eq!(v["url"], "http://x:***@h/?token=***");
        assert_eq!(v["list"][0], "secret=***");
        assert_eq!(v["token"], MASK);
        assert_eq!(v["inner"]["Password"], MASK);
        assert_eq!(v["inner"]["job"], "j");
    }
}
