//! Runs the real `build-listener` and `gmail-listener` binaries against the
//! fakes: finds the binaries, writes their configuration, captures their
//! logs, and stops them (gracefully or not).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The path of a workspace binary, next to the running executable (tests run
/// from `target/<profile>/deps/`, the sandbox from `target/<profile>/`).
/// The first call makes sure the daemons are built and fresh (see
/// [`ensure_built`]).
pub fn binary(name: &str) -> PathBuf {
    ensure_built();
    let path = target_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// `target/<profile>/` of the running executable.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current executable");
    let mut dir = exe.parent().expect("executable directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Builds the daemons once per process when running under cargo, so that a
/// test never runs a stale or missing binary (`cargo test -p bionicbb-tests`
/// alone does not build other packages' binaries). It asks for the same
/// build as `cargo test --workspace`, so under that command it finds
/// everything fresh and does nothing. Only test executables (in `deps/`)
/// do this; the sandbox builds the daemons itself. `BIONICBB_NO_BUILD` turns
/// it off.
pub fn ensure_built() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let in_test = std::env::current_exe()
            .is_ok_and(|exe| exe.parent().is_some_and(|d| d.ends_with("deps")));
        if !in_test || std::env::var_os("BIONICBB_NO_BUILD").is_some() {
            return;
        }
        let Some(mut cmd) = nested_cargo("test") else {
            return;
        };
        cmd.args(["--workspace", "--no-run", "--quiet"]);
        if target_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("cannot run cargo to build the daemons");
        assert!(
            out.status.success(),
            "building the daemons failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// `cargo <subcommand>` on this workspace, with the cargo that runs this
/// process and as the outer `cargo` would run it: `None` when not run by
/// cargo.
///
/// cargo gives the program it runs variables describing that one target
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, `OUT_DIR`, ...). A nested cargo
/// must not inherit them: it passes them on to build scripts, and a build
/// script that watches one of them (ring's does) sees it changed and
/// rebuilds, and then the outer cargo rebuilds it back on its next run. The
/// variables that configure cargo itself (`CARGO_HOME`, `CARGO_TARGET_DIR`,
/// `CARGO_BUILD_*`, `CARGO_PROFILE_*`, ...) are kept.
pub fn nested_cargo(subcommand: &str) -> Option<std::process::Command> {
    let cargo = std::env::var_os("CARGO")?;
    let mut cmd = std::process::Command::new(cargo);
    cmd.arg(subcommand);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if is_per_target_variable(name) {
            cmd.env_remove(name);
        }
    }
    cmd.args([
        "--manifest-path",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"),
    ]);
    Some(cmd)
}

/// Whether cargo sets `name` for the one target it compiles or runs (see
/// "Environment variables Cargo sets for crates" in the Cargo book), as
/// opposed to a variable that configures cargo.
fn is_per_target_variable(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    EXACT.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Everything needed to write a configuration file pointing at the fakes.
#[derive(Debug, Clone)]
pub struct Setup {
    pub dir: PathBuf,
    pub gerrit_url: String,
    pub jenkins_url: String,
    pub gmail_url: String,
    pub listener_port: u16,
    pub secret: String,
    /// Extra TOML appended verbatim (more tables or keys).
    pub extra: String,
}

/// The `[gerrit]` line of [`Setup::write_config`] that turns reconciling
/// with Gerrit off: tests of the mail path see only what mail reports.
/// [`crate::world::World::reconciling`] replaces it.
pub const RECONCILE_OFF: &str = "reconcile_interval = \"0\"\n";

/// The `[jobs]` line of [`Setup::write_config`] that turns cancelling
/// superseded builds off: tests of other paths see every build they
/// trigger stay. The chaos test and `tests/cancel_superseded.rs` remove it.
pub const CANCEL_OFF: &str = "cancel_superseded = false\n";

/// Credentials the fakes are seeded with by [`Setup::write_config`]'s users.
pub const BOT_EMAIL: &str = "bionicbb@example.com";
pub const BOT_USER: &str = "bionicbb";
pub const BOT_HTTP_PASSWORD: &str = "gerrit-http-password";
pub const JENKINS_USER: &str = "bionicbb";
pub const JENKINS_TOKEN: &str = "jenkins-api-token";
pub const GMAIL_TOKEN: &str = "gmail-access-token";

impl Setup {
    /// A configuration for build-listener alone: Gerrit at `gerrit_url`,
    /// Jenkins and Gmail pointed at a port nothing listens on.
    pub fn build_listener(dir: &Path, gerrit_url: &str, listener_port: u16, secret: &str) -> Setup {
        const NOWHERE: &str = "http://127.0.0.1:9/";
        Setup {
            dir: dir.to_path_buf(),
            gerrit_url: gerrit_url.to_string(),
            jenkins_url: NOWHERE.to_string(),
            gmail_url: NOWHERE.to_string(),
            listener_port,
            secret: secret.to_string(),
            extra: String::new(),
        }
    }

    /// Writes `config.toml`, a netrc for the Gerrit host, the Jenkins token
    /// and build-listener secret files, and the Gmail bearer-token file into
    /// `self.dir`; returns the config path.
    pub fn write_config(&self) -> PathBuf {
        let dir = &self.dir;
        std::fs::create_dir_all(dir.join("state")).expect("state dir");
        let host = url_host(&self.gerrit_url);
        write_private(
            &dir.join("netrc"),
            &format!("machine {host} login {BOT_USER} password {BOT_HTTP_PASSWORD}\n"),
        );
        write_private(&dir.join("jenkins-token"), &format!("{JENKINS_TOKEN}\n"));
        write_private(&dir.join("listener-secret"), &format!("{}\n", self.secret));
        write_private(&dir.join("gmail-token"), &format!("{GMAIL_TOKEN}\n"));
        let mut text = String::new();
        let d = dir.display();
        let _ = write!(
            text,
            r#"state_dir = "{d}/state"

[gerrit]
url = "{gerrit}"
bot_email = "{BOT_EMAIL}"
netrc = "{d}/netrc"
timeout = "5s"
{RECONCILE_OFF}
[jenkins]
url = "{jenkins}"
user = "{JENKINS_USER}"
api_token_file = "{d}/jenkins-token"
timeout = "5s"

[gmail]
label = "gerrit"
poll_interval = "1s"
api_base_url = "{gmail}"
bearer_token_file = "{d}/gmail-token"
client_secret_file = "{d}/client_secret.json"
token_cache_file = "{d}/state/gmail-token.json"
timeout = "5s"

[build_listener]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}/"
secret_file = "{d}/listener-secret"

[jobs]
default = "bionic-presubmit"
clean = "clean-bionic-presubmit"
{CANCEL_OFF}
[jobs.projects]
"platform/bionic" = "bionic-presubmit"

[jobs.roles]
bionic-presubmit = "verify"
clean-bionic-presubmit = "clean"
bionic-lint = "ignore"

[policy]
trusted_committer_domains = ["example.com"]
trusted_commenter_domains = ["example.com"]
"#,
            gerrit = self.gerrit_url,
            jenkins = self.jenkins_url,
            gmail = self.gmail_url,
            port = self.listener_port,
        );
        text.push_str(&self.extra);
        let path = dir.join("config.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }
}

fn url_host(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or("127.0.0.1")
        .to_string()
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

/// Asserts that a daemon run succeeded, showing its output when not.
pub fn assert_ok(status: ExitStatus, output: &str) {
    assert!(status.success(), "exit {status:?}; output:\n{output}");
}

/// A running daemon whose output (stdout and stderr) is captured line by line.
pub struct Daemon {
    pub name: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `binary(name)` with `args`; `RUST_LOG` defaults to `info`.
    pub fn spawn(name: &str, args: &[&str]) -> Daemon {
        Self::start(name, Command::new(binary(name)), args)
    }

    /// Like [`Daemon::spawn`], with environment variables set (`RUST_LOG`
    /// among them, for a test that reads debug lines).
    pub fn spawn_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(binary(name));
        cmd.envs(env.iter().copied());
        Self::start(name, cmd, args)
    }

    /// Like [`Daemon::spawn`], with at most `nofile` open file descriptors
    /// (`ulimit -n` in a shell that then becomes the daemon).
    pub fn spawn_with_nofile(name: &str, nofile: u32, args: &[&str]) -> Daemon {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(binary(name));
        Self::start(name, cmd, args)
    }

    fn start(name: &str, mut cmd: Command, args: &[&str]) -> Daemon {
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let set = cmd.as_std().get_envs().any(|(k, _)| k == "RUST_LOG");
        if !set && std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            capture(out, output.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, output.clone());
        }
        Daemon {
            name: name.to_string(),
            child,
            output,
        }
    }

    /// The exit status if the process has exited by itself, without waiting.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Everything the daemon printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output contains `needle`; panics with the output after `timeout`.
    pub async fn wait_for_output(&self, needle: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.output().contains(needle) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} did not print {needle:?} within {timeout:?}; output:\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(mut self, timeout: Duration) -> (ExitStatus, String) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit after SIGTERM; output:\n{}",
                    self.name,
                    self.output()
                )
            })
            .expect("wait");
        tokio::time::sleep(Duration::from_millis(50)).await;
        (status, self.output())
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub async fn kill(mut self) -> String {
        let _ = self.child.kill().await;
        self.output()
    }

    /// Waits for the process to exit by itself.
    pub async fn wait(self, timeout: Duration) -> (ExitStatus, String) {
        let (status, output, _) = self.wait_exited(timeout).await;
        (status, output)
    }

    /// [`Daemon::wait`], also returning when the process exited (before
    /// the pause that lets its last output arrive), for timings.
    pub async fn wait_exited(mut self, timeout: Duration) -> (ExitStatus, String, Instant) {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit within {timeout:?}; output:\n{}",
                    self.name,
                    self.output()
                )
            })
            .expect("wait");
        let exited = Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        (status, self.output(), exited)
    }
}

fn capture<R: tokio::io::AsyncRead + Unpin + Send + 'static>(reader: R, sink: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if std::env::var_os("BIONICBB_TEST_ECHO").is_some() {
                eprintln!("{line}");
            }
            let mut out = sink.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}
