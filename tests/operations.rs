//! Operations: the probes (`/health`, `/ready`), request ids in headers, error bodies and the
//! log, JSON log lines from the real binary, the environment layer and `wasmpacs config check`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Executor;
use wasmpacs_tests::{
    Backend, KEY_A, Options, TestServer, component, drop_postgres_database, fresh_postgres_database, hostile_manifest,
    on_both_backends, patients_manifest,
};

on_both_backends!(ready_names_what_is_not, request_ids_are_answered_and_in_every_error_body, each_request_is_one_json_log_line);

/// The release binary beside the test's.
fn binary() -> PathBuf {
    let test = std::env::current_exe().expect("test binary");
    test.parent().and_then(Path::parent).expect("target folder").join("wasmpacs")
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, Option<String>, Value) {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let id = response.headers().get("x-request-id").map(|v| v.to_str().expect("ASCII id").to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, id, body)
}

async fn ready_names_what_is_not(backend: Backend) {
    let spare = tempfile::tempdir().unwrap();
    let spare_root = spare.path().join("spare");
    let mut options = Options::new(backend);
    options.extra_config = format!("[[storage.medium]]\nname = \"spare\"\npath = \"{}\"\n", spare_root.display());
    let s = TestServer::start_with(options).await.expect("server starts");
    let root = format!("http://{}", s.addr);

    let (status, id, body) = get(&format!("{root}/health"), &[]).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"status": "up"})));
    assert!(id.is_some(), "the probe answers with its request id");

    let (status, _, body) = get(&format!("{root}/ready"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    for part in ["database", "migrations", "medium default", "medium spare", "plugin patients"] {
        assert_eq!(body["checks"][part], "ok", "{part}: {body}");
    }

    // The spare medium's folder replaced by a file: nothing can be received there.
    std::fs::remove_dir_all(&spare_root).unwrap();
    std::fs::write(&spare_root, b"not a folder").unwrap();
    let (status, _, body) = get(&format!("{root}/ready"), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not ready", "{body}");
    assert_eq!(body["failing"], json!(["medium spare: not writable"]), "{body}");
    assert_eq!((&body["checks"]["database"], &body["checks"]["medium default"]), (&json!("ok"), &json!("ok")), "{body}");
    assert!(!body.to_string().contains("directory"), "no I/O error text in the body: {body}");
    std::fs::remove_file(&spare_root).unwrap();
    std::fs::create_dir_all(spare_root.join(".staging")).unwrap();
    assert_eq!(get(&format!("{root}/ready"), &[]).await.0, StatusCode::OK, "ready again once the medium is back");

    // A database that lacks this binary's latest migration (restored from an older backup).
    let db = s.connect_db().await;
    let latest: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&db).await.unwrap();
    db.execute(sqlx::AssertSqlSafe(format!("DELETE FROM _sqlx_migrations WHERE version = {latest}"))).await.unwrap();
    let (status, _, body) = get(&format!("{root}/ready"), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["failing"], json!([format!("migrations: not applied: [{latest}]")]), "{body}");
    s.stop().await;
}

async fn request_ids_are_answered_and_in_every_error_body(backend: Backend) {
    let mut options = Options::new(backend);
    options.manifest = Some(format!("{}{}", patients_manifest(&component("patients")), hostile_manifest(500, 32)));
    let s = TestServer::start_with(options).await.expect("server starts");
    let root = format!("http://{}", s.addr);
    let api = &s.base;

    // A success: a fresh id, different for each request; a sane one sent is kept.
    let (status, first, _) = get(&format!("{api}/studies/count"), &[("Authorization", KEY_A)]).await;
    let (_, second, _) = get(&format!("{api}/studies/count"), &[("Authorization", KEY_A)]).await;
    assert_eq!(status, StatusCode::OK);
    let (first, second) = (first.expect("id answered"), second.expect("id answered"));
    assert!(first.len() >= 16 && first != second, "{first} {second}");
    let (_, kept, _) = get(&format!("{api}/studies/count"), &[("Authorization", KEY_A), ("X-Request-Id", "lb-7f.3:a_b")]).await;
    assert_eq!(kept.as_deref(), Some("lb-7f.3:a_b"));
    let long = "x".repeat(200);
    for insane in ["two words", "<script>", long.as_str()] {
        let (_, replaced, _) = get(&format!("{api}/studies/count"), &[("Authorization", KEY_A), ("X-Request-Id", insane)]).await;
        assert!(replaced.as_deref().is_some_and(|id| id != insane && id.len() < 64), "{insane}: {replaced:?}");
    }

    // Every error the host answers carries the id in its header and its body.
    // (URL, headers, the status the host answers)
    type Case = (String, Vec<(&'static str, &'static str)>, StatusCode);
    let cases: [Case; 6] = [
        (format!("{api}/studies/count"), vec![], StatusCode::UNAUTHORIZED),
        (format!("{api}/nowhere"), vec![("Authorization", KEY_A)], StatusCode::NOT_FOUND),
        (format!("{root}/elsewhere"), vec![], StatusCode::NOT_FOUND),
        (format!("{api}/patients/create"), vec![("Authorization", KEY_A)], StatusCode::METHOD_NOT_ALLOWED),
        (format!("{api}/studyInstances"), vec![("Authorization", KEY_A)], StatusCode::BAD_REQUEST),
        (format!("{api}/test/trap"), vec![("Authorization", KEY_A)], StatusCode::INTERNAL_SERVER_ERROR),
    ];
    for (url, headers, expected) in cases {
        let (status, id, body) = get(&url, &headers).await;
        assert_eq!(status, expected, "{url}: {body}");
        let id = id.unwrap_or_else(|| panic!("{url}: no X-Request-Id"));
        assert_eq!(body["requestId"], id.as_str(), "{url}: {body}");
        assert!(body["error"].is_string() && body["message"].is_string(), "{url}: {body}");
    }
    let (_, _, body) = get(&format!("{api}/test/trap"), &[("Authorization", KEY_A), ("X-Request-Id", "trap-1")]).await;
    assert_eq!((&body["plugin"], &body["requestId"]), (&json!("hostile"), &json!("trap-1")), "{body}");

    // A plugin's own error answer keeps its body and gains the header.
    let response = s
        .http
        .post(format!("{api}/patients/create"))
        .header("Authorization", KEY_A)
        .header("X-Request-Id", "plugin-400")
        .json(&json!({"patientName": "A^B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["x-request-id"], "plugin-400");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("requestId").is_none() && body.to_string().contains("patientID"), "the plugin's body: {body}");
    s.stop().await;
}

/// A config file for the binary run as a child process, with its own data folder and database.
struct ChildConfig {
    dir: tempfile::TempDir,
    pg_database: Option<String>,
}

impl ChildConfig {
    async fn new(backend: Backend, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("wasmpacs.db").display()), None),
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await.expect("PostgreSQL for tests");
                (url, Some(name))
            }
        };
        std::fs::write(dir.path().join("plugins.toml"), patients_manifest(&component("patients"))).unwrap();
        let text = format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = \"{data}\"\n[database]\nurl = \"{url}\"\n\
             [[tenant]]\nname = \"alpha\"\napi_key = \"{KEY_A}\"\n[plugins]\nmanifest = \"plugins.toml\"\n{extra}",
            data = dir.path().join("data").display(),
        );
        std::fs::write(dir.path().join("wasmpacs.toml"), text).unwrap();
        Self { dir, pg_database }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("wasmpacs.toml")
    }

    async fn drop(self) {
        if let Some(name) = &self.pg_database {
            drop_postgres_database(name).await;
        }
    }
}

/// Reads JSON log lines from the child's stdout until `wanted` finds one.
fn next_line_where(lines: &mut impl Iterator<Item = std::io::Result<String>>, wanted: impl Fn(&Value) -> bool) -> Value {
    for line in lines {
        let line = line.expect("log line");
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if wanted(&value) {
            return value;
        }
    }
    panic!("the server's stdout ended before the line sought");
}

async fn each_request_is_one_json_log_line(backend: Backend) {
    let config = ChildConfig::new(backend, "[log]\nformat = \"json\"\n").await;
    // Started as operators do: the config's path in WASMPACS_CONFIG, a [preview] key overridden.
    let mut child = Command::new(binary())
        .arg("serve")
        .env("WASMPACS_CONFIG", config.path())
        .env("WASMPACS_PREVIEW_MAX_SIDE", "128")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the wasmpacs binary runs (built by `cargo build --release --workspace`)");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = std::iter::from_fn(|| lines_rx.recv_timeout(Duration::from_secs(60)).ok());
    let listening = next_line_where(&mut lines, |l| l["message"] == "wasmpacs listening");
    let addr = listening["addr"].as_str().expect("address logged").to_owned();
    let api = format!("http://{addr}/o3-dpacs-wado");

    let (status, _, _) = get(&format!("{api}/studies/count"), &[("Authorization", KEY_A), ("X-Request-Id", "ops-log-1")]).await;
    assert_eq!(status, StatusCode::OK);
    let line = next_line_where(&mut lines, |l| l["message"] == "request");
    assert_eq!(line["request_id"], "ops-log-1", "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(
        (&line["tenant"], &line["route"], &line["status"]),
        (&json!("alpha"), &json!("GET studies/count"), &json!(200)),
        "{line}"
    );
    assert_eq!((&line["method"], &line["path"]), (&json!("GET"), &json!("/o3-dpacs-wado/studies/count")), "{line}");
    assert!(line["latency_us"].is_u64(), "{line}");
    assert!(line["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{line}");

    // An error: its id, from the answer, finds its line.
    let (status, id, body) = get(&format!("{api}/studies/count"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let id = id.expect("id answered");
    assert_eq!(body["requestId"], id.as_str());
    let line = next_line_where(&mut lines, |l| l["message"] == "request");
    assert_eq!((&line["request_id"], &line["status"], &line["tenant"]), (&json!(id), &json!(401), &json!("-")), "{line}");

    child.kill().unwrap();
    child.wait().unwrap();
    config.drop().await;
}

/// Runs `wasmpacs config check` with `args` and environment `env` (and no other WASMPACS_ key).
fn config_check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary());
    command.args(["config", "check"]).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("WASMPACS_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied()).output().expect("the wasmpacs binary runs")
}

fn effective(output: &Output) -> Value {
    assert!(output.status.success(), "config check failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

fn failure(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn every_key_class_is_overridden_by_the_environment() {
    let config = ChildConfig::new(Backend::Sqlite, "[[storage.medium]]\nname = \"fast\"\npath = \"/srv/fast\"\n").await;
    let path = config.path().display().to_string();
    // One scalar in each section, an item of a list of tables, a new tenant by index, and the
    // config's path itself from WASMPACS_CONFIG (no --config).
    let cases: &[(&str, &str, &str, Value)] = &[
        ("WASMPACS_HTTP_MAX_BODY_BYTES", "1024", "/http/max_body_bytes", json!(1024)),
        ("WASMPACS_STORAGE_RELOCATION_KEEP_S", "5", "/storage/relocation_keep_s", json!(5)),
        ("WASMPACS_DATABASE_SQLITE_SYNCHRONOUS", "normal", "/database/sqlite_synchronous", json!("normal")),
        (
            "WASMPACS_PLUGINS_MANIFEST",
            &config.dir.path().join("plugins.toml").display().to_string(),
            "/plugins/manifest",
            json!(config.dir.path().join("plugins.toml")),
        ),
        ("WASMPACS_RELOAD_ENABLED", "true", "/reload/enabled", json!(true)),
        ("WASMPACS_ADMIN_API_KEY", "admin-secret", "/admin/api_key", json!("***")),
        ("WASMPACS_RUNTIME_MAX_INSTANCES", "12", "/runtime/max_instances", json!(12)),
        ("WASMPACS_DICOM_AE_TITLE", "ARCHIVE", "/dicom/ae_title", json!("ARCHIVE")),
        ("WASMPACS_PREVIEW_QUALITY", "70", "/preview/quality", json!(70)),
        ("WASMPACS_LOG_FORMAT", "json", "/log/format", json!("json")),
        ("WASMPACS_FORWARD_ATTEMPTS", "9", "/forward/attempts", json!(9)),
        ("WASMPACS_STORAGE_MEDIUM_0_PATH", "/srv/faster", "/storage/medium/0/path", json!("/srv/faster")),
        ("WASMPACS_TENANT_1_NAME", "beta", "/tenant/1/name", json!("beta")),
        ("WASMPACS_TENANT_1_API_KEY", "beta-secret", "/tenant/1/api_key", json!("***")),
        ("WASMPACS_NODE_0_AE_TITLE", "CT01", "/node/0/ae_title", json!("CT01")),
        ("WASMPACS_NODE_0_TENANT", "beta", "/node/0/tenant", json!("beta")),
        ("WASMPACS_NODE_0_PORT", "104", "/node/0/port", json!(104)),
    ];
    let mut env: Vec<(&str, &str)> = cases.iter().map(|(name, value, _, _)| (*name, *value)).collect();
    env.push(("WASMPACS_CONFIG", &path));
    let shown = effective(&config_check(&["--format", "json"], &env));
    for (name, _, pointer, expected) in cases {
        assert_eq!(shown.pointer(pointer), Some(expected), "{name}: {shown}");
    }
    assert_eq!(shown["tenant"][0]["name"], "alpha", "the file's tenant is kept: {shown}");
    assert_eq!(shown["storage"]["medium"][0]["name"], "fast", "the file's medium keeps its name: {shown}");

    // A key the structs do not have, and a value of the wrong type, are refused by name.
    let err = failure(&config_check(&[], &[("WASMPACS_CONFIG", &path), ("WASMPACS_HTTP_LISTENER", "x")]));
    assert!(err.contains("WASMPACS_HTTP_LISTENER"), "{err}");
    let err = failure(&config_check(&[], &[("WASMPACS_CONFIG", &path), ("WASMPACS_RELOAD_ENABLED", "yes")]));
    assert!(err.contains("WASMPACS_RELOAD_ENABLED") && err.contains("reload.enabled"), "{err}");
    let err = failure(&config_check(&[], &[("WASMPACS_CONFIG", &path), ("WASMPACS_PREVIEW_QUALITY", "300")]));
    assert!(err.contains("preview.quality"), "{err}");
    let err = failure(&config_check(&[], &[("WASMPACS_CONFIG", &path), ("WASMPACS_TENANT_3_NAME", "gamma")]));
    assert!(err.contains("WASMPACS_TENANT_3_NAME") && err.contains("gap"), "{err}");
    config.drop().await;
}

#[tokio::test]
async fn config_check_masks_secrets_and_fails_on_a_bad_file() {
    let secrets = "[admin]\napi_key = \"admin-secret\"\n[forward]\nslide_authorization = \"peer-secret\"\n\
                   [[storage.bucket]]\nname = \"cold\"\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"bucket-secret\"\n";
    let config = ChildConfig::new(Backend::Sqlite, secrets).await;
    let path = config.path().display().to_string();
    let postgres = "postgres://pacs:db-secret@127.0.0.1:5432/pacs";
    for format in ["toml", "json"] {
        let output = config_check(&["--config", &path, "--format", format], &[("WASMPACS_DATABASE_URL", postgres)]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let shown = String::from_utf8(output.stdout).unwrap();
        for secret in [KEY_A, "admin-secret", "peer-secret", "AKIAEXAMPLE", "bucket-secret", "db-secret"] {
            assert!(!shown.contains(secret), "{format}: `{secret}` shown:\n{shown}");
        }
        assert!(shown.contains("postgres://pacs:***@127.0.0.1:5432/pacs"), "{format}:\n{shown}");
        assert!(shown.contains("max_upload_bytes") && shown.contains("cold"), "{format}: defaults and names shown:\n{shown}");
    }
    let toml_shown = config_check(&["--config", &path], &[]);
    let reparsed: toml::Table = toml::from_str(&String::from_utf8_lossy(&toml_shown.stdout)).expect("TOML printed by default");
    assert_eq!(reparsed["tenant"][0]["api_key"].as_str(), Some("***"));

    // Bad files: each problem named, exit code 1.
    let bad = |name: &str, text: String| {
        let file = config.dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        failure(&config_check(&["--config", &file.display().to_string()], &[]))
    };
    let original = std::fs::read_to_string(config.path()).unwrap();
    let err = bad("syntax.toml", format!("{original}\n[http\n"));
    assert!(err.contains("not valid TOML"), "{err}");
    let err = bad("unknown.toml", format!("{original}\n[reload]\nenable = true\n"));
    assert!(err.contains("enable"), "{err}");
    let err = bad("type.toml", format!("{original}\n[preview]\nmax_side = \"big\"\n"));
    assert!(err.contains("preview.max_side"), "{err}");
    let err = bad("tenant.toml", original.replace("name = \"alpha\"", "name = \"\""));
    assert!(err.contains("[[tenant]]"), "{err}");
    let err = bad("manifest.toml", original.replace("plugins.toml", "missing-plugins.toml"));
    assert!(err.contains("missing-plugins.toml"), "{err}");
    let missing = config.dir.path().join("absent.toml").display().to_string();
    let err = failure(&config_check(&["--config", &missing], &[]));
    assert!(err.contains("absent.toml"), "{err}");
    config.drop().await;
}
