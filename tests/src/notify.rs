//! A stand-in for systemd's notification socket: a Unix datagram socket
//! whose path a daemon gets in `NOTIFY_SOCKET`, and the messages it sent
//! (`READY=1`, `STATUS=...`, `STOPPING=1`), in order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixDatagram;

pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    received: Vec<String>,
    /// How many of `received` [`NotifySocket::wait_for`] has looked at.
    seen: usize,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    /// Binds a fresh socket in a temporary directory.
    pub fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            socket,
            path,
            received: Vec::new(),
            seen: 0,
            _dir: dir,
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every message received so far (`KEY=value` lines, without the
    /// final newline).
    pub fn received(&self) -> &[String] {
        &self.received
    }

    /// The first message after the one it last returned that satisfies
    /// `wanted`, receiving more as needed; panics with what came after
    /// `timeout` (a bound on a failure, not a measure: a working daemon
    /// sends the message long before).
    pub async fn wait_for(&mut self, wanted: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while self.seen < self.received.len() {
                let message = &self.received[self.seen];
                self.seen += 1;
                if wanted(message) {
                    return message.clone();
                }
            }
            let received = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await;
            match received {
                Ok(Ok(n)) => self.received.push(text(&buf[..n])),
                Ok(Err(e)) => panic!("notify socket: {e}"),
                Err(_) => panic!(
                    "no wanted message within {timeout:?}; received: {:?}",
                    self.received
                ),
            }
        }
    }

    /// Takes every message already waiting on the socket, without waiting.
    pub fn drain(&mut self) -> &[String] {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = self.socket.try_recv(&mut buf) {
            self.received.push(text(&buf[..n]));
        }
        &self.received
    }
}

/// A message as text, without the newline that ends its last line.
fn text(datagram: &[u8]) -> String {
    String::from_utf8_lossy(datagram)
        .trim_end_matches('\n')
        .to_string()
}

/// The `STATUS=` values among `messages`, in order.
pub fn statuses(messages: &[String]) -> Vec<&str> {
    messages
        .iter()
        .flat_map(|m| m.lines())
        .filter_map(|l| l.strip_prefix("STATUS="))
        .collect()
}
