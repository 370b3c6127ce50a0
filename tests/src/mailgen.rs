//! Writes Gerrit notification e-mails in the format Gerrit 3.x sends them:
//! `multipart/alternative` with a quoted-printable text part and an HTML
//! part whose footers are hidden divs, `X-Gerrit-*` headers, and footers in
//! the 3.x order. The sandbox uses it to play Gerrit's part; the parser's
//! own tests use the hand-written fixtures in `tests/data/emails/`.

use std::fmt::Write as _;

/// Someone acting on a change.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub email: String,
}

impl Person {
    pub fn new(name: &str, email: &str) -> Self {
        Person {
            name: name.into(),
            email: email.into(),
        }
    }
}

/// The change a mail is about.
#[derive(Debug, Clone)]
pub struct MailChange {
    pub host: String,
    pub project: String,
    pub branch: String,
    pub change_key: String,
    pub number: u64,
    pub subject: String,
    pub owner: Person,
}

impl MailChange {
    /// The sample change (`World::sample_change`'s) as its mails name it:
    /// `platform/bionic` on `master`, [`KEY`](crate::world::KEY), owned
    /// by Dana Dev, numbered `number`.
    pub fn sample(number: u64) -> MailChange {
        MailChange {
            host: "gerrit.example.org".into(),
            project: "platform/bionic".into(),
            branch: "master".into(),
            change_key: crate::world::KEY.into(),
            number,
            subject: "Fix strtod rounding for denormals".into(),
            owner: Person::new("Dana Dev", "dana@example.com"),
        }
    }

    fn url(&self) -> String {
        format!("https://{}/c/{}/+/{}", self.host, self.project, self.number)
    }
}

/// A `newpatchset` mail (`newchange` for patch set 1) from `uploader`.
pub fn patch_set_uploaded(
    change: &MailChange,
    patch_set: u32,
    uploader: &Person,
    date: i64,
) -> Vec<u8> {
    let kind = if patch_set == 1 {
        "newchange"
    } else {
        "newpatchset"
    };
    let intro = if patch_set == 1 {
        format!("{} has uploaded this change for review.", uploader.name)
    } else {
        format!(
            "{} has uploaded a new patch set (#{patch_set}).",
            uploader.name
        )
    };
    let body = format!(
        "{intro} ( {}?usp=email )\n\n\nChange subject: {}\n{}\n\n{}\n\nChange-Id: {}\n---\nM libc/bionic/strtod.cpp\n1 file changed, 3 insertions(+), 1 deletion(-)\n",
        change.url(),
        change.subject,
        ".".repeat(70),
        change.subject,
        change.change_key
    );
    render(change, patch_set, kind, uploader, date, &body, &[])
}

/// A `comment` mail: `votes` as Gerrit formats them (`"Verified+1"`, or
/// empty), `text` the comment typed in the reply box (3.x posts it as a
/// patchset-level comment, shown under `Patchset:` after `PS<N>:`).
pub fn comment(
    change: &MailChange,
    patch_set: u32,
    author: &Person,
    votes: &str,
    text: &str,
    date: i64,
) -> Vec<u8> {
    let mut body = format!(
        "{} has posted comments on this change. ( {}?usp=email )\n\nChange subject: {}\n{}\n\n\nPatch Set {patch_set}:{}{}\n",
        author.name,
        change.url(),
        change.subject,
        ".".repeat(70),
        if votes.is_empty() { "" } else { " " },
        votes
    );
    if !text.is_empty() {
        let _ = write!(
            body,
            "\n(1 comment)\n\nPatchset:\n\nPS{patch_set}: \n{text}\n"
        );
    }
    let extra = [
        ("Gerrit-Comment-Date", rfc2822(date)),
        (
            "Gerrit-HasComments",
            if text.is_empty() { "No" } else { "Yes" }.to_string(),
        ),
        (
            "Gerrit-Has-Labels",
            if votes.is_empty() { "No" } else { "Yes" }.to_string(),
        ),
    ];
    render(change, patch_set, "comment", author, date, &body, &extra)
}

/// A `merged` or `abandon` mail: the change was closed by `actor`.
pub fn closed(
    change: &MailChange,
    patch_set: u32,
    actor: &Person,
    kind: &str,
    date: i64,
) -> Vec<u8> {
    let verb = if kind == "merged" {
        "submitted"
    } else {
        "abandoned"
    };
    let body = format!(
        "{} has {verb} this change. ( {}?usp=email )\n\nChange subject: {}\n{}\n",
        actor.name,
        change.url(),
        change.subject,
        ".".repeat(70),
    );
    render(change, patch_set, kind, actor, date, &body, &[])
}

/// The `newchange` mail Gerrit sends when `actor` marks a
/// work-in-progress change ready for review ("start review"): about its
/// current patch set `patch_set`.
pub fn ready_for_review(change: &MailChange, patch_set: u32, actor: &Person, date: i64) -> Vec<u8> {
    let body = format!(
        "{} has marked this change as ready for review. ( {}?usp=email )\n\n\
         Change subject: {}\n{}\n\nPatch Set {patch_set}:\n\nSet Ready For Review\n",
        actor.name,
        change.url(),
        change.subject,
        ".".repeat(70),
    );
    render(change, patch_set, "newchange", actor, date, &body, &[])
}

fn render(
    change: &MailChange,
    patch_set: u32,
    kind: &str,
    actor: &Person,
    date: i64,
    body: &str,
    extra_footers: &[(&str, String)],
) -> Vec<u8> {
    let mut footers = vec![
        ("Gerrit-MessageType", kind.to_string()),
        ("Gerrit-Project", change.project.clone()),
        ("Gerrit-Branch", change.branch.clone()),
        ("Gerrit-Change-Id", change.change_key.clone()),
        ("Gerrit-Change-Number", change.number.to_string()),
        ("Gerrit-PatchSet", patch_set.to_string()),
        (
            "Gerrit-Owner",
            format!("{} <{}>", change.owner.name, change.owner.email),
        ),
    ];
    footers.extend(extra_footers.iter().cloned());
    let mut text = String::new();
    let _ = write!(
        text,
        "{body}\n-- \nTo view, visit {}?usp=email\nTo unsubscribe, or for help writing mail filters, visit https://{}/settings?usp=email\n\n",
        change.url(),
        change.host
    );
    for (k, v) in &footers {
        let _ = writeln!(text, "{k}: {v}");
    }
    let mut html = String::from("<!DOCTYPE html><html><body><div>");
    for line in body.lines() {
        let _ = write!(html, "<p>{}</p>", escape_html(line));
    }
    html.push_str("</div>");
    for (k, v) in &footers {
        let _ = write!(
            html,
            "<div style=\"display:none\"> {k}: {} </div>",
            escape_html(v)
        );
    }
    html.push_str("</body></html>\n");

    let boundary = "0qSn3vT9k+c=";
    let mut mail = String::new();
    let _ = write!(
        mail,
        "Date: {date_hdr}\r\nFrom: \"{actor} (Code Review)\" <gerrit@{host}>\r\nTo: {owner} <{owner_email}>\r\n\
Message-ID: <gerrit.{date}{ps}.{key}-HTML@{host}>\r\nSubject: Change in ...{short}[{branch}]: {subject}\r\n\
X-Gerrit-MessageType: {kind}\r\nX-Gerrit-Change-Id: {key}\r\nX-Gerrit-Change-Number: {number}\r\n\
X-Gerrit-PatchSet: {ps}\r\nX-Gerrit-Project: {project}\r\nX-Gerrit-ChangeURL: <{url}>\r\n\
Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n\
Content-Disposition: inline\r\nUser-Agent: Gerrit/3.8.1\r\n\
Content-Type: multipart/alternative; boundary=\"{boundary}\"; charset=UTF-8\r\n\r\n",
        date_hdr = rfc2822(date),
        actor = actor.name,
        host = change.host,
        owner = change.owner.name,
        owner_email = change.owner.email,
        ps = patch_set,
        key = change.change_key,
        short = change.project.rsplit('/').next().unwrap_or(&change.project),
        branch = change.branch,
        subject = change.subject,
        number = change.number,
        project = change.project,
        url = change.url(),
    );
    let _ = write!(
        mail,
        "--{boundary}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
        quoted_printable(&text)
    );
    let _ = write!(
        mail,
        "--{boundary}\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n--{boundary}--\r\n",
        quoted_printable(&html)
    );
    mail.into_bytes()
}

/// Quoted-printable (RFC 2045): `=` and non-ASCII escaped, trailing spaces
/// escaped, soft line breaks keep lines within 76 characters. Output lines
/// end with CRLF.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    for line in text.split('\n') {
        let bytes = line.trim_end_matches('\r').as_bytes();
        let mut col = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let piece = if b == b'='
                || b >= 0x7f
                || (b < 0x20 && b != b'\t')
                || ((b == b' ' || b == b'\t') && last)
            {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            };
            if col + piece.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += piece.len();
            out.push_str(&piece);
        }
        out.push_str("\r\n");
    }
    out
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An RFC 2822 date in UTC, e.g. `Tue, 14 Mar 2023 17:02:11 +0000`.
pub fn rfc2822(secs: i64) -> String {
    bionicbb_core::timefmt::format_rfc2822(secs)
}

/// The change the generators' own tests write mails about.
#[cfg(test)]
pub(crate) fn sample_change() -> MailChange {
    MailChange::sample(123456)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> MailChange {
        sample_change()
    }

    #[test]
    fn dates_are_rfc2822() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_678_813_331), "Tue, 14 Mar 2023 17:02:11 +0000");
    }

    #[test]
    fn quoted_printable_escapes_and_wraps() {
        let qp = quoted_printable(&format!("a=b \n{}", "x".repeat(100)));
        assert!(qp.starts_with("a=3Db=20\r\n"), "{qp}");
        assert!(qp.lines().all(|l| l.len() <= 76), "{qp}");
    }

    #[test]
    fn generated_mails_parse_as_what_they_say() {
        let sam = Person::new("Sam Reviewer", "sam@example.com");
        let raw = comment(
            &change(),
            3,
            &sam,
            "Verified+1",
            "bionicbb:retry",
            1_678_813_331,
        );
        let parsed = bionicbb_core::mail::parse(&raw).expect("comment parses");
        let e = parsed.event;
        assert_eq!(e.message_type.as_str(), "comment");
        assert_eq!((e.change_number, e.patch_set), (Some(123456), 3));
        assert_eq!(e.votes.len(), 1);
        assert_eq!(e.commands.len(), 1);
        assert_eq!(e.commands[0].name, "retry");
        assert_eq!(e.comment_date, Some(1_678_813_331));
        let raw = patch_set_uploaded(&change(), 2, &change().owner, 1_678_813_331);
        let e = bionicbb_core::mail::parse(&raw)
            .expect("upload parses")
            .event;
        assert_eq!(e.message_type.as_str(), "newpatchset");
        assert!(e.commands.is_empty());
        let raw = patch_set_uploaded(&change(), 1, &change().owner, 1_678_813_331);
        assert_eq!(
            bionicbb_core::mail::parse(&raw)
                .unwrap()
                .event
                .message_type
                .as_str(),
            "newchange"
        );
    }
}
