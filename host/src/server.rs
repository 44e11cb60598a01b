//! The HTTP server: accepts connections (HTTP/1.1 and HTTP/2) within the connection limits,
//! serves each request through `dispatch`, closes connections that wait too long for a request
//! head or sit idle (see `net::activity`), and on shutdown stops accepting and waits for
//! requests in flight.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::app::App;
use crate::config::HttpConfig;
use crate::dispatch;
use crate::net::activity::{Activity, Tracked, Watched};
use crate::net::body::RequestBody;
use crate::net::limits::{ConnectionLimits, Refusal, Slot};

/// Longest wait for requests in flight at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often each connection's watch looks at its clocks.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// HTTP/2: a ping every so often finds a peer gone without a word, even mid-request.
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Refused connections being answered at once; beyond, a refused connection is just closed.
const REFUSALS_IN_PROGRESS: usize = 64;
/// How long a refused connection is read (and its bytes dropped) after its 503, so that
/// closing it does not reset the connection before the client has read the answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// The timeouts of every HTTP connection.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
    body: Duration,
}

impl Timeouts {
    fn of(http: &HttpConfig) -> Self {
        Self {
            header: Duration::from_secs(http.header_timeout_s),
            idle: Duration::from_secs(http.idle_timeout_s),
            body: Duration::from_secs(http.body_timeout_s),
        }
    }
}

/// Serves until `stop` turns true.
pub async fn serve(listener: TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let http = &app.config.http;
    let limits = ConnectionLimits::new("HTTP", http.max_connections, http.max_connections_per_peer);
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_PROGRESS));
    let timeouts = Timeouts::of(http);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(H2_PING_EVERY)).keep_alive_timeout(H2_PING_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                match limits.admit(peer.ip()) {
                    Ok(slot) => connection(&builder, app.clone(), stream, peer, slot, timeouts, stop.clone()),
                    Err(refusal) => refuse(stream, refusal, &refusals),
                }
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    tokio::select! {
        _ = limits.all_closed() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway"),
    }
}

/// Serves one connection in a task of its own, watching its clocks.
fn connection(
    builder: &auto::Builder<TokioExecutor>,
    app: Arc<App>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let watched = activity.clone();
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let (app, in_flight) = (app.clone(), activity.request_started());
        let request = request.map(|body| RequestBody::new(body, timeouts.body));
        async move {
            let response = dispatch::handle(app, peer, request).await;
            Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight).boxed()))
        }
    });
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(Watched::new(stream, watched.clone())), service).into_owned();
    tokio::spawn(async move {
        let _slot = slot;
        tokio::pin!(connection);
        let mut watch = tokio::time::interval(WATCH_EVERY);
        // Once asked to close, a connection gets as long again to finish what is in flight.
        let mut closing: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.changed(), if closing.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                }
                _ = watch.tick() => match closing {
                    // Closed for waiting too long, a connection still finishes a request that came
                    // in meanwhile (an HTTP/2 stream opened before the GOAWAY); at shutdown it
                    // gets DRAIN_TIMEOUT.
                    Some(deadline) if tokio::time::Instant::now() > deadline && (*stop.borrow() || !watched.busy()) => {
                        tracing::debug!(%peer, "connection dropped: it did not close when asked");
                        return;
                    }
                    Some(_) => {}
                    None => if let Some(overdue) = watched.overdue(timeouts.header, timeouts.idle) {
                        tracing::debug!(%peer, ?overdue, "connection closed: it waited too long for a request");
                        connection.as_mut().graceful_shutdown();
                        closing = Some(tokio::time::Instant::now() + timeouts.header.max(Duration::from_secs(1)));
                    }
                },
            }
        }
    });
}

/// Answers a connection over the limits with 503 and closes it; clients read it as "busy, try
/// again" (with `Retry-After`), where a bare close reads as a network failure.
fn refuse(mut stream: TcpStream, refusal: Refusal, refusals: &Arc<Semaphore>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else { return };
    tokio::spawn(async move {
        let _permit = permit;
        let body = serde_json::json!({"error": "service unavailable", "message": refusal.to_string()}).to_string();
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let linger = async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
    });
}
