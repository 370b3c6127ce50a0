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
//!    (a skipped file or directory, then an untrusted committer) does not
//!    apply. An untrusted committer's patch set is built when a trusted
//!    commenter vouched for that very patch set (`bionicbb:ok-to-test`, as
//!    Gerrit's change messages show it: [`ChangeFacts::vouch`]); the
//!    vouch is then recorded ([`Decision::Vouch`]). When the skip policy
//!    does apply, the uploader is told once which rule and how to proceed
//!    ([`Decision::ExplainSkip`], see [`refusal`]) when
//!    `review.explain_skips` is on.
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
//!    developer asked. A vouched patch set passes the committer rule for
//!    commands as for its automatic build; `ok-to-test` itself builds the
//!    patch set as its automatic build would (the same effect: once per
//!    patch set, however many ask), see [`vouch`]. A command that starts a
//!    build or the clean job is
//!    acknowledged ([`Decision::Acknowledge`], right after what it
//!    started) when `review.acknowledge_commands` is on. `why` is answered
//!    whatever the patch set's state ([`Decision::Why`]), with what rule 3
//!    decides now about an automatic build of it.
//! 5. With `jobs.cancel_superseded` on: a build of a patch set (new patch
//!    set, `retry`, a target command) also cancels the bot's builds of the
//!    change's older patch sets; a `merged` or `abandon` mail whose change
//!    Gerrit confirms closed cancels all of the change's builds (instead
//!    of rule 1's skip). Without Gerrit's facts a closing mail stays a skip.

use std::collections::BTreeMap;

use crate::command;
use crate::config::Config;
use crate::event::{ChangeFacts, ChangeStatus, Command, Decision, GerritEvent, MessageType, Vouch};
use crate::messages;

mod refusal;
mod vouch;

use refusal::Refusal;

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
                None => {
                    let mut decisions = target.vouched(facts.number, event.patch_set);
                    decisions.push(target.build_once("new patch set"));
                    decisions
                }
            },
            Err(refusal) => refusal::skipped(refusal, event, facts, config),
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
    if commands.iter().any(|c| c.name == command::WHY) {
        decisions.push(why(event, facts, config));
    }
    let known: Vec<&Command> = commands
        .iter()
        .filter(|c| command::is_known(&c.name, &config.commands))
        .filter(|c| c.name != command::HELP && c.name != command::WHY)
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
    decisions.extend(target.vouched(facts.number, event.patch_set));
    // The commenter as Gerrit names them, for acknowledgements.
    let by = comment.author_name.as_deref().unwrap_or(author);
    for cmd in known {
        let before = decisions.len();
        let reason = format!("bionicbb:{} by {author}", cmd.name);
        match cmd.name.as_str() {
            "retry" => decisions.push(target.build(None, &reason)),
            command::OK_TO_TEST => decisions.push(vouch::ok_to_test(&target, &reason)),
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
        // Whatever the command, what it starts is acknowledged.
        let started = decisions[before..]
            .iter()
            .any(|d| matches!(d, Decision::Build { .. } | Decision::Clean { .. }));
        if started && config.review.acknowledge_commands {
            decisions.push(Decision::Acknowledge {
                change_number: facts.number,
                patch_set: event.patch_set,
                command: cmd.name.clone(),
                by: by.to_string(),
            });
        }
    }
    decisions
}

/// The answer to `bionicbb:why` on the event's patch set: with what the
/// policy decides now about an automatic build of it (rule 3, on the same
/// facts), so the reply names the rule that applies and its file or
/// e-mail. Only what is decided, not what it would post: an explained
/// skip is an effect of the upload, not part of the answer.
fn why(event: &GerritEvent, facts: &ChangeFacts, config: &Config) -> Decision {
    let upload = GerritEvent {
        message_type: MessageType::NewPatchSet,
        commands: Vec::new(),
        votes: Vec::new(),
        ..event.clone()
    };
    let mut automatic = decide_event(&upload, Some(facts), config);
    automatic.retain(|d| !matches!(d, Decision::ExplainSkip { .. }));
    Decision::Why {
        change_number: facts.number,
        patch_set: event.patch_set,
        automatic,
    }
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

/// A patch set that may be built: its job and parameters, and the vouch
/// that lets an untrusted committer's patch set through.
struct BuildTarget {
    job: String,
    params: BTreeMap<String, String>,
    /// `Some` only when the committer is untrusted and this vouch is why
    /// the patch set may be built.
    vouch: Option<Vouch>,
}

impl BuildTarget {
    /// A build of the patch set once per command that asks (a comment's
    /// identity narrows its key).
    fn build(&self, lunch_target: Option<&str>, reason: &str) -> Decision {
        let mut params = self.params.clone();
        if let Some(lunch) = lunch_target {
            params.insert("LUNCH_TARGET".to_string(), lunch.to_string());
        }
        Decision::Build {
            job: self.job.clone(),
            params,
            reason: reason.to_string(),
            per_patch_set: false,
        }
    }

    /// The build of the patch set with the job's own parameters, once
    /// per patch set whoever asks: its automatic build.
    fn build_once(&self, reason: &str) -> Decision {
        Decision::Build {
            job: self.job.clone(),
            params: self.params.clone(),
            reason: reason.to_string(),
            per_patch_set: true,
        }
    }
}

/// The job and parameters for the event's patch set, or why it must not be built.
fn buildable<'c>(
    event: &GerritEvent,
    facts: &ChangeFacts,
    config: &'c Config,
) -> Result<BuildTarget, Refusal<'c>> {
    match facts.status {
        ChangeStatus::New => {}
        status => {
            return Err(Refusal::Closed {
                number: facts.number,
                status,
            });
        }
    }
    if event.patch_set < facts.current_patch_set {
        return Err(Refusal::Superseded {
            number: facts.number,
            patch_set: event.patch_set,
            current: facts.current_patch_set,
        });
    }
    // The file rules first: no vouch lifts them, so they are what the
    // uploader must hear about.
    for file in &facts.files {
        if let Some(rule) = config.policy.skip_rule(file) {
            return Err(Refusal::SkippedPath {
                file: file.clone(),
                rule,
            });
        }
    }
    let vouch = match facts.committer_email.as_deref() {
        Some(email) if config.policy.committer_trusted(email) => None,
        Some(email) => match &facts.vouch {
            Some(vouch) => Some(vouch.clone()),
            None => return Err(Refusal::UntrustedCommitter(email.to_string())),
        },
        None => return Err(Refusal::NoCommitter),
    };
    let job = config
        .jobs
        .job_for_project(&facts.project)
        .ok_or_else(|| Refusal::NoJob(facts.project.clone()))?;
    let project_param = project_parameter(&facts.project)
        .ok_or_else(|| Refusal::NoProjectParameter(facts.project.clone()))?;
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
        vouch,
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
mod tests;
