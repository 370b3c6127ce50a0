//! The netrc reader against the shapes real files have.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bionicbb_core::config::Secret;
use bionicbb_core::netrc::{Credentials, Netrc, NetrcError, credentials_for, netrc_path, too_open};

fn creds(login: &str, password: &str) -> Credentials {
    Credentials {
        login: login.into(),
        password: Secret::new(password),
    }
}

/// Parses `text` and returns (login, password, account) of the entry used for `host`.
fn lookup(text: &str, host: &str) -> Option<(String, String, Option<String>)> {
    let netrc = Netrc::parse(text).expect("parses");
    netrc.lookup(host).map(|e| {
        (
            e.login.clone().unwrap_or_default(),
            e.password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
            e.account.as_ref().map(|a| a.expose().to_string()),
        )
    })
}

fn up(login: &str, password: &str) -> Option<(String, String, Option<String>)> {
    Some((login.into(), password.into(), None))
}

fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    path
}

#[test]
fn single_line_entry_and_default() {
    let text = "machine h login u password p\ndefault login a password b\n";
    assert_eq!(lookup(text, "h"), up("u", "p"));
    assert_eq!(lookup(text, "elsewhere"), up("a", "b"));
}

#[test]
fn multi_line_entry_with_account_and_tabs() {
    let text = "machine h\n\tlogin u\n\taccount acc\n\tpassword\tp\n";
    assert_eq!(
        lookup(text, "h"),
        Some(("u".into(), "p".into(), Some("acc".into())))
    );
}

#[test]
fn several_entries_on_one_line() {
    let text =
        "machine a login la password pa machine h login u password p default login d password dp";
    assert_eq!(lookup(text, "a"), up("la", "pa"));
    assert_eq!(lookup(text, "h"), up("u", "p"));
    assert_eq!(lookup(text, "z"), up("d", "dp"));
}

#[test]
fn user_is_an_alias_of_login_and_crlf_is_whitespace() {
    assert_eq!(
        lookup("machine h\r\nuser u\r\npassword p\r\n", "h"),
        up("u", "p")
    );
}

#[test]
fn whole_line_comments_are_ignored_even_with_keywords_inside() {
    let text = "# my credentials\n#machine evil login x password y\n  # indented\nmachine h login u password p\n";
    assert_eq!(lookup(text, "h"), up("u", "p"));
    assert_eq!(lookup(text, "evil"), None);
}

#[test]
fn trailing_comments_after_a_value_are_ignored() {
    let text = "machine h login u password p # the bot, login evil\nmachine o login lo # note\n password po\n";
    assert_eq!(lookup(text, "h"), up("u", "p"));
    assert_eq!(lookup(text, "o"), up("lo", "po"));
}

#[test]
fn hash_inside_a_value_is_not_a_comment() {
    assert_eq!(
        lookup("machine h login u password p#ss", "h"),
        up("u", "p#ss")
    );
    assert_eq!(
        lookup("machine h login u password \"#x y\"", "h"),
        up("u", "#x y")
    );
}

#[test]
fn quoted_values_keep_spaces_and_backslash_escapes() {
    assert_eq!(
        lookup("machine h login u password \"pa ss\"\n", "h"),
        up("u", "pa ss")
    );
    // As Python's netrc: a backslash takes the next character literally.
    assert_eq!(
        lookup(r#"machine h login u password "a\"b\\c""#, "h"),
        up("u", r#"a"b\c"#)
    );
    assert_eq!(
        lookup(r"machine h login u password a\ b", "h"),
        up("u", "a b")
    );
    assert_eq!(lookup("machine h login \"\" password p", "h"), up("", "p"));
}

#[test]
fn a_quoted_keyword_is_a_value() {
    assert_eq!(
        lookup("machine h login \"machine\" password \"default\"", "h"),
        up("machine", "default")
    );
}

#[test]
fn macdef_body_is_skipped_up_to_the_empty_line() {
    let text =
        "macdef init\ncd /pub\nmachine evil login x password y\n\nmachine h login u password p\n";
    assert_eq!(lookup(text, "h"), up("u", "p"));
    assert_eq!(lookup(text, "evil"), None);
}

#[test]
fn macdef_with_non_ascii_body_does_not_derail_the_parser() {
    let text = "macdef init\necho héllo wörld ✓ \"unclosed\n\r\nmachine h login u password p\n";
    assert_eq!(lookup(text, "h"), up("u", "p"));
}

#[test]
fn macdef_running_to_the_end_of_the_file_is_accepted() {
    let text = "machine h login u password p\nmacdef bye\nquit\n";
    assert_eq!(lookup(text, "h"), up("u", "p"));
}

#[test]
fn non_ascii_values() {
    assert_eq!(
        lookup("machine h login ünï password \"pässwörd ✓\"", "h"),
        up("ünï", "pässwörd ✓")
    );
}

#[test]
fn exact_host_wins_over_default_whatever_the_order() {
    let text = "default login d password dp\nmachine h login u password p\n";
    assert_eq!(lookup(text, "h"), up("u", "p"));
    assert_eq!(
        lookup(text, "H"),
        up("u", "p"),
        "host names are case-insensitive"
    );
    // A suffix or prefix is not a match.
    assert_eq!(lookup(text, "xh"), up("d", "dp"));
}

#[test]
fn first_entry_for_a_host_wins() {
    assert_eq!(
        lookup(
            "machine h login a password 1 machine h login b password 2",
            "h"
        ),
        up("a", "1")
    );
}

#[test]
fn missing_host_without_default_is_none() {
    assert_eq!(lookup("machine a login u password p", "h"), None);
    assert_eq!(lookup("", "h"), None);
    assert_eq!(lookup("# only a comment\n", "h"), None);
}

#[test]
fn syntax_errors_give_the_line_and_never_the_text() {
    let cases: &[(&str, usize)] = &[
        (
            "# c\nmachine a login b password c\nmachine h logn u password p\n",
            3,
        ),
        ("machine h login u password pa zq\n", 1),
        ("macdef m\nbody\n\nlogin u\n", 4),
        ("\n\nmachine h login u password \"hunter\nmore\n", 3),
        ("machine h\nlogin u\npassword", 3),
        ("machine", 1),
    ];
    for (text, line) in cases {
        let err = Netrc::parse(text).expect_err(text);
        assert_eq!(err.line, *line, "{text:?}: {}", err.message);
        for secret in ["logn", "zq", "hunter", "more"] {
            assert!(!err.message.contains(secret), "{text:?}: {}", err.message);
        }
    }
}

#[test]
fn credentials_for_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "netrc",
        "machine review.example.org login bot password s3cret\ndefault login anon password x\n",
        0o600,
    );
    assert_eq!(
        credentials_for(Some(&path), "review.example.org").unwrap(),
        Some(creds("bot", "s3cret"))
    );
    assert_eq!(
        credentials_for(Some(&path), "other").unwrap(),
        Some(creds("anon", "x"))
    );

    let no_default = write_file(dir.path(), "n2", "machine a login u password p\n", 0o600);
    assert_eq!(credentials_for(Some(&no_default), "b").unwrap(), None);
}

#[test]
fn credentials_debug_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "netrc",
        "machine h login bot password hunter2\n",
        0o600,
    );
    let found = credentials_for(Some(&path), "h").unwrap().unwrap();
    let debug = format!(
        "{found:?} {:?}",
        Netrc::parse("machine h login bot password hunter2").unwrap()
    );
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("bot"), "{debug}");
}

#[test]
fn missing_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent-netrc");
    let err = credentials_for(Some(&path), "h").unwrap_err();
    assert!(matches!(err, NetrcError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[test]
fn malformed_file_error_names_file_and_line_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "netrc",
        "machine h\nlogin u\npassword hunter 2\n",
        0o600,
    );
    let err = credentials_for(Some(&path), "h").unwrap_err().to_string();
    assert!(err.contains(&*path.to_string_lossy()), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(!err.contains("hunter"), "{err}");
}

#[test]
fn entry_without_password_or_login_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "netrc",
        "machine h login u\nmachine g password p\n",
        0o600,
    );
    let err = credentials_for(Some(&path), "h").unwrap_err().to_string();
    assert!(
        err.ends_with("the entry used for h has no password"),
        "{err}"
    );
    let err = credentials_for(Some(&path), "g").unwrap_err().to_string();
    assert!(err.ends_with("the entry used for g has no login"), "{err}");
}

#[test]
fn permission_rule() {
    assert!(!too_open(0o100600));
    assert!(!too_open(0o400));
    assert!(too_open(0o640));
    assert!(too_open(0o604));
    assert!(too_open(0o100644));
}

/// A writer that collects log output for inspection.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_of(f: impl FnOnce()) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
}

#[cfg(unix)]
#[test]
fn open_file_is_warned_about_by_name_never_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let open = write_file(
        dir.path(),
        "open",
        "machine h login u password hunter2\n",
        0o644,
    );
    let logs = logs_of(|| {
        credentials_for(Some(&open), "h").unwrap();
    });
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains(&*open.to_string_lossy()), "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");

    let closed = write_file(
        dir.path(),
        "closed",
        "machine h login u password hunter2\n",
        0o600,
    );
    let logs = logs_of(|| {
        credentials_for(Some(&closed), "h").unwrap();
    });
    assert_eq!(logs, "");
}

/// The only test that touches the environment (tests share the process).
#[test]
fn file_discovery_explicit_then_netrc_then_home() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = write_file(
        dir.path(),
        "env-netrc",
        "machine h login env password e\n",
        0o600,
    );
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    write_file(&home, ".netrc", "machine h login home password hp\n", 0o600);
    let explicit = write_file(
        dir.path(),
        "explicit",
        "machine h login ex password x\n",
        0o600,
    );

    // SAFETY: no other test in this binary reads or writes these variables.
    unsafe {
        std::env::set_var("NETRC", &from_env);
        std::env::set_var("HOME", &home);
    }
    assert_eq!(netrc_path(Some(&explicit)), Some(explicit.clone()));
    assert_eq!(
        credentials_for(Some(&explicit), "h").unwrap(),
        Some(creds("ex", "x"))
    );
    assert_eq!(credentials_for(None, "h").unwrap(), Some(creds("env", "e")));
    unsafe { std::env::set_var("NETRC", "") };
    assert_eq!(
        credentials_for(None, "h").unwrap(),
        Some(creds("home", "hp"))
    );
    unsafe {
        std::env::remove_var("NETRC");
        std::env::remove_var("HOME");
    }
    assert!(matches!(
        credentials_for(None, "h"),
        Err(NetrcError::NoFile)
    ));
}
