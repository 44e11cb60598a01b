//! Connection limits: how many connections are open, in all and per peer IP address. A
//! connection holds a [`Slot`] that frees itself when dropped; refusals are logged at most
//! once per [`LOG_EVERY`], with how many there were.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Least time between two log lines about refused connections.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections open")]
    Total,
    #[error("too many connections open from this peer")]
    Peer,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// The open connections of one listener, and its limits.
#[derive(Debug)]
pub struct ConnectionLimits {
    /// What the log calls the listener ("HTTP", "DICOM").
    name: &'static str,
    max_total: usize,
    max_per_peer: usize,
    open: Mutex<Open>,
    all_closed: Notify,
    started: Instant,
    /// Refusals not logged yet, and when the last log line was written (ms since `started`).
    unlogged: AtomicU64,
    logged_at_ms: AtomicU64,
}

impl ConnectionLimits {
    pub fn new(name: &'static str, max_total: usize, max_per_peer: usize) -> Arc<Self> {
        Arc::new(Self {
            name,
            max_total,
            max_per_peer,
            open: Mutex::default(),
            all_closed: Notify::new(),
            started: Instant::now(),
            unlogged: AtomicU64::new(0),
            logged_at_ms: AtomicU64::new(0),
        })
    }

    /// A slot for a new connection from `peer`, or why not (the refusal is logged).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let admitted = {
            let mut open = self.open.lock().expect("limits lock");
            let from_peer = open.per_peer.get(&peer).copied().unwrap_or(0);
            if open.total >= self.max_total {
                Err(Refusal::Total)
            } else if from_peer >= self.max_per_peer {
                Err(Refusal::Peer)
            } else {
                open.total += 1;
                open.per_peer.insert(peer, from_peer + 1);
                Ok(Slot { limits: self.clone(), peer })
            }
        };
        if let Err(refusal) = admitted {
            self.log_refusal(peer, refusal);
        }
        admitted
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().expect("limits lock").total
    }

    /// Waits until no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// A flood of refusals must not flood the log: one line per `LOG_EVERY` with the count.
    fn log_refusal(&self, peer: IpAddr, refusal: Refusal) {
        let refused = self.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let now_ms = self.started.elapsed().as_millis() as u64 + LOG_EVERY.as_millis() as u64;
        let last = self.logged_at_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= LOG_EVERY.as_millis() as u64
            && self.logged_at_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.unlogged.fetch_sub(refused, Ordering::Relaxed);
            tracing::warn!(
                listener = self.name,
                %peer,
                reason = %refusal,
                refused,
                max = self.max_total,
                max_per_peer = self.max_per_peer,
                "connections refused (this one, and others since the last such line)"
            );
        }
    }
}

/// One open connection's place in the count.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("limits lock");
        open.total -= 1;
        if let Some(n) = open.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.per_peer.remove(&self.peer);
            }
        }
        if open.total == 0 {
            self.limits.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_freed_makes_room_again() {
        let limits = ConnectionLimits::new("test", 3, 2);
        let (a, b, c) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::Peer);
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(c).unwrap_err(), Refusal::Total);
        drop(first);
        assert_eq!(limits.open(), 2);
        let _again = limits.admit(a).unwrap();
    }
}
