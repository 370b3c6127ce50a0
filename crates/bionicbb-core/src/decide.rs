//! The policy of the gmail-listener: an event from a mail plus what Gerrit
//! confirms about it become a list of [`Decision`]s. Pure: no I/O, no clock.
//!
//! The rules, in order:
//! 1. Types with nothing to do (`merged`, `abandon`, `restore`, `revert`,
//!    `merge-failed`, `deleteVote`, anything unknown) are skipped.
//! 2. Nothing in a mail is trusted until Gerrit confirms it: no facts (Gerrit
//!    does not know the change), another project or branch than the mail
//!    says, or no such patch set, and nothing runs.
//! 3. `newchange` / `newpatchset` build the patch set the mail names, if the
//!    change is open, that patch set is still current, and the skip policy
//!    (untrusted committer, a skipped file or directory) does not apply.
//!    Then, for these automatic builds only:
//!    - a work-in-progress change is skipped unless `policy.build_wip`, a
//!      private one unless `policy.build_private`;
//!    - a patch set whose kind is in `policy.skip_kinds` (only the commit
//!      message changed, a re-upload, ...) is not built when the previous
//!      patch set has the bot's verdict: Gerrit's labels already show the
//!      bot's vote on it (a label's copy rule copied it) and nothing is
//!      done, or the verdict is carried over ([`Decision::CarryOver`]).
//!      Without a previous verdict (never built, still building, its vote
//!      removed) the patch set is built as usual.
//! 4. `comment`: the comment must exist on Gerrit on that patch set; the
//!    bot's own comments are ignored. An added `Verified+1` asks
//!    build-listener to drop the bot's rejection (build-listener checks the
//!    votes itself). Commands run only for a trusted commenter (as Gerrit
//!    reports the author, never the mail's `From:`), on an open change whose
//!    patch set is current and which the skip policy allows; an unknown
//!    command gets one reply naming it, suggesting the known command it is
//!    most likely a typo of ([`command::closest`]), and listing the
//!    commands that exist; `help` gets the list of commands with what each
//!    does (in the same one reply). A command builds whatever the patch
//!    set's kind and the change's work-in-progress or private state: a
//!    developer asked.
//! 5. With `jobs.cancel_superseded` on: a build of a patch set (new patch
//!    set, `retry`, a target command) also cancels the bot's builds of the
//!    change's older patch sets; a `merged` or `abandon` mail whose change
//!    Gerrit confirms closed cancels all of the change's builds (instead
//!    of rule 1's skip). Without Gerrit's facts a closing mail stays a skip.

use std::collections::BTreeMap;

use crate::command;
use crate::config::Config;
use crate::event::{ChangeFacts, ChangeStatus, Command, Decision, GerritEvent, MessageType};
use crate::messages;

/// Decides what to do about `event`. `facts` is `None` when Gerrit does not
/// know the change (a forged mail, or a change deleted since).
pub fn decide(event: &GerritEvent, facts: Option<&ChangeFacts>, config: &Config) -> Vec<Decision> {
    let decisions = decide_event(event, facts, config);
    cancel_superseded(event, facts, config, decisions)
}

/// Rules 1 to 4 of the module documentation.
fn decide_event(
    event: &GerritEvent,
    facts: Option<&ChangeFacts>,
    config: &Config,
) -> Vec<Decision> {
    let builds = matches!(
        event.message_type,
        MessageType::NewChange | MessageType::NewPatchSet
    );
    if !builds && event.message_type != MessageType::Comment {
        return vec![skip(format!("{}: nothing to do", event.message_type))];
    }
    let facts = match confirm(event, facts) {
        Ok(facts) => facts,
        Err(reason) => return vec![skip(reason)],
    };
    if builds {
        return match buildable(event, facts, config) {
            Ok(target) => match automatic(event, facts, config) {
                Some(instead) => vec![instead],
                None => vec![target.build(None, "new patch set")],
            },
            Err(reason) => vec![skip(reason)],
        };
    }
    decide_comment(event, facts, config)
}

fn decide_comment(event: &GerritEvent, facts: &ChangeFacts, config: &Config) -> Vec<Decision> {
    let Some(comment) = &facts.comment else {
        return vec![skip(format!(
            "Gerrit has no comment on change {} patch set {} matching this mail",
            facts.number, event.patch_set
        ))];
    };
    let author = comment.author_email.as_deref().unwrap_or("");
    if !author.is_empty() && author.eq_ignore_ascii_case(&config.gerrit.bot_email) {
        return vec![skip("comment by the bot's own account".to_string())];
    }
    let mut decisions = Vec::new();
    let label = &config.review.label;
    if event.votes.iter().any(|v| &v.label == label && v.value > 0) {
        decisions.push(Decision::DropRejection {
            change_number: facts.number,
            patch_set: event.patch_set,
        });
    }
    let commands = dedup(&event.commands);
    if commands.is_empty() {
        if decisions.is_empty() {
            decisions.push(skip(
                "comment without votes or commands for the bot".to_string(),
            ));
        }
        return decisions;
    }
    if author.is_empty() || !config.policy.commenter_trusted(author) {
        let who = if author.is_empty() {
            "an account without a visible e-mail"
        } else {
            author
        };
        decisions.push(skip(format!(
            "commands from {who} ignored: not a trusted commenter"
        )));
        return decisions;
    }
    let unknown: Vec<&str> = commands
        .iter()
        .filter(|c| !command::is_known(&c.name, &config.commands))
        .map(|c| c.name.as_str())
        .collect();
    // One reply answers the comment: the unknown names, then the help.
    let mut answer = Vec::new();
    if !unknown.is_empty() {
        let known = command::known_names(&config.commands);
        let named: Vec<(&str, Option<&str>)> = unknown
            .iter()
            .map(|name| (*name, command::closest(name, &known)))
            .collect();
        answer.push(messages::unknown_command(&named, &known));
    }
    if commands.iter().any(|c| c.name == command::HELP) {
        let link = status_link(config, facts.number);
        answer.push(messages::help(
            &config.commands.targets,
            config.jobs.clean.as_deref(),
            link.as_deref(),
        ));
    }
    if !answer.is_empty() {
        decisions.push(Decision::Reply {
            change_number: facts.number,
            patch_set: event.patch_set,
            message: answer.join("\n\n"),
        });
    }
    let known: Vec<&Command> = commands
        .iter()
        .filter(|c| command::is_known(&c.name, &config.commands) && c.name != command::HELP)
        .collect();
    if known.is_empty() {
        return decisions;
    }
    let target = match buildable(event, facts, config) {
        Ok(target) => target,
        Err(reason) => {
            decisions.push(skip(format!("commands not run: {reason}")));
            return decisions;
        }
    };
    for cmd in known {
        let reason = format!("bionicbb:{} by {author}", cmd.name);
        match cmd.name.as_str() {
            "retry" => decisions.push(target.build(None, &reason)),
            "clean" => decisions.push(match &config.jobs.clean {
                Some(job) => Decision::Clean {
                    job: job.clone(),
                    params: target.params.clone(),
                },
                None => skip("bionicbb:clean: no clean job is configured".to_string()),
            }),
            name => {
                let lunch = config.commands.targets.get(name).map(String::as_str);
                decisions.push(target.build(lunch, &reason));
            }
        }
    }
    decisions
}

/// The status page narrowed to change `number`, when build-listener's
/// `public_url` is one others can open: not a loopback, unspecified or
/// link-local address, nor `localhost`.
pub fn status_link(config: &Config, number: u64) -> Option<String> {
    let url = &config.build_listener.public_url;
    let reachable = match url.host()? {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name != "localhost" && !name.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => !(ip.is_loopback() || ip.is_unspecified() || ip.is_link_local()),
        url::Host::Ipv6(ip) => {
            !(ip.is_loopback() || ip.is_unspecified() || ip.is_unicast_link_local())
        }
    };
    if !reachable {
        return None;
    }
    let base = url.as_str();
    let slash = if base.ends_with('/') { "" } else { "/" };
    Some(format!("{base}{slash}status?change={number}"))
}

/// Rule 5 of the module documentation: `decisions` with the cancel of
/// the change's superseded builds, when `jobs.cancel_superseded` is on.
/// A closing mail's skip becomes the cancel only when Gerrit confirms
/// the change (its project, branch and patch set) and shows it closed.
fn cancel_superseded(
    event: &GerritEvent,
    facts: Option<&ChangeFacts>,
    config: &Config,
    mut decisions: Vec<Decision>,
) -> Vec<Decision> {
    if !config.jobs.cancel_superseded {
        return decisions;
    }
    let closing = matches!(
        event.message_type,
        MessageType::Merged | MessageType::Abandon
    );
    if closing {
        return match confirm(event, facts) {
            Ok(facts) if facts.status != ChangeStatus::New => vec![Decision::CancelSuperseded {
                change_number: facts.number,
                below: None,
            }],
            _ => decisions,
        };
    }
    let builds = decisions
        .iter()
        .any(|d| matches!(d, Decision::Build { .. }));
    if let (true, Some(facts)) = (builds, facts) {
        decisions.push(Decision::CancelSuperseded {
            change_number: facts.number,
            below: Some(event.patch_set),
        });
    }
    decisions
}

/// Checks the mail against Gerrit: the change exists, in the project and
/// branch the mail names, and has the patch set the mail names.
fn confirm<'a>(
    event: &GerritEvent,
    facts: Option<&'a ChangeFacts>,
) -> Result<&'a ChangeFacts, String> {
    let Some(facts) = facts else {
        return Err(format!(
            "Gerrit has no change {} in {} (forged or deleted mail)",
            event
                .change_number
                .map(|n| n.to_string())
                .unwrap_or_else(|| event.change_id.clone()),
            event.project
        ));
    };
    if facts.project != event.project || facts.branch != event.branch {
        return Err(format!(
            "the mail says {}[{}] but Gerrit has change {} in {}[{}]",
            event.project, event.branch, facts.number, facts.project, facts.branch
        ));
    }
    if let Some(number) = event.change_number
        && number != facts.number
    {
        return Err(format!(
            "the mail says change {number} but Gerrit has {}",
            facts.number
        ));
    }
    if facts.patch_set_ref.is_none() {
        return Err(format!(
            "Gerrit has no patch set {} of change {}",
            event.patch_set, facts.number
        ));
    }
    Ok(facts)
}

/// A patch set that may be built: its job and parameters.
struct BuildTarget {
    job: String,
    params: BTreeMap<String, String>,
}

impl BuildTarget {
    fn build(&self, lunch_target: Option<&str>, reason: &str) -> Decision {
        let mut params = self.params.clone();
        if let Some(lunch) = lunch_target {
            params.insert("LUNCH_TARGET".to_string(), lunch.to_string());
        }
        Decision::Build {
            job: self.job.clone(),
            params,
            reason: reason.to_string(),
        }
    }
}

/// The job and parameters for the event's patch set, or why it must not be built.
fn buildable(
    event: &GerritEvent,
    facts: &ChangeFacts,
    config: &Config,
) -> Result<BuildTarget, String> {
    match facts.status {
        ChangeStatus::New => {}
        ChangeStatus::Merged => return Err(format!("change {} is merged", facts.number)),
        ChangeStatus::Abandoned => return Err(format!("change {} is abandoned", facts.number)),
    }
    if event.patch_set < facts.current_patch_set {
        return Err(format!(
            "patch set {} of change {} is superseded by patch set {}",
            event.patch_set, facts.number, facts.current_patch_set
        ));
    }
    match facts.committer_email.as_deref() {
        Some(email) if config.policy.committer_trusted(email) => {}
        Some(email) => return Err(format!("committer {email} is not in a trusted domain")),
        None => return Err("Gerrit shows no committer e-mail for this patch set".to_string()),
    }
    for file in &facts.files {
        if let Some(why) = config.policy.skipped_path(file) {
            return Err(format!("the change touches {file} ({why})"));
        }
    }
    let job = config
        .jobs
        .job_for_project(&facts.project)
        .ok_or_else(|| format!("no job is configured for project {}", facts.project))?;
    let project_param = project_parameter(&facts.project).ok_or_else(|| {
        format!(
            "project {} has a single component: no PROJECT parameter",
            facts.project
        )
    })?;
    let mut params = BTreeMap::new();
    params.insert(
        "REF".to_string(),
        facts.patch_set_ref.clone().unwrap_or_default(),
    );
    params.insert("CHANGE_ID".to_string(), event.change_id.clone());
    params.insert("PROJECT".to_string(), project_param.to_string());
    params.insert("CHANGE_NUMBER".to_string(), facts.number.to_string());
    params.insert("PATCHSET".to_string(), event.patch_set.to_string());
    Ok(BuildTarget {
        job: job.to_string(),
        params,
    })
}

/// What an automatic build of a buildable patch set becomes instead of a
/// build, if anything: a skip (work in progress, private, or the verdict
/// already on it) or a carry-over of the previous patch set's verdict.
fn automatic(event: &GerritEvent, facts: &ChangeFacts, config: &Config) -> Option<Decision> {
    let (policy, upload) = (&config.policy, &facts.upload);
    if upload.work_in_progress && !policy.build_wip {
        return Some(skip(format!("change {} is work in progress", facts.number)));
    }
    if upload.is_private && !policy.build_private {
        return Some(skip(format!("change {} is private", facts.number)));
    }
    if !policy.skips_kind(upload.kind) {
        return None;
    }
    let verdict = upload.previous_verdict?;
    let (label, ps, kind) = (&config.review.label, event.patch_set, upload.kind);
    match upload.bot_vote {
        Some(value) if value == verdict.value => Some(skip(format!(
            "patch set {ps} is {kind} and Gerrit already shows the bot's {label}{value:+} \
             on it (copied from patch set {})",
            verdict.patch_set
        ))),
        Some(value) => Some(skip(format!(
            "patch set {ps} is {kind} and already has the bot's {label}{value:+}"
        ))),
        None => Some(Decision::CarryOver {
            change_number: facts.number,
            patch_set: ps,
            from_patch_set: verdict.patch_set,
            label: label.clone(),
            value: verdict.value,
            message: messages::carried_over(label, verdict.value, verdict.patch_set, kind),
        }),
    }
}

/// `PROJECT` as the original jobs expect it: the project path without its
/// first component (`platform/external/jemalloc` → `external/jemalloc`).
pub fn project_parameter(project: &str) -> Option<&str> {
    project
        .split_once('/')
        .map(|(_, rest)| rest)
        .filter(|rest| !rest.is_empty())
}

/// Commands in order, each (name, args) once.
fn dedup(commands: &[Command]) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::new();
    for c in commands {
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    out
}

fn skip(reason: String) -> Decision {
    Decision::Skip { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChangeKind, CommentFacts, UploadFacts, Verdict, Vote};
    use std::path::Path;

    const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";

    fn config() -> Config {
        Config::parse(
            r#"
            state_dir = "/tmp/bionicbb-test"
            [gerrit]
            url = "https://gerrit.example.org/"
            bot_email = "bionicbb@example.com"
            [jenkins]
            url = "https://jenkins.example.org/"
            user = "bionicbb"
            api_token = "token"
            [build_listener]
            secret = "s3cret"
            [jobs]
            default = "bionic-presubmit"
            clean = "clean-bionic-presubmit"
            [jobs.roles]
            bionic-presubmit = "verify"
            clean-bionic-presubmit = "clean"
            [policy]
            trusted_committer_domains = ["example.com"]
            trusted_commenter_domains = ["example.com"]
            trusted_commenters = ["friend@elsewhere.org"]
            "#,
            Path::new("test.toml"),
        )
        .expect("test config")
    }

    fn event(message_type: MessageType, patch_set: u32) -> GerritEvent {
        GerritEvent {
            message_type,
            change_id: KEY.to_string(),
            change_number: Some(123456),
            patch_set,
            project: "platform/bionic".into(),
            branch: "master".into(),
            owner: Some("Dana Dev <dana@example.com>".into()),
            author: Some("Sam Reviewer".into()),
            comment_date: Some(1_552_582_931),
            date: Some(1_552_582_931),
            votes: vec![],
            commands: vec![],
        }
    }

    fn facts(current: u32) -> ChangeFacts {
        ChangeFacts {
            number: 123456,
            project: "platform/bionic".into(),
            branch: "master".into(),
            status: ChangeStatus::New,
            current_patch_set: current,
            patch_set_ref: Some(format!("refs/changes/56/123456/{current}")),
            committer_email: Some("dana@example.com".into()),
            files: vec!["libc/bionic/strtod.cpp".into()],
            comment: None,
            subject: "Fix strtod rounding for denormals".into(),
            owner: Some("Dana Dev".into()),
            upload: UploadFacts::default(),
        }
    }

    fn comment_by(email: &str) -> Option<CommentFacts> {
        Some(CommentFacts {
            message_id: "Zq3-Kd".into(),
            author_account_id: Some(1000097),
            author_email: Some(email.into()),
            message: "Patch Set 2:\n\nbionicbb:retry".into(),
        })
    }

    fn cmd(name: &str) -> Command {
        Command {
            name: name.into(),
            args: vec![],
        }
    }

    fn only_skip(decisions: &[Decision]) -> &str {
        match decisions {
            [Decision::Skip { reason }] => reason,
            other => panic!("expected one skip, got {other:?}"),
        }
    }

    #[test]
    fn new_patch_set_builds_with_the_original_parameters() {
        let d = decide(
            &event(MessageType::NewPatchSet, 2),
            Some(&facts(2)),
            &config(),
        );
        let [
            Decision::Build { job, params, .. },
            Decision::CancelSuperseded {
                change_number: 123456,
                below: Some(2),
            },
        ] = d.as_slice()
        else {
            panic!("{d:?}")
        };
        assert_eq!(job, "bionic-presubmit");
        assert_eq!(params["REF"], "refs/changes/56/123456/2");
        assert_eq!(params["CHANGE_ID"], KEY);
        assert_eq!(params["PROJECT"], "bionic");
        assert_eq!(params["CHANGE_NUMBER"], "123456");
        assert_eq!(params["PATCHSET"], "2");
        assert!(!params.contains_key("LUNCH_TARGET"));
        let d = decide(
            &event(MessageType::NewChange, 2),
            Some(&facts(2)),
            &config(),
        );
        assert!(matches!(
            d.as_slice(),
            [Decision::Build { .. }, Decision::CancelSuperseded { .. }]
        ));
    }

    #[test]
    fn superseded_patch_sets_and_closed_changes_are_skipped() {
        let d = decide(
            &event(MessageType::NewPatchSet, 2),
            Some(&facts(3)),
            &config(),
        );
        assert!(only_skip(&d).contains("superseded by patch set 3"));
        let mut merged = facts(2);
        merged.status = ChangeStatus::Merged;
        let d = decide(
            &event(MessageType::NewPatchSet, 2),
            Some(&merged),
            &config(),
        );
        assert!(only_skip(&d).contains("merged"));
        let mut abandoned = facts(2);
        abandoned.status = ChangeStatus::Abandoned;
        let d = decide(
            &event(MessageType::NewPatchSet, 2),
            Some(&abandoned),
            &config(),
        );
        assert!(only_skip(&d).contains("abandoned"));
    }

    #[test]
    fn forged_mails_do_nothing() {
        let d = decide(&event(MessageType::NewPatchSet, 2), None, &config());
        assert!(only_skip(&d).contains("forged"));
        let mut elsewhere = facts(2);
        elsewhere.project = "platform/build".into();
        let d = decide(
            &event(MessageType::NewPatchSet, 2),
            Some(&elsewhere),
            &config(),
        );
        assert!(only_skip(&d).contains("platform/build"));
        let mut no_ps = facts(2);
        no_ps.patch_set_ref = None;
        let d = decide(&event(MessageType::NewPatchSet, 2), Some(&no_ps), &config());
        assert!(only_skip(&d).contains("no patch set 2"));
    }

    #[test]
    fn skip_policy_applies() {
        let mut f = facts(2);
        f.committer_email = Some("x@example.com.evil.org".into());
        let d = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &config());
        assert!(only_skip(&d).contains("not in a trusted domain"));
        let mut f = facts(2);
        f.files.push("libc/CleanSpec.mk".into());
        let d = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &config());
        assert!(only_skip(&d).contains("CleanSpec.mk"));
        let mut f = facts(2);
        f.files.push("tools/bionicbb/gmail_listener.py".into());
        let d = decide(&event(MessageType::NewPatchSet, 2), Some(&f), &config());
        assert!(only_skip(&d).contains("tools/bionicbb"));
        let mut f = facts(2);
        f.project = "bionic".into();
        let mut e = event(MessageType::NewPatchSet, 2);
        e.project = "bionic".into();
        let d = decide(&e, Some(&f), &config());
        assert!(only_skip(&d).contains("single component"));
    }

    #[test]
    fn other_types_are_skipped() {
        for t in [
            "merged",
            "abandon",
            "restore",
            "revert",
            "merge-failed",
            "deleteVote",
            "setassignee",
        ] {
            let d = decide(
                &event(MessageType::from(t.to_string()), 2),
                Some(&facts(2)),
                &config(),
            );
            assert!(only_skip(&d).starts_with(t), "{t}: {d:?}");
        }
    }

    #[test]
    fn trusted_commands_run_in_order() {
        let mut e = event(MessageType::Comment, 2);
        e.commands = vec![cmd("retry"), cmd("clean"), cmd("arm"), cmd("retry")];
        let mut f = facts(2);
        f.comment = comment_by("sam@example.com");
        let d = decide(&e, Some(&f), &config());
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(matches!(&d[0], Decision::Build { params, reason, .. }
            if !params.contains_key("LUNCH_TARGET") && reason == "bionicbb:retry by sam@example.com"));
        assert!(
            matches!(&d[1], Decision::Clean { job, params } if job == "clean-bionic-presubmit" && params["CHANGE_NUMBER"] == "123456")
        );
        assert!(
            matches!(&d[2], Decision::Build { params, .. } if params["LUNCH_TARGET"] == "aosp_arm-eng")
        );
        assert_eq!(
            d[3],
            Decision::CancelSuperseded {
                change_number: 123456,
                below: Some(2)
            },
            "one cancel, after the builds, of the older patch sets only"
        );
        f.comment = comment_by("friend@elsewhere.org");
        assert_eq!(decide(&e, Some(&f), &config()).len(), 4);
    }

    #[test]
    fn untrusted_or_unconfirmed_commenters_run_nothing() {
        let mut e = event(MessageType::Comment, 2);
        e.commands = vec![cmd("retry")];
        let mut f = facts(2);
        f.comment = comment_by("stranger@evil.org");
        let d = decide(&e, Some(&f), &config());
        assert!(only_skip(&d).contains("stranger@evil.org"));
        f.comment = None;
        let d = decide(&e, Some(&f), &config());
        assert!(only_skip(&d).contains("no comment"));
        f.comment = comment_by("bionicbb@example.com");
        let d = decide(&e, Some(&f), &config());
        assert!(only_skip(&d).contains("bot's own"));
    }

    #[test]
    fn unknown_commands_get_one_reply() {
        let mut e = event(MessageType::Comment, 2);
        e.commands = vec![cmd("rebuild"), cmd("frobnicate")];
        let mut f = facts(2);
        f.comment = comment_by("sam@example.com");
        let d = decide(&e, Some(&f), &config());
        let [
            Decision::Reply {
                change_number: 123456,
                patch_set: 2,
                message,
            },
        ] = d.as_slice()
        else {
            panic!("{d:?}")
        };
        assert!(
            message.contains("rebuild") && message.contains("frobnicate"),
            "{message}"
        );
        assert!(
            message.contains("retry") && message.contains("clean"),
            "{message}"
        );
        assert!(!message.contains("did you mean"), "{message}");
        e.commands = vec![cmd("rety")];
        let d = decide(&e, Some(&f), &config());
        let [Decision::Reply { message, .. }] = d.as_slice() else {
            panic!("{d:?}")
        };
        assert!(
            message.starts_with("Unknown command bionicbb:rety (did you mean bionicbb:retry?)."),
            "{message}"
        );
    }

    #[test]
    fn help_is_answered_in_the_one_reply_even_on_a_closed_change() {
        let mut e = event(MessageType::Comment, 2);
        e.commands = vec![cmd("help"), cmd("rety")];
        let mut f = facts(2);
        f.status = ChangeStatus::Merged;
        f.comment = comment_by("sam@example.com");
        let d = decide(&e, Some(&f), &config());
        let [Decision::Reply { message, .. }] = d.as_slice() else {
            panic!("{d:?}")
        };
        assert!(
            message.starts_with("Unknown command bionicbb:rety"),
            "{message}"
        );
        assert!(
            message.contains("\n\nbionicbb runs the commands of trusted accounts"),
            "{message}"
        );
        assert!(message.contains("bionicbb:arm - build this patch set again for aosp_arm-eng"));
        // The test configuration's build-listener is on localhost: no link.
        assert!(!message.contains("status?change="), "{message}");
        // From a stranger, nothing.
        f.comment = comment_by("stranger@evil.org");
        let d = decide(&e, Some(&f), &config());
        assert!(only_skip(&d).contains("not a trusted commenter"));
    }

    #[test]
    fn the_status_link_is_given_only_for_a_reachable_build_listener() {
        let with = |url: &str| {
            let mut c = config();
            c.build_listener.public_url = url::Url::parse(url).unwrap();
            status_link(&c, 123456)
        };
        assert_eq!(
            with("https://bb.example.org/").as_deref(),
            Some("https://bb.example.org/status?change=123456")
        );
        assert_eq!(
            with("https://bb.example.org/bionicbb").as_deref(),
            Some("https://bb.example.org/bionicbb/status?change=123456")
        );
        assert_eq!(
            with("http://10.1.2.3:8080/").as_deref(),
            Some("http://10.1.2.3:8080/status?change=123456")
        );
        for local in [
            "http://127.0.0.1:8080/",
            "http://localhost:8080/",
            "http://[::1]:8080/",
            "http://0.0.0.0:8080/",
            "http://169.254.1.1/",
            "http://bb.localhost/",
        ] {
            assert_eq!(with(local), None, "{local}");
        }
    }

    #[test]
    fn human_verified_plus_one_drops_the_rejection() {
        let mut e = event(MessageType::Comment, 2);
        e.votes = vec![Vote {
            label: "Verified".into(),
            value: 1,
        }];
        let mut f = facts(3);
        f.comment = comment_by("sam@example.com");
        let d = decide(&e, Some(&f), &config());
        assert_eq!(
            d,
            vec![Decision::DropRejection {
                change_number: 123456,
                patch_set: 2
            }]
        );
        e.votes = vec![Vote {
            label: "Code-Review".into(),
            value: 2,
        }];
        let d = decide(&e, Some(&f), &config());
        assert!(only_skip(&d).contains("without votes or commands"));
    }

    #[test]
    fn commands_on_a_superseded_patch_set_do_not_build() {
        let mut e = event(MessageType::Comment, 2);
        e.commands = vec![cmd("retry")];
        let mut f = facts(3);
        f.comment = comment_by("sam@example.com");
        let d = decide(&e, Some(&f), &config());
        assert!(only_skip(&d).contains("superseded"));
    }

    fn without_cancelling() -> Config {
        let mut config = config();
        config.jobs.cancel_superseded = false;
        config
    }

    #[test]
    fn a_build_cancels_the_older_patch_sets_and_nothing_else_does() {
        let d = decide(
            &event(MessageType::NewPatchSet, 3),
            Some(&facts(3)),
            &config(),
        );
        assert_eq!(
            d.last(),
            Some(&Decision::CancelSuperseded {
                change_number: 123456,
                below: Some(3)
            })
        );
        // Nothing built, nothing cancelled: a superseded patch set, a
        // skipped one, a comment without commands, a clean.
        let superseded = decide(
            &event(MessageType::NewPatchSet, 2),
            Some(&facts(3)),
            &config(),
        );
        let mut untrusted = facts(3);
        untrusted.committer_email = Some("x@evil.org".into());
        let skipped = decide(
            &event(MessageType::NewPatchSet, 3),
            Some(&untrusted),
            &config(),
        );
        let mut e = event(MessageType::Comment, 3);
        e.commands = vec![cmd("clean")];
        let mut f = facts(3);
        f.comment = comment_by("sam@example.com");
        let clean = decide(&e, Some(&f), &config());
        for d in [superseded, skipped, clean] {
            assert!(
                !d.iter()
                    .any(|d| matches!(d, Decision::CancelSuperseded { .. })),
                "{d:?}"
            );
        }
        // Turned off: the build alone.
        let d = decide(
            &event(MessageType::NewPatchSet, 3),
            Some(&facts(3)),
            &without_cancelling(),
        );
        assert!(matches!(d.as_slice(), [Decision::Build { .. }]), "{d:?}");
    }

    #[test]
    fn a_closed_change_cancels_all_its_builds_once_gerrit_confirms_it() {
        for (kind, status) in [
            ("merged", ChangeStatus::Merged),
            ("abandon", ChangeStatus::Abandoned),
        ] {
            let e = event(MessageType::from(kind.to_string()), 2);
            let mut closed = facts(2);
            closed.status = status;
            assert_eq!(
                decide(&e, Some(&closed), &config()),
                vec![Decision::CancelSuperseded {
                    change_number: 123456,
                    below: None
                }],
                "{kind}"
            );
            // Nothing in a mail is trusted: Gerrit not asked (or not
            // knowing the change), the change still open (restored since),
            // another branch, or cancelling off: the old skip.
            let mut elsewhere = closed.clone();
            elsewhere.branch = "stable".into();
            let open = facts(2);
            for (facts, config) in [
                (None, config()),
                (Some(&open), config()),
                (Some(&elsewhere), config()),
                (Some(&closed), without_cancelling()),
            ] {
                let d = decide(&e, facts, &config);
                assert_eq!(only_skip(&d), format!("{kind}: nothing to do"), "{facts:?}");
            }
        }
    }

    #[test]
    fn project_parameter_drops_the_first_component() {
        assert_eq!(
            project_parameter("platform/external/jemalloc"),
            Some("external/jemalloc")
        );
        assert_eq!(project_parameter("platform/bionic"), Some("bionic"));
        assert_eq!(project_parameter("bionic"), None);
    }

    /// Facts of patch set 2 of `kind`, after the bot's `previous` verdict
    /// on patch set 1, with `on_it` the bot's vote Gerrit shows on 2.
    fn upload(kind: ChangeKind, previous: Option<i32>, on_it: Option<i32>) -> ChangeFacts {
        let mut f = facts(2);
        f.upload = UploadFacts {
            kind,
            previous_verdict: previous.map(|value| Verdict {
                patch_set: 1,
                value,
            }),
            bot_vote: on_it,
            ..UploadFacts::default()
        };
        f
    }

    #[test]
    fn a_skipped_kind_carries_the_previous_verdict_over() {
        let e = event(MessageType::NewPatchSet, 2);
        let d = decide(
            &e,
            Some(&upload(ChangeKind::NoCodeChange, Some(1), None)),
            &config(),
        );
        assert_eq!(
            d,
            vec![Decision::CarryOver {
                change_number: 123456,
                patch_set: 2,
                from_patch_set: 1,
                label: "Verified".into(),
                value: 1,
                message: "Verified+1 carried over from patch set 1: commit message only \
                          (NO_CODE_CHANGE)."
                    .into(),
            }]
        );
        let d = decide(
            &e,
            Some(&upload(ChangeKind::NoChange, Some(-1), None)),
            &config(),
        );
        let [Decision::CarryOver { value, message, .. }] = d.as_slice() else {
            panic!("{d:?}")
        };
        assert_eq!(*value, -1);
        assert!(message.ends_with("bionicbb:retry"), "{message}");
        // newchange is an automatic build too.
        let e = event(MessageType::NewChange, 2);
        let d = decide(
            &e,
            Some(&upload(ChangeKind::NoChange, Some(1), None)),
            &config(),
        );
        assert!(
            matches!(d.as_slice(), [Decision::CarryOver { .. }]),
            "{d:?}"
        );
    }

    /// The decisions without the cancel of superseded builds a build
    /// brings along (rule 5).
    fn but_cancels(d: &[Decision]) -> Vec<&Decision> {
        d.iter()
            .filter(|d| !matches!(d, Decision::CancelSuperseded { .. }))
            .collect()
    }

    #[test]
    fn kinds_outside_the_list_and_patch_sets_without_a_verdict_build() {
        let e = event(MessageType::NewPatchSet, 2);
        for kind in [
            ChangeKind::Rework,
            ChangeKind::TrivialRebase,
            ChangeKind::MergeFirstParentUpdate,
            ChangeKind::TrivialRebaseWithMessageUpdate,
        ] {
            let d = decide(&e, Some(&upload(kind, Some(1), None)), &config());
            assert!(
                matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
                "{kind}: {d:?}"
            );
        }
        // Never built, still building, or its vote removed: no verdict.
        let d = decide(
            &e,
            Some(&upload(ChangeKind::NoCodeChange, None, None)),
            &config(),
        );
        assert!(
            matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
            "{d:?}"
        );
        // An empty list builds every kind.
        let mut c = config();
        c.policy.skip_kinds.clear();
        let d = decide(&e, Some(&upload(ChangeKind::NoChange, Some(1), None)), &c);
        assert!(
            matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
            "{d:?}"
        );
    }

    #[test]
    fn a_verdict_gerrit_already_shows_is_not_voted_again() {
        let e = event(MessageType::NewPatchSet, 2);
        let copied = upload(ChangeKind::NoCodeChange, Some(1), Some(1));
        let reason = only_skip(&decide(&e, Some(&copied), &config())).to_string();
        assert!(
            reason.contains("already shows the bot's Verified+1"),
            "{reason}"
        );
        assert!(reason.contains("copied from patch set 1"), "{reason}");
        let other = upload(ChangeKind::NoCodeChange, Some(1), Some(-1));
        let reason = only_skip(&decide(&e, Some(&other), &config())).to_string();
        assert!(
            reason.contains("already has the bot's Verified-1"),
            "{reason}"
        );
    }

    #[test]
    fn work_in_progress_and_private_changes_follow_the_flags() {
        let e = event(MessageType::NewPatchSet, 2);
        let mut wip = facts(2);
        wip.upload.work_in_progress = true;
        let mut private = facts(2);
        private.upload.is_private = true;
        // The defaults build both.
        for f in [&wip, &private] {
            let d = decide(&e, Some(f), &config());
            assert!(
                matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
                "{d:?}"
            );
        }
        let mut c = config();
        c.policy.build_wip = false;
        c.policy.build_private = false;
        assert_eq!(
            only_skip(&decide(&e, Some(&wip), &c)),
            "change 123456 is work in progress"
        );
        assert_eq!(
            only_skip(&decide(&e, Some(&private), &c)),
            "change 123456 is private"
        );
        // The closed, superseded and trust checks come first.
        let mut superseded = wip.clone();
        superseded.current_patch_set = 3;
        assert!(only_skip(&decide(&e, Some(&superseded), &c)).contains("superseded"));
    }

    #[test]
    fn commands_build_whatever_the_kind_and_state() {
        let mut e = event(MessageType::Comment, 2);
        e.commands = vec![cmd("retry")];
        let mut f = upload(ChangeKind::NoCodeChange, Some(1), None);
        f.upload.work_in_progress = true;
        f.upload.is_private = true;
        f.comment = comment_by("sam@example.com");
        let mut c = config();
        c.policy.build_wip = false;
        c.policy.build_private = false;
        let d = decide(&e, Some(&f), &c);
        assert!(
            matches!(but_cancels(&d).as_slice(), [Decision::Build { .. }]),
            "{d:?}"
        );
        // The file and committer rules still hold.
        f.files.push("libc/CleanSpec.mk".into());
        assert!(only_skip(&decide(&e, Some(&f), &c)).contains("CleanSpec.mk"));
    }
}
