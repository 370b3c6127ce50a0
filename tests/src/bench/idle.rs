//! Figures 3 and 4: what an idle poll costs (requests and Gmail quota
//! units), what one mail of each kind costs in requests per server, and
//! each daemon's resident memory when idle.

use std::time::Duration;

use super::{PeakRss, gmail_units, line};
use crate::fakes::gerrit::{Status, format_timestamp};
use crate::harness::{BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon};
use crate::mailgen::{self, MailChange, Person};
use crate::world::World;

const POLLS: usize = 4;

fn polls(output: &str) -> usize {
    output.matches("poll finished").count()
}

/// An idle gmail-listener: requests and quota units per poll, and its
/// resident memory after a few polls. Returns (requests per poll, RSS MiB).
pub async fn gmail_listener() -> (f64, f64) {
    let world = World::new().await;
    let config = world.config_arg();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config]);
    let peak = PeakRss::watch(daemon.pid());
    daemon
        .wait_for_output("poll finished", Duration::from_secs(30))
        .await;
    let before = world.gmail.faults().requests().len();
    let first = polls(&daemon.output());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while polls(&daemon.output()) < first + POLLS && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = polls(&daemon.output()) - first;
    let requests = world.gmail.faults().requests();
    let during = &requests[before.min(requests.len())..];
    let units: u64 = during.iter().map(|r| gmail_units(r)).sum();
    let rss = super::rss_mib(&daemon);
    let per_poll = during.len() as f64 / done.max(1) as f64;
    line(
        "idle poll",
        format!(
            "{per_poll:.2} requests and {:.1} quota units per poll over {done} polls ({}) \
             (target: 1 request)",
            units as f64 / done.max(1) as f64,
            during.first().map(String::as_str).unwrap_or("no request"),
        ),
    );
    line(
        "memory gmail-listener idle",
        format!(
            "{rss:.1} MiB RSS, peak {:.1} MiB (target <= 20 MiB)",
            peak.mib()
        ),
    );
    let _ = daemon.terminate(Duration::from_secs(30)).await;
    (per_poll, rss)
}

/// An idle build-listener's resident memory.
pub async fn build_listener() -> f64 {
    let gerrit = crate::fakes::gerrit::GerritFake::start().await;
    gerrit.add_account("Bionic Buildbot", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let (daemon, _dir, _) = super::start_build_listener(&gerrit, "bench-secret").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = super::rss_mib(&daemon);
    line(
        "memory build-listener idle",
        format!("{rss:.1} MiB RSS (target <= 20 MiB)"),
    );
    let _ = daemon.terminate(Duration::from_secs(30)).await;
    rss
}

/// Requests of one `--once` run that are about its one mail: Gmail reads
/// of the mail, Gerrit, Jenkins; and the Gmail requests that took mails
/// out of the label (batched per poll).
async fn once(world: &World) -> [usize; 4] {
    let (status, output) = world.once().await;
    assert!(status.success(), "gmail-listener failed:\n{output}");
    let gmail = world.gmail.faults().requests();
    let reads = gmail
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/messages/"))
        .count();
    let removals = gmail
        .iter()
        .filter(|r| r.starts_with("POST ") && r.contains("/messages/"))
        .count();
    [
        reads,
        world.gerrit.faults().requests().len(),
        world.jenkins.faults().requests().len(),
        removals,
    ]
}

/// What one mail of each kind costs, beyond the poll itself (the listing
/// and the label lookups at start).
/// Returns the requests of an upload that builds.
pub async fn per_mail() -> usize {
    let sam = Person::new("Sam Reviewer", "sam@example.com");
    let dana = Person::new("Dana Dev", "dana@example.com");
    let mut upload_cost = 0;
    for kind in ["upload", "comment", "comment-3.x", "merged"] {
        let world = World::new().await;
        let number = world.sample_change(3);
        let change = MailChange::sample(number);
        let at = bionicbb_core::ledger::now() - 600;
        let when = format_timestamp(at, 0);
        let raw = match kind {
            "upload" => mailgen::patch_set_uploaded(&change, 3, &dana, at),
            "comment" => {
                let text = "Patch Set 3:\n\nbionicbb:retry";
                world.gerrit.add_message(number, 3, world.sam, text, &when);
                mailgen::comment(&change, 3, &sam, "", "bionicbb:retry", at)
            }
            "comment-3.x" => {
                world.gerrit.add_comment(
                    number,
                    3,
                    world.sam,
                    "/PATCHSET_LEVEL",
                    None,
                    "bionicbb:retry",
                    &when,
                );
                let text = "Patch Set 3:\n\n(1 comment)";
                world.gerrit.add_message(number, 3, world.sam, text, &when);
                mailgen::comment(&change, 3, &sam, "", "bionicbb:retry", at)
            }
            _ => {
                world.gerrit.set_status(number, Status::Merged);
                mailgen::closed(&change, 3, &dana, "merged", at)
            }
        };
        world.deliver(&raw);
        let cost = once(&world).await;
        let all: usize = cost[..3].iter().sum();
        if kind == "upload" {
            upload_cost = all;
        }
        line(
            &format!("requests per {kind} mail"),
            format!(
                "{all} (gmail {}, gerrit {}, jenkins {}), and {} taking it out of the label \
                 (shared by a poll's mails){}",
                cost[0],
                cost[1],
                cost[2],
                cost[3],
                if kind == "upload" {
                    "; target <= 3"
                } else {
                    ""
                }
            ),
        );
    }
    upload_cost
}
