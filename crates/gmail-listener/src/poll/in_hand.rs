//! The in-hand mark: which mail's content the process is working on, in a
//! small file of the state directory (`gmail-listener.in-hand`).
//!
//! At most one mail is in hand at a time (the content lock, see `guard`),
//! so the file names one mail or none. Setting and clearing it are plain
//! writes, not ledger commits: the mark only has to outlive the *process*
//! (an abort, a stack overflow, the OOM killer), and a write the kernel
//! has accepted does, without a flush to the disk. A power cut may lose a
//! mark; the mail is then not blamed for a death that was not its doing.
//! This keeps the exclusive windows at a few microseconds, so concurrent
//! mails do not queue behind disk flushes for them.
//!
//! At start, a mark left by the previous process is recorded in the
//! ledger as a death of the process with that mail in hand, then cleared.
//! Each mark carries a token (when it was set, in nanoseconds), so a start
//! that dies between recording and clearing does not count the death twice.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bionicbb_core::ledger::Ledger;

/// The file's name in the state directory.
pub const FILE_NAME: &str = "gmail-listener.in-hand";

/// The longest Gmail message id accepted from the file (they are 16 hex
/// digits today).
const MAX_ID_LEN: usize = 128;

/// A mark found at start: the mail in hand when the previous process died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub gmail_id: String,
    pub token: i64,
}

/// The open mark file.
#[derive(Debug)]
pub struct InHand {
    file: Mutex<File>,
    path: PathBuf,
}

impl InHand {
    /// Opens (creating, mode 0600) the mark file in `state_dir`, and
    /// returns the mark the previous process left, if any. A file that
    /// does not read as a mark is reported as an error message and treated
    /// as empty.
    pub fn open(state_dir: &Path) -> std::io::Result<(InHand, Result<Option<Left>, String>)> {
        let path = state_dir.join(FILE_NAME);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        let mut text = String::new();
        let left = match Read::by_ref(&mut file).take(1024).read_to_string(&mut text) {
            Ok(_) => parse(&text),
            Err(e) => Err(format!("unreadable: {e}")),
        };
        Ok((
            InHand {
                file: Mutex::new(file),
                path,
            },
            left,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Marks `gmail_id` in hand.
    pub fn set(&self, gmail_id: &str) -> std::io::Result<()> {
        let token = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let line = format!("{token} {gmail_id}\n");
        let mut file = self.lock();
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(line.as_bytes())
    }

    /// Marks no mail in hand.
    pub fn clear(&self) -> std::io::Result<()> {
        self.lock().set_len(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opens the mark file in `state_dir` and records the mark the previous
/// process left, if any, as a death against its mail; then clears it.
pub fn recover(state_dir: &Path, ledger: &Ledger) -> Result<InHand, String> {
    let (mark, left) = InHand::open(state_dir)
        .map_err(|e| format!("cannot open {}: {e}", state_dir.join(FILE_NAME).display()))?;
    match left {
        Ok(None) => return Ok(mark),
        Ok(Some(left)) => {
            let deaths = ledger
                .record_death(&left.gmail_id, left.token)
                .map_err(|e| format!("cannot record the mail left in hand: {e}"))?;
            tracing::warn!(
                gmail_id = %left.gmail_id,
                deaths,
                "the previous process died while it worked on this mail's content"
            );
        }
        Err(why) => tracing::warn!(
            path = %mark.path().display(),
            %why,
            "ignoring a damaged in-hand mark"
        ),
    }
    mark.clear()
        .map_err(|e| format!("cannot clear {}: {e}", mark.path().display()))?;
    Ok(mark)
}

/// Reads a mark: `<token> <gmail id>` and a newline, or nothing.
fn parse(text: &str) -> Result<Option<Left>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let line = text
        .strip_suffix('\n')
        .ok_or("the mark is incomplete (no final newline)")?;
    let (token, id) = line.split_once(' ').ok_or("the mark has no mail id")?;
    let token = token
        .parse::<i64>()
        .map_err(|_| "the mark's token is not a number")?;
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err("the mark's mail id is not a Gmail message id".to_string());
    }
    Ok(Some(Left {
        gmail_id: id.to_string(),
        token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_outlives_the_handle_and_clearing_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mark, left) = InHand::open(dir.path()).unwrap();
        assert_eq!(left, Ok(None));
        mark.set("18c0a1f2b3c4d5e6").unwrap();
        mark.set("18c0a1f2b3c4d5e7").unwrap();
        drop(mark);
        let (mark, left) = InHand::open(dir.path()).unwrap();
        let left = left.unwrap().unwrap();
        assert_eq!(left.gmail_id, "18c0a1f2b3c4d5e7", "the last mark only");
        assert!(left.token > 0);
        mark.clear().unwrap();
        drop(mark);
        assert_eq!(InHand::open(dir.path()).unwrap().1, Ok(None));
    }

    #[test]
    fn a_damaged_mark_is_an_error_not_a_mail() {
        for text in [
            "12 abc",
            "x abc\n",
            "12\n",
            "12 \n",
            "12 a/b\n",
            &format!("1 {}\n", "a".repeat(200)),
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse("7 18c0\n"),
            Ok(Some(Left {
                gmail_id: "18c0".into(),
                token: 7
            }))
        );
    }

    #[test]
    fn a_mark_left_at_start_counts_one_death_however_often_it_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite3")).unwrap();
        let (mark, _) = InHand::open(dir.path()).unwrap();
        mark.set("18c0a1f2b3c4d5e6").unwrap();
        let text = std::fs::read_to_string(mark.path()).unwrap();
        drop(mark);
        // A start that died after recording the death, before clearing it.
        recover(dir.path(), &ledger).unwrap();
        std::fs::write(dir.path().join(FILE_NAME), &text).unwrap();
        recover(dir.path(), &ledger).unwrap();
        assert_eq!(ledger.mail_in_hand("18c0a1f2b3c4d5e6").unwrap(), 1);
        // A second death with the mail in hand counts.
        let mark = recover(dir.path(), &ledger).unwrap();
        mark.set("18c0a1f2b3c4d5e6").unwrap();
        drop(mark);
        recover(dir.path(), &ledger).unwrap();
        assert_eq!(ledger.mail_in_hand("18c0a1f2b3c4d5e6").unwrap(), 2);
        // A damaged mark counts nothing and is cleared.
        std::fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        let mark = recover(dir.path(), &ledger).unwrap();
        drop(mark);
        assert_eq!(InHand::open(dir.path()).unwrap().1, Ok(None));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (mark, _) = InHand::open(dir.path()).unwrap();
        let mode = std::fs::metadata(mark.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
