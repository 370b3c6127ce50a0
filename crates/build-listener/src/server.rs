//! The daemon: opens the ledger, starts the outbox worker, the catch-up
//! task and the HTTP server, and stops them on SIGTERM/SIGINT. Under
//! systemd (`Type=notify`) it reports readiness once it serves, its
//! address and outbox in `STATUS=` (shown by `systemctl status`), and
//! "stopping" when it begins to shut down.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bionicbb_core::config::Config;
use bionicbb_core::jenkins::job_url;
use bionicbb_core::ledger::Ledger;
use bionicbb_core::runtime::{self, StartupFailure};
use tokio::sync::{Notify, watch};

use crate::app::{AppState, router};
use crate::catch_up::CatchUp;
use crate::conn::{self, Limits};
use crate::outbox::{Settings, Worker};

/// How long in-flight requests may take to finish after the signal, and
/// then how long the worker may take to finish its item.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the daemon until a shutdown signal; `Ok` after a clean stop.
pub async fn run(config: Config, settings: Settings) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let ledger_path = config.ledger_path();
    // What stops the start is a StartupFailure: the caller tells the
    // operator's mistakes (exit 2) from what may pass.
    let ledger = Ledger::open(&ledger_path).map_err(|e| StartupFailure::config(e.to_string()))?;
    // Builds recorded by an older version under another form of key are
    // recognised when Jenkins posts them again.
    match ledger.rekey_builds(job_url::KEY_PREFIX, job_url::canonical_build_key) {
        Ok(0) => {}
        Ok(n) => tracing::info!("rewrote {n} build keys of the ledger into their canonical form"),
        Err(e) => {
            let message = format!("cannot rewrite old build keys in the ledger: {e}");
            return Err(StartupFailure::config(message).into());
        }
    }
    let config_error = |e: runtime::SetupError| StartupFailure::config(e.0);
    let gerrit = runtime::gerrit_client(&config).map_err(config_error)?;
    let jenkins = runtime::jenkins_client(&config).map_err(config_error)?;
    let listen = config.build_listener.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| StartupFailure::bind("[build_listener] listen", listen, &e))?;
    let addr = listener.local_addr().context("listening address")?;

    let wake = Arc::new(Notify::new());
    let (stop, stopped) = watch::channel(false);
    let worker = Worker::new(
        ledger.clone(),
        gerrit,
        config.clone(),
        wake.clone(),
        settings,
    )
    .on_pending_change(move |pending| runtime::notify_status(&status_line(addr, pending)));
    let worker = tokio::spawn(worker.run(stopped.clone()));

    let state = AppState::new(config, ledger, wake);
    // Builds whose notification never arrived are looked up on Jenkins.
    let catch_up = tokio::spawn(CatchUp::new(state.clone(), jenkins).run(stopped.clone()));
    let app = router(state);
    let limits = Limits::for_this_process();
    tracing::info!(
        "at most {} connections, each closed after {} idle",
        limits.max_connections,
        humantime::format_duration(limits.idle_timeout)
    );
    let mut server = tokio::spawn(conn::serve(listener, app, limits, stopped));
    // Handlers are installed before "listening on" is printed: a signal
    // sent by whoever waits for that line must not kill the process.
    let signal = runtime::shutdown_signal();
    tracing::info!("listening on {addr}");
    // Bound and serving, the worker running: systemd (`Type=notify`) may
    // consider the unit started; this also starts the watchdog pings.
    runtime::notify_ready();

    tokio::select! {
        _ = signal => runtime::notify_stopping(),
        result = &mut server => {
            runtime::notify_stopping();
            let _ = stop.send(true);
            return match result {
                Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
                Ok(Err(e)) => Err(e).context("HTTP server"),
                Err(e) => Err(e).context("HTTP server task"),
            };
        }
    }
    let _ = stop.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!("HTTP server: {e}"),
        Ok(Err(e)) => tracing::error!("HTTP server task: {e}"),
        Err(_) => {
            tracing::warn!("requests still open after {SHUTDOWN_GRACE:?}; closing them");
            server.abort();
        }
    }
    let abort = worker.abort_handle();
    if tokio::time::timeout(SHUTDOWN_GRACE, worker).await.is_err() {
        // The item in hand stays pending (marked in flight) and is checked
        // against Gerrit before being posted again after the restart.
        tracing::warn!("the outbox worker did not stop within {SHUTDOWN_GRACE:?}; stopping it");
        abort.abort();
    }
    // The catch-up task holds no work of its own (each ledger write is one
    // transaction): a look cut short is done again after the restart.
    catch_up.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The daemon in one line for `systemctl status`.
pub fn status_line(addr: std::net::SocketAddr, pending: u64) -> String {
    match pending {
        0 => format!("listening on {addr}; no review waiting for Gerrit"),
        1 => format!("listening on {addr}; 1 review waiting for Gerrit"),
        n => format!("listening on {addr}; {n} reviews waiting for Gerrit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_gives_the_address_and_the_waiting_reviews() {
        let addr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            status_line(addr, 0),
            "listening on 127.0.0.1:8080; no review waiting for Gerrit"
        );
        assert_eq!(
            status_line(addr, 1),
            "listening on 127.0.0.1:8080; 1 review waiting for Gerrit"
        );
        assert_eq!(
            status_line(addr, 12),
            "listening on 127.0.0.1:8080; 12 reviews waiting for Gerrit"
        );
    }
}
