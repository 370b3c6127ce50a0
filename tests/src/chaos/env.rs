//! The chaos test's world: the three fakes seeded with the bot's accounts
//! and jobs, the oracle's bookkeeping, the random fault plans of every
//! server, and the daemons' configuration (short timeouts and polls).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::fakes::gerrit::GerritFake;
use crate::fakes::gmail::{GmailFake, RelabelHook, google_error};
use crate::fakes::jenkins::{JenkinsFake, NotifyFault};
use crate::fault::{Dice, Fault};
use crate::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, CANCEL_OFF, GMAIL_TOKEN, JENKINS_TOKEN, JENKINS_USER,
    Setup, free_port,
};

pub const VERIFY_JOB: &str = "bionic-presubmit";
pub const CLEAN_JOB: &str = "clean-bionic-presubmit";
pub const LABEL: &str = "gerrit";
pub const QUARANTINE: &str = "gerrit-unparsed";
const SECRET: &str = "chaos-listener-secret";
/// The daemons' timeout on every call (the slow faults exceed it).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// A build the oracle counts: job, change number, patch set.
pub type BuildKey = (String, u64, u32);

/// What the scenario says must happen, written as the driver acts and
/// never read from the bot.
#[derive(Debug, Default)]
pub struct Oracle {
    /// How many builds of each key must reach Jenkins.
    pub builds: BTreeMap<BuildKey, u32>,
    /// How many of those may be missing: builds of a patch set that was
    /// superseded before they reached Jenkins (see
    /// [`Oracle::superseded`]).
    pub optional: BTreeMap<BuildKey, u32>,
    /// The bot's final `Verified` vote on each patch set (0: none).
    pub votes: BTreeMap<(u64, u32), i32>,
    /// For each mail (by the hash of its bytes): the builds (with their
    /// count so far) that must be in Jenkins before it may be trashed.
    pub mails: HashMap<u64, Vec<(BuildKey, u32)>>,
    /// Gmail ids already checked at their first trash.
    pub trashed: BTreeSet<String>,
    /// Mails trashed before their work was done.
    pub early_trash: Vec<String>,
    /// Mails delivered.
    pub events: usize,
    /// Steps whose change did not settle in time (for the diagnosis).
    pub unsettled: Vec<String>,
}

impl Oracle {
    /// Patch set `key.2` is about to be superseded while `got` of its
    /// expected builds are in Jenkins. The others depend on timing, not
    /// on correctness: a build the bot had not triggered yet (its mail not
    /// read, or its trigger lost and not yet found) must not be triggered
    /// once a newer patch set exists, and one whose lost trigger did land
    /// is found and owned. So each missing build may happen or not, and
    /// the mails that asked for them may leave the label without them.
    /// Returns how many became optional.
    pub fn superseded(&mut self, key: &BuildKey, got: u32) -> u32 {
        let want = self.builds.get(key).copied().unwrap_or(0);
        let optional = self.optional.get(key).copied().unwrap_or(0);
        let missing = want.saturating_sub(optional).saturating_sub(got);
        if missing == 0 {
            return 0;
        }
        *self.optional.entry(key.clone()).or_default() += missing;
        for needs in self.mails.values_mut() {
            for (k, count) in needs.iter_mut() {
                if k == key {
                    *count = (*count).min(got);
                }
            }
        }
        missing
    }
}

pub fn mail_hash(raw: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    raw.hash(&mut h);
    h.finish()
}

pub struct Env {
    pub gerrit: GerritFake,
    pub jenkins: JenkinsFake,
    pub gmail: GmailFake,
    pub bot: u64,
    pub dana: u64,
    pub sam: u64,
    pub mallory: u64,
    pub host: String,
    pub oracle: Mutex<Oracle>,
    /// Patch sets whose verify builds the fake Jenkins must not finish yet.
    pub holds: Mutex<BTreeSet<(u64, u32)>>,
    pub config: PathBuf,
    pub listener_port: u16,
    nonce: AtomicU64,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn start() -> Arc<Env> {
        bionicbb_core::tls::install_crypto_provider();
        let gerrit = GerritFake::start().await;
        let jenkins = JenkinsFake::start().await;
        let gmail = GmailFake::start().await;
        let bot = gerrit.add_account("Bionic Buildbot", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
        let dana = gerrit.add_account("Dana Dev", "dana@example.com", "dana", "pw-dana");
        let sam = gerrit.add_account("Sam Reviewer", "sam@example.com", "sam", "pw-sam");
        let mallory = gerrit.add_account("Mallory", "mallory@evil.org", "mallory", "pw-m");
        jenkins.add_user(JENKINS_USER, JENKINS_TOKEN);
        let params = [
            ("REF", ""),
            ("CHANGE_ID", ""),
            ("PROJECT", ""),
            ("CHANGE_NUMBER", ""),
            ("PATCHSET", ""),
        ];
        let mut verify = params.to_vec();
        verify.push(("LUNCH_TARGET", "aosp_arm64-eng"));
        jenkins.add_job(VERIFY_JOB, &verify);
        jenkins.add_job(CLEAN_JOB, &params);
        // Every trigger that reaches Jenkins is a build: nothing hides a duplicate.
        jenkins.set_coalesce(false);
        gmail.require_token(Some(GMAIL_TOKEN));
        gmail.add_label(LABEL);
        let listener_port = free_port();
        jenkins
            .set_notification_endpoint(format!("http://127.0.0.1:{listener_port}/?token={SECRET}"));
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = Setup {
            dir: dir.path().to_path_buf(),
            gerrit_url: gerrit.url().to_string(),
            jenkins_url: jenkins.url(),
            gmail_url: gmail.base_url(),
            listener_port,
            secret: SECRET.to_string(),
            extra: String::new(),
        }
        .write_config();
        // Short timeouts: a slow fault costs a second, not thirty.
        // Cancelling superseded builds stays on (the default): its path
        // runs under the faults too.
        let text = std::fs::read_to_string(&config)
            .expect("read config")
            .replacen(CANCEL_OFF, "", 1);
        let timeout = format!("timeout = \"{}ms\"", CLIENT_TIMEOUT.as_millis());
        // build-listener asks Jenkins about a build whose notifications were
        // lost soon after it was triggered, not 2 minutes later: a step
        // settles within seconds.
        let text = text.replace("timeout = \"5s\"", &timeout).replacen(
            "\n[jobs]\n",
            "catch_up_interval = \"1s\"\ncatch_up_after = \"2s\"\n\n[jobs]\n",
            1,
        );
        std::fs::write(&config, text).expect("config");
        let host = gerrit.url().host_str().unwrap_or("127.0.0.1").to_string();
        let env = Arc::new(Env {
            gerrit,
            jenkins,
            gmail,
            bot,
            dana,
            sam,
            mallory,
            host,
            oracle: Mutex::default(),
            holds: Mutex::default(),
            config,
            listener_port,
            nonce: AtomicU64::new(1),
            dir,
        });
        let weak = Arc::downgrade(&env);
        env.gmail
            .on_relabel(Some(RelabelHook(Arc::new(move |id, labels, raw| {
                check_trash(&weak, id, labels, raw)
            }))));
        env
    }

    pub fn oracle(&self) -> MutexGuard<'_, Oracle> {
        self.oracle.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn nonce(&self) -> u64 {
        self.nonce.fetch_add(1, Ordering::Relaxed)
    }

    pub fn config_arg(&self) -> String {
        self.config.display().to_string()
    }

    /// Every trigger that reached Jenkins (waiting or built), by key.
    pub fn triggered(&self) -> BTreeMap<BuildKey, u32> {
        let mut counts = BTreeMap::new();
        let queued = self.jenkins.queue().into_iter().map(|q| (q.job, q.params));
        let built = self.jenkins.builds().into_iter().map(|b| (b.job, b.params));
        // An item the bot cancelled as superseded was triggered all the same.
        let cancelled = self
            .jenkins
            .cancelled()
            .into_iter()
            .map(|q| (q.job, q.params));
        for (job, params) in queued.chain(built).chain(cancelled) {
            *counts.entry(build_key(&job, &params)).or_default() += 1;
        }
        counts
    }

    /// Turns the random faults of every server on, seeded from `seed`.
    pub fn start_faults(&self, seed: u64, rate: f64) {
        self.gerrit
            .faults()
            .set_random(Some(Dice::new(seed ^ 0x6e, rate, gerrit_menu())));
        self.jenkins
            .faults()
            .set_random(Some(Dice::new(seed ^ 0x1e, rate, jenkins_menu())));
        self.gmail
            .faults()
            .set_random(Some(Dice::new(seed ^ 0x9a, rate, gmail_menu())));
        self.jenkins
            .set_notify_faults(Some(Dice::new(seed ^ 0x40, rate, notify_menu())));
    }

    pub fn stop_faults(&self) {
        self.gerrit.faults().set_random_enabled(false);
        self.jenkins.faults().set_random_enabled(false);
        self.gmail.faults().set_random_enabled(false);
        self.jenkins.set_notify_faults_enabled(false);
    }

    /// Faults injected so far: server → kind → count.
    pub fn fault_counts(&self) -> BTreeMap<&'static str, BTreeMap<&'static str, u64>> {
        BTreeMap::from([
            ("gerrit", self.gerrit.faults().random_counts()),
            ("jenkins", self.jenkins.faults().random_counts()),
            ("gmail", self.gmail.faults().random_counts()),
            ("jenkins→build-listener", self.jenkins.notify_fault_counts()),
        ])
    }
}

/// The key of a build from its job and parameters.
pub fn build_key(job: &str, params: &BTreeMap<String, String>) -> BuildKey {
    let number = params
        .get("CHANGE_NUMBER")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let ps = params
        .get("PATCHSET")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (job.to_string(), number, ps)
}

/// At a mail's first trash: every build it asked for must be in Jenkins.
fn check_trash(env: &Weak<Env>, id: &str, labels: &[String], raw: &[u8]) {
    let Some(env) = env.upgrade() else { return };
    let out = labels.iter().any(|l| l == "TRASH") || !labels.iter().any(|l| l == LABEL);
    if !out {
        return;
    }
    let need = {
        let mut oracle = env.oracle();
        if !oracle.trashed.insert(id.to_string()) {
            return;
        }
        oracle
            .mails
            .get(&mail_hash(raw))
            .cloned()
            .unwrap_or_default()
    };
    if need.is_empty() {
        return;
    }
    let have = env.triggered();
    for (key, count) in need {
        let got = have.get(&key).copied().unwrap_or(0);
        if got < count {
            env.oracle().early_trash.push(format!(
                "mail {id} left the label with {got} of {count} builds of {key:?} in Jenkins"
            ));
        }
    }
}

fn gerrit_menu() -> Vec<(&'static str, u32, Fault)> {
    let slow = CLIENT_TIMEOUT + Duration::from_millis(500);
    vec![
        ("500", 3, Fault::status(500, "Internal server error")),
        ("503", 2, Fault::status(503, "Service Unavailable")),
        ("429", 1, Fault::status(429, "Too Many Requests")),
        (
            "500 after acting",
            2,
            Fault::status(500, "Internal server error").after(),
        ),
        ("delay past the timeout", 1, Fault::Delay(slow)),
        ("lands after the client gave up", 1, Fault::Late(slow)),
        ("reset before acting", 2, Fault::Drop),
        ("reset after acting", 2, Fault::DropAfter),
    ]
}

fn jenkins_menu() -> Vec<(&'static str, u32, Fault)> {
    let slow = CLIENT_TIMEOUT + Duration::from_millis(500);
    let gateway = Fault::Status {
        status: 502,
        content_type: "text/html",
        body: "<html><head><title>502 Bad Gateway</title></head></html>".into(),
    };
    vec![
        (
            "500",
            3,
            Fault::status(500, "java.lang.NullPointerException"),
        ),
        (
            "503",
            2,
            Fault::status(503, "Jenkins is getting ready to work"),
        ),
        ("429", 1, Fault::status(429, "Too Many Requests")),
        ("502 after acting", 2, gateway.after()),
        ("delay past the timeout", 1, Fault::Delay(slow)),
        ("lands after the client gave up", 1, Fault::Late(slow)),
        ("reset before acting", 2, Fault::Drop),
        ("reset after acting", 2, Fault::DropAfter),
    ]
}

fn gmail_menu() -> Vec<(&'static str, u32, Fault)> {
    let slow = CLIENT_TIMEOUT + Duration::from_millis(500);
    let error = |status, code, domain, reason, message| {
        Fault::json(status, google_error(status, code, domain, reason, message))
    };
    vec![
        (
            "500 backendError",
            2,
            error(500, "INTERNAL", "global", "backendError", "Backend Error"),
        ),
        (
            "503",
            1,
            error(
                503,
                "UNAVAILABLE",
                "global",
                "backendError",
                "The service is currently unavailable.",
            ),
        ),
        (
            "429 rateLimitExceeded",
            2,
            error(
                429,
                "RESOURCE_EXHAUSTED",
                "usageLimits",
                "rateLimitExceeded",
                "Too many concurrent requests for user",
            ),
        ),
        (
            "403 rateLimitExceeded",
            2,
            error(
                403,
                "PERMISSION_DENIED",
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ),
        ),
        (
            "500 after acting",
            2,
            error(500, "INTERNAL", "global", "backendError", "Backend Error").after(),
        ),
        ("delay past the timeout", 1, Fault::Delay(slow)),
        ("lands after the client gave up", 1, Fault::Late(slow)),
        ("reset before acting", 2, Fault::Drop),
        ("reset after acting", 2, Fault::DropAfter),
    ]
}

fn notify_menu() -> Vec<(&'static str, u32, NotifyFault)> {
    vec![
        ("lost", 2, NotifyFault::Lost),
        ("sent twice", 2, NotifyFault::Twice),
        ("delayed", 1, NotifyFault::Delay(Duration::from_millis(700))),
    ]
}
