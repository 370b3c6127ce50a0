//! `bionicbb-bench`: how fast bionicbb drains a backlog, takes Jenkins
//! notifications and posts reviews, what an idle poll costs and how much
//! memory each daemon holds, against the fakes with an injected round-trip
//! latency. One line per figure; exits non-zero if a correctness check
//! failed (a figure missing its target is printed, not failed).
//!
//! ```text
//! cargo run --release -p bionicbb-tests --bin bionicbb-bench -- [--latency-ms 20]
//!     [--changes 200] [--concurrency 8] [--notifications 2000] [--open-changes 1000]
//!     [--clients N] [--only drain|intake|idle|reconcile]
//! ```
//!
//! `--clients N` runs the intake with N concurrent clients only (default:
//! 16, then 64).

use std::process::ExitCode;
use std::time::Duration;

use bionicbb_tests::bench::{self, Options, drain, idle, intake, line, ms, reconcile};

fn usage() -> &'static str {
    "usage: bionicbb-bench [--latency-ms N] [--changes N] [--concurrency N] \
     [--notifications N] [--open-changes N] [--clients N] \
     [--only drain|intake|idle|reconcile]"
}

fn parse() -> Result<(Options, Option<String>), String> {
    let mut options = Options::default();
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage().to_string());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: `{value}` is not a positive number"))
        };
        match flag.as_str() {
            "--latency-ms" => options.latency = Duration::from_millis(number()? as u64),
            "--changes" => options.changes = number()?,
            "--concurrency" => options.concurrency = number()?,
            "--notifications" => options.notifications = number()?,
            "--open-changes" => options.open_changes = number()?,
            "--clients" => options.clients = vec![number()?],
            "--only" if ["drain", "intake", "idle", "reconcile"].contains(&value.as_str()) => {
                only = Some(value.clone());
            }
            _ => return Err(format!("unknown argument `{flag} {value}`\n{}", usage())),
        }
    }
    options.mails = options.changes * drain::MAILS_PER_CHANGE;
    Ok((options, only))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (options, only) = match parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = bench::build_daemons() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    bionicbb_core::tls::install_crypto_provider();
    let runs = |what: &str| only.as_deref().is_none_or(|o| o == what);
    line(
        "setup",
        format!(
            "{} build, {} CPUs, injected latency {} per request",
            if cfg!(debug_assertions) {
                "debug (use --release for figures)"
            } else {
                "release"
            },
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            ms(options.latency),
        ),
    );
    line(
        "fakes' own cost",
        format!(
            "{:.0} us per request (a Gerrit change, keep-alive, no injected latency)",
            bench::fake_cost().await.as_secs_f64() * 1e6
        ),
    );
    let mut problems = Vec::new();
    if runs("idle") {
        idle::gmail_listener().await;
        idle::build_listener().await;
        idle::per_mail().await;
    }
    if runs("drain") {
        let serial = drain::run(&options, Some(1)).await;
        let default =
            (options.concurrency != Options::default().concurrency).then_some(options.concurrency);
        let concurrent = drain::run(&options, default).await;
        problems.extend(drain::report(&options, &serial, &concurrent));
    }
    if runs("intake") {
        for &clients in &options.clients {
            let run = intake::run(&options, clients).await;
            run.print(options.latency);
            problems.extend(
                run.problems
                    .iter()
                    .map(|p| format!("intake {clients} clients: {p}")),
            );
        }
    }
    if runs("reconcile") {
        problems.extend(reconcile::run(&options).await);
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("check failed: {p}");
        }
        ExitCode::FAILURE
    }
}
