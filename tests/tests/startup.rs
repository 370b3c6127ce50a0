//! End-to-end: how both daemons fail to start. One plain line on standard
//! error names what to fix (`DAEMON: cannot start: ...`), each cause said
//! once; exit 2 when the operator must act (the configuration, the netrc
//! file, the state directory: systemd does not restart on it), 1 when the
//! cause may pass (the port in use). Logs, text or JSON, go to standard
//! error too: standard output stays empty.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use bionicbb_tests::harness::{Setup, binary, free_port};

const DAEMONS: [&str; 2] = ["gmail-listener", "build-listener"];
/// Nothing listens there: the failures below happen before any call.
const NOWHERE: &str = "http://127.0.0.1:9/";

fn setup(dir: &Path) -> PathBuf {
    Setup::build_listener(dir, NOWHERE, free_port(), "startup-secret").write_config()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

fn append(path: &Path, tail: &str) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(tail);
    std::fs::write(path, text).unwrap();
}

/// Runs `daemon --config CONFIG` (`--once` for gmail-listener) to its end.
async fn run(daemon: &str, config: &Path) -> Output {
    let mut cmd = tokio::process::Command::new(binary(daemon));
    cmd.arg("--config").arg(config).env("RUST_LOG", "info");
    if daemon == "gmail-listener" {
        cmd.arg("--once");
    }
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{daemon} did not exit"))
        .unwrap()
}

/// The one line saying why `daemon` did not start; checks it is the last
/// line of standard error and that standard output is empty.
fn failure_line(daemon: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.is_empty(), "{daemon} wrote to stdout:\n{stdout}");
    let prefix = format!("{daemon}: cannot start: ");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot start"))
        .collect();
    assert_eq!(lines.len(), 1, "one failure line:\n{stderr}");
    assert!(lines[0].starts_with(&prefix), "{stderr}");
    assert_eq!(stderr.lines().last(), Some(lines[0]), "{stderr}");
    lines[0].to_string()
}

#[tokio::test]
async fn a_configuration_error_is_one_line_naming_file_and_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    edit(&config, "bot_email = ", "bot_mail = ");
    for daemon in DAEMONS {
        let out = run(daemon, &config).await;
        let line = failure_line(daemon, &out);
        assert_eq!(out.status.code(), Some(2), "{line}");
        assert!(line.contains(&config.display().to_string()), "{line}");
        assert!(line.contains("bot_mail"), "{line}");
        // Nothing before it: logging is not set up yet.
        assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    }
}

#[tokio::test]
async fn a_netrc_without_the_gerrit_host_is_exit_2_naming_the_netrc_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let netrc = dir.path().join("netrc");
    std::fs::write(&netrc, "machine elsewhere.example.org login x password y\n").unwrap();
    for daemon in DAEMONS {
        let out = run(daemon, &config).await;
        let line = failure_line(daemon, &out);
        assert_eq!(out.status.code(), Some(2), "{line}");
        assert!(
            line.contains(&format!(
                "{}: no entry for 127.0.0.1 and no default entry",
                netrc.display()
            )),
            "{line}"
        );
        assert!(
            line.contains("add `machine 127.0.0.1 login USER password HTTP-PASSWORD`"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn a_missing_netrc_file_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let netrc = dir.path().join("netrc");
    std::fs::remove_file(&netrc).unwrap();
    for daemon in DAEMONS {
        let out = run(daemon, &config).await;
        let line = failure_line(daemon, &out);
        assert_eq!(out.status.code(), Some(2), "{line}");
        assert!(line.contains(&netrc.display().to_string()), "{line}");
        assert_eq!(
            line.matches("No such file or directory").count(),
            1,
            "{line}"
        );
    }
}

#[tokio::test]
async fn an_unusable_state_directory_says_its_cause_once_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    // The state directory would be below a regular file.
    let file = dir.path().join("netrc");
    edit(
        &config,
        &format!("state_dir = \"{}/state\"", dir.path().display()),
        &format!("state_dir = \"{}/state\"", file.display()),
    );
    for daemon in DAEMONS {
        let out = run(daemon, &config).await;
        let line = failure_line(daemon, &out);
        assert_eq!(out.status.code(), Some(2), "{line}");
        assert!(line.contains("ledger"), "{line}");
        assert!(line.contains(&file.display().to_string()), "{line}");
        assert_eq!(line.matches("Not a directory").count(), 1, "{line}");
    }
}

#[tokio::test]
async fn a_port_in_use_is_exit_1_so_that_systemd_tries_again() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config =
        Setup::build_listener(dir.path(), NOWHERE, addr.port(), "startup-secret").write_config();
    let out = run("build-listener", &config).await;
    let line = failure_line("build-listener", &out);
    assert_eq!(out.status.code(), Some(1), "{line}");
    assert!(
        line.contains(&format!(
            "cannot listen on {addr} ([build_listener] listen)"
        )),
        "{line}"
    );

    append(
        &config,
        &format!("\n[gmail_listener]\nhealth_listen = \"{addr}\"\n"),
    );
    let out = run("gmail-listener", &config).await;
    let line = failure_line("gmail-listener", &out);
    assert_eq!(out.status.code(), Some(1), "{line}");
    assert!(
        line.contains(&format!(
            "cannot listen on {addr} ([gmail_listener] health_listen)"
        )),
        "{line}"
    );
    drop(taken);
}

#[tokio::test]
async fn json_logs_go_to_standard_error_like_text_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    // A failure after logging is set up, so that there are log lines.
    std::fs::write(
        dir.path().join("netrc"),
        "machine elsewhere login x password y\n",
    )
    .unwrap();
    append(&config, "\n[log]\njson = true\n");
    for daemon in DAEMONS {
        let out = run(daemon, &config).await;
        // Standard output is empty (checked here), the failure line last.
        failure_line(daemon, &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let json: Vec<serde_json::Value> = stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("a JSON log line"))
            .collect();
        assert!(!json.is_empty(), "no JSON log line:\n{stderr}");
        assert!(
            json.iter()
                .all(|v| v["level"].is_string() && v["fields"].is_object()),
            "{stderr}"
        );
    }
}
