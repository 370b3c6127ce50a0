//! The page's filter: `?change=123456` shows one change, `?project=a/b`
//! the changes of a project (and of the projects under it, `a/b/c`).
//! Plain query parameters, so a filtered page is a link to share and keeps
//! its filter when it refreshes itself.

use std::collections::HashMap;

use serde::Serialize;

/// The longest project name the filter accepts (Gerrit's own limit is
/// lower); a longer value is refused rather than echoed.
const MAX_PROJECT: usize = 255;

/// What the page is narrowed to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub change: Option<u64>,
    pub project: Option<String>,
    /// Why a parameter was ignored, for the page to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Filter {
    /// Reads `change` and `project` from the query parameters; a value
    /// that is not one is ignored, and said so. Empty values (an empty
    /// field of the form) are no filter.
    pub fn from_query(params: &HashMap<String, String>) -> Filter {
        let mut filter = Filter::default();
        let mut problems = Vec::new();
        if let Some(change) = params.get("change").map(|s| s.trim()) {
            if !change.is_empty() {
                match change.parse::<u64>() {
                    Ok(n) if n > 0 => filter.change = Some(n),
                    _ => problems.push("the change is not a change number".to_string()),
                }
            }
        }
        if let Some(project) = params.get("project").map(|s| s.trim().trim_matches('/')) {
            if project.chars().count() > MAX_PROJECT || project.chars().any(char::is_control) {
                problems.push("the project is not a project name".to_string());
            } else if !project.is_empty() {
                filter.project = Some(project.to_string());
            }
        }
        if !problems.is_empty() {
            filter.problem = Some(format!("{}; it is ignored", problems.join(" and ")));
        }
        filter
    }

    pub fn is_active(&self) -> bool {
        self.change.is_some() || self.project.is_some()
    }

    /// Whether a change of `project` (`None`: unknown) numbered `change`
    /// passes.
    pub fn admits(&self, change: Option<u64>, project: Option<&str>) -> bool {
        if let Some(wanted) = self.change {
            if change != Some(wanted) {
                return false;
            }
        }
        match (&self.project, project) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(wanted), Some(project)) => {
                project == wanted
                    || project
                        .strip_prefix(wanted.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// The query string of a link that filters on `project`.
pub fn project_query(project: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("project", project)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Filter {
        let params = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Filter::from_query(&params)
    }

    #[test]
    fn reads_a_change_or_a_project() {
        assert_eq!(query(&[]), Filter::default());
        assert!(!query(&[("change", ""), ("project", " ")]).is_active());
        let f = query(&[("change", " 123456 ")]);
        assert_eq!(f.change, Some(123456));
        assert!(f.problem.is_none());
        let f = query(&[("project", "platform/bionic/")]);
        assert_eq!(f.project.as_deref(), Some("platform/bionic"));
    }

    #[test]
    fn a_bad_value_is_ignored_and_said_so_without_being_echoed() {
        let f = query(&[("change", "<script>"), ("project", "a\u{7}b")]);
        assert!(!f.is_active());
        let problem = f.problem.unwrap();
        assert!(problem.contains("not a change number"), "{problem}");
        assert!(problem.contains("not a project name"), "{problem}");
        assert!(!problem.contains("<script>"));
        assert!(query(&[("change", "0")]).problem.is_some());
        assert!(query(&[("project", &"x".repeat(300))]).problem.is_some());
    }

    #[test]
    fn projects_match_themselves_and_what_is_under_them() {
        let f = query(&[("project", "platform/bionic")]);
        assert!(f.admits(Some(1), Some("platform/bionic")));
        assert!(f.admits(Some(1), Some("platform/bionic/tests")));
        assert!(!f.admits(Some(1), Some("platform/bionic-x")));
        assert!(!f.admits(Some(1), None));
        let f = query(&[("change", "7")]);
        assert!(f.admits(Some(7), None));
        assert!(!f.admits(Some(8), Some("p")));
        assert!(!f.admits(None, Some("p")));
        assert!(Filter::default().admits(None, None));
    }

    #[test]
    fn project_links_are_encoded() {
        assert_eq!(
            project_query("platform/bionic"),
            "project=platform%2Fbionic"
        );
        assert_eq!(project_query("a&b=c"), "project=a%26b%3Dc");
    }
}
