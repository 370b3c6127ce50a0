//! Loading, defaults, validation and helpers of the configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bionicbb_core::config::{Config, ConfigError, DEFAULT_PATH, JobRole, Secret, config_path};

const PATH: &str = "/etc/bionicbb/config.toml";

/// The smallest valid file: the required keys only, secrets inline.
const MINIMAL: &str = r#"
[gerrit]
url = "https://review.example.org"
bot_email = "bot@example.org"

[jenkins]
url = "https://jenkins.example.org/ci"
user = "bot"
api_token = "jenkins-token"

[build_listener]
secret = "listener-secret"

[jobs]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(PATH))
}

/// MINIMAL with `line` added to `[section]` (a new table if MINIMAL has none;
/// top level when `section` is empty).
fn with(section: &str, line: &str) -> String {
    if section.is_empty() {
        return format!("{line}\n{MINIMAL}");
    }
    let header = format!("[{section}]\n");
    if MINIMAL.contains(&header) {
        MINIMAL.replacen(&header, &format!("{header}{line}\n"), 1)
    } else {
        format!("{MINIMAL}\n{header}{line}\n")
    }
}

/// MINIMAL with a line removed (it must be there).
fn without(line: &str) -> String {
    assert!(MINIMAL.contains(line), "{line}");
    MINIMAL.replacen(&format!("{line}\n"), "", 1)
}

/// The error message of an invalid config; asserts it names the file.
fn error(text: &str) -> String {
    let err = parse(text)
        .expect_err("config should be rejected")
        .to_string();
    assert!(err.starts_with(&format!("{PATH}: ")), "{err}");
    err
}

fn assert_error(text: &str, expected: &str) {
    let err = error(text);
    assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
}

#[test]
fn minimal_config_gets_every_default() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/bionicbb"));
    assert_eq!(
        c.ledger_path(),
        PathBuf::from("/var/lib/bionicbb/bionicbb.sqlite3")
    );
    assert!(!c.log.json);

    assert_eq!(c.gerrit.url.as_str(), "https://review.example.org/");
    assert_eq!(c.gerrit.bot_email, "bot@example.org");
    assert_eq!(c.gerrit.netrc, None);
    assert_eq!(c.gerrit.timeout, Duration::from_secs(30));

    assert_eq!(
        c.jenkins.url.as_str(),
        "https://jenkins.example.org/ci/",
        "trailing / added"
    );
    assert_eq!(c.jenkins.user, "bot");
    assert_eq!(c.jenkins.api_token().expose(), "jenkins-token");
    assert_eq!(c.jenkins.timeout, Duration::from_secs(30));

    assert_eq!(c.gmail.label, "gerrit");
    assert_eq!(c.gmail.quarantine_label, "gerrit-unparsed");
    assert_eq!(c.gmail.poll_interval, Duration::from_secs(15));
    assert_eq!(
        c.gmail.client_secret_file,
        PathBuf::from("/etc/bionicbb/client_secret.json")
    );
    assert_eq!(
        c.gmail.token_cache_file,
        PathBuf::from("/var/lib/bionicbb/gmail-token.json")
    );
    assert_eq!(c.gmail.api_base_url, None);
    assert_eq!(c.gmail.bearer_token_file, None);
    assert_eq!(c.gmail.timeout, Duration::from_secs(30));

    assert_eq!(c.gmail_listener.health_listen, None);
    assert_eq!(c.gmail_listener.concurrency, 8);

    let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    assert_eq!(c.build_listener.listen, listen);
    assert_eq!(
        c.build_listener.public_url.as_str(),
        "http://127.0.0.1:8080/"
    );
    assert_eq!(c.build_listener.secret().expose(), "listener-secret");
    assert_eq!(c.build_listener.body_limit, 4 * 1024 * 1024);
    assert_eq!(c.build_listener.link_base, None);
    assert!(!c.build_listener.post_started);
    assert_eq!(c.build_listener.outbox_concurrency, 8);

    assert_eq!(c.jobs.default, None);
    assert_eq!(c.jobs.clean, None);
    assert!(c.jobs.projects.is_empty());
    assert!(c.jobs.roles.is_empty());
    assert!(c.jobs.cancel_superseded);

    assert_eq!(c.review.label, "Verified");
    assert!(c.review.superseded_message);
    assert!(c.review.explain_skips);
    assert_eq!(c.review.notify, "OWNER_REVIEWERS");
    let votes: Vec<(&str, i32)> = c
        .review
        .votes
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(votes, [("FAILURE", -1), ("SUCCESS", 1)]);

    let targets: Vec<(&str, &str)> = c
        .commands
        .targets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            ("aarch64", "aosp_arm64-eng"),
            ("arm", "aosp_arm-eng"),
            ("mips", "aosp_mips-eng"),
            ("mips64", "aosp_mips64-eng"),
            ("x86", "aosp_x86-eng"),
            ("x86_64", "aosp_x86_64-eng"),
        ]
    );

    assert_eq!(
        c.policy.trusted_committer_domains,
        ["google.com", "android.com"]
    );
    assert_eq!(
        c.policy.trusted_commenter_domains,
        ["google.com", "android.com"]
    );
    assert!(c.policy.trusted_commenters.is_empty());
    assert_eq!(c.policy.skip_file_names, ["CleanSpec.mk"]);
    assert_eq!(c.policy.skip_path_prefixes, ["tools/bionicbb"]);
    assert_eq!(c.policy.skip_kinds, ["NO_CHANGE", "NO_CODE_CHANGE"]);
    assert!(c.policy.build_wip);
    assert!(c.policy.build_private);
}

/// The example file, with its secrets in a credentials directory as the
/// units of `contrib/systemd` load them.
#[test]
fn example_file_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.example.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jenkins-api-token"), "tok-123\n").unwrap();
    std::fs::write(dir.path().join("build-listener-secret"), "s3cret\r\n").unwrap();
    std::fs::write(dir.path().join("netrc"), "default login l password p\n").unwrap();
    std::fs::write(dir.path().join("client_secret.json"), "{}\n").unwrap();

    let c = Config::parse_with_credentials(&text, &example, Some(dir.path())).unwrap();
    assert_eq!(c.jenkins.api_token().expose(), "tok-123");
    assert_eq!(c.build_listener.secret().expose(), "s3cret");
    assert_eq!(
        c.gerrit.url.as_str(),
        "https://android-review.googlesource.com/"
    );
    assert_eq!(c.gerrit.netrc, Some(dir.path().join("netrc")));
    assert_eq!(
        c.gmail.client_secret_file,
        dir.path().join("client_secret.json")
    );
    for project in [
        "platform/bionic",
        "platform/build",
        "platform/external/jemalloc",
        "platform/external/libcxx",
        "platform/external/libcxxabi",
        "platform/external/compiler-rt",
    ] {
        assert_eq!(
            c.jobs.job_for_project(project),
            Some("bionic-presubmit"),
            "{project}"
        );
    }
    assert_eq!(c.jobs.job_for_project("platform/art"), None);
    assert_eq!(c.jobs.clean.as_deref(), Some("clean-bionic-presubmit"));
    assert_eq!(c.jobs.role("bionic-presubmit"), Some(JobRole::Verify));
    assert_eq!(c.jobs.role("clean-bionic-presubmit"), Some(JobRole::Clean));
    assert_eq!(c.jobs.role("bionic-lint"), Some(JobRole::Ignore));
    assert_eq!(c.commands.targets.len(), 6);
    assert_eq!(c.commands.lunch_target("aarch64"), Some("aosp_arm64-eng"));
}

/// Every key the schema has appears in the example (uncommented or
/// commented out), so the example documents them all.
#[test]
fn example_file_mentions_every_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.example.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let keys = [
        "state_dir",
        "[log]",
        "json",
        "[gerrit]",
        "url",
        "bot_email",
        "netrc",
        "timeout",
        "reconcile_interval",
        "reconcile_full_interval",
        "reconcile_limit",
        "[jenkins]",
        "user",
        "api_token",
        "api_token_file",
        "[gmail]",
        "label",
        "quarantine_label",
        "poll_interval",
        "client_secret_file",
        "token_cache_file",
        "api_base_url",
        "bearer_token_file",
        "[gmail_listener]",
        "health_listen",
        "concurrency",
        "[build_listener]",
        "listen",
        "public_url",
        "secret",
        "secret_file",
        "body_limit",
        "link_base",
        "post_started",
        "outbox_concurrency",
        "[jobs]",
        "default",
        "clean",
        "cancel_superseded",
        "superseded_message",
        "explain_skips",
        "[jobs.projects]",
        "[jobs.roles]",
        "[review]",
        "notify",
        "[review.votes]",
        "[commands.targets]",
        "[policy]",
        "trusted_committer_domains",
        "trusted_commenter_domains",
        "trusted_commenters",
        "skip_file_names",
        "skip_path_prefixes",
        "skip_kinds",
        "build_wip",
        "build_private",
    ];
    for key in keys {
        let as_line = |l: &str| {
            let l = l.trim_start_matches("# ").trim();
            l == key || l.starts_with(&format!("{key} ="))
        };
        assert!(text.lines().any(as_line), "{key} is not in the example");
    }
}

#[test]
fn explaining_skips_is_a_switch() {
    let c = parse(&with("review", "explain_skips = false")).unwrap();
    assert!(!c.review.explain_skips);
    let err = error(&with("review", "explain_skips = \"no\""));
    assert!(err.contains("[review] explain_skips"), "{err}");
}

#[test]
fn cancelling_superseded_builds_is_a_switch_and_so_is_its_line() {
    let text = with("jobs", "cancel_superseded = false");
    let text = format!("{text}\n[review]\nsuperseded_message = false\n");
    let c = parse(&text).unwrap();
    assert!(!c.jobs.cancel_superseded);
    assert!(!c.review.superseded_message);
    let err = error(&with("jobs", "cancel_superseded = \"yes\""));
    assert!(err.contains("[jobs] cancel_superseded"), "{err}");
    let err = error(&with("review", "superseded_message = 1"));
    assert!(err.contains("[review] superseded_message"), "{err}");
}

#[test]
fn load_names_a_missing_file() {
    let err = Config::load(Path::new("/nonexistent/bionicbb.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/bionicbb.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn toml_syntax_errors_keep_line_and_column() {
    let text = format!("{MINIMAL}\n[review]\nlabel = \n");
    let line = text.lines().position(|l| l.starts_with("label =")).unwrap() + 1;
    let err = error(&text);
    assert!(err.contains(&format!("line {line}, column 9")), "{err}");
    assert!(err.contains("string values must be quoted"), "{err}");
}

#[test]
fn a_typo_in_each_section_names_the_file_and_the_key() {
    let cases = [
        ("", "stat_dir = \"/x\""),
        ("log", "jsn = true"),
        ("gerrit", "bot_mail = \"b@x\""),
        ("jenkins", "usr = \"x\""),
        ("gmail", "labl = \"x\""),
        ("gmail_listener", "health = \"127.0.0.1:1\""),
        ("build_listener", "secrt = \"x\""),
        ("jobs", "cleen = \"x\""),
        ("review", "vote = 1"),
        ("commands", "target = 1"),
        ("policy", "trusted_domains = []"),
    ];
    for (section, line) in cases {
        let err = error(&with(section, line));
        let key = line.split(' ').next().unwrap();
        assert!(
            err.contains(&format!("unknown field `{key}`, expected")),
            "{err}"
        );
        assert!(err.contains("line "), "{err}");
    }
}

/// The secret-bearing keys: (section, key, the line MINIMAL gives it, the
/// other keys of its table, inline).
const SECRET_KEYS: [(&str, &str, &str, &str); 2] = [
    (
        "jenkins",
        "api_token",
        "api_token = \"jenkins-token\"",
        "url = \"https://jenkins.example.org/ci\", user = \"bot\"",
    ),
    (
        "build_listener",
        "secret",
        "secret = \"listener-secret\"",
        "",
    ),
];

/// A config error never shows a secret value, however the line holding it
/// is malformed, and still names the file, the line and the key.
#[test]
fn syntax_errors_never_show_a_secret() {
    let v = "s3cr3t-VALUE-1";
    let w = "s3cr3t-VALUE-2";
    for (section, key, line, others) in SECRET_KEYS {
        // (replacement of the key's line, the faulty key, lines from the
        // secret's line to the error)
        let cases = [
            (format!("{key} = \"{v}\" oops"), key, 0),
            (format!("{key} = \"{v}\"oops"), key, 0),
            (format!("{key} = \"{v}"), key, 0),
            (format!("{key} = \"{v}\\q\""), key, 0),
            (format!("{key} = {v}"), key, 0),
            (format!("{key} \"{v}\""), key, 0),
            (format!("{key} = \"\"\"{v}\n{w}\"\"\" oops"), key, 1),
            (format!("{key} = '''{v}\n{w}''' oops"), key, 1),
            (format!("{key} = \"\"\"{v}\n{w}\\q\"\"\""), key, 1),
            (format!("{key} = \"{v}\"\n{key} = \"{w}\""), key, 1),
            (format!("{key} = [\"{v}\", \"{w}\"]"), key, 0),
            (format!("{key} = {{ value = \"{v}\" }}"), key, 0),
        ];
        for (replacement, faulty, offset) in cases {
            let text = MINIMAL.replace(line, &replacement);
            let at = text.lines().position(|l| l.contains(v)).unwrap() + 1 + offset;
            let err = error(&text);
            assert!(!err.contains(v) && !err.contains(w), "{err}\n{text}");
            assert!(err.contains(&format!("line {at}")), "{err}\n{text}");
            assert!(
                err.contains(&format!("[{section}] {faulty}")),
                "{err}\n{text}"
            );
        }
        // The whole table inline, on one line with the secret, at the top.
        let table = format!("[{section}]\n{}", others.replace(", ", "\n"));
        let table = format!("{}\n{line}\n", table.trim_end());
        assert!(MINIMAL.contains(&table), "{table}");
        let sep = if others.is_empty() { "" } else { ", " };
        let inline = |rest: &str| format!("{section} = {{ {others}{sep}{key} = \"{v}\"{rest}\n");
        let inline_cases = [
            (inline(" oops }"), key),
            (inline(", bogus = 1 }"), "bogus"),
            (inline(", timeout = 5 }"), "timeout"),
            (inline(", post_started = 5 }"), "post_started"),
            (inline(&format!(", {key} = \"{w}\" }}")), key),
            (inline(&format!(" }}\n[{section}]\nx = 1")), section),
        ];
        for (replacement, faulty) in inline_cases {
            // Top-level keys come before the first table.
            let text = format!("{replacement}{}", MINIMAL.replace(&table, ""));
            let at = text.lines().position(|l| l.contains(v)).unwrap() + 1;
            let err = error(&text);
            assert!(!err.contains(v) && !err.contains(w), "{err}\n{text}");
            assert!(err.contains("line "), "{err}\n{text}");
            if faulty != section {
                assert!(err.contains(&format!("line {at}")), "{err}\n{text}");
            }
            assert!(err.contains(faulty), "{err}\n{text}");
        }
    }
}

/// A secret given as a number is refused without echoing it.
#[test]
fn type_errors_never_show_a_secret() {
    for (section, key, line, _) in SECRET_KEYS {
        let text = MINIMAL.replace(line, &format!("{key} = 987654321"));
        let err = error(&text);
        assert!(!err.contains("987654321"), "{err}");
        assert!(
            err.contains(&format!("[{section}] {key}: invalid type")),
            "{err}"
        );
    }
}

/// A password in a URL is refused, and never echoed, whether the URL
/// parses or not.
#[test]
fn urls_with_credentials_are_refused_without_echoing_the_password() {
    let cases = [
        ("gerrit", "url = \"https://review.example.org\""),
        ("jenkins", "url = \"https://jenkins.example.org/ci\""),
    ];
    for (section, line) in cases {
        for url in [
            "https://bot:pa55word-X@host.example.org/",
            "https://bot:pa55word-X@host.example.org/?q",
            "https://bot:pa55word-X@ho st/",
            "ftp://bot:pa55word-X@host.example.org/",
        ] {
            let text = MINIMAL.replace(line, &format!("url = \"{url}\""));
            let err = error(&text);
            assert!(!err.contains("pa55word-X"), "{err}");
            assert!(err.contains(&format!("[{section}] url")), "{err}");
        }
    }
    let err = error(&with(
        "build_listener",
        "public_url = \"http://u:pa55word-X@127.0.0.1:1/\"",
    ));
    assert!(!err.contains("pa55word-X"), "{err}");
    assert!(
        err.contains("[build_listener] public_url: must not hold credentials"),
        "{err}"
    );
}

#[test]
fn missing_required_keys_are_named() {
    assert_error(&without("user = \"bot\""), "missing field `user`");
    assert_error(&without("[jobs]"), "missing field `jobs`");
}

#[test]
fn secrets_both_forms_is_an_error() {
    assert_error(
        &with("jenkins", "api_token_file = \"/x\""),
        "[jenkins] api_token, api_token_file: give one of the two, not both",
    );
    assert_error(
        &with("build_listener", "secret_file = \"/x\""),
        "[build_listener] secret, secret_file: give one of the two, not both",
    );
}

#[test]
fn secrets_neither_form_is_an_error_naming_both_keys() {
    assert_error(
        &without("api_token = \"jenkins-token\""),
        "[jenkins] api_token, api_token_file: missing",
    );
    assert_error(
        &without("secret = \"listener-secret\""),
        "[build_listener] secret, secret_file: missing",
    );
    assert_error(
        &MINIMAL.replace("\"listener-secret\"", "\"\""),
        "[build_listener] secret: must not be empty",
    );
}

#[test]
fn secret_files_are_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    let secret = dir.path().join("secret");
    std::fs::write(&token, "tok en\n\n").unwrap();
    std::fs::write(&secret, " s\r\n").unwrap();
    let text = MINIMAL
        .replace(
            "api_token = \"jenkins-token\"",
            &format!("api_token_file = {:?}", token),
        )
        .replace(
            "secret = \"listener-secret\"",
            &format!("secret_file = {:?}", secret),
        );
    let c = parse(&text).unwrap();
    assert_eq!(c.jenkins.api_token().expose(), "tok en");
    assert_eq!(c.build_listener.secret().expose(), " s");

    std::fs::write(&secret, "\n").unwrap();
    assert_error(
        &text,
        &format!(
            "[build_listener] secret_file: {} is empty",
            secret.display()
        ),
    );
}

#[test]
fn open_secret_files_are_warnings_naming_key_and_file_not_the_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    let secret = dir.path().join("secret");
    std::fs::write(&token, "jenkins-file-token\n").unwrap();
    std::fs::write(&secret, "listener-file-secret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = MINIMAL
        .replace(
            "api_token = \"jenkins-token\"",
            &format!("api_token_file = {:?}", token),
        )
        .replace(
            "secret = \"listener-secret\"",
            &format!("secret_file = {:?}", secret),
        );
    let c = parse(&text).unwrap();
    let warnings: Vec<String> = c.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(c.warnings().len(), 1, "{warnings:?}");
    let w = &c.warnings()[0];
    assert_eq!(w.key, "[jenkins] api_token_file");
    assert_eq!(w.file, token);
    assert!(w.message.contains("mode 644"), "{w}");
    assert!(!w.to_string().contains("jenkins-file-token"), "{w}");

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let c = parse(&text).unwrap();
    let keys: Vec<&str> = c.warnings().iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        keys,
        ["[jenkins] api_token_file", "[build_listener] secret_file"]
    );
    assert!(parse(MINIMAL).unwrap().warnings().is_empty());
}

/// A secret file is read up to a bound: a path to an endless file is an
/// error, not a daemon that fills its memory.
#[test]
fn endless_secret_files_are_refused() {
    let text = MINIMAL.replace(
        "secret = \"listener-secret\"",
        "secret_file = \"/dev/zero\"",
    );
    assert_error(
        &text,
        "[build_listener] secret_file: /dev/zero is larger than 65536 bytes",
    );
}

#[test]
fn missing_secret_file_names_config_key_and_file() {
    let text = MINIMAL.replace(
        "api_token = \"jenkins-token\"",
        "api_token_file = \"/nonexistent/token\"",
    );
    let err = error(&text);
    assert!(
        err.starts_with(&format!(
            "{PATH}: [jenkins] api_token_file: cannot read /nonexistent/token: No such file"
        )),
        "{err}"
    );
}

#[test]
fn secrets_never_show_in_debug() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "Secret(***)");
    let c = parse(MINIMAL).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("jenkins-token"), "{debug}");
    assert!(!debug.contains("listener-secret"), "{debug}");
}

#[test]
fn urls_must_be_http_or_https() {
    let cases = [
        (
            "gerrit",
            "url = \"ftp://review.example.org/\"",
            "[gerrit] url: ftp://",
        ),
        (
            "jenkins",
            "url = \"file:///tmp/jenkins\"",
            "[jenkins] url: file:///tmp/jenkins",
        ),
        (
            "gmail",
            "api_base_url = \"ftp://x/\"",
            "[gmail] api_base_url: ftp://x/: only http",
        ),
        (
            "build_listener",
            "public_url = \"unix:/x\"",
            "[build_listener] public_url",
        ),
        (
            "build_listener",
            "link_base = \"go/x\"",
            "[build_listener] link_base: not a URL",
        ),
        (
            "build_listener",
            "link_base = \"ssh://x/\"",
            "[build_listener] link_base",
        ),
    ];
    for (section, line, expected) in cases {
        let text = if line.starts_with("url =") {
            let old = if section == "gerrit" {
                "url = \"https://review.example.org\""
            } else {
                "url = \"https://jenkins.example.org/ci\""
            };
            MINIMAL.replace(old, line)
        } else {
            with(section, line)
        };
        assert_error(&text, expected);
    }
    let err = error(&with(
        "gmail",
        "api_base_url = \"http://127.0.0.1:9/gmail\"",
    ));
    assert!(
        err.contains("[gmail] api_base_url: must end with '/'"),
        "{err}"
    );
    let c = parse(&with(
        "gmail",
        "api_base_url = \"http://127.0.0.1:9/gmail/\"",
    ))
    .unwrap();
    assert_eq!(
        c.gmail.api_base_url.unwrap().as_str(),
        "http://127.0.0.1:9/gmail/"
    );
}

#[test]
fn durations_and_limits() {
    assert_error(
        &with("gmail", "poll_interval = \"500ms\""),
        "[gmail] poll_interval: must be at least 1s",
    );
    assert_eq!(
        parse(&with("gmail", "poll_interval = \"1s\""))
            .unwrap()
            .gmail
            .poll_interval,
        Duration::from_secs(1)
    );
    assert_error(
        &with("gmail", "poll_interval = \"often\""),
        "is not a duration",
    );
    assert_error(
        &with("gerrit", "timeout = \"0s\""),
        "[gerrit] timeout: must be greater than 0",
    );
    assert_error(
        &with("build_listener", "body_limit = 0"),
        "[build_listener] body_limit: must be greater than 0",
    );
    assert_error(
        &with("build_listener", "outbox_concurrency = 0"),
        "[build_listener] outbox_concurrency: must be at least 1",
    );
    assert_eq!(
        parse(&with("build_listener", "outbox_concurrency = 1"))
            .unwrap()
            .build_listener
            .outbox_concurrency,
        1
    );
    assert_error(
        &with("gmail", "quarantine_label = \"gerrit\""),
        "[gmail] quarantine_label: must differ",
    );
}

#[test]
fn reconcile_keys_default_turn_off_and_are_checked() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.gerrit.reconcile_interval, Duration::from_secs(600));
    assert_eq!(
        c.gerrit.reconcile_full_interval,
        Duration::from_secs(6 * 3600)
    );
    assert_eq!(c.gerrit.reconcile_limit, 1000);
    let off = parse(&with("gerrit", "reconcile_interval = \"0\"")).unwrap();
    assert!(off.gerrit.reconcile_interval.is_zero());
    let start_only = parse(&with("gerrit", "reconcile_full_interval = \"0\"")).unwrap();
    assert!(start_only.gerrit.reconcile_full_interval.is_zero());
    let set = parse(&with(
        "gerrit",
        "reconcile_interval = \"2m\"\nreconcile_full_interval = \"1h\"\nreconcile_limit = 50",
    ))
    .unwrap();
    assert_eq!(set.gerrit.reconcile_interval, Duration::from_secs(120));
    assert_eq!(
        set.gerrit.reconcile_full_interval,
        Duration::from_secs(3600)
    );
    assert_eq!(set.gerrit.reconcile_limit, 50);
    assert_error(
        &with("gerrit", "reconcile_interval = \"500ms\""),
        "[gerrit] reconcile_interval: must be \"0\" (off) or at least 1s",
    );
    assert_error(
        &with("gerrit", "reconcile_interval = \"sometimes\""),
        "is not a duration",
    );
    assert_error(
        &with("gerrit", "reconcile_full_interval = \"5m\""),
        "[gerrit] reconcile_full_interval: must be \"0\" (only at start) or at least \
         reconcile_interval",
    );
    // Reconciling off, a full interval shorter than the default interval is moot.
    assert!(
        parse(&with(
            "gerrit",
            "reconcile_interval = \"0\"\nreconcile_full_interval = \"5m\""
        ))
        .is_ok()
    );
    assert_error(
        &with("gerrit", "reconcile_limit = 0"),
        "[gerrit] reconcile_limit: must be at least 1",
    );
    assert_error(&with("gerrit", "reconcile_limit = -1"), "reconcile_limit");
}

#[test]
fn job_names_must_not_be_empty() {
    assert_error(
        &with("jobs.projects", "\"platform/bionic\" = \"\""),
        "[jobs.projects] \"platform/bionic\": must not be empty",
    );
    assert_error(
        &with("jobs", "default = \" \""),
        "[jobs] default: must not be empty",
    );
    assert_error(
        &with("jobs", "clean = \"\""),
        "[jobs] clean: must not be empty",
    );
}

#[test]
fn job_roles_default_and_explicit() {
    let text = format!(
        "{}\n[jobs.projects]\n\"platform/bionic\" = \"presubmit\"\n\n[jobs.roles]\nlint = \"ignore\"\n",
        MINIMAL.replace(
            "[jobs]\n",
            "[jobs]\ndefault = \"fallback\"\nclean = \"wipe\"\n"
        )
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.jobs.role("presubmit"), Some(JobRole::Verify));
    assert_eq!(c.jobs.role("fallback"), Some(JobRole::Verify));
    assert_eq!(c.jobs.role("wipe"), Some(JobRole::Clean));
    assert_eq!(c.jobs.role("lint"), Some(JobRole::Ignore));
    assert_eq!(c.jobs.role("stranger"), None);
    assert_eq!(c.jobs.job_for_project("platform/bionic"), Some("presubmit"));
    assert_eq!(c.jobs.job_for_project("platform/art"), Some("fallback"));

    // An explicit "ignore" overrides the default role.
    let quiet = format!("{text}presubmit = \"ignore\"\n");
    assert_eq!(
        parse(&quiet).unwrap().jobs.role("presubmit"),
        Some(JobRole::Ignore)
    );
    // Contradictions are errors.
    assert_error(
        &format!("{text}presubmit = \"clean\"\n"),
        "[jobs.roles] \"presubmit\": a presubmit job cannot",
    );
    assert_error(
        &format!("{text}wipe = \"verify\"\n"),
        "[jobs.roles] \"wipe\": the clean job cannot",
    );
    assert_error(
        &format!("{text}other = \"vote\"\n"),
        "unknown variant `vote`",
    );
    let clash = text.replace("clean = \"wipe\"", "clean = \"presubmit\"");
    assert_error(
        &clash,
        "[jobs] clean: \"presubmit\" is also a presubmit job",
    );
}

#[test]
fn command_target_names() {
    for bad in ["ARM", "x 86", "arm!", "\"\""] {
        let name = if bad.starts_with('"') {
            bad.to_string()
        } else {
            format!("{bad:?}")
        };
        assert_error(
            &with("commands.targets", &format!("{name} = \"t\"")),
            "a command name is made of",
        );
    }
    assert_error(
        &with("commands.targets", "retry = \"t\""),
        "[commands.targets] retry: is a built-in command",
    );
    assert_error(
        &with("commands.targets", "clean = \"t\""),
        "[commands.targets] clean: is a built-in command",
    );
    assert_error(
        &with("commands.targets", "help = \"t\""),
        "[commands.targets] help: is a built-in command",
    );
    assert_error(
        &with("commands.targets", "riscv64 = \"\""),
        "[commands.targets] riscv64: must not be empty",
    );
    let c = parse(&with(
        "commands.targets",
        "riscv-64_v2 = \"aosp_riscv64-eng\"",
    ))
    .unwrap();
    assert_eq!(
        c.commands.lunch_target("riscv-64_v2"),
        Some("aosp_riscv64-eng")
    );
    assert_eq!(
        c.commands.targets.len(),
        1,
        "a table replaces the default targets"
    );
}

#[test]
fn review_votes_and_notify() {
    assert_error(
        &with("review.votes", "SUCESS = 1"),
        "[review.votes] SUCESS: not a Jenkins build result",
    );
    assert_error(
        &with("review.votes", "FAILURE = -3"),
        "[review.votes] FAILURE: vote -3 is outside -2..=2",
    );
    assert_error(
        &with("review.votes", "SUCCESS = 3"),
        "[review.votes] SUCCESS: vote 3 is outside",
    );
    let c = parse(&with(
        "review.votes",
        "UNSTABLE = 0\nABORTED = -2\nNOT_BUILT = 2",
    ))
    .unwrap();
    assert_eq!(c.review.vote_for("ABORTED"), Some(-2));
    assert_eq!(
        c.review.vote_for("SUCCESS"),
        None,
        "a table replaces the default votes"
    );

    assert_error(
        &with("review", "notify = \"EVERYONE\""),
        "[review] notify: \"EVERYONE\": expected one of NONE, OWNER",
    );
    let c = parse(&with("review", "notify = \"owner\"")).unwrap();
    assert_eq!(c.review.notify, "OWNER");
    assert_error(
        &with("review", "label = \"\""),
        "[review] label: must not be empty",
    );
}

#[test]
fn domains_are_normalized_or_rejected() {
    let c = parse(&with(
        "policy",
        "trusted_committer_domains = [\"@Google.COM\", \" android.com \"]",
    ))
    .unwrap();
    assert_eq!(
        c.policy.trusted_committer_domains,
        ["google.com", "android.com"]
    );
    for bad in ["\"a@b.com\"", "\"\"", "\"ex ample.org\""] {
        assert_error(
            &with("policy", &format!("trusted_commenter_domains = [{bad}]")),
            "[policy] trusted_commenter_domains: ",
        );
    }
    assert_error(
        &with("policy", "trusted_commenters = [\"nobody\"]"),
        "[policy] trusted_commenters: \"nobody\" is not an e-mail",
    );
}

#[test]
fn bot_email_must_be_an_address() {
    assert_error(
        &MINIMAL.replace("bot@example.org", "bot"),
        "[gerrit] bot_email: \"bot\" is not an e-mail address",
    );
    assert_error(
        &MINIMAL.replace("bot@example.org", "@example.org"),
        "[gerrit] bot_email",
    );
    let c = parse(MINIMAL).unwrap();
    assert!(c.gerrit.is_bot("Bot@Example.org"));
    assert!(!c.gerrit.is_bot("other@example.org"));
}

#[test]
fn skip_lists_are_checked() {
    assert_error(
        &with("policy", "skip_file_names = [\"a/CleanSpec.mk\"]"),
        "[policy] skip_file_names",
    );
    assert_error(
        &with("policy", "skip_path_prefixes = [\"/\"]"),
        "[policy] skip_path_prefixes: an entry is empty",
    );
    let c = parse(&with(
        "policy",
        "skip_path_prefixes = [\"/tools/bionicbb/\"]",
    ))
    .unwrap();
    assert_eq!(c.policy.skip_path_prefixes, ["tools/bionicbb"]);
}

#[test]
fn committer_trust_is_an_exact_domain_match() {
    let p = parse(MINIMAL).unwrap().policy;
    assert!(p.committer_trusted("dev@google.com"));
    assert!(p.committer_trusted("Dev@GOOGLE.com"));
    assert!(
        p.committer_trusted("odd@name@android.com"),
        "domain is after the last @"
    );
    assert!(!p.committer_trusted("x@google.com.fake.com"));
    assert!(!p.committer_trusted("x@fakegoogle.com"));
    assert!(!p.committer_trusted("x@mail.google.com"));
    assert!(!p.committer_trusted("google.com"));
    assert!(!p.committer_trusted("@google.com"));
    assert!(!p.committer_trusted(""));
}

#[test]
fn commenter_trust_by_domain_or_address() {
    let text = with(
        "policy",
        "trusted_commenter_domains = [\"android.com\"]\ntrusted_commenters = [\"Friend@Example.org\"]",
    );
    let p = parse(&text).unwrap().policy;
    assert!(p.commenter_trusted("a@android.com"));
    assert!(
        !p.commenter_trusted("a@google.com"),
        "committer domains do not apply"
    );
    assert!(p.commenter_trusted("friend@example.org"));
    assert!(p.commenter_trusted("FRIEND@example.ORG"));
    assert!(!p.commenter_trusted("enemy@example.org"));
    assert!(!p.commenter_trusted("x@android.com.evil.org"));
}

#[test]
fn skipped_paths_by_name_or_directory() {
    let p = parse(MINIMAL).unwrap().policy;
    assert_eq!(p.skipped_path("CleanSpec.mk"), Some("CleanSpec.mk"));
    assert_eq!(p.skipped_path("libc/CleanSpec.mk"), Some("CleanSpec.mk"));
    assert_eq!(p.skipped_path("libc/NotCleanSpec.mk"), None);
    assert_eq!(p.skipped_path("tools/bionicbb/x"), Some("tools/bionicbb"));
    assert_eq!(
        p.skipped_path("tools/bionicbb/a/b.py"),
        Some("tools/bionicbb")
    );
    assert_eq!(p.skipped_path("tools/bionicbb"), Some("tools/bionicbb"));
    assert_eq!(p.skipped_path("/tools/bionicbb/x"), Some("tools/bionicbb"));
    assert_eq!(p.skipped_path("tools/bionicbbx/y"), None);
    assert_eq!(p.skipped_path("other/tools/bionicbb/x"), None);
    assert_eq!(p.skipped_path("libc/bionic/malloc.cpp"), None);
}

#[test]
fn jobs_helpers_without_default() {
    let c = parse(&with(
        "jobs.projects",
        "\"platform/bionic\" = \"bionic-presubmit\"",
    ))
    .unwrap();
    assert_eq!(
        c.jobs.job_for_project("platform/bionic"),
        Some("bionic-presubmit")
    );
    assert_eq!(c.jobs.job_for_project("platform/bionicx"), None);
    assert_eq!(c.jobs.role("bionic-presubmit"), Some(JobRole::Verify));
}

#[test]
fn gmail_listener_table() {
    let c = parse(&with(
        "gmail_listener",
        "health_listen = \"127.0.0.1:8081\"",
    ))
    .unwrap();
    assert_eq!(
        c.gmail_listener.health_listen,
        Some("127.0.0.1:8081".parse().unwrap())
    );
    assert_error(
        &with("gmail_listener", "health_listen = \"nowhere\""),
        "invalid socket address",
    );
}

#[test]
fn gmail_listener_concurrency_is_between_1_and_64() {
    for n in [1, 8, 64] {
        let c = parse(&with("gmail_listener", &format!("concurrency = {n}"))).unwrap();
        assert_eq!(c.gmail_listener.concurrency, n);
    }
    for n in [0, 65] {
        assert_error(
            &with("gmail_listener", &format!("concurrency = {n}")),
            "[gmail_listener] concurrency: must be between 1 and 64",
        );
    }
    assert_error(&with("gmail_listener", "concurrency = -1"), "concurrency");
}

#[test]
fn ledger_path_follows_state_dir() {
    let c = parse(&with("", "state_dir = \"/srv/bb\"")).unwrap();
    assert_eq!(c.ledger_path(), PathBuf::from("/srv/bb/bionicbb.sqlite3"));
}

/// The only test that touches the environment.
#[test]
fn config_path_precedence() {
    // SAFETY: no other test in this binary reads or writes this variable.
    unsafe { std::env::set_var("BIONICBB_CONFIG", "/from/env.toml") };
    assert_eq!(
        config_path(Some("/cli.toml".into())),
        PathBuf::from("/cli.toml")
    );
    assert_eq!(config_path(None), PathBuf::from("/from/env.toml"));
    unsafe { std::env::set_var("BIONICBB_CONFIG", "") };
    assert_eq!(config_path(None), PathBuf::from(DEFAULT_PATH));
    unsafe { std::env::remove_var("BIONICBB_CONFIG") };
    assert_eq!(config_path(None), PathBuf::from(DEFAULT_PATH));
}

#[test]
fn skip_kinds_are_gerrit_change_kinds_and_never_rework() {
    use bionicbb_core::event::ChangeKind;
    let c = parse(&with(
        "policy",
        "skip_kinds = [\"trivial_rebase\", \" NO_CHANGE \"]\nbuild_wip = false\nbuild_private = false",
    ))
    .unwrap();
    assert_eq!(c.policy.skip_kinds, ["TRIVIAL_REBASE", "NO_CHANGE"]);
    assert!(c.policy.skips_kind(ChangeKind::TrivialRebase));
    assert!(c.policy.skips_kind(ChangeKind::NoChange));
    assert!(!c.policy.skips_kind(ChangeKind::NoCodeChange));
    assert!(!c.policy.skips_kind(ChangeKind::Rework));
    assert!(!c.policy.build_wip);
    assert!(!c.policy.build_private);
    // Every kind but REWORK may be listed; none is skipped with [].
    for kind in ChangeKind::ALL
        .into_iter()
        .filter(|k| *k != ChangeKind::Rework)
    {
        let c = parse(&with("policy", &format!("skip_kinds = [\"{kind}\"]"))).unwrap();
        assert!(c.policy.skips_kind(kind), "{kind}");
    }
    let c = parse(&with("policy", "skip_kinds = []")).unwrap();
    assert!(ChangeKind::ALL.into_iter().all(|k| !c.policy.skips_kind(k)));
    assert_error(
        &with("policy", "skip_kinds = [\"REWORK\"]"),
        "[policy] skip_kinds: REWORK cannot be skipped",
    );
    assert_error(
        &with("policy", "skip_kinds = [\"NO_CODE\"]"),
        "[policy] skip_kinds: \"NO_CODE\" is not a Gerrit change kind; expected one of \
         TRIVIAL_REBASE, MERGE_FIRST_PARENT_UPDATE, NO_CODE_CHANGE, NO_CHANGE, \
         TRIVIAL_REBASE_WITH_MESSAGE_UPDATE",
    );
    assert_error(&with("policy", "build_wip = \"no\""), "[policy] build_wip");
}
