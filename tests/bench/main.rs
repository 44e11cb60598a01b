//! `make bench`: the foundation's figures, measured on the real server over loopback HTTP.
//!
//! - added latency of a plugin-served request over a natively served one (p50/p99);
//! - instantiation cost per request, with and without the pooling allocator;
//! - patients/create requests/s on SQLite and PostgreSQL;
//! - reload latency, from component file replaced to new version serving;
//! - `studies/kos` latency for a study of 1,000 instances (`bench kos` runs only this one).
//! - `studies/count` p50/p99 at 1,000,000 studies and `preview` p50 of a 512x512 CT
//!   (`bench queries` runs only these);
//! - resident memory of the server binary across 20 rounds of hostile requests (`bench soak`).

mod ingest;
mod pathology;
mod queries;
mod soak;
mod worklist;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use wasmpacs_tests::{Backend, KEY_A, Options, TestServer, component, hostile_manifest, patients_manifest};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn timed_gets(s: &TestServer, path: &str, n: usize) -> Vec<Duration> {
    let url = format!("{}/{path}", s.base);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = s.http.get(&url).header("Authorization", KEY_A).send().await.expect("sent");
        let _ = response.bytes().await;
        samples.push(started.elapsed());
    }
    samples
}

/// What wrk measured.
struct WrkRun {
    requests_per_s: f64,
    p50: Duration,
    p99: Duration,
    non_2xx: u64,
}

/// Runs wrk (an external load generator, so that client and server do not share a scheduler)
/// when it is installed (`apt-get install wrk`).
fn wrk(url: &str, connections: u32, seconds: u32, script: Option<&str>) -> Option<WrkRun> {
    let mut command = std::process::Command::new("wrk");
    command.args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"]);
    match script {
        Some(script) => {
            command.arg("-s").arg(wasmpacs_tests::repo_root().join("tests/bench").join(script));
            command.env("WRK_API_KEY", KEY_A);
        }
        None => {
            command.args(["-H", &format!("Authorization: {KEY_A}")]);
        }
    }
    let output = command.arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()));
    let duration = |v: String| -> Duration {
        let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = number.parse().unwrap_or(f64::NAN);
        Duration::from_secs_f64(match unit {
            "us" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            _ => f64::NAN,
        })
    };
    Some(WrkRun {
        requests_per_s: field("Requests/sec:")?.parse().ok()?,
        p50: duration(field("50%")?),
        p99: duration(field("99%")?),
        non_2xx: field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

async fn plugin_overhead() {
    let mut options = Options::new(Backend::Sqlite);
    options.manifest = Some(hostile_manifest(5_000, 64));
    let s = TestServer::start_with(options).await.expect("server");
    const N: usize = 5_000;
    timed_gets(&s, "test/ok", 500).await;
    timed_gets(&s, "no/such/path", 500).await;
    // Interleave the two so that both see the same machine conditions.
    let (mut plugin, mut native) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        plugin.extend(timed_gets(&s, "test/ok", N / 10).await);
        native.extend(timed_gets(&s, "no/such/path", N / 10).await);
    }
    let (p50, p99) = summary(plugin);
    let (n50, n99) = summary(native);
    println!("HTTP request served by a plugin (GET test/ok)        p50 {:>10}  p99 {:>10}", us(p50), us(p99));
    println!("HTTP request answered natively (auth, route, JSON)  p50 {:>10}  p99 {:>10}", us(n50), us(n99));
    println!(
        "=> added by the plugin                              p50 {:>10}  p99 {:>10}   (in-process client)",
        us(p50.saturating_sub(n50)),
        us(p99.saturating_sub(n99))
    );
    let plugin_run = wrk(&format!("{}/test/ok", s.base), 1, 4, None);
    let native_run = wrk(&format!("{}/no/such/path", s.base), 1, 4, None);
    match (plugin_run, native_run) {
        (Some(p), Some(n)) => {
            println!("wrk, 1 connection: plugin p50 {} p99 {}, native p50 {} p99 {}", us(p.p50), us(p.p99), us(n.p50), us(n.p99));
            println!(
                "=> added by the plugin (wrk)                        p50 {:>10}  p99 {:>10}",
                us(p.p50.saturating_sub(n.p50)),
                us(p.p99.saturating_sub(n.p99))
            );
        }
        _ => println!("(wrk not installed: no external-client figures)"),
    }
    // The same, inside the server: the runtime's whole call (store, instance, call, response).
    let runtime = s.app().runtime.clone();
    let request = wasmpacs::runtime::PluginRequest {
        method: "GET".into(),
        path: "test/ok".into(),
        params: vec![],
        query: vec![],
        headers: vec![],
        body: Default::default(),
        files: vec![],
    };
    let mut inside = Vec::with_capacity(N);
    for _ in 0..N {
        let started = Instant::now();
        runtime.handle("hostile", "alpha", request.clone()).await.expect("ok");
        inside.push(started.elapsed());
    }
    let (i50, i99) = summary(inside);
    println!("plugin call inside the host (no HTTP)               p50 {:>10}  p99 {:>10}", us(i50), us(i99));
    s.stop().await;
}

async fn instantiation() {
    for pooling in [true, false] {
        let mut options = Options::new(Backend::Sqlite);
        options.manifest = Some(hostile_manifest(5_000, 64));
        // Appended inside the generated [runtime] table.
        options.extra_config = format!("pooling = {pooling}");
        let s = TestServer::start_with(options).await.expect("server");
        let runtime = s.app().runtime.clone();
        assert_eq!(runtime.pooling(), pooling, "allocator as asked");
        for _ in 0..500 {
            runtime.measure_instantiation("hostile").await.expect("instantiates");
        }
        let mut samples = Vec::new();
        for _ in 0..5_000 {
            samples.push(runtime.measure_instantiation("hostile").await.expect("instantiates"));
        }
        let (p50, p99) = summary(samples);
        println!(
            "instantiation per request, {:<22}         p50 {:>10}  p99 {:>10}",
            if pooling { "pooling allocator" } else { "on-demand allocator" },
            us(p50),
            us(p99)
        );
        s.stop().await;
    }
}

async fn create_throughput(backend: Backend) {
    let s = Arc::new(TestServer::start(backend).await);
    if let Some(run) = wrk(&format!("{}/patients/create", s.base), 32, 8, Some("create.lua")) {
        assert_eq!(run.non_2xx, 0, "every create succeeds");
        println!(
            "patients/create on {:<10} wrk 32 conns: {:>7.0} req/s   p50 {:>10}  p99 {:>10}",
            format!("{backend:?}"),
            run.requests_per_s,
            us(run.p50),
            us(run.p99)
        );
    }
    const TOTAL: usize = 20_000;
    const CLIENTS: usize = 32;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (s, next) = (s.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL {
                    return latencies;
                }
                let body = json!({"patientID": format!("BENCH-{i}"), "patientName": "BENCH^MARK", "userName": "bench"});
                let t = Instant::now();
                let (status, answer) = s.post("patients/create", &body).await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let elapsed = started.elapsed();
    let (p50, p99) = summary(latencies);
    println!(
        "patients/create on {:<10} {CLIENTS} clients: {:>7.0} req/s   p50 {:>10}  p99 {:>10}",
        format!("{backend:?}"),
        TOTAL as f64 / elapsed.as_secs_f64(),
        us(p50),
        us(p99)
    );
    Arc::try_unwrap(s).ok().expect("sole owner").stop().await;
}

async fn reload_latency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("patients.wasm");
    let bundled = std::fs::read(component("patients")).expect("patients");
    let strict = std::fs::read(component("patients-strict")).expect("strict");
    std::fs::write(&live, &bundled).expect("write");
    let mut options = Options::new(Backend::Sqlite);
    options.manifest = Some(patients_manifest(&live));
    options.extra_config = "[reload]\nenabled = true\ndebounce_ms = 50\n".into();
    let s = TestServer::start_with(options).await.expect("server");
    let mut samples = Vec::new();
    let mut probe = 0;
    for round in 0..6 {
        let (bytes, expected) = if round % 2 == 0 { (&strict, StatusCode::BAD_REQUEST) } else { (&bundled, StatusCode::OK) };
        let tmp = live.with_extension("new");
        std::fs::write(&tmp, bytes).expect("write");
        let started = Instant::now();
        std::fs::rename(&tmp, &live).expect("rename");
        loop {
            probe += 1;
            let body = json!({"patientID": format!("RELOAD-{probe}"), "patientName": "R^R", "userName": "u"});
            if s.post("patients/create", &body).await.0 == expected {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "reload did not happen");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(started.elapsed());
    }
    let (p50, _) = summary(samples.clone());
    let max = samples.iter().max().copied().unwrap_or_default();
    println!(
        "reload, file replaced -> new version serving (50 ms debounce): p50 {:.0} ms, max {:.0} ms",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    s.stop().await;
}

/// `GET studies/kos` for a study of 1,000 instances (index rows only: a KOS needs no files).
async fn kos_latency(backend: Backend) {
    let mut options = Options::new(backend);
    options.manifest = Some(wasmpacs_tests::kos_manifest(&component("kos"), &["archive", "events", "log", "settings"]));
    let mut s = TestServer::start_with(options).await.expect("server");
    let study = "1.2.826.0.1.3680043.10.1418.9.1";
    let series: Vec<String> = (1..=4).map(|n| format!("{study}.{n}")).collect();
    let layout: Vec<(&str, u32)> = series.iter().map(|uid| (uid.as_str(), 250)).collect();
    s.seed_study("alpha", "BENCH-KOS", study, &layout).await;
    let path = format!("studies/kos?studyUid={study}");
    let first = timed_gets(&s, &path, 1).await;
    let (status, _) = s.get(&path).await;
    assert_eq!(status, StatusCode::OK, "studies/kos answers");
    timed_gets(&s, &path, 20).await;
    let (p50, p99) = summary(timed_gets(&s, &path, 200).await);
    println!(
        "studies/kos, 1,000 instances in 4 series, {:<8}        p50 {:>10.2} ms  p99 {:>8.2} ms  (first {:.2} ms)",
        format!("{backend:?}"),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        first[0].as_secs_f64() * 1e3
    );
    s.stop().await;
}

fn main() {
    // As the server binary does: library errors without stack traces.
    wasmpacs::quiet_library_backtraces();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime").block_on(bench());
}

async fn bench() {
    // `bench ingest [sqlite|postgres]`: only the C-STORE and STOW-RS figures.
    if std::env::args().nth(1).as_deref() == Some("ingest") {
        ingest::all(std::env::args().nth(2).as_deref(), false).await;
        return;
    }
    // `bench stow [sqlite|postgres]`: only the STOW-RS figures.
    if std::env::args().nth(1).as_deref() == Some("stow") {
        ingest::all(std::env::args().nth(2).as_deref(), true).await;
        return;
    }
    // `bench worklist`: only the orders and worklist figures.
    if std::env::args().nth(1).as_deref() == Some("worklist") {
        worklist::create_throughput(Backend::Sqlite).await;
        worklist::create_throughput(Backend::Postgres).await;
        worklist::find_latency(Backend::Sqlite).await;
        worklist::find_latency(Backend::Postgres).await;
        return;
    }
    // `bench kos`: only the KOS figure.
    if std::env::args().nth(1).as_deref() == Some("kos") {
        kos_latency(Backend::Sqlite).await;
        kos_latency(Backend::Postgres).await;
        return;
    }
    // `bench pathology`: only the slide upload and download figures.
    if std::env::args().nth(1).as_deref() == Some("pathology") {
        pathology::upload_and_download().await;
        return;
    }
    // `bench queries`: only the studies/count and preview figures.
    if std::env::args().nth(1).as_deref() == Some("queries") {
        queries::count_latency(Backend::Sqlite).await;
        queries::count_latency(Backend::Postgres).await;
        queries::preview_latency().await;
        return;
    }
    // `bench soak`: only the resident-memory soak under hostile requests.
    if std::env::args().nth(1).as_deref() == Some("soak") {
        soak::resident_memory().await;
        return;
    }
    println!("wasmpacs foundation benchmarks ({} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    plugin_overhead().await;
    instantiation().await;
    create_throughput(Backend::Sqlite).await;
    create_throughput(Backend::Postgres).await;
    reload_latency().await;
    kos_latency(Backend::Sqlite).await;
    kos_latency(Backend::Postgres).await;
    worklist::create_throughput(Backend::Sqlite).await;
    worklist::create_throughput(Backend::Postgres).await;
    worklist::find_latency(Backend::Sqlite).await;
    worklist::find_latency(Backend::Postgres).await;
    queries::count_latency(Backend::Sqlite).await;
    queries::count_latency(Backend::Postgres).await;
    queries::preview_latency().await;
    ingest::all(None, false).await;
    soak::resident_memory().await;
    // Last: removing its gigabyte slows file creation for a few minutes on some filesystems.
    pathology::upload_and_download().await;
}
