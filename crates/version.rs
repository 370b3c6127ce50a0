//! The build script of both daemons (`build = "../version.rs"` in their
//! manifests): sets `BIONICBB_VERSION` to the package version and the git
//! commit it is built from, e.g. `0.1.0 (abc1234)`, for `--version`.
//!
//! The commit is `git rev-parse --short HEAD`; `BIONICBB_GIT_COMMIT`
//! overrides it (a build from a source tarball or a container context
//! without `.git`), and without either the version is the package version
//! alone.
//!
//! The script reruns only when the commit can have changed: when `HEAD`
//! changes (another branch checked out, a detached checkout) or the ref it
//! points to moves (a commit). A loose ref is a file of its own; a packed
//! one lives in `packed-refs`, and the directory where git would write it
//! loose is watched too, since the next commit does. Nothing else in the
//! repository makes cargo run it again.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BIONICBB_GIT_COMMIT");
    let version = env!("CARGO_PKG_VERSION");
    let commit = std::env::var("BIONICBB_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().to_string())
        .or_else(|| {
            watch_git();
            git(&["rev-parse", "--short", "HEAD"])
        });
    let full = match commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=BIONICBB_VERSION={full}");
}

/// The trimmed output of a successful `git ARGS` run in the package
/// directory; `None` without git, outside a checkout, or on failure.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

/// A path git names (`git rev-parse --git-path NAME`: a worktree's `HEAD`
/// is its own, its refs are the repository's), made absolute.
fn git_path(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(&["rev-parse", "--git-path", name])?);
    Some(if path.is_absolute() {
        path
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    })
}

/// Tells cargo which files hold the commit. Only existing paths are
/// named: cargo reruns a script whose watched path is missing every time.
fn watch_git() {
    let watch = |path: &Path| {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    };
    let Some(head) = git_path("HEAD") else {
        return;
    };
    watch(&head);
    // Detached: HEAD holds the commit itself.
    let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) else {
        return;
    };
    let Some(loose) = git_path(&reference) else {
        return;
    };
    if loose.exists() {
        watch(&loose);
    } else {
        if let Some(packed) = git_path("packed-refs") {
            watch(&packed);
        }
        if let Some(dir) = loose.parent() {
            watch(dir);
        }
    }
}
