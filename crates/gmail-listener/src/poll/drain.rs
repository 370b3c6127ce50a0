//! The scheduling of one poll's mails.
//!
//! - Downloads run up to [`DOWNLOADS_PER_WORKER`] × `concurrency` at a
//!   time, but their results are taken in arrival order (oldest first),
//!   so mails reach their change's queue in the order they arrived. A
//!   download is one round trip and most mails take one or two more to
//!   handle, so downloads only as wide as the handling would leave it
//!   waiting for mail whenever a run of mails needs little handling.
//! - Each mail is parsed as it is downloaded (see [`guard`](super::guard));
//!   its change ([`ChangeKey`]) comes from the parsed event.
//! - Mails of different changes are handled at once, at most
//!   `concurrency` of them; mails of one change one after the other, in
//!   arrival order ([`Chains`]): a `retry` never overtakes the upload it
//!   refers to, a superseding upload is decided after the earlier one.
//! - A mail left pending (a passing fault) holds back the later mails of
//!   its change until the next poll, untried (no failed attempt counted),
//!   so the order holds across polls too. Mails of other changes go on.
//! - Memory is bounded whatever the backlog: at most
//!   [`HELD_PER_WORKER`] × `concurrency` mails are downloaded (or being
//!   downloaded) and not finished.
//! - Stopping (SIGTERM) starts no new mail; the poll ends when the mails
//!   being handled are finished. Handled mails are taken out of the label
//!   in batches ([`take_out`](super::take_out)).
//!
//! Everything runs in the poll's own task: the concurrency is that of the
//! network waits, which is where a mail spends its time.

use std::collections::{HashMap, HashSet, VecDeque};

use bionicbb_core::event::GerritEvent;
use bionicbb_core::mail::ParsedMail;
use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use tokio::sync::watch;

use super::take_out::TakeOut;
use super::{Handled, Listener, PollReport};

/// Mails downloaded (or being downloaded) and not finished, at most, per
/// unit of `gmail_listener.concurrency`.
pub const HELD_PER_WORKER: usize = 4;

/// Downloads in flight, at most, per unit of `gmail_listener.concurrency`.
pub const DOWNLOADS_PER_WORKER: usize = 2;

/// The change a mail is about, for its order: project, branch and
/// Change-Id, which every mail carries and which name one change on
/// Gerrit. Not the change number, which only some formats give: the
/// mails of one change (a 2.x upload without a number, a 3.x comment
/// with one) must fall in the same chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangeKey {
    project: String,
    branch: String,
    change_id: String,
}

impl ChangeKey {
    pub fn of(event: &GerritEvent) -> ChangeKey {
        ChangeKey {
            project: event.project.clone(),
            branch: event.branch.clone(),
            change_id: event.change_id.clone(),
        }
    }
}

/// A mail read and parsed, waiting for its turn.
pub(super) struct Prepared {
    pub id: String,
    pub parsed: ParsedMail,
    pub key: ChangeKey,
    /// The deaths counted against it when it was read (deaths are only
    /// counted at start): with none, there is nothing to release.
    pub deaths: u32,
}

impl Prepared {
    fn needs_release(&self) -> bool {
        self.deaths > 0
    }
}

/// What a download gave.
pub(super) enum Fetched {
    /// Parsed: to be handled in its change's order.
    Ready(Box<Prepared>),
    /// Finished before its turn (taken out, quarantined, left pending).
    Finished(String, Handled),
}

/// The mails waiting for their turn, per change, and the changes with a
/// mail in hand. Pure bookkeeping: the scheduling rules live here.
#[derive(Debug)]
pub struct Chains<T> {
    /// Per change, its waiting mails in arrival order with their position
    /// in the listing.
    waiting: HashMap<ChangeKey, VecDeque<(usize, T)>>,
    /// Changes with a mail being handled.
    busy: HashSet<ChangeKey>,
    /// Changes with a mail left pending in this poll.
    blocked: HashSet<ChangeKey>,
}

impl<T> Default for Chains<T> {
    fn default() -> Self {
        Chains {
            waiting: HashMap::new(),
            busy: HashSet::new(),
            blocked: HashSet::new(),
        }
    }
}

impl<T> Chains<T> {
    /// Queues mail number `seq` (its position in the listing) of change
    /// `key`; gives it back when the change is blocked in this poll.
    pub fn push(&mut self, seq: usize, key: ChangeKey, mail: T) -> Option<T> {
        if self.blocked.contains(&key) {
            return Some(mail);
        }
        self.waiting.entry(key).or_default().push_back((seq, mail));
        None
    }

    /// The next mail to handle, its change now busy: the oldest first
    /// among the changes with no mail in hand.
    pub fn next(&mut self) -> Option<(ChangeKey, T)> {
        let key = self
            .waiting
            .iter()
            .filter(|(key, _)| !self.busy.contains(*key))
            .filter_map(|(key, queue)| queue.front().map(|(seq, _)| (*seq, key)))
            .min_by_key(|(seq, _)| *seq)
            .map(|(_, key)| key.clone())?;
        let queue = self.waiting.get_mut(&key)?;
        let (_, mail) = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&key);
        }
        self.busy.insert(key.clone());
        Some((key, mail))
    }

    /// The change's mail in hand is finished. When it was left `pending`,
    /// the change is blocked for the rest of the poll and its waiting mails
    /// are given back (they wait for the next poll).
    pub fn finished(&mut self, key: &ChangeKey, pending: bool) -> Vec<T> {
        self.busy.remove(key);
        if !pending {
            return Vec::new();
        }
        self.blocked.insert(key.clone());
        self.waiting
            .remove(key)
            .map(|queue| queue.into_iter().map(|(_, mail)| mail).collect())
            .unwrap_or_default()
    }

    /// Every waiting mail, in no particular order (the poll stops).
    pub fn take_all(&mut self) -> Vec<T> {
        self.waiting
            .drain()
            .flat_map(|(_, queue)| queue.into_iter().map(|(_, mail)| mail))
            .collect()
    }
}

impl Listener {
    /// Handles the mails `ids` (oldest first) as the module docs say,
    /// counting what became of them in `report`.
    pub(super) async fn drain(
        &self,
        ids: Vec<String>,
        stop: &watch::Receiver<bool>,
        report: &mut PollReport,
    ) {
        let concurrency = self.config.gmail_listener.concurrency.max(1);
        let held_max = HELD_PER_WORKER * concurrency;
        let downloads_max = DOWNLOADS_PER_WORKER * concurrency;
        let mut ids = ids.into_iter().enumerate().peekable();
        let mut downloads = FuturesOrdered::new();
        let mut workers = FuturesUnordered::new();
        let mut chains = Chains::default();
        let mut out = TakeOut::default();
        // Mails downloaded or being downloaded, and not finished.
        let mut held = 0usize;
        loop {
            if !*stop.borrow() {
                while downloads.len() < downloads_max && held < held_max {
                    let Some((seq, id)) = ids.next() else {
                        break;
                    };
                    held += 1;
                    downloads.push_back(async move { (seq, self.fetch(id).await) });
                }
                while workers.len() < concurrency {
                    let Some((key, mail)) = chains.next() else {
                        break;
                    };
                    workers.push(self.work(key, mail));
                }
            }
            tokio::select! {
                Some((seq, fetched)) = downloads.next(), if !downloads.is_empty() => {
                    match fetched {
                        Fetched::Ready(mail) => {
                            let key = mail.key.clone();
                            if let Some(mail) = chains.push(seq, key, *mail) {
                                held -= 1;
                                self.hold_back(mail, report).await;
                            }
                        }
                        Fetched::Finished(id, handled) => {
                            held -= 1;
                            self.tally(id, handled, report, &mut out).await;
                        }
                    }
                }
                Some((key, id, handled)) = workers.next(), if !workers.is_empty() => {
                    held -= 1;
                    let pending = matches!(handled, Handled::Pending(_));
                    for mail in chains.finished(&key, pending) {
                        held -= 1;
                        self.hold_back(mail, report).await;
                    }
                    self.tally(id, handled, report, &mut out).await;
                }
                else => break,
            }
        }
        let stopped = chains.take_all();
        if !stopped.is_empty() || ids.peek().is_some() {
            tracing::info!("shutting down: the remaining mails wait for the next start");
        }
        for mail in stopped {
            self.hold_back(mail, report).await;
        }
        self.flush(&mut out, report).await;
    }

    /// Handles one mail whose turn has come.
    async fn work(&self, key: ChangeKey, mail: Prepared) -> (ChangeKey, String, Handled) {
        let handled = self.handle_parsed(&mail.id, &mail.parsed).await;
        if mail.needs_release() {
            self.release(&mail.id).await;
        }
        (key, mail.id, handled)
    }

    /// Leaves a parsed mail for the next poll without trying it: an
    /// earlier mail of its change is pending, or the daemon is stopping.
    async fn hold_back(&self, mail: Prepared, report: &mut PollReport) {
        tracing::info!(
            gmail_id = %mail.id,
            change = ?mail.key,
            "mail left untried for the next poll (an earlier mail of its change is pending, or the daemon stops)"
        );
        if mail.needs_release() {
            self.release(&mail.id).await;
        }
        report.held_back += 1;
    }

    /// Counts what became of a mail; a handled mail joins the batch taken
    /// out of the label.
    async fn tally(
        &self,
        id: String,
        handled: Handled,
        report: &mut PollReport,
        out: &mut TakeOut,
    ) {
        match handled {
            Handled::Done => {
                report.done += 1;
                if out.push(id) {
                    self.flush(out, report).await;
                }
            }
            Handled::Gone => report.done += 1,
            Handled::Quarantined => report.quarantined += 1,
            Handled::Pending(why) => {
                tracing::warn!(gmail_id = %id, error = %why, "mail left for the next poll");
                report.pending += 1;
            }
        }
    }

    /// Takes the batch out of the label; a mail that stays in the label
    /// counts as pending (it is taken out next poll).
    async fn flush(&self, out: &mut TakeOut, report: &mut PollReport) {
        let left = self.take_out(out.take()).await;
        report.done -= left.min(report.done);
        report.pending += left;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> ChangeKey {
        ChangeKey {
            project: "platform/bionic".into(),
            branch: "master".into(),
            change_id: format!("I{n:040x}"),
        }
    }

    #[test]
    fn one_mail_per_change_at_a_time_oldest_first() {
        let mut chains = Chains::default();
        // Listing order: a1 b1 a2 c1 b2.
        for (seq, (change, mail)) in [(1, "a1"), (2, "b1"), (1, "a2"), (3, "c1"), (2, "b2")]
            .into_iter()
            .enumerate()
        {
            assert!(chains.push(seq, key(change), mail).is_none());
        }
        assert_eq!(chains.next(), Some((key(1), "a1")));
        assert_eq!(chains.next(), Some((key(2), "b1")));
        // a2 waits for a1, b2 for b1: c1 is next.
        assert_eq!(chains.next(), Some((key(3), "c1")));
        assert_eq!(chains.next(), None);
        assert!(chains.finished(&key(2), false).is_empty());
        assert_eq!(chains.next(), Some((key(2), "b2")));
        assert!(chains.finished(&key(1), false).is_empty());
        assert_eq!(chains.next(), Some((key(1), "a2")));
        assert_eq!(chains.next(), None);
    }

    #[test]
    fn a_pending_mail_holds_back_the_later_mails_of_its_change_only() {
        let mut chains = Chains::default();
        chains.push(0, key(1), "a1");
        chains.push(1, key(1), "a2");
        chains.push(2, key(2), "b1");
        assert_eq!(chains.next(), Some((key(1), "a1")));
        assert_eq!(chains.finished(&key(1), true), vec!["a2"]);
        // A later mail of the blocked change is given back at once.
        assert_eq!(chains.push(3, key(1), "a3"), Some("a3"));
        assert_eq!(chains.next(), Some((key(2), "b1")));
        assert!(chains.finished(&key(2), false).is_empty());
        assert_eq!(chains.next(), None);
    }

    #[test]
    fn stopping_gives_back_every_waiting_mail() {
        let mut chains = Chains::default();
        chains.push(0, key(1), "a1");
        chains.push(1, key(1), "a2");
        chains.push(2, key(2), "b1");
        assert_eq!(chains.next(), Some((key(1), "a1")));
        let mut left = chains.take_all();
        left.sort();
        assert_eq!(left, vec!["a2", "b1"]);
        assert_eq!(chains.next(), None);
    }

    #[test]
    fn mails_of_one_change_share_a_chain_with_or_without_its_number() {
        let read = |name: &str| {
            let path = format!(
                "{}/../../tests/data/emails/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            bionicbb_core::mail::parse(&std::fs::read(path).unwrap())
                .unwrap()
                .event
        };
        // A 2.x upload names no change number; a later 3.x comment does.
        let upload = read("02-newpatchset-2.x.eml");
        let comment = read("10-comment-patchset-level-3.x-qp.eml");
        assert_eq!(upload.change_number, None);
        assert_eq!(comment.change_number, Some(123456));
        assert_eq!(ChangeKey::of(&upload), ChangeKey::of(&comment));
        // Another branch, project or Change-Id is another change.
        let mut other = comment.clone();
        other.branch = "android16-release".into();
        assert_ne!(ChangeKey::of(&other), ChangeKey::of(&comment));
        let mut other = comment.clone();
        other.change_id = format!("I{:040x}", 7);
        assert_ne!(ChangeKey::of(&other), ChangeKey::of(&comment));
    }
}
