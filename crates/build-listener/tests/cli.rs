//! The command line of the build-listener binary, without any server:
//! help, `--version`, and a start-up error.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_build-listener"))
}

#[test]
fn help_lists_check_and_config() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["check", "--config", "--version"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let out = bin().args(["check", "--help"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--online"));
}

#[test]
fn version_shows_the_git_commit() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let commit = std::env::var("BIONICBB_GIT_COMMIT").ok().or_else(|| {
        let git = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()?;
        git.status
            .success()
            .then(|| String::from_utf8_lossy(&git.stdout).trim().to_string())
    });
    let expected = match commit {
        Some(commit) => format!("build-listener {} ({commit})", env!("CARGO_PKG_VERSION")),
        None => format!("build-listener {}", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(text.trim(), expected);
}

#[test]
fn a_missing_config_is_one_line_and_exit_2() {
    let out = bin()
        .args(["--config", "/nonexistent/bionicbb.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("build-listener: cannot start: /nonexistent/bionicbb.toml: cannot read"),
        "{err}"
    );
    // A check of the same file is a checklist on standard output, exit 1.
    let out = bin()
        .args(["--config", "/nonexistent/bionicbb.toml", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("FAIL  config: /nonexistent/bionicbb.toml: cannot read"),
        "{text}"
    );
}
