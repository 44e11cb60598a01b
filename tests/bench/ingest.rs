//! Ingest figures: 1,000 generated 512x512 CT instances stored over C-STORE (dcmtk storescu, one
//! association, 4, 8 and 16 at once) and over STOW-RS (1 and 50 instances per request).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use wasmpacs_tests::{Backend, KEY_A, NODE_A, TestServer, generate_cts};

/// Generates `n` CT instances (tests/data/gen_ct.py, needs pydicom and numpy).
fn generate(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = generate_cts(dir.path(), &["-n", &n.to_string(), "--studies", "10", "--series-per-study", "2"]);
    // The generated files are written back now, not while ingest is measured (their 500 MB
    // of writeback would compete with the server's syncs).
    let synced = std::process::Command::new("sync").status().expect("sync");
    assert!(synced.success(), "sync failed");
    assert_eq!(files.len(), n);
    (dir, files)
}

async fn storescu(s: &TestServer, files: &[PathBuf]) {
    let output = tokio::process::Command::new("storescu")
        .env("TCP_NODELAY", "1")
        .args(["-aet", NODE_A, "-aec", wasmpacs_tests::SERVER_AE, "-xe", "127.0.0.1", &s.dicom_port.to_string()])
        .args(files)
        .output()
        .await
        .expect("storescu");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Every ingest figure on both backends, or on the one named (`sqlite`, `postgres`); with
/// `stow_only`, the STOW-RS figures alone. The CTs are generated once for all of them, and the
/// servers' files are removed only at the end: removing thousands of files between figures
/// would make the next figure's file creation slower (the file system passes over inodes freed
/// in the last minutes).
pub async fn all(only: Option<&str>, stow_only: bool) {
    let (_dir, files) = generate(1_000);
    let mut kept = Vec::new();
    let backends = [Backend::Sqlite, Backend::Postgres];
    for backend in backends.into_iter().filter(|b| only.is_none_or(|name| format!("{b:?}").eq_ignore_ascii_case(name))) {
        if !stow_only {
            kept.extend(cstore(backend, &files).await);
        }
        kept.push(stow(backend, &files, 1).await);
        kept.push(stow(backend, &files, 50).await);
    }
}

/// C-STORE of the 1,000 CTs over 1, 4, 8 and 16 associations at once (one storescu each), each
/// on a fresh server. Returns the servers' data folders, to be removed once every figure is taken.
pub async fn cstore(backend: Backend, files: &[PathBuf]) -> Vec<tempfile::TempDir> {
    let (mut figures, mut kept) = (Vec::new(), Vec::new());
    for associations in [1, 4, 8, 16] {
        let s = TestServer::start(backend).await;
        let started = Instant::now();
        let shares: Vec<&[PathBuf]> = files.chunks(files.len().div_ceil(associations)).collect();
        futures::future::join_all(shares.iter().map(|share| storescu(&s, share))).await;
        let elapsed = started.elapsed();
        kept.push(s.stop_keeping_files().await);
        figures.push(format!("{associations} assoc: {:>5.0}/s", 1_000.0 / elapsed.as_secs_f64()));
    }
    println!("C-STORE 1,000 CT 512x512 on {:<10} {}", format!("{backend:?}"), figures.join("   "));
    kept
}

fn multipart(files: &[Vec<u8>], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for file in files {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// STOW-RS of the same 1,000 CTs, `per_request` instances per request, 4 requests at once.
/// Returns the server's data folder, to be removed once every figure is taken.
pub async fn stow(backend: Backend, files: &[PathBuf], per_request: usize) -> tempfile::TempDir {
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("read")).collect();
    let boundary = "wasmpacs-bench-boundary";
    // Shared, not copied, per request: the client runs on the same two cores as the server, and
    // a 25 MB copy per request (and the memory it churns) would be measured as the server's.
    let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(bytes.chunks(per_request).map(|c| multipart(c, boundary).into()).collect());
    let s = Arc::new(TestServer::start(backend).await);
    let url = format!("{}/stowRsListener/{NODE_A}/studies", s.base);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (s, bodies, next, url) = (s.clone(), bodies.clone(), next.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { return };
                let response = s
                    .http
                    .post(&url)
                    .header("Authorization", KEY_A)
                    .header("Content-Type", format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"))
                    .header("Accept", "application/dicom+json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("STOW");
                assert!(response.status().is_success(), "STOW answered {}", response.status());
            }
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
    let elapsed = started.elapsed();
    println!(
        "STOW-RS 1,000 CT 512x512 on {:<10} {per_request:>2} per request: {:>6.0} instances/s",
        format!("{backend:?}"),
        1_000.0 / elapsed.as_secs_f64()
    );
    Arc::try_unwrap(s).ok().expect("sole owner").stop_keeping_files().await
}
