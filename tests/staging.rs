//! Staging files left by interrupted uploads: a client gone mid-upload leaves none once its
//! request ends; a server killed mid-upload (the real binary, `kill -9`) leaves its part file,
//! which `wasmpacs check` reports with its size and the next start removes once it has been idle
//! for `[storage] staging_grace_s`. The server started in-process beside the killed one shares
//! its medium, as a second host would, and takes nothing of it while the grace runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wasmpacs_tests::{Backend, KEY_A, NODE_A, Options, TestServer, on_both_backends, pathology_manifest};

on_both_backends!(a_client_gone_mid_upload_leaves_no_staging_file, a_killed_upload_is_reported_then_removed_at_start);

const BOUNDARY: &str = "staging-test-boundary";

/// Bytes of the slide sent before the upload is cut: past a few write batches of the host.
const SENT: usize = 3 << 20;

async fn start(backend: Backend) -> TestServer {
    let mut options = Options::new(backend);
    options.manifest = Some(pathology_manifest());
    TestServer::start_with(options).await.expect("server starts")
}

/// Opens a slide upload to `addr` announcing a 64 MiB slide and sends its metadata part and the
/// first [`SENT`] bytes of the slide; the caller cuts it.
async fn begin_slide_upload(addr: &str) -> TcpStream {
    let metadata = serde_json::json!({"attributes": {
        "AccessionNumber": "ACC-CUT", "ContainerIdentifier": "CUT-1", "PatientID": "P-CUT"
    }});
    let head_parts = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{metadata}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.svs\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let announced = head_parts.len() + (64 << 20);
    let head = format!(
        "POST /o3-dpacs-wado/pathoRsListener/{NODE_A}/studies HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {KEY_A}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {announced}\r\n\r\n{head_parts}"
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    let slide: Vec<u8> = (0..SENT).map(|i| (i * 31 % 251) as u8).collect();
    stream.write_all(&slide).await.expect("slide bytes");
    stream.flush().await.expect("flush");
    stream
}

/// Each file in `staging` with its size.
fn staged(staging: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(staging) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.flatten().map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0))).collect();
    files.sort();
    files
}

/// Waits (up to 60 s) until `done` holds; false if it never did.
async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Waits until the server has written at least a MiB of the slide to staging.
async fn wait_for_staged_slide(staging: &Path) {
    let receiving = wait_until(|| staged(staging).iter().any(|(_, len)| *len >= 1 << 20)).await;
    assert!(receiving, "the slide is being staged: {:?}", staged(staging));
}

async fn a_client_gone_mid_upload_leaves_no_staging_file(backend: Backend) {
    let s = start(backend).await;
    let staging = s.data_dir.path().join("archive/.staging");
    let stream = begin_slide_upload(&s.addr.to_string()).await;
    wait_for_staged_slide(&staging).await;
    drop(stream);
    assert!(wait_until(|| s.staging_is_empty()).await, "the cut upload's files are removed: {:?}", staged(&staging));
    assert!(s.archived_files().is_empty());
    // The server goes on serving uploads.
    let again = begin_slide_upload(&s.addr.to_string()).await;
    wait_for_staged_slide(&staging).await;
    drop(again);
    assert!(wait_until(|| s.staging_is_empty()).await);
    s.stop().await;
}

/// `wasmpacs serve` (the release binary beside the test's) on `port` with the test server's
/// config and `env` overrides.
fn serve(s: &TestServer, port: u16, env: &[(&str, &str)]) -> Child {
    let test = std::env::current_exe().expect("test binary");
    let binary = test.parent().and_then(Path::parent).expect("target folder").join("wasmpacs");
    Command::new(&binary)
        .args(["serve", "--config"])
        .arg(s.data_dir.path().join("wasmpacs.toml"))
        .env("WASMPACS_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("WASMPACS_DICOM_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (built by `cargo build --release --workspace`)", binary.display()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Waits until the child answers on `port`.
async fn wait_listening(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(child.try_wait().expect("child state").is_none(), "the server exited");
        assert!(Instant::now() < deadline, "the server does not listen on {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_killed_upload_is_reported_then_removed_at_start(backend: Backend) {
    let s = start(backend).await;
    let staging = s.data_dir.path().join("archive/.staging");
    let port = free_port();
    let mut killed = serve(&s, port, &[]);
    wait_listening(&mut killed, port).await;
    let stream = begin_slide_upload(&format!("127.0.0.1:{port}")).await;
    wait_for_staged_slide(&staging).await;
    killed.kill().expect("kill -9");
    killed.wait().expect("reaped");
    drop(stream);
    let left = staged(&staging);
    assert!(left.iter().any(|(_, len)| *len >= 1 << 20), "the killed upload's part is left: {left:?}");

    // The check lists each file with its size.
    let (_, report) = s.check(&[]);
    let listed: Vec<(String, u64)> = report["staging"]["listed"]
        .as_array()
        .expect("staging listed")
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f["bytes"].as_u64().unwrap()))
        .collect();
    let mut expected: Vec<(String, u64)> =
        left.iter().map(|(path, len)| (format!(".staging/{}", path.file_name().unwrap().to_string_lossy()), *len)).collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    expected.sort();
    assert_eq!(listed_sorted, expected, "{report}");
    assert_eq!(report["staging"]["count"].as_u64(), Some(left.len() as u64));
    assert_eq!(report["staging_bytes"].as_u64(), Some(left.iter().map(|(_, len)| len).sum::<u64>()));

    // The server sharing the medium (default grace, 15 minutes) leaves them; a start with a
    // grace of 1 s, once they have been idle that long, removes them.
    assert_eq!(staged(&staging), left);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let port = free_port();
    let mut restarted = serve(&s, port, &[("WASMPACS_STORAGE_STAGING_GRACE_S", "1")]);
    wait_listening(&mut restarted, port).await;
    let after = staged(&staging);
    restarted.kill().expect("stop");
    restarted.wait().expect("reaped");
    assert!(after.is_empty(), "left after the start: {after:?}");
    let (_, report) = s.check(&[]);
    assert_eq!(report["staging"]["count"].as_u64(), Some(0), "{report}");
    s.stop().await;
}
