//! The man pages and completions committed under `contrib/` are the ones
//! the daemons' command lines give, and say what a reader needs.

use std::path::Path;

use bionicbb_dist::{DAEMONS, all, command};

fn contrib() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../contrib"))
}

fn text(path: &str) -> String {
    let file = all()
        .unwrap()
        .into_iter()
        .find(|f| f.path == Path::new(path))
        .unwrap_or_else(|| panic!("{path} is not generated"));
    String::from_utf8(file.contents).unwrap()
}

#[test]
fn committed_files_are_current() {
    let mut stale = Vec::new();
    for file in all().unwrap() {
        let committed = std::fs::read(contrib().join(&file.path)).ok();
        if committed.as_deref() != Some(file.contents.as_slice()) {
            stale.push(file.path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale under contrib/: {stale:?}; run `cargo run -p bionicbb-dist` and commit them"
    );
}

#[test]
fn every_daemon_has_a_page_and_three_completions() {
    let paths: Vec<String> = all()
        .unwrap()
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    for daemon in DAEMONS {
        for expected in [
            format!("man/{daemon}.1"),
            format!("completions/bash/{daemon}"),
            format!("completions/zsh/_{daemon}"),
            format!("completions/fish/{daemon}.fish"),
        ] {
            assert!(paths.contains(&expected), "{expected} in {paths:?}");
        }
    }
    // A page per visible subcommand, none for `help` or hidden options.
    assert!(paths.contains(&"man/gmail-listener-auth.1".to_string()));
    assert!(paths.contains(&"man/gmail-listener-check.1".to_string()));
    assert!(paths.contains(&"man/build-listener-check.1".to_string()));
    assert!(paths.contains(&"man/gmail-listener-parse.1".to_string()));
    assert!(!paths.iter().any(|p| p.contains("help")), "{paths:?}");
}

#[test]
fn pages_give_options_exit_status_and_files() {
    let gmail = text("man/gmail-listener.1");
    assert!(gmail.starts_with(".ie \\n(.g .ds Aq \\(aq"), "{gmail}");
    assert!(gmail.contains(".TH gmail-listener 1"), "{gmail}");
    for needle in [
        "\\-\\-config",
        "\\-\\-once",
        "\\-\\-dry\\-run",
        "gmail\\-listener\\-auth(1)",
        ".SH \"EXIT STATUS\"",
        "RestartPreventExitStatus=2",
        "CREDENTIALS_DIRECTORY",
        "/etc/bionicbb/config.toml",
        "\\fBbuild-listener\\fR(1)",
        env!("CARGO_PKG_VERSION"),
    ] {
        assert!(gmail.contains(needle), "{needle} not in\n{gmail}");
    }
    let build = text("man/build-listener.1");
    assert!(build.contains("\\-\\-config"), "{build}");
    assert!(build.contains("build\\-listener\\-check(1)"), "{build}");
    assert!(build.contains("BIONICBB_CONFIG"), "{build}");
    assert!(build.contains("\\fBgmail-listener\\fR(1)"), "{build}");
    // Options for tests stay out of the page, as out of --help.
    assert!(!build.contains("outbox"), "{build}");
    for daemon in DAEMONS {
        let check = text(&format!("man/{daemon}-check.1"));
        for needle in [
            "\\-\\-online",
            ".SH \"EXIT STATUS\"",
            "CREDENTIALS_DIRECTORY",
        ] {
            assert!(check.contains(needle), "{needle} not in\n{check}");
        }
    }
}

#[test]
fn completions_know_the_subcommands_and_options() {
    let bash = text("completions/bash/gmail-listener");
    assert!(bash.contains("auth") && bash.contains("parse"), "{bash}");
    assert!(bash.contains("--config"), "{bash}");
    let zsh = text("completions/zsh/_gmail-listener");
    assert!(zsh.starts_with("#compdef gmail-listener"), "{zsh}");
    let fish = text("completions/fish/build-listener.fish");
    assert!(fish.contains("-l config"), "{fish}");
    for daemon in DAEMONS {
        let bash = text(&format!("completions/bash/{daemon}"));
        assert!(
            bash.contains("check") && bash.contains("--online"),
            "{bash}"
        );
    }
}

/// Options kept for tests are hidden from `--help`, and from completions.
#[test]
fn completions_leave_hidden_options_out() {
    let mut hidden = Vec::new();
    for daemon in DAEMONS {
        let cmd = command(daemon).unwrap();
        let subs = cmd.get_subcommands().cloned().collect::<Vec<_>>();
        for c in std::iter::once(cmd).chain(subs) {
            hidden.extend(
                c.get_arguments()
                    .filter(|a| a.is_hide_set())
                    .filter_map(|a| a.get_long().map(str::to_string)),
            );
        }
    }
    assert!(
        hidden.contains(&"outbox-settle-ms".to_string()),
        "{hidden:?}"
    );
    for file in all().unwrap() {
        if !file.path.starts_with("completions") {
            continue;
        }
        let text = String::from_utf8(file.contents).unwrap();
        for long in &hidden {
            assert!(
                !text.contains(long.as_str()),
                "{long} in {}",
                file.path.display()
            );
        }
    }
}
