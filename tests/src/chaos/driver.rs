//! Plays each change's story on the fakes, as Gerrit and its users would,
//! and writes down in the oracle what each step must cause. A change's next
//! step waits until the previous one settled (its mails left the label, its
//! builds finished and were reviewed), so that what a step must cause never
//! depends on how fast the bot was; changes run concurrently.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::env::{BuildKey, CLEAN_JOB, Env, LABEL, VERIFY_JOB, mail_hash};
use super::mail2x;
use super::scenario::{Format, Step, steps, verify_result, vote_for};
use crate::fakes::gerrit::format_timestamp;
use crate::mailgen::{self, MailChange, Person};

/// How long a step may take to settle before the story goes on anyway.
const SETTLE: Duration = Duration::from_secs(120);
/// How long a step waits for the bot's vote once nothing else is pending
/// (a dropped rejection goes through build-listener's outbox).
const VOTE_GRACE: Duration = Duration::from_secs(20);
const FILES: &[&str] = &["libc/bionic/strtod.cpp"];

struct Story {
    index: usize,
    mail: MailChange,
    /// The current patch set.
    ps: u32,
    /// Gmail ids of every mail delivered for this change.
    delivered: Vec<String>,
    last_raw: Option<Vec<u8>>,
    /// When the last comment was made (comments are 2 s apart at least:
    /// Gerrit 3.x mails name a comment by its date, to the second).
    last_comment: i64,
}

/// Plays the story of change `index`.
pub async fn drive(env: Arc<Env>, index: usize) {
    let key = format!("I{:040x}", 0xc4a0_5000_0000u64 + index as u64);
    let subject = format!("Chaos change {index}");
    let number = env
        .gerrit
        .create_change("platform/bionic", "master", &key, env.dana, &subject);
    let mut story = Story {
        index,
        mail: MailChange {
            host: env.host.clone(),
            project: "platform/bionic".into(),
            branch: "master".into(),
            change_key: key,
            number,
            subject,
            owner: Person::new("Dana Dev", "dana@example.com"),
        },
        ps: 0,
        delivered: Vec::new(),
        last_raw: None,
        last_comment: 0,
    };
    for step in steps(index) {
        play(&env, &mut story, step).await;
        settle(&env, &story, step).await;
    }
}

async fn play(env: &Env, story: &mut Story, step: Step) {
    let number = story.mail.number;
    match step {
        Step::Upload(f) => {
            let raw = upload(env, story, f);
            let key = expect_verify(env, number, story.ps, true);
            deliver(env, story, raw, vec![key]);
        }
        Step::Supersede(f) => {
            let first = upload(env, story, f);
            let second = upload(env, story, f);
            // The first mail names a superseded patch set: nothing to do.
            deliver(env, story, first, Vec::new());
            let key = expect_verify(env, number, story.ps, true);
            deliver(env, story, second, vec![key]);
        }
        Step::SupersedeWhileBuilding(f) => {
            let raw = upload(env, story, f);
            let held = story.ps;
            env.holds.lock().unwrap().insert((number, held));
            // Stopped by the bot once the next patch set is built (one
            // line), or its result comes when it is stale: no vote.
            let key = expect_verify(env, number, held, false);
            deliver(env, story, raw, vec![key.clone()]);
            // Give the bot time to start it, so that the next upload finds
            // it running. If it has not started by then, the next upload
            // takes its expectation as optional (`Oracle::superseded`):
            // once the newer patch set exists the bot rightly builds
            // nothing for this one.
            wait_until(SETTLE, || {
                env.jenkins
                    .builds()
                    .iter()
                    .any(|b| super::env::build_key(&b.job, &b.params) == key.0)
            })
            .await;
            let raw = upload(env, story, f);
            let key = expect_verify(env, number, story.ps, true);
            deliver(env, story, raw, vec![key]);
            // The held build runs until the bot has handled the newer patch
            // set's mail: the bot stops it then (cancelling is on); when the
            // stop failed, it finishes once let go.
            let id = story.delivered.last().cloned().unwrap_or_default();
            wait_until(SETTLE, || {
                let labels = env.gmail.message_labels(&id);
                !labels.iter().any(|l| l == LABEL) || labels.iter().any(|l| l == "TRASH")
            })
            .await;
            env.holds.lock().unwrap().remove(&(number, held));
        }
        Step::Retry(f) => {
            let raw = comment(env, story, f, env.sam, "", "bionicbb:retry").await;
            let key = expect_verify(env, number, story.ps, true);
            deliver(env, story, raw, vec![key]);
        }
        Step::Clean(f) => {
            let raw = comment(env, story, f, env.sam, "", "bionicbb:clean").await;
            let key = {
                let mut oracle = env.oracle();
                let key = (CLEAN_JOB.to_string(), number, story.ps);
                let count = oracle.builds.entry(key.clone()).or_default();
                *count += 1;
                (key, *count)
            };
            deliver(env, story, raw, vec![key]);
        }
        Step::Untrusted(f) => {
            let raw = comment(env, story, f, env.mallory, "", "bionicbb:retry").await;
            deliver(env, story, raw, Vec::new());
        }
        Step::HumanVerified(f) => {
            env.gerrit.vote(number, story.ps, env.sam, "Verified", 1);
            let raw = comment(env, story, f, env.sam, "Verified+1", "").await;
            {
                let mut oracle = env.oracle();
                let vote = oracle.votes.entry((number, story.ps)).or_default();
                if *vote < 0 {
                    *vote = 0;
                }
            }
            deliver(env, story, raw, Vec::new());
        }
        Step::Duplicate => {
            if let Some(raw) = story.last_raw.clone() {
                // Same bytes: the expectations registered for it still hold.
                let id = env.gmail.deliver(&raw, &[LABEL, "INBOX"]);
                story.delivered.push(id);
                env.oracle().events += 1;
            }
        }
    }
}

/// Uploads the next patch set; its mail.
fn upload(env: &Env, story: &mut Story, format: Format) -> Vec<u8> {
    let number = story.mail.number;
    if story.ps > 0 {
        let key = (VERIFY_JOB.to_string(), number, story.ps);
        let got = env.triggered().get(&key).copied().unwrap_or(0);
        let missing = env.oracle().superseded(&key, got);
        if missing > 0 {
            env.oracle().unsettled.push(format!(
                "change {number}: {missing} build(s) of patch set {} had not reached Jenkins \
                 when patch set {} was uploaded; they may or may not happen",
                story.ps,
                story.ps + 1
            ));
        }
    }
    story.ps = env.gerrit.add_patch_set(number, "dana@example.com", FILES);
    let now = unix_now();
    match format {
        Format::V3 => mailgen::patch_set_uploaded(&story.mail, story.ps, &story.mail.owner, now),
        Format::V2 => mail2x::patch_set_uploaded(
            &story.mail,
            story.ps,
            &env.gerrit.sha(number, story.ps),
            now,
            env.nonce(),
        ),
    }
}

/// One more verify build of `ps`; with `votes`, its result is the bot's
/// vote on `ps`, else (built while superseded) there is none.
fn expect_verify(env: &Env, number: u64, ps: u32, votes: bool) -> (BuildKey, u32) {
    let mut oracle = env.oracle();
    let key = (VERIFY_JOB.to_string(), number, ps);
    let count = oracle.builds.entry(key.clone()).or_default();
    *count += 1;
    let count = *count;
    let vote = if votes {
        vote_for(verify_result(number, ps, count - 1))
    } else {
        0
    };
    oracle.votes.insert((number, ps), vote);
    (key, count)
}

/// A comment by `author` on the current patch set, on Gerrit and mailed.
async fn comment(
    env: &Env,
    story: &mut Story,
    format: Format,
    author: u64,
    votes: &str,
    text: &str,
) -> Vec<u8> {
    let mut now = unix_now();
    while now < story.last_comment + 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = unix_now();
    }
    story.last_comment = now;
    let number = story.mail.number;
    let ps = story.ps;
    let date = format_timestamp(now, 0);
    let person = if author == env.sam {
        Person::new("Sam Reviewer", "sam@example.com")
    } else {
        Person::new("Mallory", "mallory@evil.org")
    };
    let mut head = format!("Patch Set {ps}:");
    if !votes.is_empty() {
        head.push(' ');
        head.push_str(votes);
    }
    match format {
        Format::V3 => {
            // Gerrit 3.3+: the reply box's text is a patchset-level comment.
            let message = if text.is_empty() {
                head
            } else {
                env.gerrit
                    .add_comment(number, ps, author, "/PATCHSET_LEVEL", None, text, &date);
                format!("{head}\n\n(1 comment)")
            };
            env.gerrit.add_message(number, ps, author, &message, &date);
            mailgen::comment(&story.mail, ps, &person, votes, text, now)
        }
        Format::V2 => {
            let message = if text.is_empty() {
                head
            } else {
                format!("{head}\n\n{text}")
            };
            env.gerrit.add_message(number, ps, author, &message, &date);
            let commit = env.gerrit.sha(number, ps);
            mail2x::comment(
                &story.mail,
                ps,
                &person,
                votes,
                text,
                &commit,
                now,
                env.nonce(),
            )
        }
    }
}

/// Registers what the mail must cause before it may be trashed, then
/// delivers it.
fn deliver(env: &Env, story: &mut Story, raw: Vec<u8>, needs: Vec<(BuildKey, u32)>) {
    {
        let mut oracle = env.oracle();
        oracle.mails.insert(mail_hash(&raw), needs);
        oracle.events += 1;
    }
    let id = env.gmail.deliver(&raw, &[LABEL, "INBOX"]);
    story.delivered.push(id);
    story.last_raw = Some(raw);
}

/// Waits until the change is quiet: its mails out of the label, no build
/// waiting or running (but held ones), every finished build reviewed, and
/// the bot's vote on the current patch set as the oracle says.
async fn settle(env: &Env, story: &Story, step: Step) {
    let number = story.mail.number;
    // Once nothing is pending but the vote, a wrong vote stays wrong.
    let mut votes_only_since: Option<tokio::time::Instant> = None;
    let settled = wait_until(SETTLE, || match quiet(env, story) {
        Quiet::Yes => true,
        Quiet::No => {
            votes_only_since = None;
            false
        }
        Quiet::ButTheVote => {
            votes_only_since
                .get_or_insert_with(tokio::time::Instant::now)
                .elapsed()
                >= VOTE_GRACE
        }
    })
    .await;
    if !settled {
        env.oracle().unsettled.push(format!(
            "change {number} (story {}): {step:?} did not settle within {SETTLE:?}",
            story.index
        ));
    }
}

enum Quiet {
    Yes,
    No,
    /// Everything is done but the bot's vote is not the expected one.
    ButTheVote,
}

fn quiet(env: &Env, story: &Story) -> Quiet {
    let number = story.mail.number;
    let in_label = story.delivered.iter().any(|id| {
        let labels = env.gmail.message_labels(id);
        labels.iter().any(|l| l == LABEL) && !labels.iter().any(|l| l == "TRASH")
    });
    if in_label {
        return Quiet::No;
    }
    let ours = |params: &std::collections::BTreeMap<String, String>| {
        params.get("CHANGE_NUMBER").map(String::as_str) == Some(&number.to_string())
    };
    if env.jenkins.queue().iter().any(|q| ours(&q.params)) {
        return Quiet::No;
    }
    let builds: Vec<_> = env
        .jenkins
        .builds()
        .into_iter()
        .filter(|b| ours(&b.params))
        .collect();
    if builds.iter().any(|b| b.result.is_none()) {
        return Quiet::No;
    }
    let bot_texts: Vec<String> = env
        .gerrit
        .messages(number)
        .into_iter()
        .filter(|m| m.author == Some(env.bot))
        .map(|m| m.message)
        .collect();
    let cleans = bot_texts
        .iter()
        .filter(|t| t.contains("out/ directory removed"))
        .count();
    // A build none of whose completion documents reached build-listener
    // (the plugin does not retry) will not be reviewed: no use waiting.
    let unheard = unheard_builds(env);
    let reviewed = builds.iter().all(|b| {
        b.job != VERIFY_JOB
            || unheard.contains(&(b.job.clone(), b.number))
            || bot_texts.iter().any(|t| {
                t.contains(&format!("{VERIFY_JOB} #{} checkbuild", b.number))
                    || t.contains(&super::check::stopped_line(b.number))
            })
    });
    let clean_builds = builds
        .iter()
        .filter(|b| b.job == CLEAN_JOB && !unheard.contains(&(b.job.clone(), b.number)))
        .count();
    if !reviewed || cleans < clean_builds {
        return Quiet::No;
    }
    if builds
        .iter()
        .any(|b| b.job == VERIFY_JOB && unheard.contains(&(b.job.clone(), b.number)))
    {
        return Quiet::Yes;
    }
    let expected = env
        .oracle()
        .votes
        .get(&(number, story.ps))
        .copied()
        .unwrap_or(0);
    if bot_vote(env, number, story.ps) == expected {
        Quiet::Yes
    } else {
        Quiet::ButTheVote
    }
}

/// Builds (job, number) whose COMPLETED and FINALIZED documents were both
/// sent and neither was accepted by build-listener.
pub fn unheard_builds(env: &Env) -> std::collections::BTreeSet<(String, u64)> {
    let mut sent: std::collections::BTreeMap<(String, u64), (u32, bool)> = Default::default();
    for d in env.jenkins.deliveries() {
        if !(d.phase == "COMPLETED" || d.phase == "FINALIZED") {
            continue;
        }
        let job = d
            .job_url
            .trim_start_matches("job/")
            .trim_end_matches('/')
            .to_string();
        let entry = sent.entry((job, d.number)).or_default();
        entry.0 += 1;
        entry.1 |= d.outcome.as_ref().is_ok_and(|s| (200..300).contains(s));
    }
    sent.into_iter()
        .filter(|(_, (tries, heard))| *tries >= 2 && !heard)
        .map(|(number, _)| number)
        .collect()
}

/// The bot's `Verified` vote on a patch set (0: none).
pub fn bot_vote(env: &Env, number: u64, ps: u32) -> i32 {
    env.gerrit
        .votes(number, ps)
        .get("Verified")
        .and_then(|by| by.get(&env.bot).copied())
        .unwrap_or(0)
}

/// Polls `condition` every 200 ms; false if it still fails after `limit`.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
