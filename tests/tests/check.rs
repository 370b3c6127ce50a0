//! End-to-end: `gmail-listener check` and `build-listener check`, the real
//! binaries, offline and `--online` against the fakes. Each failure the
//! checklist reports is provoked here once, with the fix it names; a check
//! passes (exit 0) only when every line does, warnings included.

use std::path::{Path, PathBuf};

use bionicbb_tests::fakes::gerrit::GerritFake;
use bionicbb_tests::fakes::gmail::GmailFake;
use bionicbb_tests::fakes::jenkins::JenkinsFake;
use bionicbb_tests::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, GMAIL_TOKEN, JENKINS_TOKEN, JENKINS_USER, Setup, binary,
};

const SECRET: &str = "listener-shared-secret-for-check";
const PRESUBMIT: &str = "bionic-presubmit";
const CLEAN: &str = "clean-bionic-presubmit";
const ALL: [&str; 6] = [
    "REF",
    "CHANGE_ID",
    "PROJECT",
    "CHANGE_NUMBER",
    "PATCHSET",
    "LUNCH_TARGET",
];

/// The fakes, seeded with the bot's accounts, and a configuration pointing
/// at them (the one the end-to-end tests use).
struct Env {
    _gerrit: GerritFake,
    jenkins: JenkinsFake,
    gmail: GmailFake,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    /// Both jobs declaring everything the bot sends, both labels present.
    async fn new() -> Env {
        let env = Env::bare().await;
        env.jenkins.add_job(PRESUBMIT, &params(&ALL));
        env.jenkins.add_job(CLEAN, &params(&ALL[..5]));
        env.gmail.add_label("gerrit-unparsed");
        env
    }

    /// Accounts and the Gmail label, but no job.
    async fn bare() -> Env {
        bionicbb_core::tls::install_crypto_provider();
        let gerrit = GerritFake::start().await;
        let jenkins = JenkinsFake::start().await;
        let gmail = GmailFake::start().await;
        gerrit.add_account("Bionic Buildbot", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
        gerrit.add_account("Dana Dev", "dana@example.com", "dana", "pw-dana");
        jenkins.add_user(JENKINS_USER, JENKINS_TOKEN);
        gmail.require_token(Some(GMAIL_TOKEN));
        gmail.add_label("gerrit");
        let dir = tempfile::tempdir().unwrap();
        let config = Setup {
            dir: dir.path().to_path_buf(),
            gerrit_url: gerrit.url().to_string(),
            jenkins_url: jenkins.url(),
            gmail_url: gmail.base_url(),
            listener_port: 9,
            secret: SECRET.to_string(),
            extra: String::new(),
        }
        .write_config();
        Env {
            _gerrit: gerrit,
            jenkins,
            gmail,
            dir,
            config,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces `from` with `to` in the configuration file.
    fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "{from:?} not in the configuration");
        std::fs::write(&self.config, text.replace(from, to)).unwrap();
    }

    /// Runs `DAEMON --config FILE check [--online]`: the exit code and
    /// everything printed.
    async fn check(&self, daemon: &str, online: bool) -> (i32, String) {
        self.check_with_credentials(daemon, online, None).await
    }

    /// [`Env::check`] with `$CREDENTIALS_DIRECTORY` set to `credentials`,
    /// or unset.
    async fn check_with_credentials(
        &self,
        daemon: &str,
        online: bool,
        credentials: Option<&Path>,
    ) -> (i32, String) {
        let mut cmd = tokio::process::Command::new(binary(daemon));
        cmd.arg("--config").arg(&self.config).arg("check");
        if online {
            cmd.arg("--online");
        }
        match credentials {
            Some(dir) => cmd.env("CREDENTIALS_DIRECTORY", dir),
            None => cmd.env_remove("CREDENTIALS_DIRECTORY"),
        };
        let out = cmd.env("RUST_LOG", "warn").output().await.unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if std::env::var_os("BIONICBB_TEST_ECHO").is_some() {
            eprintln!("{daemon} check:\n{text}");
        }
        for secret in [
            SECRET,
            JENKINS_TOKEN,
            BOT_HTTP_PASSWORD,
            GMAIL_TOKEN,
            "pw-dana",
        ] {
            assert!(!text.contains(secret), "a secret was printed:\n{text}");
        }
        (out.status.code().expect("exited"), text)
    }
}

fn params(names: &[&'static str]) -> Vec<(&'static str, &'static str)> {
    names.iter().map(|n| (*n, "")).collect()
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The one line of `out` that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = out.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one line starting with {prefix:?}:\n{out}");
    found[0]
}

fn assert_all_ok(out: &str) {
    let checks: Vec<&str> = out
        .lines()
        .filter(|l| {
            ["ok ", "warn ", "FAIL ", "skip "]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .collect();
    assert!(!checks.is_empty(), "{out}");
    for l in checks {
        assert!(l.starts_with("ok    "), "not ok: {l}\n{out}");
    }
}

#[tokio::test]
async fn gmail_listener_check_passes_against_servers_that_accept_everything() {
    let env = Env::new().await;

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 0, "{out}");
    assert_all_ok(&out);
    let gerrit = line(&out, "ok    Gerrit: ");
    assert!(gerrit.contains(&format!("<{BOT_EMAIL}>")), "{gerrit}");
    assert!(gerrit.contains("login bionicbb"), "{gerrit}");
    line(&out, "ok    Jenkins: ");
    line(&out, &format!("ok    job {PRESUBMIT}: declares REF"));
    line(&out, &format!("ok    job {CLEAN}: declares REF"));
    line(&out, "ok    [gmail] label: ");
    line(&out, "ok    [gmail] quarantine_label: ");
    line(&out, "ok    [gmail] bearer_token_file: ");
    assert!(out.contains("checks passed"), "{out}");
}

#[tokio::test]
async fn build_listener_check_asks_gerrit_and_jenkins_but_not_about_jobs_or_gmail() {
    let env = Env::bare().await;

    let (code, out) = env.check("build-listener", true).await;

    assert_eq!(code, 0, "{out}");
    assert_all_ok(&out);
    line(&out, "ok    Gerrit: ");
    line(&out, "ok    Jenkins: ");
    assert!(!out.contains("job "), "{out}");
    assert!(!out.contains("[gmail]"), "{out}");
}

#[tokio::test]
async fn without_online_no_server_is_asked() {
    let env = Env::new().await;
    // Servers that refuse everything: an offline check does not notice.
    env.gmail.require_token(Some("another-token"));

    let (code, out) = env.check("gmail-listener", false).await;

    assert_eq!(code, 0, "{out}");
    assert_all_ok(&out);
    assert!(!out.contains("Gerrit: "), "{out}");
    assert!(out.contains("add --online"), "{out}");
}

#[tokio::test]
async fn a_secret_file_others_can_read_fails_with_the_chmod_fix() {
    let env = Env::new().await;
    let token = env.file("jenkins-token");
    chmod(&token, 0o644);

    for daemon in ["gmail-listener", "build-listener"] {
        let (code, out) = env.check(daemon, false).await;
        assert_eq!(code, 1, "{out}");
        let failed = line(&out, "FAIL  [jenkins] api_token_file: ");
        assert!(failed.contains("mode 644"), "{failed}");
        assert!(
            failed.ends_with(&format!("fix: chmod 600 {}", token.display())),
            "{failed}"
        );
        line(&out, "ok    [build_listener] secret_file: ");
        assert!(out.contains("1 of "), "{out}");
    }
}

#[tokio::test]
async fn an_unreadable_secret_file_names_its_key_and_file_and_the_other_checks_still_run() {
    let env = Env::new().await;
    let secret = env.file("listener-secret");
    std::fs::remove_file(&secret).unwrap();

    let (code, out) = env.check("build-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, "FAIL  [build_listener] secret_file: ");
    assert!(failed.contains(&secret.display().to_string()), "{failed}");
    assert!(failed.contains("fix: write the secret"), "{failed}");
    line(&out, "ok    [gerrit] netrc: ");
    line(&out, "ok    Gerrit: ");
}

#[tokio::test]
async fn a_netrc_without_the_gerrit_host_names_the_netrc_file_and_skips_gerrit() {
    let env = Env::new().await;
    let netrc = env.file("netrc");
    std::fs::write(&netrc, "machine elsewhere.example.org login x password y\n").unwrap();
    chmod(&netrc, 0o600);

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, "FAIL  [gerrit] netrc: ");
    let shown = netrc.display().to_string();
    assert!(
        failed.contains(&format!("{shown} has no entry for 127.0.0.1")),
        "{failed}"
    );
    assert!(
        failed.contains(&format!(
            "fix: add `machine 127.0.0.1 login USER password HTTP-PASSWORD` to {shown}"
        )),
        "{failed}"
    );
    line(&out, "skip  Gerrit: ");
    line(&out, "ok    Jenkins: ");
}

#[tokio::test]
async fn a_netrc_others_can_read_fails_with_the_chmod_fix() {
    let env = Env::new().await;
    let netrc = env.file("netrc");
    chmod(&netrc, 0o640);

    let (code, out) = env.check("build-listener", false).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, "FAIL  [gerrit] netrc: ");
    assert!(failed.contains("mode 640"), "{failed}");
    assert!(
        failed.ends_with(&format!("fix: chmod 600 {}", netrc.display())),
        "{failed}"
    );
}

#[tokio::test]
async fn an_invalid_configuration_is_one_failure_naming_the_file_and_key() {
    let env = Env::new().await;
    env.edit_config("bot_email = ", "bot_mail = ");

    for daemon in ["gmail-listener", "build-listener"] {
        let (code, out) = env.check(daemon, true).await;
        assert_eq!(code, 1, "{out}");
        let failed = line(&out, "FAIL  config: ");
        assert!(
            failed.contains(&env.config.display().to_string()),
            "{failed}"
        );
        assert!(failed.contains("bot_mail"), "{failed}");
        assert!(failed.contains("config.example.toml"), "{failed}");
        assert!(!out.contains("ok    "), "{out}");
    }
}

/// The secrets as the shipped units give them: `credential:NAME` keys,
/// found in `$CREDENTIALS_DIRECTORY`, where a copy systemd made (mode 0640
/// shows its ACL) is not a chmod failure. Without the directory the check
/// fails once, naming the first such key and where to run the check.
#[tokio::test]
async fn credentials_are_found_in_the_credentials_directory_and_its_absence_is_named() {
    let env = Env::new().await;
    let credentials = env.file("credentials");
    std::fs::create_dir(&credentials).unwrap();
    // Named as the files are (the unit's name jenkins-api-token is the
    // fake's token itself, which no output may show).
    for name in ["netrc", "jenkins-token", "listener-secret", "gmail-token"] {
        std::fs::copy(env.file(name), credentials.join(name)).unwrap();
        chmod(&credentials.join(name), 0o640);
        let path = format!("\"{}\"", env.file(name).display());
        env.edit_config(&path, &format!("\"credential:{name}\""));
    }

    for daemon in ["gmail-listener", "build-listener"] {
        let (code, out) = env
            .check_with_credentials(daemon, true, Some(&credentials))
            .await;
        assert_eq!(code, 0, "{out}");
        assert_all_ok(&out);
        for (prefix, name) in [
            ("ok    [gerrit] netrc: ", "netrc"),
            ("ok    [jenkins] api_token_file: ", "jenkins-token"),
            ("ok    [build_listener] secret_file: ", "listener-secret"),
        ] {
            let item = line(&out, prefix);
            let path = credentials.join(name).display().to_string();
            assert!(item.contains(&path), "{path} not in {item}");
            assert!(
                item.ends_with("(a credential systemd handed over)"),
                "{item}"
            );
        }
    }

    for daemon in ["gmail-listener", "build-listener"] {
        let (code, out) = env.check_with_credentials(daemon, true, None).await;
        assert_eq!(code, 1, "{out}");
        let failed = line(&out, "FAIL  config: ");
        assert!(
            failed.contains("[gerrit] netrc: credential:netrc: $CREDENTIALS_DIRECTORY is not set"),
            "{failed}"
        );
        assert!(
            failed.contains("fix: run the check where the daemon runs, with CREDENTIALS_DIRECTORY"),
            "{failed}"
        );
        assert!(!failed.contains("config.example.toml"), "{failed}");
        assert!(!out.contains("ok    "), "{out}");
    }
}

#[tokio::test]
async fn oauth_without_a_client_secret_or_token_cache_says_to_run_auth() {
    let env = Env::new().await;
    let bearer = format!(
        "bearer_token_file = \"{}\"\n",
        env.file("gmail-token").display()
    );
    env.edit_config(&bearer, "");

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let secret = line(&out, "FAIL  [gmail] client_secret_file: ");
    assert!(secret.contains("Google Cloud console"), "{secret}");
    let cache = line(&out, "FAIL  [gmail] token_cache_file: ");
    assert!(cache.contains("gmail-token.json"), "{cache}");
    assert!(
        cache.ends_with("fix: run `gmail-listener auth` as the daemon's user"),
        "{cache}"
    );
    line(&out, "skip  Gmail: ");
}

#[tokio::test]
async fn gerrit_refusing_the_netrc_password_fails_with_where_to_get_one() {
    let env = Env::new().await;
    let netrc = env.file("netrc");
    std::fs::write(
        &netrc,
        "machine 127.0.0.1 login bionicbb password not-the-password\n",
    )
    .unwrap();
    chmod(&netrc, 0o600);

    let (code, out) = env.check("build-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, "FAIL  Gerrit: ");
    assert!(failed.contains("refused login bionicbb"), "{failed}");
    assert!(failed.contains(&netrc.display().to_string()), "{failed}");
    assert!(failed.contains("HTTP Credentials"), "{failed}");
    assert!(!failed.contains("not-the-password"), "{failed}");
}

#[tokio::test]
async fn a_netrc_login_of_another_account_is_not_the_bot() {
    let env = Env::new().await;
    let netrc = env.file("netrc");
    std::fs::write(&netrc, "default login dana password pw-dana\n").unwrap();
    chmod(&netrc, 0o600);

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, "FAIL  Gerrit: ");
    assert!(failed.contains("<dana@example.com>"), "{failed}");
    assert!(
        failed.contains(&format!("not the configured bot account {BOT_EMAIL}")),
        "{failed}"
    );
    assert!(
        failed.contains("set [gerrit] bot_email = \"dana@example.com\""),
        "{failed}"
    );
}

#[tokio::test]
async fn jenkins_refusing_the_token_fails_and_the_jobs_are_skipped() {
    let env = Env::new().await;
    let token = env.file("jenkins-token");
    std::fs::write(&token, "a-revoked-token\n").unwrap();

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, "FAIL  Jenkins: ");
    assert!(failed.contains("refused user bionicbb"), "{failed}");
    assert!(failed.contains(&token.display().to_string()), "{failed}");
    assert!(failed.contains("API Token"), "{failed}");
    assert!(!failed.contains("a-revoked-token"), "{failed}");
    line(&out, &format!("skip  job {PRESUBMIT}: "));
    line(&out, &format!("skip  job {CLEAN}: "));
}

#[tokio::test]
async fn a_job_jenkins_does_not_have_fails_naming_the_keys_that_name_it() {
    let env = Env::bare().await;
    env.jenkins.add_job(CLEAN, &params(&ALL[..5]));

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, &format!("FAIL  job {PRESUBMIT}: "));
    assert!(failed.contains("Jenkins has no job"), "{failed}");
    assert!(
        failed.contains("[jobs] default, [jobs.projects] \"platform/bionic\""),
        "{failed}"
    );
    line(&out, &format!("ok    job {CLEAN}: "));
}

#[tokio::test]
async fn a_presubmit_job_without_lunch_target_fails_while_per_target_commands_exist() {
    let env = Env::bare().await;
    env.jenkins.add_job(PRESUBMIT, &params(&ALL[..5]));
    env.jenkins.add_job(CLEAN, &params(&ALL[..5]));

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, &format!("FAIL  job {PRESUBMIT}: "));
    assert!(failed.contains("does not declare LUNCH_TARGET"), "{failed}");
    assert!(
        failed.contains("fix: add String parameters LUNCH_TARGET to the job"),
        "{failed}"
    );
    assert!(failed.contains("targets = {}"), "{failed}");
    // The clean job never gets LUNCH_TARGET.
    line(&out, &format!("ok    job {CLEAN}: "));

    // Without per-target commands the same job passes.
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str("\n[commands]\ntargets = {}\n");
    std::fs::write(&env.config, text).unwrap();
    let (code, out) = env.check("gmail-listener", true).await;
    assert_eq!(code, 0, "{out}");
    line(&out, &format!("ok    job {PRESUBMIT}: "));
}

#[tokio::test]
async fn a_parameter_a_job_may_not_need_is_a_warning_and_the_check_passes() {
    let env = Env::bare().await;
    let without_project: Vec<&str> = ALL.iter().copied().filter(|p| *p != "PROJECT").collect();
    env.jenkins.add_job(PRESUBMIT, &params(&without_project));
    env.jenkins.add_job(CLEAN, &params(&ALL[..5]));
    env.gmail.add_label("gerrit-unparsed");

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 0, "{out}");
    let warned = line(&out, &format!("warn  job {PRESUBMIT}: "));
    assert!(warned.contains("does not declare PROJECT"), "{warned}");
    assert!(warned.contains("Jenkins drops"), "{warned}");
    assert!(out.contains("(1 with a warning)"), "{out}");
}

#[tokio::test]
async fn an_unparameterized_or_disabled_job_fails() {
    let env = Env::bare().await;
    env.jenkins.add_unparameterized_job(PRESUBMIT);
    env.jenkins.add_job(CLEAN, &params(&ALL[..5]));
    env.jenkins.disable_job(CLEAN);

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, &format!("FAIL  job {PRESUBMIT}: "));
    assert!(failed.contains("is not parameterized"), "{failed}");
    assert!(
        failed.contains(
            "add String parameters REF, CHANGE_ID, PROJECT, CHANGE_NUMBER, PATCHSET, LUNCH_TARGET"
        ),
        "{failed}"
    );
    let failed = line(&out, &format!("FAIL  job {CLEAN}: "));
    assert!(failed.contains("is disabled"), "{failed}");
    assert!(failed.ends_with("fix: enable the job"), "{failed}");
}

#[tokio::test]
async fn a_missing_gmail_label_fails_and_a_missing_quarantine_label_only_warns() {
    let env = Env::bare().await;
    env.jenkins.add_job(PRESUBMIT, &params(&ALL));
    env.jenkins.add_job(CLEAN, &params(&ALL[..5]));
    env.edit_config("label = \"gerrit\"", "label = \"gerrit-mail\"");

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, "FAIL  [gmail] label: ");
    assert!(failed.contains("no label `gerrit-mail`"), "{failed}");
    assert!(failed.contains("or fix [gmail] label"), "{failed}");

    env.edit_config("label = \"gerrit-mail\"", "label = \"gerrit\"");
    let (code, out) = env.check("gmail-listener", true).await;
    assert_eq!(code, 0, "{out}");
    line(&out, "ok    [gmail] label: ");
    let warned = line(&out, "warn  [gmail] quarantine_label: ");
    assert!(warned.contains("creates it when it starts"), "{warned}");
}

#[tokio::test]
async fn gmail_refusing_the_token_fails_with_the_auth_hint() {
    let env = Env::new().await;
    env.gmail.require_token(Some("a-newer-token"));

    let (code, out) = env.check("gmail-listener", true).await;

    assert_eq!(code, 1, "{out}");
    let failed = line(&out, "FAIL  Gmail: ");
    assert!(failed.contains("gmail-listener auth"), "{failed}");
    line(&out, "ok    Gerrit: ");
}
