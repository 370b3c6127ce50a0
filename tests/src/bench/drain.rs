//! Figure 1: a backlog of mails drained by one `gmail-listener --once`, at
//! concurrency 1 and at the default, side by side, with the requests each
//! server saw, and a check of what was built.
//!
//! The backlog: per change, three uploads (patch sets 1 to 3), then on
//! even changes a `bionicbb:clean` and a vote-only comment, on odd changes
//! a `bionicbb:retry` and the change's merge (the change is merged on
//! Gerrit, so nothing of it builds). Mails arrive round-robin over the
//! changes: 60% uploads, 30% comments, 10% merges. Expected: on each even
//! change the verify build of patch set 3, then the clean build, each once.
//! The mailbox already has the quarantine label, as after the daemon's
//! first start: a backlog is drained by a daemon that ran before.
//!
//! Each drain is timed from the spawn to the exit, and split from the
//! fakes' answers into the fixed costs (start: until the first mail is
//! downloaded; end: after the last mail's last request, the take-out and
//! the exit) and the handling between them. With the fixed costs `F` of
//! each run, the speed-up cannot exceed `T1 / (F_c + (T1 - F1) / c)` at
//! concurrency `c`, however well the handling scales; the bench prints
//! that ceiling next to the speed-up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Options, PeakRss, line, ms};
use crate::fakes::gerrit::{Status, format_timestamp};
use crate::harness::Daemon;
use crate::mailgen::{self, MailChange, Person};
use crate::world::World;

/// Mails per change in the backlog.
pub const MAILS_PER_CHANGE: usize = 5;
const VERIFY: &str = "bionic-presubmit";
const CLEAN: &str = "clean-bionic-presubmit";

/// What one drain did.
#[derive(Debug, Clone)]
pub struct Drain {
    pub concurrency: String,
    pub mails: usize,
    pub elapsed: Duration,
    /// Spawn to the first download's arrival at Gmail.
    pub start: Duration,
    /// The last handling request's answer (a download, Gerrit or Jenkins)
    /// to the exit.
    pub end: Duration,
    /// Requests per server: Gmail, Gerrit, Jenkins.
    pub requests: [usize; 3],
    pub peak_rss_mib: f64,
    /// What the correctness check found wrong (empty: all good).
    pub problems: Vec<String>,
    pub builds: usize,
}

impl Drain {
    /// The start and end costs together.
    pub fn fixed(&self) -> Duration {
        self.start + self.end
    }

    pub fn requests_per_mail(&self) -> f64 {
        self.requests.iter().sum::<usize>() as f64 / self.mails as f64
    }

    pub fn print(&self) {
        let per = |n: usize| n as f64 / self.mails as f64;
        line(
            &format!("drain concurrency {}", self.concurrency),
            format!(
                "{} mails in {:.2} s = {:.1} mails/s; requests per mail: gmail {:.2}, gerrit {:.2}, \
                 jenkins {:.2} (all {:.2}); peak RSS {:.1} MiB",
                self.mails,
                self.elapsed.as_secs_f64(),
                self.mails as f64 / self.elapsed.as_secs_f64(),
                per(self.requests[0]),
                per(self.requests[1]),
                per(self.requests[2]),
                self.requests_per_mail(),
                self.peak_rss_mib,
            ),
        );
    }
}

/// Drains the backlog with `concurrency` (`None`: the configuration's
/// default).
pub async fn run(options: &Options, concurrency: Option<usize>) -> Drain {
    let extra = concurrency
        .map(|c| format!("\n[gmail_listener]\nconcurrency = {c}\n"))
        .unwrap_or_default();
    let world = World::with_extra(&extra).await;
    let loaded = bionicbb_core::config::Config::load(std::path::Path::new(&world.config_arg()))
        .expect("the world's configuration");
    world.gmail.add_label(&loaded.gmail.quarantine_label);
    let expected = seed(&world, options.changes);
    let mails = options.changes * MAILS_PER_CHANGE;
    for faults in [
        world.gerrit.faults(),
        world.jenkins.faults(),
        world.gmail.faults(),
    ] {
        faults.set_latency(Some(options.latency));
    }
    let config = world.config_arg();
    let start = Instant::now();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config, "--once"]);
    let peak = PeakRss::watch(daemon.pid());
    let (status, output, exited) = daemon.wait_exited(Duration::from_secs(1800)).await;
    let elapsed = exited - start;
    let (first, last) = handling_span(&world);
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!("gmail-listener exited with {status}"));
    }
    let left = world.labelled();
    if !left.is_empty() {
        problems.push(format!("{} mails still in the label", left.len()));
    }
    let builds = built(&world);
    let total: usize = builds.values().map(Vec::len).sum();
    if builds != expected {
        let wrong: Vec<_> = expected
            .iter()
            .filter(|(n, want)| builds.get(n) != Some(want))
            .map(|(n, want)| format!("change {n}: want {want:?}, got {:?}", builds.get(n)))
            .chain(
                builds
                    .keys()
                    .filter(|n| !expected.contains_key(n))
                    .map(|n| format!("change {n}: unexpected builds {:?}", builds[n])),
            )
            .take(5)
            .collect();
        problems.push(format!("builds differ: {}", wrong.join("; ")));
    }
    if !problems.is_empty() && std::env::var_os("BIONICBB_BENCH_LOG").is_some() {
        eprintln!("{output}");
    }
    Drain {
        concurrency: concurrency.map_or_else(|| "default".to_string(), |c| c.to_string()),
        mails,
        elapsed,
        start: first.map_or(elapsed, |t| t.saturating_duration_since(start)),
        end: last.map_or(Duration::ZERO, |t| exited.saturating_duration_since(t)),
        requests: [
            world.gmail.faults().requests().len(),
            world.gerrit.faults().requests().len(),
            world.jenkins.faults().requests().len(),
        ],
        peak_rss_mib: peak.mib(),
        problems,
        builds: total,
    }
}

/// When the first mail download reached Gmail, and when the last request
/// of the handling (a download, or any request to Gerrit or Jenkins) was
/// answered.
fn handling_span(world: &World) -> (Option<Instant>, Option<Instant>) {
    let download = |r: &str| r.starts_with("GET /gmail/v1/users/me/messages/");
    let gmail = world.gmail.faults().answered();
    let first = gmail
        .iter()
        .filter(|a| download(&a.request))
        .map(|a| a.arrived)
        .min();
    let last = gmail
        .iter()
        .filter(|a| download(&a.request))
        .chain(world.gerrit.faults().answered().iter())
        .chain(world.jenkins.faults().answered().iter())
        .map(|a| a.answered)
        .max();
    (first, last)
}

/// The backlog on the fakes; the builds expected per change, in order.
fn seed(world: &World, changes: usize) -> BTreeMap<u64, Vec<(String, u32)>> {
    let sam = Person::new("Sam Reviewer", "sam@example.com");
    let dana = Person::new("Dana Dev", "dana@example.com");
    let base = unix_now() - 7 * 24 * 3600;
    let mut expected = BTreeMap::new();
    let mut mails: Vec<Vec<Vec<u8>>> = Vec::with_capacity(changes);
    for i in 0..changes {
        let key = format!("I{:040x}", 0xB10C_0000_u64 + i as u64);
        let subject = format!("Change {i} of the backlog");
        let number =
            world
                .gerrit
                .create_change("platform/bionic", "master", &key, world.dana, &subject);
        let change = MailChange {
            host: "gerrit.example.org".into(),
            project: "platform/bionic".into(),
            branch: "master".into(),
            change_key: key,
            number,
            subject,
            owner: dana.clone(),
        };
        let date = |step: usize| base + (step * 100_000 + i * 10) as i64;
        let mut own = Vec::with_capacity(MAILS_PER_CHANGE);
        for step in 0..3 {
            let ps =
                world
                    .gerrit
                    .add_patch_set(number, "dana@example.com", &["libc/bionic/strtod.cpp"]);
            own.push(mailgen::patch_set_uploaded(&change, ps, &dana, date(step)));
        }
        let command = if i % 2 == 0 {
            "bionicbb:clean"
        } else {
            "bionicbb:retry"
        };
        let at = date(3);
        let when = format_timestamp(at, 0);
        world.gerrit.add_comment(
            number,
            3,
            world.sam,
            "/PATCHSET_LEVEL",
            None,
            command,
            &when,
        );
        world
            .gerrit
            .add_message(number, 3, world.sam, "Patch Set 3:\n\n(1 comment)", &when);
        own.push(mailgen::comment(&change, 3, &sam, "", command, at));
        let at = date(4);
        if i % 2 == 0 {
            let when = format_timestamp(at, 0);
            world
                .gerrit
                .add_message(number, 3, world.sam, "Patch Set 3: Code-Review+1", &when);
            own.push(mailgen::comment(&change, 3, &sam, "Code-Review+1", "", at));
            expected.insert(
                number,
                vec![(VERIFY.to_string(), 3), (CLEAN.to_string(), 3)],
            );
        } else {
            world.gerrit.set_status(number, Status::Merged);
            own.push(mailgen::closed(&change, 3, &dana, "merged", at));
        }
        mails.push(own);
    }
    for step in 0..MAILS_PER_CHANGE {
        for own in &mails {
            world.deliver(&own[step]);
        }
    }
    expected
}

/// The builds Jenkins was asked for, per change, in the order it queued them.
fn built(world: &World) -> BTreeMap<u64, Vec<(String, u32)>> {
    let mut all: Vec<(u64, String, BTreeMap<String, String>)> = world
        .jenkins
        .queue()
        .into_iter()
        .map(|q| (q.id, q.job, q.params))
        .collect();
    all.extend(
        world
            .jenkins
            .builds()
            .into_iter()
            .map(|b| (b.queue_id, b.job, b.params)),
    );
    all.sort_by_key(|(id, _, _)| *id);
    let mut per_change: BTreeMap<u64, Vec<(String, u32)>> = BTreeMap::new();
    for (_, job, params) in all {
        let number = params
            .get("CHANGE_NUMBER")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let ps = params
            .get("PATCHSET")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        per_change.entry(number).or_default().push((job, ps));
    }
    per_change
}

fn unix_now() -> i64 {
    bionicbb_core::ledger::now()
}

/// Prints both drains and their ratios; returns what went wrong.
pub fn report(options: &Options, serial: &Drain, concurrent: &Drain) -> Vec<String> {
    serial.print();
    concurrent.print();
    let speedup = serial.elapsed.as_secs_f64() / concurrent.elapsed.as_secs_f64();
    line(
        "drain speed-up",
        format!(
            "{speedup:.1}x (concurrency {} vs 1; target >= 8x)",
            concurrent.concurrency
        ),
    );
    let width = options.concurrency as f64;
    let (t1, tc) = (
        serial.elapsed.as_secs_f64(),
        concurrent.elapsed.as_secs_f64(),
    );
    let (f1, fc) = (
        serial.fixed().as_secs_f64(),
        concurrent.fixed().as_secs_f64(),
    );
    line(
        "drain fixed costs",
        format!(
            "concurrency 1: start {} + end {}; concurrency {}: start {} + end {} \
             (start: spawn to the first download; end: the last request's answer to the exit)",
            ms(serial.start),
            ms(serial.end),
            concurrent.concurrency,
            ms(concurrent.start),
            ms(concurrent.end),
        ),
    );
    line(
        "drain handling speed-up",
        format!(
            "{:.1}x without the fixed costs ({:.2} s vs {:.2} s); ceiling of the whole with \
             these fixed costs: {:.1}x",
            (t1 - f1) / (tc - fc),
            t1 - f1,
            tc - fc,
            t1 / (fc + (t1 - f1) / width),
        ),
    );
    let bound =
        concurrent.mails as f64 * concurrent.requests_per_mail() * options.latency.as_secs_f64()
            / width;
    line(
        "drain vs round-trip bound",
        format!(
            "bound {:.2} s (mails x requests per mail x {} / {width}) -> {:.2}x (target <= 2x)",
            bound,
            ms(options.latency),
            concurrent.elapsed.as_secs_f64() / bound
        ),
    );
    let mut problems = Vec::new();
    for d in [serial, concurrent] {
        problems.extend(
            d.problems
                .iter()
                .map(|p| format!("drain concurrency {}: {p}", d.concurrency)),
        );
    }
    line(
        "drain correctness",
        if problems.is_empty() {
            format!(
                "ok: {} builds, each once and in order per change; every mail out of the label",
                concurrent.builds
            )
        } else {
            format!("FAILED: {}", problems.join(" | "))
        },
    );
    problems
}
