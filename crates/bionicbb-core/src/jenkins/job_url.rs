//! The canonical name of the job a job URL points at, so that one build is
//! one build whatever form its URL was written in.
//!
//! Jenkins writes a job's URL as `job/<name>/` relative to its root, with
//! one `job/<name>/` per folder (`job/folder/job/name/`) and each name
//! percent-encoded. The same job is also reached through other forms, which
//! a sender may use: a leading `/` or doubled `/`, no trailing `/`, an
//! absolute URL (with the server's context path, `/jenkins/job/...`),
//! percent-encoding of characters that need none (`%2D` for `-`), a view in
//! front (`view/all/job/...`, `job/folder/view/v/job/name/`). All of them
//! name the job by its full name `folder/name`, which is what a build is
//! keyed on ([`super::notification::BuildEvent::build_key`]).
//!
//! Jenkins refuses `/` and `%` (among others) in job names, so a name that
//! decodes to either, an empty name, `.` and `..`, invalid UTF-8 and control
//! characters are not job names; such a URL has no canonical job.

use percent_encoding::percent_decode_str;

/// The prefix of a canonical build key, which keys written before
/// canonical keys never start with.
pub const KEY_PREFIX: &str = "job:";

/// The full name (`folder/name`) of the job `url` points at; `None` if
/// `url` is not a job URL.
pub fn canonical_job(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        // Absolute: the path after the authority.
        Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .skip_while(|s| *s != "job" && *s != "view");
    let mut names = Vec::new();
    loop {
        match (segments.next(), segments.next()) {
            (None, _) => break,
            (Some("job"), Some(name)) => names.push(job_name(name)?),
            (Some("view"), Some(_)) => {}
            _ => return None,
        }
    }
    (!names.is_empty()).then(|| names.join("/"))
}

/// One decoded job name, if it is one.
fn job_name(segment: &str) -> Option<String> {
    let name = percent_decode_str(segment).decode_utf8().ok()?;
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '%'])
        && !name.chars().any(char::is_control);
    valid.then(|| name.into_owned())
}

/// The canonical key of a build: its job's full name and its number, with
/// `suffix` appended (`"/started"` for a start message, else `""`).
pub fn build_key(job: &str, number: u64, suffix: &str) -> String {
    format!("{KEY_PREFIX}{job}#{number}{suffix}")
}

/// The canonical form of a key written before builds were keyed on their
/// canonical job (`job/a/job/b/#12`, `job/a/#12/started`); `None` for a key
/// that is canonical already or cannot be read.
pub fn canonical_build_key(old: &str) -> Option<String> {
    if old.starts_with(KEY_PREFIX) {
        return None;
    }
    let (url, rest) = old.rsplit_once('#')?;
    let (number, suffix) = match rest.split_once('/') {
        Some((number, suffix)) => (number, format!("/{suffix}")),
        None => (rest, String::new()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u64 = number.parse().ok()?;
    Some(build_key(&canonical_job(url)?, number, &suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_forms_name_the_same_job() {
        for url in [
            "job/bionic-presubmit/",
            "job/bionic-presubmit//",
            "/job/bionic-presubmit/",
            "job/bionic-presubmit",
            "job//bionic-presubmit/",
            "job/bionic%2Dpresubmit/",
            "job/bionic%2dpresubmit/",
            "https://jenkins.example.org/job/bionic-presubmit/",
            "https://jenkins.example.org:8443/jenkins/job/bionic-presubmit/",
            "http://jenkins/job/bionic-presubmit/?x=1#y",
            "view/all/job/bionic-presubmit/",
            "/jenkins/view/Presubmit/job/bionic-presubmit",
        ] {
            assert_eq!(
                canonical_job(url).as_deref(),
                Some("bionic-presubmit"),
                "{url}"
            );
        }
    }

    #[test]
    fn folders_and_encoded_names() {
        assert_eq!(canonical_job("job/a/job/b/").as_deref(), Some("a/b"));
        assert_eq!(canonical_job("job/a/view/v/job/b/").as_deref(), Some("a/b"));
        assert_eq!(
            canonical_job("job/my%20job/job/%C3%A9t%C3%A9/").as_deref(),
            Some("my job/été")
        );
        // A folder called `job` is a name like any other.
        assert_eq!(canonical_job("job/job/job/x/").as_deref(), Some("job/x"));
        assert_ne!(canonical_job("job/a/job/b/"), canonical_job("job/b/"));
    }

    #[test]
    fn what_is_not_a_job_url_has_no_job() {
        for url in [
            "",
            "/",
            "elsewhere/",
            "job/",
            "job/x/7/",
            "job/x/job/",
            "job/a%2Fb/",
            "job/%25/",
            "job/../",
            "job/./",
            "job/%FF/",
            "job/a%0Ab/",
            "view/all/",
            "https://jenkins.example.org",
        ] {
            assert_eq!(canonical_job(url), None, "{url:?}");
        }
    }

    #[test]
    fn old_keys_become_canonical() {
        assert_eq!(
            canonical_build_key("job/bionic-presubmit/#1842").as_deref(),
            Some("job:bionic-presubmit#1842")
        );
        assert_eq!(
            canonical_build_key("/job/a/job/b//#7/started").as_deref(),
            Some("job:a/b#7/started")
        );
        assert_eq!(canonical_build_key("job:bionic-presubmit#1842"), None);
        assert_eq!(canonical_build_key("job/x/#"), None);
        assert_eq!(canonical_build_key("job/x/#1a"), None);
        assert_eq!(canonical_build_key("old-build"), None);
        assert_eq!(canonical_build_key("elsewhere/#3"), None);
    }
}
