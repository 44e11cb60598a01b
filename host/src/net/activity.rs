//! The watch over one HTTP connection: its socket wrapped so that the first byte of a request
//! head is noticed, and a count of its requests in flight, so that [`Activity::overdue`] can
//! say when it waited too long for a whole head (`header_timeout_s`) or, with nothing in
//! flight, for its next request (`idle_timeout_s`).
//!
//! hyper's own `header_read_timeout` (HTTP/1) starts its clock when hyper begins waiting for a
//! head, which is also the whole keep-alive wait: it cannot tell a slow head from an idle
//! connection, so it is left off and both are kept here.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// No time recorded (times are milliseconds since the connection opened, plus one).
const NONE: u64 = 0;

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// A request head began and was not whole within the header timeout.
    Head,
    /// No request in flight and none begun within the idle timeout.
    Idle,
}

/// What is known of one connection's requests.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicU64,
    /// When the last request ended (or the connection opened), if none is in flight.
    idle_since: AtomicU64,
    /// When the first byte arrived after the last request ended, if any has.
    head_since: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicU64::new(0),
            idle_since: AtomicU64::new(1),
            head_since: AtomicU64::new(NONE),
        })
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64 + 1
    }

    /// Bytes arrived: with no request in flight, they begin a request head.
    fn received(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_since.compare_exchange(NONE, self.now(), Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A request's head is whole: it is in flight until the returned guard is dropped (with
    /// its response body, once sent).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        self.idle_since.store(NONE, Ordering::Release);
        InFlight { activity: self.clone() }
    }

    /// Whether the connection has waited too long for a head, or for a request at all.
    /// Whether a request is being served (its answer not yet fully written).
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    pub fn overdue(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<Overdue> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now();
        let waited = |since: u64| (since != NONE).then(|| Duration::from_millis(now.saturating_sub(since)));
        if waited(self.head_since.load(Ordering::Acquire)).is_some_and(|w| w > header_timeout) {
            return Some(Overdue::Head);
        }
        if waited(self.idle_since.load(Ordering::Acquire)).is_some_and(|w| w > idle_timeout) {
            return Some(Overdue::Idle);
        }
        None
    }
}

/// A request in flight; dropped when its response has been sent (or abandoned).
#[derive(Debug)]
pub struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.activity.now();
        if self.activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.activity.idle_since.store(now, Ordering::Release);
        }
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Self { inner, _in_flight: in_flight }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that tells its [`Activity`] when bytes arrive.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_in_flight_is_never_overdue_and_its_end_starts_the_idle_clock() {
        let activity = Activity::new();
        let zero = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(activity.overdue(Duration::from_secs(60), zero), Some(Overdue::Idle));
        activity.received();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(activity.overdue(zero, Duration::from_secs(60)), Some(Overdue::Head));
        let in_flight = activity.request_started();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(activity.overdue(zero, zero), None);
        drop(in_flight);
        assert_eq!(activity.overdue(Duration::from_secs(60), Duration::from_secs(60)), None);
    }
}
