//! The Gerrit queries of a reconcile pass. Pure.
//!
//! One query per project of `[jobs.projects]` (`status:open
//! project:NAME`), or one for every project the bot's account can see when
//! `[jobs] default` is set (`status:open`); `after:"YYYY-MM-DD hh:mm:ss"`
//! (UTC, which is how Gerrit reads a time without a zone) for an
//! incremental pass. The options ask, in the same answer, for what the
//! policy needs: every patch set's ref and kind, the current one's commit,
//! files and votes, and the messages with their authors' e-mails.

use bionicbb_core::config::JobsConfig;
use bionicbb_core::gerrit::QueryOption;
use bionicbb_core::timefmt;

/// The `o=` options of every reconcile query. `ALL_REVISIONS` rather than
/// `CURRENT_REVISION`: a command on an older patch set is then judged like
/// the mail about it (superseded), not as naming no patch set.
/// `DETAILED_LABELS`: the bot's vote on the current patch set, for the
/// upload policy (a verdict Gerrit copied is not carried over again).
pub const OPTIONS: [QueryOption; 6] = [
    QueryOption::AllRevisions,
    QueryOption::CurrentCommit,
    QueryOption::CurrentFiles,
    QueryOption::DetailedLabels,
    QueryOption::Messages,
    QueryOption::DetailedAccounts,
];

/// The most changes one page asks for (Gerrit's default `queryLimit`);
/// the server may cap it lower, paging goes on by offset.
pub const PAGE: usize = 500;

/// The projects a pass asks about: `None` for every project (a default
/// job builds them all), else the configured ones.
pub fn projects(jobs: &JobsConfig) -> Option<Vec<String>> {
    match jobs.default {
        Some(_) => None,
        None => Some(jobs.projects.keys().cloned().collect()),
    }
}

/// The query for open changes of `project` (every project when `None`)
/// updated at or after `after` (unix seconds). `Err` for a project name
/// that cannot be written in a query (a `"` or `\`, a control character).
pub fn changes(project: Option<&str>, after: Option<i64>) -> Result<String, String> {
    let mut query = String::from("status:open");
    if let Some(project) = project {
        if project.is_empty()
            || project
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(format!(
                "project {project:?} cannot be written in a Gerrit query"
            ));
        }
        let plain = project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-+".contains(c));
        query.push_str(" project:");
        if plain {
            query.push_str(project);
        } else {
            query.push('"');
            query.push_str(project);
            query.push('"');
        }
    }
    if let Some(after) = after {
        let time = timefmt::format_gerrit_query(after);
        if time.is_empty() {
            return Err(format!("time {after} is out of range"));
        }
        query.push_str(&format!(" after:\"{time}\""));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_the_status_the_project_and_the_time() {
        assert_eq!(changes(None, None).unwrap(), "status:open");
        assert_eq!(
            changes(Some("platform/bionic"), None).unwrap(),
            "status:open project:platform/bionic"
        );
        assert_eq!(
            changes(Some("platform/bionic"), Some(1_796_032_800)).unwrap(),
            "status:open project:platform/bionic after:\"2026-11-30 10:00:00\""
        );
        assert_eq!(
            changes(None, Some(0)).unwrap(),
            "status:open after:\"1970-01-01 00:00:00\""
        );
        // Anything but plain path characters is quoted.
        assert_eq!(
            changes(Some("tools/my repo"), None).unwrap(),
            "status:open project:\"tools/my repo\""
        );
        assert_eq!(
            changes(Some("a:b(c)"), None).unwrap(),
            "status:open project:\"a:b(c)\""
        );
    }

    #[test]
    fn names_a_query_cannot_hold_are_refused() {
        for bad in ["", "a\"b", "a\\b", "a\nb"] {
            let err = changes(Some(bad), None).unwrap_err();
            assert!(err.contains("cannot be written"), "{err}");
        }
        assert!(changes(None, Some(i64::MAX)).is_err());
    }

    #[test]
    fn a_default_job_means_every_project() {
        let config = crate::test_config::with(
            r#"[jobs.projects]
            "platform/bionic" = "bionic-presubmit"
            "platform/external/jemalloc" = "jemalloc-presubmit""#,
        );
        let mut jobs = config.jobs;
        assert_eq!(
            projects(&jobs),
            Some(vec![
                "platform/bionic".to_string(),
                "platform/external/jemalloc".to_string()
            ])
        );
        jobs.default = Some("bionic-presubmit".to_string());
        assert_eq!(projects(&jobs), None);
    }
}
