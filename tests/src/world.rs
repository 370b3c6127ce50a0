//! The world the gmail-listener end-to-end tests run in: fakes of Gerrit,
//! Jenkins and Gmail seeded with the bot's accounts and jobs, a stand-in for
//! build-listener's `/drop-rejection`, and a configuration that points the
//! real `gmail-listener` binary at them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use bionicbb_core::config::Config;
use bionicbb_core::ledger::{Ledger, metric_names as names};
use serde_json::Value;

use crate::fakes::gerrit::GerritFake;
use crate::fakes::gmail::GmailFake;
use crate::fakes::jenkins::JenkinsFake;
use crate::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, GMAIL_TOKEN, JENKINS_TOKEN, JENKINS_USER,
    RECONCILE_OFF, Setup,
};

/// The Change-Id of the sample change (the fixtures' change).
pub const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
/// build-listener's shared secret in the generated configuration.
pub const SECRET: &str = "listener-shared-secret";
/// How long one `gmail-listener` run may take.
pub const RUN: Duration = Duration::from_secs(40);

/// The log filter that shows gmail-listener's reconcile pass in debug lines
/// (the events it found already handled or skipped, with their decisions),
/// for [`World::once_ok_logging`].
pub const RECONCILE_DEBUG: &str = "info,gmail_listener::reconcile=debug";

/// One `/drop-rejection` request the stub received: (authorized, body).
pub type DropRequests = Arc<Mutex<Vec<(bool, Value)>>>;

pub struct World {
    pub gerrit: GerritFake,
    pub jenkins: JenkinsFake,
    pub gmail: GmailFake,
    pub drops: DropRequests,
    pub config: PathBuf,
    pub bot: u64,
    pub sam: u64,
    pub stranger: u64,
    pub dana: u64,
    _dir: tempfile::TempDir,
}

/// Starts `/drop-rejection` on a free port: it records each request and
/// answers 202 with the right Bearer secret, 401 otherwise.
async fn drop_rejection_stub() -> (u16, DropRequests) {
    let seen: DropRequests = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/drop-rejection",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some(&format!("Bearer {SECRET}"));
                let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
                log.lock().unwrap().push((authorized, body));
                if authorized {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(crate::fault::no_delay(listener), app).await;
    });
    (port, seen)
}

impl World {
    pub async fn new() -> World {
        World::with_extra("").await
    }

    /// A world whose configuration ends with `extra` (more TOML tables).
    pub async fn with_extra(extra: &str) -> World {
        World::configured("", extra).await
    }

    /// A world where gmail-listener also reconciles with Gerrit, with
    /// these more keys of the `[gerrit]` table (`reconcile_interval`
    /// defaults to the daemon's own default there).
    pub async fn reconciling(gerrit_keys: &str) -> World {
        World::reconciling_with(gerrit_keys, "").await
    }

    /// [`World::reconciling`] whose configuration ends with `extra` (more
    /// keys of its last table, `[policy]`, or more tables).
    pub async fn reconciling_with(gerrit_keys: &str, extra: &str) -> World {
        let mut keys = if gerrit_keys.contains("reconcile_interval") {
            gerrit_keys.to_string()
        } else {
            format!("reconcile_interval = \"10m\"\n{gerrit_keys}")
        };
        if !keys.ends_with('\n') {
            keys.push('\n');
        }
        World::configured(&keys, extra).await
    }

    /// A world with more `[gerrit]` keys and more TOML tables.
    async fn configured(gerrit_extra: &str, extra: &str) -> World {
        bionicbb_core::tls::install_crypto_provider();
        let gerrit = GerritFake::start().await;
        let jenkins = JenkinsFake::start().await;
        let gmail = GmailFake::start().await;
        let bot = gerrit.add_account("Bionic Buildbot", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
        let dana = gerrit.add_account("Dana Dev", "dana@example.com", "dana", "pw-dana");
        let sam = gerrit.add_account("Sam Reviewer", "sam@example.com", "sam", "pw-sam");
        let stranger = gerrit.add_account("Mallory", "stranger@evil.org", "mallory", "pw-m");
        jenkins.add_user(JENKINS_USER, JENKINS_TOKEN);
        jenkins.add_job(
            "bionic-presubmit",
            &[
                ("REF", ""),
                ("CHANGE_ID", ""),
                ("PROJECT", ""),
                ("CHANGE_NUMBER", ""),
                ("PATCHSET", ""),
                ("LUNCH_TARGET", "aosp_arm64-eng"),
            ],
        );
        jenkins.add_job(
            "clean-bionic-presubmit",
            &[
                ("REF", ""),
                ("CHANGE_ID", ""),
                ("PROJECT", ""),
                ("CHANGE_NUMBER", ""),
                ("PATCHSET", ""),
            ],
        );
        gmail.require_token(Some(GMAIL_TOKEN));
        gmail.add_label("gerrit");
        let (port, drops) = drop_rejection_stub().await;
        let dir = tempfile::tempdir().unwrap();
        let config = Setup {
            dir: dir.path().to_path_buf(),
            gerrit_url: gerrit.url().to_string(),
            jenkins_url: jenkins.url(),
            gmail_url: gmail.base_url(),
            listener_port: port,
            secret: SECRET.to_string(),
            extra: extra.to_string(),
        }
        .write_config();
        if !gerrit_extra.is_empty() {
            let text = std::fs::read_to_string(&config).expect("read the config");
            assert!(text.contains(RECONCILE_OFF), "the harness's [gerrit] table");
            let text = text.replacen(RECONCILE_OFF, gerrit_extra, 1);
            std::fs::write(&config, text).expect("write the config");
        }
        World {
            gerrit,
            jenkins,
            gmail,
            drops,
            config,
            bot,
            sam,
            stranger,
            dana,
            _dir: dir,
        }
    }

    /// The sample change with `patch_sets` patch sets by `committer`.
    pub fn change(&self, patch_sets: u32, committer: &str, files: &[&str]) -> u64 {
        let n = self.gerrit.create_change(
            "platform/bionic",
            "master",
            KEY,
            self.dana,
            "Fix strtod rounding for denormals",
        );
        for _ in 0..patch_sets {
            self.gerrit.add_patch_set(n, committer, files);
        }
        n
    }

    pub fn sample_change(&self, patch_sets: u32) -> u64 {
        self.change(patch_sets, "dana@example.com", &["libc/bionic/strtod.cpp"])
    }

    pub fn deliver(&self, raw: &[u8]) -> String {
        self.gmail.deliver(raw, &["gerrit"])
    }

    pub fn config_arg(&self) -> String {
        self.config.display().to_string()
    }

    pub async fn run(&self, extra: &[&str]) -> (ExitStatus, String) {
        let config = self.config_arg();
        let mut args = vec!["--config", config.as_str()];
        args.extend_from_slice(extra);
        Daemon::spawn("gmail-listener", &args).wait(RUN).await
    }

    pub async fn once(&self) -> (ExitStatus, String) {
        self.run(&["--once"]).await
    }

    /// [`World::once`], which must succeed; its output.
    pub async fn once_ok(&self) -> String {
        let (status, output) = self.once().await;
        crate::harness::assert_ok(status, &output);
        output
    }

    /// [`World::once_ok`] with the log filter `rust_log` (`RUST_LOG`), for
    /// a test that reads debug lines.
    pub async fn once_ok_logging(&self, rust_log: &str) -> String {
        let config = self.config_arg();
        let (status, output) = Daemon::spawn_with_env(
            "gmail-listener",
            &["--config", &config, "--once"],
            &[("RUST_LOG", rust_log)],
        )
        .wait(RUN)
        .await;
        crate::harness::assert_ok(status, &output);
        output
    }

    /// Every build queued or started, with its parameters.
    pub fn builds(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let mut all: Vec<_> = self
            .jenkins
            .queue()
            .into_iter()
            .map(|q| (q.job, q.params))
            .collect();
        all.extend(self.jenkins.builds().into_iter().map(|b| (b.job, b.params)));
        all
    }

    /// Mails still waiting in the label (Gmail keeps labels on trashed mail,
    /// but listings leave the trash out).
    pub fn labelled(&self) -> Vec<String> {
        let trash = self.gmail.in_trash();
        self.gmail
            .messages_with_label("gerrit")
            .into_iter()
            .filter(|id| !trash.contains(id))
            .collect()
    }
}

impl World {
    /// The ledger the daemon wrote, opened where the configuration puts it.
    pub fn ledger(&self) -> Ledger {
        let config = Config::load(&self.config).expect("the test configuration loads");
        Ledger::open(&config.ledger_path()).expect("the ledger opens")
    }

    /// The value of counter `name` with exactly `labels`, if it was bumped.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let labels = names::labels(labels);
        self.ledger()
            .counters()
            .unwrap()
            .into_iter()
            .find(|(n, l, _)| n == name && *l == labels)
            .map(|(_, _, v)| v)
    }
}

/// A mail file from `tests/data/emails/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/data/emails/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
