//! Hostile mail: the parser must stay linear in time and bounded in memory
//! whatever the bytes, so that no mail can stop gmail-listener.
//!
//! Each case builds a mail of about 1 MB aimed at one path of the parser
//! (HTML quoting and entities, footers, votes, commands, format=flowed,
//! MIME structure, headers), parses it once and checks:
//! - the peak heap use during the parse, read from a counting global
//!   allocator, stays under [`MAX_PEAK`];
//! - the parse ends within [`MAX_TIME`] (the parse runs on its own thread, so
//!   a runaway parse fails the test instead of hanging it). The ceiling is
//!   generous on purpose: the point is "linear", not a speed target (that is
//!   the `parse` bench); the measured figures are printed.
//!
//! The cases run one at a time (a lock), so the allocator's counts belong to
//! the case being measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bionicbb_core::mail::{self, MailError, ParsedMail};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let now = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap use allowed while parsing a ~1 MB mail.
const MAX_PEAK: usize = 64 << 20;
/// Time allowed for one parse, even in the debug profile on a busy machine.
const MAX_TIME: Duration = Duration::from_secs(5);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Parses `raw` on its own thread; asserts the bounds and returns the result.
fn parse_bounded(case: &str, raw: Vec<u8>) -> Result<ParsedMail, MailError> {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let size = raw.len();
    let (tx, rx) = std::sync::mpsc::channel();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let parser = std::thread::spawn(move || {
        let result = mail::parse(&raw);
        let took = start.elapsed();
        drop(raw);
        let _ = tx.send((result, took));
    });
    let Ok((result, took)) = rx.recv_timeout(MAX_TIME) else {
        panic!("{case}: a {size}-byte mail did not parse within {MAX_TIME:?}");
    };
    parser.join().expect("the parse thread");
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    println!(
        "{case}: {size} bytes parsed in {:.1} ms, peak heap {:.1} MiB ({:.1}x the mail) -> {}",
        took.as_secs_f64() * 1e3,
        peak as f64 / (1 << 20) as f64,
        peak as f64 / size as f64,
        match &result {
            Ok(_) => "parsed".to_string(),
            Err(e) => format!(
                "error: {}",
                e.to_string().chars().take(160).collect::<String>()
            ),
        }
    );
    assert!(
        peak < MAX_PEAK,
        "{case}: parsing a {size}-byte mail peaked at {peak} bytes of heap (limit {MAX_PEAK})"
    );
    result
}

const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";

fn headers(content_type: &str) -> String {
    format!(
        "Date: Wed, 15 Mar 2023 08:12:45 +0000\n\
         From: \"Dana Dev (Code Review)\" <gerrit@example.org>\n\
         To: Bionic Buildbot <bionicbb@example.com>\n\
         Message-ID: <hostile@gerrit.example.org>\n\
         Subject: Change in platform/bionic[master]: hostile\n\
         X-Gerrit-MessageType: comment\n\
         MIME-Version: 1.0\n\
         Content-Type: {content_type}\n\
         Content-Transfer-Encoding: 8bit\n\n"
    )
}

const FOOTERS: &[(&str, &str)] = &[
    ("MessageType", "comment"),
    ("Change-Id", KEY),
    ("PatchSet", "2"),
    ("Project", "platform/bionic"),
    ("Branch", "master"),
];

/// An HTML-only comment mail: `body`, then Gerrit's hidden footer divs.
fn html_mail(body: &str) -> Vec<u8> {
    let mut mail = headers("text/html; charset=UTF-8");
    mail.push_str("<html><body>");
    mail.push_str(body);
    for (key, value) in FOOTERS {
        let _ = writeln!(
            mail,
            "<div style=\"display:none\"> Gerrit-{key}: {value} </div>"
        );
    }
    mail.push_str("</body></html>\n");
    mail.into_bytes()
}

/// A text/plain comment mail: `body` as the cover letter, then the
/// separator and the footers (`extra_footers` first).
fn plain_mail(content_type: &str, body: &str, extra_footers: &str) -> Vec<u8> {
    let mut mail = headers(content_type);
    mail.push_str("Dana Dev has posted comments on this change.\n\n");
    mail.push_str(body);
    mail.push_str("\n-- \nTo view, visit https://gerrit.example.org/123456\n\n");
    mail.push_str(extra_footers);
    for (key, value) in FOOTERS {
        let _ = writeln!(mail, "Gerrit-{key}: {value}");
    }
    mail.into_bytes()
}

fn plain(body: &str) -> Vec<u8> {
    plain_mail("text/plain; charset=UTF-8", body, "")
}

fn assert_comment(case: &str, result: Result<ParsedMail, MailError>) -> ParsedMail {
    let parsed = result.unwrap_or_else(|e| panic!("{case}: the footers should still parse: {e}"));
    assert_eq!(parsed.event.change_id, KEY, "{case}");
    assert_eq!(parsed.event.patch_set, 2, "{case}");
    parsed
}

// ------------------------------------------------------------------ HTML

#[test]
fn deeply_nested_blockquotes_with_many_lines() {
    // Never closed: the footer divs are quoted too, so this is no change
    // notification at all.
    let mut body = "<blockquote>".repeat(80_000);
    body.push_str(&"bionicbb:retry<br>".repeat(1_000));
    let result = parse_bounded("deep blockquotes", html_mail(&body));
    assert!(matches!(result, Err(MailError::NotChange(_))), "{result:?}");
    // Closed before the footers: quoted commands never count.
    let mut body = "<blockquote>".repeat(40_000);
    body.push_str(&"bionicbb:retry<br>".repeat(1_000));
    body.push_str(&"</blockquote>".repeat(40_000));
    let parsed = assert_comment(
        "deep closed blockquotes",
        parse_bounded("deep closed blockquotes", html_mail(&body)),
    );
    assert!(
        parsed.event.commands.is_empty(),
        "quoted commands never count: {:?}",
        parsed.event.commands
    );
}

#[test]
fn many_lines_inside_blockquotes() {
    let mut body = "<blockquote>".repeat(16);
    body.push_str(&"x<br>".repeat(200_000));
    body.push_str(&"</blockquote>".repeat(16));
    assert_comment(
        "lines at depth",
        parse_bounded("lines at depth", html_mail(&body)),
    );
}

#[test]
fn unbalanced_closing_blockquotes_and_tags() {
    let mut body = "</blockquote>".repeat(40_000);
    body.push_str(&"<p><span><div>".repeat(30_000));
    assert_comment(
        "closing tags",
        parse_bounded("closing tags", html_mail(&body)),
    );
}

#[test]
fn ampersands_without_semicolons() {
    let body = "&".repeat(1_000_000);
    assert_comment(
        "entity flood",
        parse_bounded("entity flood", html_mail(&body)),
    );
}

#[test]
fn long_numeric_references() {
    let mut body = format!("&#{};", "9".repeat(500_000));
    body.push_str(&"&#x0000000000000000041;&#99999999999999;".repeat(12_000));
    assert_comment(
        "numeric runs",
        parse_bounded("numeric runs", html_mail(&body)),
    );
}

#[test]
fn unknown_entity_names() {
    let body = "&zzzzzzzzz;&bogus&;&".repeat(50_000);
    assert_comment(
        "unknown entities",
        parse_bounded("unknown entities", html_mail(&body)),
    );
}

#[test]
fn unterminated_tags_comments_and_stray_brackets() {
    let body = "<a <b <!x <? << <1 a<b".repeat(45_000);
    let _ = parse_bounded("stray brackets", html_mail(&body));
    let body = format!("<p title=\"{}", "x".repeat(1_000_000));
    let _ = parse_bounded("unterminated tag", html_mail(&body));
}

// ---------------------------------------------------------- text/plain

#[test]
fn one_huge_line() {
    let body = "bionicbb:retry ".repeat(70_000);
    assert_comment("huge line", parse_bounded("huge line", plain(&body)));
}

#[test]
fn a_million_blank_lines() {
    let body = "\n".repeat(1_000_000);
    assert_comment("blank lines", parse_bounded("blank lines", plain(&body)));
}

#[test]
fn short_lines_everywhere() {
    let body = "x\n".repeat(500_000);
    assert_comment("short lines", parse_bounded("short lines", plain(&body)));
}

#[test]
fn a_flood_of_footers() {
    let mut flood = String::new();
    for i in 0..60_000 {
        let _ = writeln!(flood, "Gerrit-Reviewer: r{i}");
    }
    for i in 0..20_000 {
        let _ = writeln!(flood, "Gerrit-X{i}: {i}");
    }
    // After the genuine footers: the block is read up to its bound, which
    // holds them.
    let mut raw = plain_mail("text/plain; charset=UTF-8", "Patch Set 2:\n", "");
    raw.extend_from_slice(flood.as_bytes());
    assert_comment("footer flood", parse_bounded("footer flood", raw));
    // Before them: they are past the bound, and the mail names no change.
    let raw = plain_mail("text/plain; charset=UTF-8", "Patch Set 2:\n", &flood);
    let result = parse_bounded("footer flood first", raw);
    assert!(matches!(result, Err(MailError::NotChange(_))), "{result:?}");
}

#[test]
fn a_flood_of_contradicting_footers() {
    let mut footers = String::new();
    for i in 0..60_000 {
        let _ = writeln!(footers, "Gerrit-Branch: b{i}");
    }
    let mut raw = plain_mail("text/plain; charset=UTF-8", "Patch Set 2:\n", "");
    raw.extend_from_slice(footers.as_bytes());
    match parse_bounded("conflicting footers", raw) {
        Err(MailError::Conflicting { field, values }) => {
            assert_eq!(field, "Branch");
            assert!(values.len() <= 8, "{} values in the error", values.len());
        }
        other => panic!("conflicting branches: {other:?}"),
    }
}

#[test]
fn a_flood_of_votes() {
    let body = format!("Patch Set 2:{}\n\nok\n", " Verified+1".repeat(90_000));
    let parsed = assert_comment("vote flood", parse_bounded("vote flood", plain(&body)));
    assert!(
        parsed.event.votes.len() <= 64,
        "{} votes",
        parsed.event.votes.len()
    );
}

#[test]
fn a_flood_of_commands() {
    let mut body = String::from("Patch Set 2:\n\n");
    body.push_str(&"bionicbb:retry a b c d e f g h i j k l\n".repeat(25_000));
    body.push_str(&format!("bionicbb:clean{}\n", " x".repeat(100_000)));
    let parsed = assert_comment(
        "command flood",
        parse_bounded("command flood", plain(&body)),
    );
    assert!(
        parsed.event.commands.len() <= 64,
        "{} commands",
        parsed.event.commands.len()
    );
    assert!(parsed.event.commands.iter().all(|c| c.args.len() <= 64));
}

#[test]
fn flowed_text_with_deep_quotes() {
    let mut body = String::new();
    for i in 0..2_000 {
        let _ = writeln!(body, "{} line {i} ", ">".repeat(400));
    }
    body.push_str(&"soft \n".repeat(20_000));
    let raw = plain_mail(
        "text/plain; charset=UTF-8; format=flowed; delsp=yes",
        &body,
        "",
    );
    assert_comment("flowed quotes", parse_bounded("flowed quotes", raw));
}

// ------------------------------------------------------ MIME and headers

#[test]
fn deeply_nested_multiparts() {
    let depth = 20_000;
    let mut mail = headers("multipart/mixed; boundary=\"b0\"");
    for i in 1..depth {
        let _ = write!(
            mail,
            "--b{}\nContent-Type: multipart/mixed; boundary=\"b{i}\"\n\n",
            i - 1
        );
    }
    let _ = write!(
        mail,
        "--b{}\nContent-Type: text/plain\n\nhello\n",
        depth - 1
    );
    for i in (0..depth).rev() {
        let _ = writeln!(mail, "--b{i}--");
    }
    let _ = parse_bounded("nested multiparts", mail.into_bytes());
}

#[test]
fn deeply_nested_attached_messages() {
    let depth = 20_000;
    let mut mail = headers("message/rfc822");
    for _ in 0..depth {
        mail.push_str("Subject: x\nContent-Type: message/rfc822\n\n");
    }
    mail.push_str("Subject: end\n\nhello\n");
    let _ = parse_bounded("nested messages", mail.into_bytes());
}

#[test]
fn many_small_parts() {
    let mut mail = headers("multipart/mixed; boundary=\"b\"");
    mail.push_str(&"--b\nContent-Type: text/html\n\nx\n".repeat(33_000));
    mail.push_str("--b--\n");
    let _ = parse_bounded("many parts", mail.into_bytes());
}

#[test]
fn a_flood_of_headers() {
    let mut mail = "X-H: v\n".repeat(140_000);
    mail.push_str(&String::from_utf8(plain("Patch Set 2:\n")).unwrap());
    assert_comment(
        "header flood",
        parse_bounded("header flood", mail.into_bytes()),
    );
}

#[test]
fn one_giant_folded_header() {
    let mut mail = format!("Subject: {}\n", "word\n ".repeat(170_000));
    mail.push_str(&String::from_utf8(plain("Patch Set 2:\n")).unwrap());
    assert_comment(
        "giant header",
        parse_bounded("giant header", mail.into_bytes()),
    );
    let mut mail = format!("X-Gerrit-MessageType: {}\n", "x".repeat(1_000_000));
    mail.push_str("Subject: y\n\nbody\n");
    let _ = parse_bounded("giant header value", mail.into_bytes());
}

#[test]
fn many_parts_that_open_multiparts_never_closed() {
    // Each part declares a multipart whose boundary never appears, so a
    // MIME parser that looks for it scans to the end of the mail, once per
    // part: quadratic in the size of the mail unless the parts are bounded.
    let mut mail = headers("multipart/mixed; boundary=\"b0\"");
    for i in 0..2_000 {
        let _ = write!(
            mail,
            "--b0\nContent-Type: multipart/alternative; boundary=\"never{i}\"\n\n{}\n",
            "x".repeat(400)
        );
    }
    mail.push_str("--b0--\n");
    let result = parse_bounded("unclosed multiparts", mail.into_bytes());
    assert!(
        matches!(result, Err(MailError::TooManyMultiparts { max: 64 })),
        "{result:?}"
    );
}

#[test]
fn multipart_containers_are_counted_once_per_header_field() {
    // 64 containers, one of them declared over three folded lines, and the
    // word in a body line that is not a header: accepted, and parsed.
    let mut mail = headers("multipart/mixed;\n boundary=\"b0\";\n x=\"multipart/\"");
    for i in 1..64 {
        let _ = write!(
            mail,
            "--b{}\nContent-Type: multipart/mixed; boundary=\"b{i}\"\n\n",
            i - 1
        );
    }
    let _ = write!(
        mail,
        "--b63\nContent-Type: text/plain\n\nmultipart/ in the text\n"
    );
    for i in (0..64).rev() {
        let _ = writeln!(mail, "--b{i}--");
    }
    assert!(mail::mime::check_multiparts(mail.as_bytes()).is_ok());
    // One more is refused.
    let more = mail.replacen(
        "--b63\nContent-Type: text/plain",
        "--b63\nContent-Type: multipart/mixed; boundary=\"b64\"\n\n--b64\nContent-Type: text/plain",
        1,
    );
    assert!(mail::mime::check_multiparts(more.as_bytes()).is_err());
}
