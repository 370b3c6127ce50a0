//! Whether a job declares the parameters the bot sends it. Jenkins keeps
//! only declared parameters (undeclared ones are dropped without a word),
//! so a missing declaration shows up only as a wrong build. The verdict:
//!
//! - a presubmit job without `REF` builds something other than the patch
//!   set: FAIL. Without `LUNCH_TARGET` while per-target commands are
//!   configured, `bionicbb:arm` would build the default target and report
//!   it as arm: FAIL (declare it, or turn the commands off);
//! - a clean job must let build-listener find the change and patch set it
//!   ran for (`REF`, or `CHANGE_NUMBER`/`CHANGE_ID` with `PATCHSET`),
//!   else its result is never posted: FAIL;
//! - any other parameter the job does not declare is a warning: the job
//!   works if its script does not read it.
//!
//! Names are case-sensitive in Jenkins; a declaration that differs only in
//! case is pointed out.

use super::Item;

/// What the bot triggers a job for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobUse {
    /// A presubmit build of a patch set (`[jobs] default`, `[jobs.projects]`).
    Presubmit,
    /// `bionicbb:clean` (`[jobs] clean`).
    Clean,
}

/// The parameters every trigger carries.
pub const SENT: [&str; 5] = ["REF", "CHANGE_ID", "PROJECT", "CHANGE_NUMBER", "PATCHSET"];
/// The parameter per-target commands add.
pub const LUNCH_TARGET: &str = "LUNCH_TARGET";

/// The parameters the bot sends a job used as `job_use`; `LUNCH_TARGET`
/// only to a presubmit job when per-target commands are configured.
pub fn sent(job_use: JobUse, lunch_targets: bool) -> Vec<&'static str> {
    let mut names = SENT.to_vec();
    if job_use == JobUse::Presubmit && lunch_targets {
        names.push(LUNCH_TARGET);
    }
    names
}

/// The checklist line for a job that declares `declared`.
pub fn judge(job: &str, job_use: JobUse, declared: &[String], lunch_targets: bool) -> Item {
    let subject = format!("job {job}");
    let has = |name: &str| declared.iter().any(|d| d == name);
    let missing: Vec<&str> = sent(job_use, lunch_targets)
        .into_iter()
        .filter(|n| !has(n))
        .collect();
    if missing.is_empty() {
        return Item::ok(subject, format!("declares {}", declared.join(", ")));
    }
    let missing_list = with_case_hints(&missing, declared);
    let add = format!("add String parameters {} to the job", missing.join(", "));
    let required = match job_use {
        JobUse::Presubmit => {
            let mut required = Vec::new();
            if !has("REF") {
                required.push("REF: the build would not fetch the patch set");
            }
            if lunch_targets && !has(LUNCH_TARGET) {
                required.push(
                    "LUNCH_TARGET: per-target commands (bionicbb:arm...) would build the default target",
                );
            }
            required
        }
        JobUse::Clean => {
            let change = has("REF") || has("CHANGE_NUMBER") || has("CHANGE_ID");
            let patch_set = has("REF") || has("PATCHSET");
            if change && patch_set {
                Vec::new()
            } else {
                vec![
                    "REF (or CHANGE_NUMBER and PATCHSET): build-listener could not tell which patch set its result is for",
                ]
            }
        }
    };
    if required.is_empty() {
        return Item::warn(
            subject,
            format!("does not declare {missing_list}: Jenkins drops what a job does not declare"),
            format!("{add} if its build reads them"),
        );
    }
    let mut fix = add;
    if lunch_targets && job_use == JobUse::Presubmit && !has(LUNCH_TARGET) {
        fix.push_str(" (or set `targets = {}` under [commands] to turn per-target commands off)");
    }
    Item::fail(
        subject,
        format!(
            "does not declare {missing_list}; needed: {}",
            required.join("; ")
        ),
        fix,
    )
}

/// `A, B (it declares `b`: names are case-sensitive)`.
fn with_case_hints(missing: &[&str], declared: &[String]) -> String {
    missing
        .iter()
        .map(|name| {
            match declared
                .iter()
                .find(|d| d.eq_ignore_ascii_case(name) && d.as_str() != *name)
            {
                Some(near) => format!("{name} (it declares `{near}`: names are case-sensitive)"),
                None => name.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const ALL: [&str; 6] = [
        "REF",
        "CHANGE_ID",
        "PROJECT",
        "CHANGE_NUMBER",
        "PATCHSET",
        "LUNCH_TARGET",
    ];

    #[test]
    fn a_job_declaring_everything_sent_is_ok() {
        let item = judge("p", JobUse::Presubmit, &names(&ALL), true);
        assert_eq!(item.status, Status::Ok, "{item:?}");
        assert_eq!(item.subject, "job p");
    }

    #[test]
    fn lunch_target_is_needed_only_with_per_target_commands() {
        let declared = names(&ALL[..5]);
        let item = judge("p", JobUse::Presubmit, &declared, false);
        assert_eq!(item.status, Status::Ok, "{item:?}");
        let item = judge("p", JobUse::Presubmit, &declared, true);
        assert_eq!(item.status, Status::Fail, "{item:?}");
        assert!(item.detail.contains("LUNCH_TARGET"), "{item:?}");
        let fix = item.fix.unwrap();
        assert!(fix.contains("add String parameters LUNCH_TARGET"), "{fix}");
        assert!(fix.contains("targets = {}"), "{fix}");
    }

    #[test]
    fn a_presubmit_job_without_ref_fails() {
        let declared = names(&["CHANGE_ID", "CHANGE_NUMBER", "PATCHSET", "PROJECT"]);
        let item = judge("p", JobUse::Presubmit, &declared, false);
        assert_eq!(item.status, Status::Fail);
        assert!(item.detail.starts_with("does not declare REF;"), "{item:?}");
    }

    #[test]
    fn other_missing_parameters_are_a_warning() {
        let declared = names(&["REF", "CHANGE_NUMBER"]);
        let item = judge("p", JobUse::Presubmit, &declared, false);
        assert_eq!(item.status, Status::Warn, "{item:?}");
        assert!(
            item.detail
                .starts_with("does not declare CHANGE_ID, PROJECT, PATCHSET"),
            "{item:?}"
        );
    }

    #[test]
    fn a_clean_job_needs_a_change_and_a_patch_set() {
        let item = judge("c", JobUse::Clean, &names(&["REF"]), true);
        assert_eq!(item.status, Status::Warn, "{item:?}");
        assert!(!item.detail.contains("LUNCH_TARGET"), "{item:?}");
        let item = judge(
            "c",
            JobUse::Clean,
            &names(&["CHANGE_NUMBER", "PATCHSET"]),
            true,
        );
        assert_eq!(item.status, Status::Warn, "{item:?}");
        let item = judge("c", JobUse::Clean, &names(&["CHANGE_NUMBER"]), true);
        assert_eq!(item.status, Status::Fail, "{item:?}");
        let item = judge("c", JobUse::Clean, &[], false);
        assert_eq!(item.status, Status::Fail, "{item:?}");
    }

    #[test]
    fn a_name_differing_in_case_is_pointed_out() {
        let declared = names(&["ref", "CHANGE_ID", "PROJECT", "CHANGE_NUMBER", "PATCHSET"]);
        let item = judge("p", JobUse::Presubmit, &declared, false);
        assert_eq!(item.status, Status::Fail);
        assert!(
            item.detail
                .contains("REF (it declares `ref`: names are case-sensitive)"),
            "{item:?}"
        );
    }
}
