//! Request ids: each request's id (the client's `X-Request-Id` when it is sane, else a new one)
//! is answered in the same header, logged with the request, and put in every JSON error body,
//! so that a user's report leads to its log line.

use std::hash::BuildHasher;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

/// The header carrying the id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id taken from a client.
const MAX_LEN: usize = 128;

tokio::task_local! {
    /// The id of the request being served on this task (see [`scope`]).
    static CURRENT: HeaderValue;
}

/// A random prefix per process, so that ids of several hosts and of restarts do not meet.
static PROCESS: LazyLock<u64> = LazyLock::new(|| std::collections::hash_map::RandomState::new().hash_one(std::process::id()));
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The client's id when it is 1 to 128 characters of letters, digits and `-_.:`, else a new one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    let sane = |value: &&HeaderValue| {
        let bytes = value.as_bytes();
        !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    headers.get(HEADER).filter(sane).cloned().unwrap_or_else(fresh)
}

fn fresh() -> HeaderValue {
    let id = format!("{:016x}{:08x}", *PROCESS, NEXT.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_str(&id).expect("hex digits are a valid header value")
}

/// Runs `serve` with `id` as the current request's id.
pub async fn scope<F: Future>(id: HeaderValue, serve: F) -> F::Output {
    CURRENT.scope(id, serve).await
}

/// The id of the request served on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.to_str().ok().map(str::to_owned)).ok().flatten()
}
