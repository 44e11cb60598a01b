//! A TCP proxy in front of PostgreSQL that, once armed, passes the next `COMMIT` on to the
//! database and cuts that connection before the answer comes back: the unit commits, and its
//! client cannot know it (a lost COMMIT answer). Every other byte passes as it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; stops when dropped.
pub struct CommitCut {
    pub port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CommitCut {
    /// A proxy to `upstream` (host:port) on a free local port.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let (armed, cuts) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (armed_c, cuts_c) = (armed.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (armed, cuts, upstream) = (armed_c.clone(), cuts_c.clone(), upstream.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, armed, cuts).await;
                    }
                });
            }
        });
        Self { port, armed, cuts, task }
    }

    /// Cuts the connection that sends the next COMMIT.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CommitCut {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays both ways until either side closes, or until a COMMIT is passed on while armed: then
/// the database's answer is held back and both connections are dropped.
async fn relay(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>, cuts: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let cut_up = cut.clone();
    let upward = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buffer[..n];
            let commit = chunk.windows(6).any(|w| w == b"COMMIT");
            if commit && armed.swap(false, Ordering::SeqCst) {
                cut_up.store(true, Ordering::SeqCst);
                let _ = server_write.write_all(chunk).await;
                // Time for the database to commit, then the connection goes, unanswered.
                tokio::time::sleep(Duration::from_millis(300)).await;
                cuts.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let downward = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cut.load(Ordering::SeqCst) {
                // The answer to the COMMIT: never delivered. Wait for the cut.
                std::future::pending::<()>().await;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = upward => {}
        () = downward => {}
    }
}
