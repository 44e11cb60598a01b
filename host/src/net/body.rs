//! A request body with an inactivity timeout: while the server waits for the body's next bytes,
//! at most `body_timeout_s` may pass before the body fails with [`BodyError::Stalled`]. The
//! clock runs only while the server is waiting for the client, and restarts at every byte, so a
//! slow upload that keeps sending is never cut, and a handler busy elsewhere is never blamed on
//! the client.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Read(#[from] hyper::Error),
    #[error("no byte of the request body arrived for {} s", .0.as_secs())]
    Stalled(Duration),
}

/// The body of a request, as every handler receives it.
pub struct RequestBody {
    inner: Incoming,
    timeout: Duration,
    /// Armed when a poll found no bytes; dropped when bytes come.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl RequestBody {
    pub fn new(inner: Incoming, timeout: Duration) -> Self {
        Self { inner, timeout, waiting: None }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.waiting = None;
                Poll::Ready(frame.map(|f| f.map_err(BodyError::from)))
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let waiting = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match waiting.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Stalled(timeout)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
