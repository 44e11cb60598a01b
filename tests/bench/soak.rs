//! `bench soak`: resident memory of the real server binary across 20 rounds of hostile requests
//! (truncated and deeply nested JSON, oversized fields, random bytes, garbled multipart bodies)
//! sent by 16 clients at once to every plugin route, STOW-RS and the pathology listener. Prints
//! the resident set after each round and fails when it climbs more than 10 % past where the
//! first round left it: memory taken for bad input must be given back, not kept round after round.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use wasmpacs_tests::repo_root;

const ROUNDS: usize = 20;
const CLIENTS: usize = 16;
const KEY: &str = "soak-key";

const PLUGIN_ROUTES: &[&str] = &[
    "patients/create",
    "patients/update",
    "patients/merge",
    "studies/move",
    "studies/reconcile",
    "studies/swap",
    "studies/createKos",
    "orders/create",
];

/// The server binary beside this benchmark, serving the bundled plugins on SQLite.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
        let config = dir.path().join("wasmpacs.toml");
        let manifest = repo_root().join("plugins.toml");
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = \"{}\"\n[plugins]\nmanifest = \"{}\"\n\
                 [[tenant]]\nname = \"soak\"\napi_key = \"{KEY}\"\n",
                dir.path().join("data").display(),
                manifest.display()
            ),
        )
        .expect("config written");
        let binary = std::env::current_exe().expect("bench path").with_file_name("wasmpacs");
        let child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("server started");
        Self { child, base: format!("http://127.0.0.1:{port}/o3-dpacs-wado"), _dir: dir }
    }

    fn resident_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("server alive");
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round's requests: (path, content type, body).
fn round() -> Vec<(String, &'static str, Vec<u8>)> {
    let noise = |n: usize| (0..n).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>();
    let json_bodies: Vec<Vec<u8>> = vec![
        b"{\"patientID\": ".to_vec(),
        b"{\"a\":".repeat(2_000),
        b"[".repeat(100_000),
        serde_json::to_vec(&serde_json::json!({"patientID": "x".repeat(100_000), "patientName": "y".repeat(1_000_000)}))
            .expect("json"),
        serde_json::to_vec(&(0..20_000).map(|i| serde_json::json!({ "k": i })).collect::<Vec<_>>()).expect("json"),
        noise(3_000),
    ];
    let mut requests = Vec::new();
    for route in PLUGIN_ROUTES {
        for body in &json_bodies {
            requests.push((route.to_string(), "application/json", body.clone()));
        }
    }
    let multipart_bodies: Vec<Vec<u8>> = vec![
        [b"--x\r\nContent-Type: application/dicom\r\n\r\n".to_vec(), noise(5_000)].concat(),
        b"--x\r\n\r\n".to_vec(),
        noise(200_000),
    ];
    for body in multipart_bodies {
        requests.push((
            "stowRsListener/SOAK/studies".into(),
            "multipart/related; type=\"application/dicom\"; boundary=x",
            body.clone(),
        ));
        requests.push(("pathoRsListener/SOAK/studies".into(), "multipart/form-data; boundary=x", body));
    }
    requests
}

pub async fn resident_memory() {
    let server = Server::start();
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{}/studies/count", server.base)).header("Authorization", KEY).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = server.resident_mb();
    let mut after = Vec::with_capacity(ROUNDS);
    for n in 1..=ROUNDS {
        let requests = round();
        let count = requests.len();
        let statuses: Vec<u16> = futures::stream::iter(requests)
            .map(|(path, content_type, body)| {
                let http = http.clone();
                let url = format!("{}/{path}", server.base);
                async move {
                    let sent =
                        http.post(url).header("Authorization", KEY).header("Content-Type", content_type).body(body).send().await;
                    sent.map(|r| r.status().as_u16()).unwrap_or(0)
                }
            })
            .buffer_unordered(CLIENTS)
            .collect()
            .await;
        let server_errors = statuses.iter().filter(|s| **s >= 500 || **s == 0).count();
        let rss = server.resident_mb();
        after.push(rss);
        println!("soak round {n:>2}: {count} hostile requests ({server_errors} answered 5xx or dropped), resident {rss:.1} MB");
    }
    let warmed = after[0];
    let peak = after.iter().cloned().fold(0.0, f64::max);
    println!("soak: resident {start:.1} MB at start, {warmed:.1} MB after round 1, at most {peak:.1} MB after any round");
    // Flat: the first round warms pools, caches and connections; after it, every round ends
    // within 10 % of where the first left the resident set.
    assert!(peak <= warmed * 1.10, "resident memory keeps growing under hostile requests (MB per round): {after:.1?}");
}
