//! Names of Jenkins jobs and queue items, validated before they reach a URL.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{ApiError, ErrorKind, Service};

const SERVICE: Service = Service::Jenkins;

/// Characters left as they are in a URL path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A job's full name, `folder/sub/name`, validated before it reaches a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobPath {
    components: Vec<String>,
}

impl JobPath {
    /// Parses `name` or `folder/.../name`. Empty components (`a//b`, a
    /// leading or trailing `/`), `.`, `..` and control characters are
    /// refused with [`ErrorKind::InvalidInput`].
    pub fn parse(full_name: &str) -> Result<JobPath, ApiError> {
        let invalid = |reason: &str| {
            ApiError::new(
                SERVICE,
                ErrorKind::InvalidInput,
                format!("invalid Jenkins job path {full_name:?}: {reason}"),
            )
        };
        if full_name.is_empty() {
            return Err(invalid("it is empty"));
        }
        let mut components = Vec::new();
        for part in full_name.split('/') {
            match part {
                "" => return Err(invalid("a component is empty")),
                "." | ".." => return Err(invalid("`.` and `..` are not job names")),
                _ if part.chars().any(char::is_control) => {
                    return Err(invalid("it contains a control character"));
                }
                _ => components.push(part.to_string()),
            }
        }
        Ok(JobPath { components })
    }

    /// The folder names and the job name, outermost first.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The job's short name (the last component), as the Notification
    /// plugin reports it in `name`.
    pub fn name(&self) -> &str {
        self.components
            .last()
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The job's URL relative to the Jenkins root: `job/a/job/b/`, each
    /// component percent-encoded.
    pub fn url_path(&self) -> String {
        let mut out = String::new();
        for component in &self.components {
            out.push_str("job/");
            out.extend(utf8_percent_encode(component, SEGMENT));
            out.push('/');
        }
        out
    }
}

impl fmt::Display for JobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

impl std::str::FromStr for JobPath {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobPath::parse(s)
    }
}

/// The id of a Jenkins queue item (`queue/item/{id}/`); the Notification
/// plugin reports it as `build.queue_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueItemId(pub u64);

impl fmt::Display for QueueItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_paths_become_nested_encoded_urls() {
        let job = JobPath::parse("bionic-presubmit").unwrap();
        assert_eq!(job.url_path(), "job/bionic-presubmit/");
        assert_eq!(job.name(), "bionic-presubmit");
        let job = JobPath::parse("team a/sub/x?y#z%").unwrap();
        assert_eq!(job.url_path(), "job/team%20a/job/sub/job/x%3Fy%23z%25/");
        assert_eq!(job.to_string(), "team a/sub/x?y#z%");
        assert_eq!(job.components().len(), 3);
    }

    #[test]
    fn bad_job_paths_are_refused() {
        for bad in ["", "/a", "a/", "a//b", ".", "a/../b", "./a", "a/\nb"] {
            let err = JobPath::parse(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
