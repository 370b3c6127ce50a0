//! The systemd unit files in `contrib/systemd/`: the settings the daemons
//! rely on are there, the credentials they load are the ones
//! `config.example.toml` names, and `systemd-analyze verify` passes with
//! `ExecStart=` pointed at the binaries this build produced (verify checks
//! that the executable exists). Any warning fails: an unknown key is only a
//! warning to systemd, and a silently ignored hardening option is exactly
//! what this guards against.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use bionicbb_core::config::Config;
use bionicbb_tests::harness::binary;

const DAEMONS: [&str; 2] = ["build-listener", "gmail-listener"];

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd")
}

fn unit_text(daemon: &str) -> String {
    let path = contrib().join(format!("bionicbb-{daemon}.service"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `Key=value` settings of a unit file's `[section]`, in order
/// (comments and blank lines left out; a key may come more than once).
fn settings(text: &str, section: &str) -> Vec<(String, String)> {
    let header = format!("[{section}]");
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && !line.is_empty() && !line.starts_with(['#', ';']) {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a setting: {line}"));
            out.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// The values of `key` in `settings`.
fn values<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The one value of `key`; panics naming the unit when it is missing or
/// repeated.
fn one<'a>(settings: &'a [(String, String)], key: &str, unit: &str) -> &'a str {
    match values(settings, key)[..] {
        [value] => value,
        ref other => panic!("{unit}: {key}= {other:?}, expected one value"),
    }
}

/// The credential names a unit loads, each checked to come from
/// `/etc/bionicbb/` under its own name.
fn loaded_credentials(service: &[(String, String)], unit: &str) -> BTreeSet<String> {
    values(service, "LoadCredential")
        .into_iter()
        .map(|v| {
            let (name, source) = v.split_once(':').unwrap_or((v, ""));
            assert_eq!(source, format!("/etc/bionicbb/{name}"), "{unit}: {v}");
            name.to_string()
        })
        .collect()
}

#[test]
fn units_restart_only_what_may_pass_and_are_hardened() {
    for daemon in DAEMONS {
        let unit = format!("bionicbb-{daemon}.service");
        let text = unit_text(daemon);
        let service = settings(&text, "Service");
        let expected = [
            ("Type", "notify"),
            ("NotifyAccess", "main"),
            ("User", "bionicbb"),
            ("Group", "bionicbb"),
            ("StateDirectory", "bionicbb"),
            ("ConfigurationDirectory", "bionicbb"),
            ("Restart", "on-failure"),
            ("RestartPreventExitStatus", "2"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("ProtectProc", "invisible"),
            ("ProcSubset", "pid"),
            ("PrivateMounts", "yes"),
            ("PrivateUsers", "yes"),
            ("RemoveIPC", "yes"),
            ("UMask", "0077"),
        ];
        for (key, value) in expected {
            assert_eq!(one(&service, key, &unit), value, "{unit}: {key}");
        }
        assert_eq!(
            one(&service, "ExecStart", &unit),
            format!("{daemon} --config /etc/bionicbb/config.toml"),
            "{unit}"
        );
        let nofile: u32 = one(&service, "LimitNOFILE", &unit).parse().unwrap();
        assert!(nofile >= 1024, "{unit}: LimitNOFILE={nofile}");
        assert!(one(&service, "WatchdogSec", &unit).ends_with('s'));
        let documentation = one(&settings(&text, "Unit"), "Documentation", &unit).to_string();
        assert_eq!(
            documentation,
            format!("man:{daemon}(1) file:/usr/share/doc/bionicbb/README.md"),
        );
    }
    let gmail = settings(&unit_text("gmail-listener"), "Service");
    assert_eq!(one(&gmail, "TimeoutStartSec", "gmail-listener"), "6min");
}

/// Both units load the same secrets, those `config.example.toml` names as
/// credentials: the configuration is shared, and a `credential:NAME` it
/// names must be there for either daemon to load it.
#[test]
fn units_load_the_credentials_the_example_configuration_names() {
    let expected: BTreeSet<String> = [
        "netrc",
        "jenkins-api-token",
        "build-listener-secret",
        "client_secret.json",
    ]
    .map(String::from)
    .into();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let named: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once("\"credential:"))
        .map(|(_, rest)| rest.split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(named, expected, "credentials named by config.example.toml");
    for daemon in DAEMONS {
        let loaded = loaded_credentials(&settings(&unit_text(daemon), "Service"), daemon);
        assert_eq!(loaded, expected, "{daemon}");
        // The example loads with exactly what the unit hands over.
        let dir = tempfile::tempdir().unwrap();
        for name in &loaded {
            let body = match name.as_str() {
                "netrc" => "default login bot password pw\n",
                "client_secret.json" => "{}\n",
                _ => "a-secret\n",
            };
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let config = Config::parse_with_credentials(&text, &example, Some(dir.path()));
        assert!(config.is_ok(), "{daemon}: {}", config.unwrap_err());
    }
}

fn have_systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    if !have_systemd_analyze() {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is required in CI (.ci/run installs Debian's systemd package)"
        );
        eprintln!(
            "systemd-analyze is not installed here: unit files not verified (CI verifies them)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for daemon in DAEMONS {
        let unit = format!("bionicbb-{daemon}.service");
        let bare = format!("ExecStart={daemon} ");
        let text = unit_text(daemon);
        assert!(text.contains(&bare), "{unit}: ExecStart");
        let local = text.replace(&bare, &format!("ExecStart={} ", binary(daemon).display()));
        let path = dir.path().join(&unit);
        std::fs::write(&path, local).unwrap();
        units.push(path);
    }
    // The man pages are installed by the package, not here (CI verifies
    // the installed units with them).
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stdout}{stderr}"
    );
    assert!(
        stderr.trim().is_empty() && stdout.trim().is_empty(),
        "warnings:\n{stdout}{stderr}"
    );
}

#[test]
fn sysusers_declares_the_dedicated_account() {
    let text = std::fs::read_to_string(contrib().join("bionicbb.sysusers")).unwrap();
    assert!(text.lines().any(|l| l.starts_with("u bionicbb ")), "{text}");
}
