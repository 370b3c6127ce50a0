//! The Debian package's contents as `cargo deb -p gmail-listener` makes
//! them (`[package.metadata.deb]` of `crates/gmail-listener/Cargo.toml`),
//! its maintainer scripts, and the container image recipe. CI builds and
//! installs the real package (`.ci/run`); these checks say why it would
//! miss a file before a build is needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `[package.metadata.deb]` table.
fn deb() -> toml::Table {
    let path = root().join("crates/gmail-listener/Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// Each packaged file's destination (no leading `/`), from the assets:
/// sources relative to the crate, a `*` in the last component expanded,
/// `target/release/NAME` taken as the workspace's binary NAME.
fn destinations() -> BTreeSet<String> {
    let crate_dir = root().join("crates/gmail-listener");
    let mut out = BTreeSet::new();
    for asset in deb()["assets"].as_array().unwrap() {
        let asset = asset.as_array().unwrap();
        let (source, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        let mode = asset[2].as_str().unwrap();
        let sources: Vec<String> = if let Some(bin) = source.strip_prefix("target/release/") {
            assert!(
                root().join("crates").join(bin).join("Cargo.toml").exists(),
                "{bin}"
            );
            assert_eq!(mode, "755", "{source}");
            vec![bin.to_string()]
        } else {
            assert_eq!(mode, "644", "{source}");
            expand(&crate_dir.join(source))
        };
        assert!(!sources.is_empty(), "{source} matches nothing");
        for name in sources {
            out.insert(match dest.strip_suffix('/') {
                Some(dir) => format!("{dir}/{name}"),
                None => dest.to_string(),
            });
        }
    }
    out
}

/// The file names `pattern` matches (a `*` only in its last component),
/// checked to exist.
fn expand(pattern: &Path) -> Vec<String> {
    let name = pattern.file_name().unwrap().to_str().unwrap();
    let Some((prefix, suffix)) = name.split_once('*') else {
        assert!(pattern.is_file(), "{} is missing", pattern.display());
        return vec![name.to_string()];
    };
    let dir = pattern.parent().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// The files of a directory of the repository (recursively), relative to it.
fn files_under(dir: &str) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                out.push(rel.display().to_string());
            }
        }
    }
    let base = root().join(dir);
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

#[test]
fn the_package_carries_both_daemons_their_units_docs_pages_and_completions() {
    let packaged = destinations();
    let mut expected = vec![
        "usr/lib/sysusers.d/bionicbb.conf".to_string(),
        "usr/share/doc/bionicbb/README.md".into(),
        "usr/share/doc/bionicbb/CHANGELOG.md".into(),
        "usr/share/doc/bionicbb/LICENSE".into(),
        "usr/share/doc/bionicbb/config.example.toml".into(),
    ];
    for daemon in ["gmail-listener", "build-listener"] {
        expected.push(format!("usr/bin/{daemon}"));
        expected.push(format!("usr/lib/systemd/system/bionicbb-{daemon}.service"));
        expected.push(format!("usr/share/man/man1/{daemon}.1"));
        expected.push(format!("usr/share/bash-completion/completions/{daemon}"));
        expected.push(format!("usr/share/zsh/vendor-completions/_{daemon}"));
        expected.push(format!("usr/share/fish/vendor_completions.d/{daemon}.fish"));
    }
    // Every generated page and completion, not only the ones named above.
    for page in files_under("contrib/man") {
        expected.push(format!("usr/share/man/man1/{page}"));
    }
    for file in files_under("contrib/completions") {
        let (shell, name) = file.split_once('/').unwrap();
        expected.push(match shell {
            "bash" => format!("usr/share/bash-completion/completions/{name}"),
            "zsh" => format!("usr/share/zsh/vendor-completions/{name}"),
            "fish" => format!("usr/share/fish/vendor_completions.d/{name}"),
            other => panic!("completions for an unknown shell {other}"),
        });
    }
    let missing: Vec<&String> = expected.iter().filter(|e| !packaged.contains(*e)).collect();
    assert!(missing.is_empty(), "not packaged: {missing:?}");
    let deb = deb();
    assert_eq!(deb["name"].as_str(), Some("bionicbb"));
    let depends = deb["depends"].as_str().unwrap();
    assert!(depends.contains("$auto") && depends.contains("ca-certificates"));
}

/// The units point at the README and the man pages; the package must put
/// them where the units say.
#[test]
fn what_the_units_documentation_names_is_in_the_package() {
    let packaged = destinations();
    for daemon in ["gmail-listener", "build-listener"] {
        let unit = root().join(format!("contrib/systemd/bionicbb-{daemon}.service"));
        let text = std::fs::read_to_string(&unit).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("Documentation="))
            .expect("Documentation=");
        for uri in line.split_whitespace() {
            let path = if let Some(file) = uri.strip_prefix("file:/") {
                file.to_string()
            } else if let Some(page) = uri.strip_prefix("man:") {
                let (name, section) = page.trim_end_matches(')').split_once('(').unwrap();
                format!("usr/share/man/man{section}/{name}.{section}")
            } else {
                panic!("{daemon}: unexpected documentation {uri}");
            };
            assert!(packaged.contains(&path), "{daemon}: {uri} is not packaged");
        }
    }
}

#[test]
fn maintainer_scripts_are_executable_shell_that_parses() {
    use std::os::unix::fs::PermissionsExt;
    let dir = deb()["maintainer-scripts"].as_str().unwrap().to_string();
    let dir = root().join("crates/gmail-listener").join(dir);
    for script in ["postinst", "prerm", "postrm"] {
        let path = dir.join(script);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{script}");
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The account comes from the sysusers file the package installs.
    let postinst = std::fs::read_to_string(dir.join("postinst")).unwrap();
    assert!(
        postinst.contains("systemd-sysusers bionicbb.conf"),
        "{postinst}"
    );
}

/// `docker build` needs an engine this machine does not have; the recipe
/// is checked for what it promises: two stages, both binaries, an
/// unprivileged user, credentials where container secrets are mounted, and
/// sources that exist.
#[test]
fn the_container_recipe_builds_both_daemons_and_runs_unprivileged() {
    let text = std::fs::read_to_string(root().join("contrib/Dockerfile")).unwrap();
    let instructions: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && !l.trim().is_empty())
        .collect();
    let from: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "{from:?}");
    assert!(from[0].ends_with(" AS build"), "{from:?}");
    assert!(
        text.contains("cargo build --release --locked -p gmail-listener -p build-listener"),
        "{text}"
    );
    let user = instructions
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric uid");
    assert_ne!(uid, 0);
    assert!(
        text.contains("CREDENTIALS_DIRECTORY=/run/secrets"),
        "{text}"
    );
    // .git stays out of the context: the commit --version names comes in
    // as the build argument the version script reads.
    assert!(
        instructions.contains(&"ARG BIONICBB_GIT_COMMIT="),
        "{instructions:?}"
    );
    for line in instructions.iter().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            for daemon in ["gmail-listener", "build-listener"] {
                assert!(
                    line.contains(&format!("/target/release/{daemon}")),
                    "{line}"
                );
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            assert!(root().join(source).exists(), "{line}: {source} is missing");
        }
    }
}
