//! Pathology figures: a 1 GiB slide uploaded with curl to `pathoRsListener` and fetched back
//! from `wholeslide`, in MB/s, with the server process's peak resident memory, which shows
//! that neither direction holds the slide in memory.

use std::io::Write;
use std::time::Instant;

use wasmpacs_tests::{Backend, KEY_A, NODE_A, Options, TestServer, repo_root};

const SLIDE_BYTES: usize = 1 << 30;

/// Peak resident memory of this process (the server runs in it), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub async fn upload_and_download() {
    let mut options = Options::new(Backend::Sqlite);
    options.manifest = Some(format!(
        "[[plugin]]\nname = \"pathology\"\ncomponent = \"{}\"\nroutes = [\"POST pathoRsListener/{{callingAet}}/studies\"]\ngrants = [\"archive\", \"log\", \"staging\"]\nmemory_limit_mb = 64\ntimeout_ms = 30000\n",
        repo_root().join("plugins/dist/pathology.wasm").display()
    ));
    let s = TestServer::start_with(options).await.expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let slide = dir.path().join("BENCH-1.svs");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&slide).expect("slide file"));
        let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        for _ in 0..SLIDE_BYTES >> 20 {
            file.write_all(&block).expect("write");
        }
    }
    let metadata = r#"{"attributes": {"PatientID": "B", "AccessionNumber": "BENCH", "ContainerIdentifier": "BENCH-1"}}"#;
    let before = peak_rss_mib();
    let started = Instant::now();
    let upload = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Authorization: {KEY_A}")])
        .args(["-F", &format!("metadata={metadata};type=application/json")])
        .args(["-F", &format!("file=@{};type=application/octet-stream", slide.display())])
        .arg(format!("{}/pathoRsListener/{NODE_A}/studies", s.base))
        .output()
        .expect("curl");
    let up = started.elapsed();
    assert_eq!(String::from_utf8_lossy(&upload.stdout), "200", "{}", String::from_utf8_lossy(&upload.stderr));
    let started = Instant::now();
    let download = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", &format!("Authorization: {KEY_A}")])
        .arg(format!("{}/wholeslide?barcode=BENCH-1", s.base))
        .output()
        .expect("curl");
    let down = started.elapsed();
    assert_eq!(String::from_utf8_lossy(&download.stdout), format!("200 {SLIDE_BYTES}"));
    let mb = SLIDE_BYTES as f64 / 1e6;
    println!(
        "pathology 1 GiB slide (curl): upload {:>6.0} MB/s, wholeslide {:>6.0} MB/s; server peak RSS {:.0} MiB before, {:.0} MiB after",
        mb / up.as_secs_f64(),
        mb / down.as_secs_f64(),
        before,
        peak_rss_mib()
    );
    s.stop().await;
}
