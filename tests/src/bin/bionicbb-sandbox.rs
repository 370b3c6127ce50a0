//! bionicbb-sandbox: the whole bot on one machine, with no Gerrit, Jenkins
//! or Google account.
//!
//! Starts fakes of Gerrit, Jenkins and Gmail on loopback, runs the real
//! `build-listener` and `gmail-listener` binaries against them with a
//! generated configuration, and walks one change through the story a
//! developer lives: upload, a failing build and its -1, `bionicbb:retry` and
//! a passing build, a second patch set that fails, a human `Verified+1` that
//! drops the bot's rejection, and an unknown command that gets a reply.
//! Then it prints what is on the fake Gerrit and keeps everything running
//! until Ctrl-C (`--exit` stops at the end).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bionicbb_tests::fakes::gerrit::{GerritFake, format_timestamp};
use bionicbb_tests::fakes::gmail::GmailFake;
use bionicbb_tests::fakes::jenkins::{AutoRun, JenkinsFake};
use bionicbb_tests::harness::{self, Daemon, Setup};
use bionicbb_tests::mailgen::{self, MailChange, Person};

const CHANGE_KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
const USAGE: &str = "usage: bionicbb-sandbox [--exit]

Runs build-listener and gmail-listener against local fakes of Gerrit,
Jenkins and Gmail and walks a change through the whole story.
  --exit   stop at the end instead of waiting for Ctrl-C";

struct Sandbox {
    gerrit: GerritFake,
    jenkins: JenkinsFake,
    gmail: GmailFake,
    change: MailChange,
    number: u64,
    bot: u64,
    sam: u64,
}

#[tokio::main]
async fn main() {
    bionicbb_core::tls::install_crypto_provider();
    let mut exit_at_end = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--exit" => exit_at_end = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = run(exit_at_end).await {
        eprintln!("\nsandbox failed: {e}");
        std::process::exit(1);
    }
}

async fn run(exit_at_end: bool) -> Result<(), String> {
    build_daemons()?;
    let state = tempfile::Builder::new()
        .prefix("bionicbb-sandbox-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    say("Starting fakes of Gerrit, Jenkins and Gmail on loopback");
    let sandbox = Sandbox::start().await;
    let port = harness::free_port();
    let secret = "sandbox-secret".to_string();
    sandbox
        .jenkins
        .set_notification_endpoint(format!("http://127.0.0.1:{port}/?token={secret}"));
    let setup = Setup {
        dir: state.path().to_path_buf(),
        gerrit_url: sandbox.gerrit.url().to_string(),
        jenkins_url: sandbox.jenkins.url(),
        gmail_url: sandbox.gmail.base_url(),
        listener_port: port,
        secret,
        extra: String::new(),
    };
    let config = setup.write_config();
    let config_arg = config.display().to_string();
    detail(&format!("Gerrit  {}", sandbox.gerrit.url()));
    detail(&format!("Jenkins {}", sandbox.jenkins.url()));
    detail(&format!("Gmail   {}", sandbox.gmail.base_url()));
    detail(&format!("config  {config_arg}"));

    say("Starting build-listener and gmail-listener (the real binaries)");
    let listener = Daemon::spawn("build-listener", &["--config", &config_arg]);
    listener.wait_for_output("listening", STEP_TIMEOUT).await;
    let poller = Daemon::spawn("gmail-listener", &["--config", &config_arg]);
    poller.wait_for_output("poll finished", STEP_TIMEOUT).await;
    detail(&format!(
        "build-listener on http://127.0.0.1:{port}/, gmail-listener polling every second"
    ));

    let story = sandbox.story().await;
    if let Err(e) = &story {
        eprintln!("\n--- build-listener output ---\n{}", listener.output());
        eprintln!("--- gmail-listener output ---\n{}", poller.output());
        return Err(e.clone());
    }
    sandbox.summary();
    say(&format!("Status page: http://127.0.0.1:{port}/status"));
    detail(&format!(
        "metrics: http://127.0.0.1:{port}/metrics   health: http://127.0.0.1:{port}/healthz"
    ));
    say("Next: run it against your own servers");
    detail("copy config.example.toml to /etc/bionicbb/config.toml and fill in its tables");
    detail("then follow the README's \"Installing with systemd\" section");
    if !exit_at_end {
        say("Everything keeps running; Ctrl-C stops the daemons and the fakes.");
        bionicbb_core::runtime::shutdown_signal().await;
    }
    say("Stopping the daemons");
    let (status, _) = poller.terminate(Duration::from_secs(20)).await;
    detail(&format!("gmail-listener exited: {status}"));
    let (status, _) = listener.terminate(Duration::from_secs(20)).await;
    detail(&format!("build-listener exited: {status}"));
    Ok(())
}

impl Sandbox {
    async fn start() -> Sandbox {
        let gerrit = GerritFake::start().await;
        let bot = gerrit.add_account(
            "Bionic Buildbot",
            harness::BOT_EMAIL,
            harness::BOT_USER,
            harness::BOT_HTTP_PASSWORD,
        );
        let dana = gerrit.add_account("Dana Dev", "dana@example.com", "dana", "dana-pw");
        let sam = gerrit.add_account("Sam Reviewer", "sam@example.com", "sam", "sam-pw");
        let subject = "Fix strtod rounding for denormals";
        let number = gerrit.create_change("platform/bionic", "master", CHANGE_KEY, dana, subject);

        let jenkins = JenkinsFake::start().await;
        jenkins.add_user(harness::JENKINS_USER, harness::JENKINS_TOKEN);
        let params = [
            ("REF", ""),
            ("CHANGE_ID", ""),
            ("PROJECT", ""),
            ("CHANGE_NUMBER", ""),
            ("PATCHSET", ""),
            ("LUNCH_TARGET", "aosp_arm64-eng"),
        ];
        jenkins.add_job("bionic-presubmit", &params);
        jenkins.add_job("clean-bionic-presubmit", &params);
        jenkins.set_auto_run(Some(AutoRun {
            delay: Duration::from_millis(1500),
            outcome: scripted_outcomes(),
        }));

        let gmail = GmailFake::start().await;
        gmail.require_token(Some(harness::GMAIL_TOKEN));
        gmail.add_label("gerrit");

        let host = gerrit.url().host_str().unwrap_or("127.0.0.1").to_string();
        let change = MailChange {
            host,
            project: "platform/bionic".into(),
            branch: "master".into(),
            change_key: CHANGE_KEY.into(),
            number,
            subject: subject.into(),
            owner: Person::new("Dana Dev", "dana@example.com"),
        };
        Sandbox {
            gerrit,
            jenkins,
            gmail,
            change,
            number,
            bot,
            sam,
        }
    }

    async fn story(&self) -> Result<(), String> {
        let dana = self.change.owner.clone();
        let sam = Person::new("Sam Reviewer", "sam@example.com");

        say("1. Dana uploads patch set 1; Gerrit mails the notification to the bot's inbox");
        self.upload(&dana);
        let build = self.wait_for_build(1).await?;
        detail(&format!(
            "Jenkins: bionic-presubmit #{} triggered with {}",
            build.0, build.1
        ));
        detail("the fake Jenkins builds it... and it fails");
        self.wait_for_vote(1, -1).await?;
        detail(&format!("Gerrit: {}", self.last_bot_message()));

        say("2. Sam comments `bionicbb:retry`");
        self.comment(&sam, 1, "", "bionicbb:retry");
        let build = self.wait_for_build(2).await?;
        detail(&format!(
            "Jenkins: bionic-presubmit #{} triggered again",
            build.0
        ));
        self.wait_for_vote(1, 1).await?;
        detail(&format!("Gerrit: {}", self.last_bot_message()));

        say("3. Dana uploads patch set 2, which fails");
        self.upload(&dana);
        let build = self.wait_for_build(3).await?;
        detail(&format!(
            "Jenkins: bionic-presubmit #{} triggered for patch set 2",
            build.0
        ));
        self.wait_for_vote(2, -1).await?;
        detail(&format!("Gerrit: {}", self.last_bot_message()));

        say("4. Sam knows the failure is a flake and votes Verified+1");
        self.gerrit.vote(self.number, 2, self.sam, "Verified", 1);
        self.comment(
            &sam,
            2,
            "Verified+1",
            "The failure is the known flaky pthread test.",
        );
        self.wait_for_vote(2, 0).await?;
        detail("build-listener confirmed the human +1 on Gerrit and dropped the bot's -1");
        detail(&format!("Gerrit: {}", self.last_bot_message()));

        say("5. Sam mistypes a command: `bionicbb:rebuild`");
        let before = self.bot_messages().len();
        self.comment(&sam, 2, "", "bionicbb:rebuild");
        wait_until("the bot's reply", || async {
            self.bot_messages().len() > before
        })
        .await?;
        detail(&format!("Gerrit: {}", self.last_bot_message()));
        Ok(())
    }

    fn upload(&self, uploader: &Person) {
        let ps =
            self.gerrit
                .add_patch_set(self.number, "dana@example.com", &["libc/bionic/strtod.cpp"]);
        let mail = mailgen::patch_set_uploaded(&self.change, ps, uploader, unix_now());
        self.gmail.deliver(&mail, &["gerrit", "INBOX"]);
    }

    fn comment(&self, author: &Person, ps: u32, votes: &str, text: &str) {
        let now = unix_now();
        let mut message = format!("Patch Set {ps}:");
        if !votes.is_empty() {
            message.push(' ');
            message.push_str(votes);
        }
        if !text.is_empty() {
            message.push_str("\n\n");
            message.push_str(text);
        }
        self.gerrit.add_message(
            self.number,
            ps,
            self.sam,
            &message,
            &format_timestamp(now, 0),
        );
        let mail = mailgen::comment(&self.change, ps, author, votes, text, now);
        self.gmail.deliver(&mail, &["gerrit", "INBOX"]);
    }

    async fn wait_for_build(&self, count: usize) -> Result<(u64, String), String> {
        wait_until(&format!("build #{count} to be triggered"), || async {
            self.jenkins.builds().len() >= count
        })
        .await?;
        let build = self
            .jenkins
            .builds()
            .into_iter()
            .nth(count - 1)
            .expect("waited for it");
        let params = ["REF", "CHANGE_NUMBER", "PATCHSET"]
            .iter()
            .filter_map(|k| build.params.get(*k).map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" ");
        Ok((build.number, params))
    }

    async fn wait_for_vote(&self, ps: u32, value: i32) -> Result<(), String> {
        wait_until(
            &format!("the bot's Verified {value:+} on patch set {ps}"),
            || async { self.bot_vote(ps) == value },
        )
        .await
    }

    fn bot_vote(&self, ps: u32) -> i32 {
        self.gerrit
            .votes(self.number, ps)
            .get("Verified")
            .and_then(|v| v.get(&self.bot).copied())
            .unwrap_or(0)
    }

    fn bot_messages(&self) -> Vec<String> {
        self.gerrit
            .messages(self.number)
            .into_iter()
            .filter(|m| m.author == Some(self.bot))
            .map(|m| m.message)
            .collect()
    }

    fn last_bot_message(&self) -> String {
        self.bot_messages()
            .pop()
            .unwrap_or_default()
            .replace('\n', "\n             ")
    }

    /// The name Gerrit shows for an account of the story.
    fn name_of(&self, account: u64) -> &'static str {
        if account == self.bot {
            "Bionic Buildbot"
        } else if account == self.sam {
            "Sam Reviewer"
        } else {
            "Dana Dev"
        }
    }

    /// A patch set's votes as Gerrit shows them: `Verified: +1 by Sam
    /// Reviewer; Code-Review: ...`. A vote set back to 0 is no vote.
    fn votes_line(&self, ps: u32) -> String {
        let labels: Vec<String> = self
            .gerrit
            .votes(self.number, ps)
            .into_iter()
            .filter_map(|(label, by)| {
                let voters: Vec<String> = by
                    .into_iter()
                    .filter(|&(_, value)| value != 0)
                    .map(|(account, value)| format!("{value:+} by {}", self.name_of(account)))
                    .collect();
                (!voters.is_empty()).then(|| format!("{label}: {}", voters.join(", ")))
            })
            .collect();
        if labels.is_empty() {
            "no votes".to_string()
        } else {
            labels.join("; ")
        }
    }

    fn summary(&self) {
        say("What is on the fake Gerrit now");
        for m in self.gerrit.messages(self.number) {
            let who = m.author.map_or("Gerrit", |a| self.name_of(a));
            let date = m.date.get(..19).unwrap_or(&m.date);
            detail(&format!("[{date}] {who}: {}", one_line(&m.message)));
        }
        for ps in 1..=2 {
            detail(&format!("patch set {ps}: {}", self.votes_line(ps)));
        }
        for b in self.jenkins.builds() {
            detail(&format!(
                "Jenkins {} #{}: {} (patch set {})",
                b.job,
                b.number,
                b.result.as_deref().unwrap_or("running"),
                b.params.get("PATCHSET").map(String::as_str).unwrap_or("?")
            ));
        }
        let trashed = self.gmail.in_trash();
        let waiting = self
            .gmail
            .messages_with_label("gerrit")
            .into_iter()
            .filter(|id| !trashed.contains(id))
            .count();
        detail(&format!(
            "Gmail: {} mails handled and trashed, {waiting} waiting",
            trashed.len()
        ));
    }
}

/// The fake Jenkins' script: the first build of patch set 1 fails, its
/// retry passes, every build of patch set 2 fails.
fn scripted_outcomes() -> bionicbb_tests::fakes::jenkins::Outcome {
    let seen: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    Arc::new(move |_job: &str, params: &BTreeMap<String, String>| {
        let ps = params.get("PATCHSET").cloned().unwrap_or_default();
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let n = seen.entry(ps.clone()).or_insert(0);
        *n += 1;
        match (ps.as_str(), *n) {
            ("1", 1) => "FAILURE",
            ("1", _) => "SUCCESS",
            _ => "FAILURE",
        }
        .to_string()
    })
}

/// Builds the two daemons when run through `cargo run`, so the sandbox never
/// runs stale binaries. Tests that run the sandbox set `BIONICBB_NO_BUILD`
/// (they have built everything already).
fn build_daemons() -> Result<(), String> {
    if std::env::var_os("BIONICBB_NO_BUILD").is_some() {
        return Ok(());
    }
    let Some(mut cmd) = harness::nested_cargo("build") else {
        return Ok(());
    };
    cmd.args(["-p", "build-listener", "-p", "gmail-listener"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building the daemons failed: {status}"))
    }
}

async fn wait_until<F, Fut>(what: &str, mut condition: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    while !condition().await {
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "timed out after {STEP_TIMEOUT:?} waiting for {what}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A change message on one line: its non-empty lines joined, cut to 110 characters.
fn one_line(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    match joined.char_indices().nth(110) {
        Some((cut, _)) => format!("{}...", &joined[..cut]),
        None => joined,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn say(text: &str) {
    println!("\n==> {text}");
}

fn detail(text: &str) {
    println!("    {text}");
}
