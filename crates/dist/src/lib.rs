//! The man pages and shell completions of both daemons, rendered from their
//! clap command lines (`gmail_listener::cli::Cli`,
//! `build_listener::cli::Cli`), so they never drift from `--help`.
//!
//! They are committed under `contrib/` (the Debian package and the
//! container image install them from there); `cargo run -p bionicbb-dist`
//! rewrites them and `--check` tells whether they are current, as a test
//! does.

use std::path::PathBuf;

use clap::{Command, CommandFactory};
use clap_complete::Shell;

/// The daemons, by binary name.
pub const DAEMONS: [&str; 2] = ["build-listener", "gmail-listener"];

/// The shells completions are made for, and where each looks for them
/// under `contrib/completions/` (the package's destinations follow the
/// same names).
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "bash"),
    (Shell::Zsh, "zsh"),
    (Shell::Fish, "fish"),
];

/// One generated file: its path under `contrib/`, and its contents.
pub struct Generated {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// The command line of daemon `name`, with the version of the release
/// (not a build's commit: the pages change only with a release).
pub fn command(name: &str) -> Option<Command> {
    let cmd = match name {
        "gmail-listener" => gmail_listener::cli::Cli::command(),
        "build-listener" => build_listener::cli::Cli::command(),
        _ => return None,
    };
    Some(cmd.version(env!("CARGO_PKG_VERSION")))
}

/// Every generated file, in a fixed order.
pub fn all() -> std::io::Result<Vec<Generated>> {
    let mut out = Vec::new();
    for name in DAEMONS {
        let cmd = command(name).expect("a known daemon");
        out.extend(man_pages(name, cmd.clone())?);
        out.extend(completions(name, cmd));
    }
    Ok(out)
}

/// `NAME.1`, and `NAME-SUB.1` for each visible subcommand.
fn man_pages(name: &str, cmd: Command) -> std::io::Result<Vec<Generated>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![page(cmd.clone(), Some(extra_sections(name)))?];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let extra = subcommand_sections(sub.get_name());
        pages.push(page(sub.clone(), extra.map(str::to_string))?);
    }
    Ok(pages)
}

/// One page: clap's sections, then `extra`, then the version (a
/// subcommand has none).
fn page(cmd: Command, extra: Option<String>) -> std::io::Result<Generated> {
    let man = clap_mangen::Man::new(cmd.clone()).source("bionicbb");
    let mut text = Vec::new();
    man.render_title(&mut text)?;
    man.render_name_section(&mut text)?;
    man.render_synopsis_section(&mut text)?;
    man.render_description_section(&mut text)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut text)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut text)?;
    }
    if let Some(extra) = extra {
        text.extend_from_slice(extra.as_bytes());
    }
    if cmd.get_version().is_some() {
        man.render_version_section(&mut text)?;
    }
    Ok(Generated {
        path: PathBuf::from("man").join(man.get_filename()),
        contents: text,
    })
}

/// What a daemon's page says beyond its options: exit status, environment,
/// files and related pages, in roff.
pub fn extra_sections(name: &str) -> String {
    let other = DAEMONS
        .iter()
        .find(|d| **d != name)
        .copied()
        .unwrap_or(name);
    format!(
        r#".SH "EXIT STATUS"
.TP
\fB0\fR
Stopped cleanly (SIGTERM or SIGINT), or a one-shot command succeeded.
.TP
\fB1\fR
A fault that may pass by itself (a server unreachable at start, the port taken):
the systemd unit restarts the daemon. For \fBcheck\fR: a check failed.
.TP
\fB2\fR
Something the operator must fix: a configuration error (the message names the file and the key),
a missing credential, netrc entry or Gmail label. The unit does not restart it
(\fBRestartPreventExitStatus=2\fR).
.SH ENVIRONMENT
.TP
\fBBIONICBB_CONFIG\fR
The configuration file when \fB\-\-config\fR is not given (default /etc/bionicbb/config.toml).
.TP
\fBRUST_LOG\fR
The log filter (default \fBinfo\fR).
.TP
\fBCREDENTIALS_DIRECTORY\fR
Where a file key written \fBcredential:\fINAME\fR is found: systemd sets it for a unit with
\fBLoadCredential=\fINAME\fB:\fIPATH\fR.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
Set by systemd: the daemon reports readiness and a one\-line status, and pings the watchdog.
.TP
\fBNETRC\fR
The netrc file when the configuration names none (default ~/.netrc).
.SH FILES
.TP
/etc/bionicbb/config.toml
The configuration, shared by both daemons.
.TP
/usr/share/doc/bionicbb/config.example.toml
Every key, its default and its meaning.
.TP
/var/lib/bionicbb/bionicbb.sqlite3
The ledger: what was seen, triggered and posted, shared by both daemons.
.TP
/usr/share/doc/bionicbb/README.md
Installation, operation and troubleshooting.
.SH "SEE ALSO"
\fB{other}\fR(1), \fBsystemd.exec\fR(5), \fBsystemd\-analyze\fR(1)
"#
    )
}

/// What a subcommand's page says beyond its options, in roff; `None` when
/// nothing.
fn subcommand_sections(sub: &str) -> Option<&'static str> {
    match sub {
        "check" => Some(
            r#".SH "EXIT STATUS"
.TP
\fB0\fR
Every check passed (a warning does not fail it).
.TP
\fB1\fR
A check failed, or was skipped because one it needs failed; its line says what to fix.
.SH ENVIRONMENT
.TP
\fBCREDENTIALS_DIRECTORY\fR
Where a file key written \fBcredential:\fINAME\fR is found, as for the daemon: systemd sets it
for the unit; from a shell, set it to the directory holding the credential files.
"#,
        ),
        _ => None,
    }
}

/// The bash, zsh and fish completions of one daemon, without its hidden
/// options (clap's generators would offer them).
fn completions(name: &'static str, cmd: Command) -> Vec<Generated> {
    let mut cmd = visible(name, &cmd);
    SHELLS
        .iter()
        .map(|&(shell, dir)| {
            let mut contents = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut contents);
            let file = match shell {
                Shell::Zsh => format!("_{name}"),
                Shell::Fish => format!("{name}.fish"),
                _ => name.to_string(),
            };
            Generated {
                path: PathBuf::from("completions").join(dir).join(file),
                contents,
            }
        })
        .collect()
}

/// `cmd` (not yet built) named `name`, without its hidden top-level
/// arguments: clap cannot remove an argument, so the command is made anew
/// around its visible arguments and subcommands (which have no hidden
/// arguments of their own: a test checks every hidden option stays out).
fn visible(name: &'static str, cmd: &Command) -> Command {
    let mut out = Command::new(name)
        .version(env!("CARGO_PKG_VERSION"))
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    out
}
