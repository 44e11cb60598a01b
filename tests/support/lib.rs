//! Test support: starts the real wasmpacs server on 127.0.0.1:0 with the built plugins, on
//! SQLite or on a fresh PostgreSQL database, and talks to it over HTTP as clients do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use tempfile::TempDir;
use wasmpacs::{Config, RunningServer};

pub mod commit_cut;
pub mod s3;

/// API key of tenant "alpha", used by default.
pub const KEY_A: &str = "key-alpha";
/// API key of tenant "beta".
pub const KEY_B: &str = "key-beta";
/// Admin key.
pub const ADMIN_KEY: &str = "key-admin";
/// The test server's DICOM AE title.
pub const SERVER_AE: &str = "WASMPACS";
/// A DICOM node of tenant alpha.
pub const NODE_A: &str = "MODALITY_A";
/// A DICOM node of tenant beta.
pub const NODE_B: &str = "MODALITY_B";

/// The database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend from an async fn taking a [`Backend`].
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::Backend::Postgres).await }
            )*
        }
    };
}

/// The parts of a multipart/related answer.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .unwrap_or_else(|| panic!("no boundary in {content_type}"))
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let find = |from: usize, needle: &[u8]| body[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from);
    let mut parts = Vec::new();
    let mut pos = find(0, &delimiter).expect("first delimiter") + delimiter.len();
    while !body[pos..].starts_with(b"--") {
        let start = find(pos, b"\r\n\r\n").expect("part headers end") + 4;
        let mut next_delimiter = b"\r\n".to_vec();
        next_delimiter.extend_from_slice(&delimiter);
        let end = find(start, &next_delimiter).expect("next delimiter");
        parts.push(body[start..end].to_vec());
        pos = end + next_delimiter.len();
    }
    parts
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// A built plugin component from plugins/dist (run `make plugins` first).
pub fn component(name: &str) -> PathBuf {
    let path = repo_root().join("plugins/dist").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run `make plugins` first", path.display());
    path
}

/// The PostgreSQL server tests use: `WASMPACS_TEST_POSTGRES` or the local one.
pub fn postgres_admin_url() -> String {
    std::env::var("WASMPACS_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The manifest entry of the test-only hostile plugin (granted `log` only).
pub fn hostile_manifest(timeout_ms: u64, memory_limit_mb: u64) -> String {
    format!(
        r#"
[[plugin]]
name = "hostile"
component = "{}"
routes = ["GET test/trap", "GET test/loop", "GET test/alloc", "GET test/ungranted", "GET test/ok"]
grants = ["log"]
memory_limit_mb = {memory_limit_mb}
timeout_ms = {timeout_ms}
"#,
        component("hostile").display()
    )
}

/// A manifest serving the bundled pathology plugin (slide uploads).
pub fn pathology_manifest() -> String {
    format!(
        r#"
[[plugin]]
name = "pathology"
component = "{}"
routes = ["POST pathoRsListener/{{callingAet}}/studies"]
grants = ["archive", "log", "staging"]
memory_limit_mb = 64
timeout_ms = 30000
"#,
        component("pathology").display()
    )
}

/// The manifest entry of the bundled patients plugin, pointing at `component_path`.
pub fn patients_manifest(component_path: &Path) -> String {
    format!(
        r#"
[[plugin]]
name = "patients"
component = "{}"
routes = ["POST patients/create", "POST patients/update", "POST patients/merge",
          "POST studies/move", "POST studies/reconcile", "POST studies/swap"]
grants = ["archive", "events", "log"]
memory_limit_mb = 64
timeout_ms = 5000
"#,
        component_path.display()
    )
}

/// How to start a test server.
pub struct Options {
    pub backend: Backend,
    /// plugins.toml text; default: the bundled patients plugin.
    pub manifest: Option<String>,
    /// Extra config TOML appended to the generated config, right after its `[runtime]` table
    /// (bare keys land there; start with a table header for anything else).
    pub extra_config: String,
    /// PostgreSQL only: the server reaches its database through this local port (a proxy).
    pub postgres_port: Option<u16>,
    /// `[storage] relocation_keep_s`: 0 unless a test needs old copies to stay a while.
    pub relocation_keep_s: u64,
    /// Extra keys of the `[http]` table (timeouts, connection limits).
    pub http_config: String,
    /// Extra keys of the `[dicom]` table.
    pub dicom_config: String,
}

impl Options {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            manifest: None,
            extra_config: String::new(),
            postgres_port: None,
            relocation_keep_s: 0,
            http_config: String::new(),
            dicom_config: String::new(),
        }
    }
}

/// A running server and what it needs to be torn down.
pub struct TestServer {
    pub base: String,
    pub addr: std::net::SocketAddr,
    /// Port of the DICOM listener.
    pub dicom_port: u16,
    pub http: reqwest::Client,
    pub data_dir: TempDir,
    pub database_url: String,
    server: Option<RunningServer>,
    pg_database: Option<String>,
    fixture_pool: Option<AnyPool>,
}

/// Creates a fresh PostgreSQL database and returns its URL and name.
pub async fn fresh_postgres_database() -> anyhow::Result<(String, String)> {
    install_default_drivers();
    let admin_url = postgres_admin_url();
    let name = format!(
        "wasmpacs_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos()
    );
    let admin = AnyPoolOptions::new().max_connections(1).connect(&admin_url).await.context("PostgreSQL for tests")?;
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    admin.close().await;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin_url);
    Ok((format!("{base}/{name}"), name))
}

impl TestServer {
    /// A server with the bundled patients plugin, tenants alpha and beta, and an admin key.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(Options::new(backend)).await.expect("server starts")
    }

    /// A server as `options` say; errors when the server refuses to start.
    pub async fn start_with(options: Options) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        let (database_url, pg_database) = match options.backend {
            Backend::Sqlite => (format!("sqlite://{}", data_dir.path().join("wasmpacs.db").display()), None),
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await?;
                (url, Some(name))
            }
        };
        let server_database_url = match options.postgres_port {
            Some(port) => {
                let mut url = reqwest::Url::parse(&database_url)?;
                url.set_host(Some("127.0.0.1"))?;
                url.set_port(Some(port)).map_err(|()| anyhow::anyhow!("cannot set the port of {database_url}"))?;
                url.to_string()
            }
            None => database_url.clone(),
        };
        let manifest = options.manifest.unwrap_or_else(|| patients_manifest(&component("patients")));
        let manifest_path = data_dir.path().join("plugins.toml");
        std::fs::write(&manifest_path, manifest)?;
        let config_text = format!(
            r#"
[http]
listen = "127.0.0.1:0"
{http_config}
[storage]
data_dir = "{data}"
relocation_keep_s = {keep}
[database]
url = "{server_database_url}"
max_connections = 8
[[tenant]]
name = "alpha"
api_key = "{KEY_A}"
[[tenant]]
name = "beta"
api_key = "{KEY_B}"
[plugins]
manifest = "{manifest}"
[admin]
api_key = "{ADMIN_KEY}"
[dicom]
listen = "127.0.0.1:0"
ae_title = "{SERVER_AE}"
{dicom_config}
[[node]]
ae_title = "{NODE_A}"
tenant = "alpha"
[[node]]
ae_title = "{NODE_B}"
tenant = "beta"
[runtime]
max_instances = 64
{extra}
"#,
            data = data_dir.path().display(),
            manifest = manifest_path.display(),
            keep = options.relocation_keep_s,
            extra = options.extra_config,
            http_config = options.http_config,
            dicom_config = options.dicom_config,
        );
        // Also on disk, for the command line (`wasmpacs check`) to read.
        std::fs::write(data_dir.path().join("wasmpacs.toml"), &config_text)?;
        let config = Config::from_toml(&config_text, Vec::new(), data_dir.path())?;
        let started = RunningServer::start(config).await;
        let server = match started {
            Ok(server) => server,
            Err(e) => {
                if let Some(name) = &pg_database {
                    drop_postgres_database(name).await;
                }
                return Err(e);
            }
        };
        let addr = server.addr;
        let dicom_port = server.dicom_addr.map(|a| a.port()).unwrap_or(0);
        Ok(Self {
            base: format!("http://{addr}/o3-dpacs-wado"),
            addr,
            dicom_port,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
            data_dir,
            database_url,
            server: Some(server),
            pg_database,
            fixture_pool: None,
        })
    }

    /// The application behind the server (its runtime, database, config).
    pub fn app(&self) -> &std::sync::Arc<wasmpacs::App> {
        &self.server.as_ref().expect("server running").app
    }

    /// POSTs JSON as tenant `key`; returns status and parsed body (Null when not JSON).
    pub async fn post_as(&self, key: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_text(key, path, "application/json", body.to_string()).await
    }

    /// POSTs any text (malformed JSON, another content type) as tenant `key`.
    pub async fn post_text(&self, key: &str, path: &str, content_type: &str, body: String) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/{path}", self.base))
            .header("Authorization", key)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    /// POSTs JSON as tenant alpha.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_as(KEY_A, path, body).await
    }

    /// GETs as tenant `key`.
    pub async fn get_as(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let response =
            self.http.get(format!("{}/{path}", self.base)).header("Authorization", key).send().await.expect("request sent");
        read(response).await
    }

    /// GETs as tenant alpha.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(KEY_A, path).await
    }

    /// The admin listing of loaded plugins.
    pub async fn admin_plugins(&self) -> Value {
        let response = self
            .http
            .get(format!("http://{}/admin/plugins", self.addr))
            .header("Authorization", ADMIN_KEY)
            .send()
            .await
            .expect("request sent");
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Every event of tenant `key` (following pages).
    pub async fn events_as(&self, key: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let (status, body) = self.get_as(key, &format!("studyEvents?offsetId={offset}&limit=1000")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let events = body["events"].as_array().cloned().unwrap_or_default();
            if events.is_empty() {
                return all;
            }
            offset = body["nextOffsetId"].as_i64().expect("nextOffsetId");
            all.extend(events);
        }
    }

    /// A connection to the server's own database, for fixtures and checks that no endpoint
    /// answers (e.g. "no row was left behind").
    pub async fn connect_db(&self) -> AnyPool {
        install_default_drivers();
        let pool = AnyPoolOptions::new().max_connections(1).connect(&self.database_url).await.expect("test database");
        if self.database_url.starts_with("sqlite") {
            pool.execute("PRAGMA busy_timeout = 30000").await.expect("pragma");
        }
        pool
    }

    async fn fixture_db(&mut self) -> AnyPool {
        if self.fixture_pool.is_none() {
            self.fixture_pool = Some(self.connect_db().await);
        }
        self.fixture_pool.clone().expect("fixture pool")
    }

    /// Test fixture standing in for DICOM ingest: a study of `patient_id` with series of
    /// `instances` instances each, written straight into the archive tables of `tenant`.
    pub async fn seed_study(&mut self, tenant: &str, patient_id: &str, study_uid: &str, series: &[(&str, u32)]) {
        let pool = self.fixture_db().await;
        let now = "2026-01-01T00:00:00.000Z";
        sqlx::query(
            "INSERT INTO patients (tenant, patient_id, issuer, name, created_at, updated_at) \
             VALUES ($1, $2, '', $3, $4, $4) ON CONFLICT (tenant, patient_id, issuer) DO NOTHING",
        )
        .bind(tenant)
        .bind(patient_id)
        .bind(format!("PATIENT^{patient_id}"))
        .bind(now)
        .execute(&pool)
        .await
        .expect("seed patient");
        let patient: i64 = sqlx::query_scalar("SELECT id FROM patients WHERE tenant = $1 AND patient_id = $2 AND issuer = ''")
            .bind(tenant)
            .bind(patient_id)
            .fetch_one(&pool)
            .await
            .expect("patient key");
        let study: i64 = sqlx::query_scalar(
            "INSERT INTO studies (tenant, study_uid, patient_fk, received_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(tenant)
        .bind(study_uid)
        .bind(patient)
        .bind(now)
        .fetch_one(&pool)
        .await
        .expect("seed study");
        for (n, (series_uid, instances)) in series.iter().enumerate() {
            sqlx::query("UPDATE studies SET series_count = series_count + 1 WHERE id = $1")
                .bind(study)
                .execute(&pool)
                .await
                .expect("series count");
            let series_key: i64 = sqlx::query_scalar(
                "INSERT INTO series (tenant, series_uid, study_fk, modality, series_number) VALUES ($1, $2, $3, 'CT', $4) RETURNING id",
            )
            .bind(tenant)
            .bind(*series_uid)
            .bind(study)
            .bind(n as i64 + 1)
            .fetch_one(&pool)
            .await
            .expect("seed series");
            for i in 0..*instances {
                sqlx::query(
                    "INSERT INTO instances (tenant, sop_instance_uid, sop_class_uid, series_fk, instance_number, file_path, size_bytes, digest) \
                     VALUES ($1, $2, '1.2.840.10008.5.1.4.1.1.2', $3, $4, 'fixture', 1024, 'fixture')",
                )
                .bind(tenant)
                .bind(format!("{series_uid}.{}", i + 1))
                .bind(series_key)
                .bind(i as i64 + 1)
                .execute(&pool)
                .await
                .expect("seed instance");
            }
        }
    }

    /// Sends files with dcmtk's `storescu` as `calling_ae`, each in its own transfer syntax
    /// (one association per transfer syntax); returns whether every storescu succeeded, and
    /// their output.
    pub async fn storescu(&self, calling_ae: &str, files: &[PathBuf]) -> (bool, String) {
        self.storescu_with(calling_ae, files, &[]).await
    }

    /// As [`TestServer::storescu`], going on past a refused instance (`-nh`: by default,
    /// storescu stops at the first).
    pub async fn storescu_past_refusals(&self, calling_ae: &str, files: &[PathBuf]) -> (bool, String) {
        self.storescu_with(calling_ae, files, &["-nh"]).await
    }

    async fn storescu_with(&self, calling_ae: &str, files: &[PathBuf], options: &[&str]) -> (bool, String) {
        let mut groups: std::collections::BTreeMap<&'static str, Vec<&PathBuf>> = Default::default();
        for file in files {
            groups.entry(storescu_option(&transfer_syntax_of(file))).or_default().push(file);
        }
        let (mut ok, mut text) = (true, String::new());
        for (option, files) in groups {
            let output = tokio::process::Command::new("storescu")
                .env("TCP_NODELAY", "1")
                // -R: propose the SOP classes of the files (dcmtk's default list lacks some, e.g. whole slides).
                .args(["-R", "-aet", calling_ae, "-aec", SERVER_AE])
                .args((!option.is_empty()).then_some(option))
                .args(options)
                .arg("127.0.0.1")
                .arg(self.dicom_port.to_string())
                .args(&files)
                .output()
                .await
                .expect("storescu runs (apt-get install dcmtk)");
            ok &= output.status.success();
            if !output.status.success() {
                text.push_str(&format!("storescu {option} ({} files): {}\n", files.len(), output.status));
            }
            text.push_str(&String::from_utf8_lossy(&output.stdout));
            text.push_str(&String::from_utf8_lossy(&output.stderr));
        }
        (ok, text)
    }

    /// Runs `wasmpacs check` (the release binary beside the test's) with `args` on this server's
    /// config; returns its exit code and the JSON report it printed.
    pub fn check(&self, args: &[&str]) -> (i32, Value) {
        let test = std::env::current_exe().expect("test binary");
        let binary = test.parent().and_then(Path::parent).expect("target folder").join("wasmpacs");
        let output = std::process::Command::new(&binary)
            .arg("check")
            .arg("--config")
            .arg(self.data_dir.path().join("wasmpacs.toml"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (built by `cargo build --release --workspace`)", binary.display()));
        let report = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}): {}", String::from_utf8_lossy(&output.stderr)));
        (output.status.code().expect("exit code"), report)
    }

    /// Stops the server and starts it again on the same data folder, config and database (its
    /// ports change).
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let text = std::fs::read_to_string(self.data_dir.path().join("wasmpacs.toml")).expect("config on disk");
        let config = Config::from_toml(&text, Vec::new(), self.data_dir.path()).expect("config");
        let server = RunningServer::start(config).await.expect("server restarts");
        self.addr = server.addr;
        self.base = format!("http://{}/o3-dpacs-wado", server.addr);
        self.dicom_port = server.dicom_addr.map(|a| a.port()).unwrap_or(0);
        self.server = Some(server);
    }

    /// Stops the server (requests in flight finish) and drops its PostgreSQL database.
    pub async fn stop(self) {
        drop(self.stop_keeping_files().await);
    }

    /// Stops the server but hands back its data folder, to be removed later: a benchmark run
    /// right after thousands of files were deleted measures the filesystem's inode reuse rules
    /// (ext4 skips inodes freed in the last minute) rather than the server.
    pub async fn stop_keeping_files(mut self) -> TempDir {
        if let Some(pool) = self.fixture_pool.take() {
            pool.close().await;
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(name) = self.pg_database.take() {
            drop_postgres_database(&name).await;
        }
        self.data_dir
    }
}

pub async fn drop_postgres_database(name: &str) {
    if let Ok(admin) = AnyPoolOptions::new().max_connections(1).connect(&postgres_admin_url()).await {
        let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
        admin.close().await;
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("response body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// The transfer syntax UID in a Part-10 file's meta group.
pub fn transfer_syntax_of(path: &Path) -> String {
    let object = dicom_object::OpenFileOptions::new()
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .open_file(path)
        .unwrap_or_else(|e| panic!("{} is not DICOM: {e}", path.display()));
    object.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_owned()
}

/// The storescu option that proposes exactly this transfer syntax (so files go unconverted).
pub fn storescu_option(transfer_syntax: &str) -> &'static str {
    match transfer_syntax {
        "1.2.840.10008.1.2" => "-xi",
        "1.2.840.10008.1.2.1" => "-xe",
        "1.2.840.10008.1.2.2" => "-xb",
        "1.2.840.10008.1.2.1.99" => "-xd",
        "1.2.840.10008.1.2.4.50" => "-xy",
        "1.2.840.10008.1.2.4.51" => "-xx",
        "1.2.840.10008.1.2.4.70" => "-xs",
        "1.2.840.10008.1.2.4.90" => "-xv",
        "1.2.840.10008.1.2.4.91" => "-xw",
        "1.2.840.10008.1.2.4.80" => "-xt",
        "1.2.840.10008.1.2.4.81" => "-xu",
        "1.2.840.10008.1.2.5" => "-xr",
        _ => "",
    }
}

/// The sample set: pydicom's offline test files in every transfer syntax the archive accepts,
/// with unique SOP Instance UIDs (built once by tests/data/prepare_testset.sh, needs pydicom and
/// dcmtk). Returns the files, sorted.
pub fn testset() -> Vec<PathBuf> {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = ONCE.get_or_init(|| {
        let dir = repo_root().join("target/testset");
        if !dir.join(".complete").exists() {
            let tmp = repo_root().join(format!("target/testset.tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let status = std::process::Command::new("bash")
                .arg(repo_root().join("tests/data/prepare_testset.sh"))
                .arg(&tmp)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("bash runs");
            assert!(status.success(), "prepare_testset.sh failed (needs `pip install pydicom` and dcmtk)");
            std::fs::write(tmp.join(".complete"), b"").unwrap();
            // Another test binary may have won the race; either copy is complete.
            if std::fs::rename(&tmp, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        dir
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("testset")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    files
}

/// The manifest entry of the KOS plugin, pointing at `component_path`, with `grants` (the
/// bundled grants are `["archive", "events", "log", "settings"]`) and the test settings.
pub fn kos_manifest(component_path: &Path, grants: &[&str]) -> String {
    let grants = grants.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(", ");
    format!(
        r#"
[[plugin]]
name = "kos"
component = "{}"
routes = ["POST studies/createKos", "GET studies/kos"]
grants = [{grants}]
memory_limit_mb = 64
timeout_ms = 10000

[plugin.settings]
retrieve_ae_title = "{SERVER_AE}"
uid_root = "1.2.826.0.1.3680043.10.1418"
"#,
        component_path.display()
    )
}

impl TestServer {
    /// Test fixture: marks an instance of `tenant` deprecated, as `series/deprecation` would.
    pub async fn deprecate_instance(&mut self, tenant: &str, sop_instance_uid: &str) {
        let pool = self.fixture_db().await;
        let done = sqlx::query("UPDATE instances SET deprecated = 1 WHERE tenant = $1 AND sop_instance_uid = $2")
            .bind(tenant)
            .bind(sop_instance_uid)
            .execute(&pool)
            .await
            .expect("deprecate instance");
        assert_eq!(done.rows_affected(), 1, "instance {sop_instance_uid} exists");
    }

    /// Test fixture: how many instance rows `tenant` has with this SOP Instance UID.
    pub async fn instance_rows(&mut self, tenant: &str, sop_instance_uid: &str) -> i64 {
        let pool = self.fixture_db().await;
        sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE tenant = $1 AND sop_instance_uid = $2")
            .bind(tenant)
            .bind(sop_instance_uid)
            .fetch_one(&pool)
            .await
            .expect("count instances")
    }

    /// Test fixture: where the index says the file of an instance of `tenant` is (on the
    /// default medium).
    pub async fn stored_file(&mut self, tenant: &str, sop_instance_uid: &str) -> PathBuf {
        let pool = self.fixture_db().await;
        let relative: String = sqlx::query_scalar("SELECT file_path FROM instances WHERE tenant = $1 AND sop_instance_uid = $2")
            .bind(tenant)
            .bind(sop_instance_uid)
            .fetch_one(&pool)
            .await
            .expect("instance row");
        self.data_dir.path().join("archive").join(relative)
    }

    /// Test fixture: how many instance rows `tenant` has in the study.
    pub async fn study_instance_rows(&mut self, tenant: &str, study_uid: &str) -> i64 {
        let pool = self.fixture_db().await;
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM instances i JOIN series se ON i.series_fk = se.id JOIN studies s ON se.study_fk = s.id \
             WHERE i.tenant = $1 AND s.study_uid = $2",
        )
        .bind(tenant)
        .bind(study_uid)
        .fetch_one(&pool)
        .await
        .expect("count study instances")
    }
}

/// The manifest entry of the bundled orders plugin (hooked to STUDY_RECEIVED), at `component_path`.
pub fn orders_manifest(component_path: &Path) -> String {
    format!(
        r#"
[[plugin]]
name = "orders"
component = "{}"
routes = ["POST orders/create", "DELETE orders/delete"]
grants = ["archive", "events", "log"]
hooks = ["STUDY_RECEIVED"]
memory_limit_mb = 64
timeout_ms = 5000
"#,
        component_path.display()
    )
}

/// Runs dcmtk's `findscu -W` (modality worklist) as `calling_ae` with `-k` keys and extra
/// arguments; returns the answers (read back from the files findscu wrote) and its output.
pub async fn findscu_worklist(
    port: u16,
    calling_ae: &str,
    keys: &[&str],
    extra: &[&str],
) -> (Vec<dicom_object::InMemDicomObject>, String) {
    let out = tempfile::tempdir().expect("tempdir");
    let mut command = tokio::process::Command::new("findscu");
    command.env("TCP_NODELAY", "1").args(["-W", "-aet", calling_ae, "-aec", SERVER_AE, "-X", "-od"]).arg(out.path());
    for key in keys {
        command.args(["-k", key]);
    }
    let output = command.args(extra).arg("127.0.0.1").arg(port.to_string()).output().await.expect("findscu runs (dcmtk)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let answers = files
        .iter()
        .map(|f| dicom_object::open_file(f).unwrap_or_else(|e| panic!("{}: {e}\n{text}", f.display())).into_inner())
        .collect();
    (answers, text)
}

impl TestServer {
    /// Test fixture for volume: `n` orders for one new patient of `tenant`, scheduled on
    /// `station` over ten days (20250101 to 20250110) at times spread over the day, written
    /// with one SQL statement.
    pub async fn seed_orders(&mut self, tenant: &str, station: &str, n: u32) {
        let pool = self.fixture_db().await;
        let now = "2026-01-01T00:00:00.000Z";
        let patient: i64 = sqlx::query_scalar(
            "INSERT INTO patients (tenant, patient_id, issuer, name, created_at, updated_at) \
             VALUES ($1, $2, '', 'BULK^PATIENT', $3, $3) RETURNING id",
        )
        .bind(tenant)
        .bind(format!("BULK-{station}-{n}"))
        .bind(now)
        .fetch_one(&pool)
        .await
        .expect("bulk patient");
        let body = r#"'{"study_uid":"1.2.999.' || $6 || '.' || n || '","accession_number":"B' || n || '","patient_key":0,"scheduled_station_ae_title":"' || $2 || '","scheduled_station_name":null,"start_date":"' || '202501' || substr('0' || ((n % 10) + 1), length('0' || ((n % 10) + 1)) - 1, 2) || '","start_time":"' || substr('000000' || ((n * 7) % 235959), length('000000' || ((n * 7) % 235959)) - 5, 6) || '","modality":"CT","performing_physician":null,"step_description":"Bulk","step_id":null,"requested_procedure_description":null,"requested_procedure_id":null,"requesting_physician":null,"referring_physician":null,"admission_id":null,"current_patient_location":null,"confidentiality_constraint":null,"patient_state":null,"pregnancy_status":null,"medical_alerts":null,"placer_order_number":null,"service_episode_id":null,"extra":[]}'"#;
        let sql = format!(
            "INSERT INTO orders (tenant, study_uid, patient_fk, station_aet, start_date, start_time, modality, accession_number, body, created_at) \
             WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $3) \
             SELECT $1, '1.2.999.' || $6 || '.' || n, $4, $2, '202501' || substr('0' || ((n % 10) + 1), length('0' || ((n % 10) + 1)) - 1, 2), substr('000000' || ((n * 7) % 235959), length('000000' || ((n * 7) % 235959)) - 5, 6), 'CT', 'B' || n, {body}, $5 FROM seq"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(station)
            .bind(n as i64)
            .bind(patient)
            .bind(now)
            .bind(patient)
            .execute(&pool)
            .await
            .expect("bulk orders");
    }
}

impl TestServer {
    /// Files stored under the default medium (`<data_dir>/archive`), `.staging` excluded.
    pub fn archived_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir.path().join("archive"))
    }

    /// The forward jobs, newest first, as `GET /admin/forward` lists them.
    pub async fn forward_jobs(&self) -> Vec<Value> {
        let response =
            self.http.get(format!("http://{}/admin/forward", self.addr)).header("Authorization", ADMIN_KEY).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["jobs"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to 30 s) until the newest forward job is in `state`.
    pub async fn wait_for_job(&self, state: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let jobs = self.forward_jobs().await;
            if let Some(job) = jobs.first().filter(|j| j["state"] == state) {
                return job.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no job reached `{state}`: {jobs:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// True when no staging file is left on the default medium.
    pub fn staging_is_empty(&self) -> bool {
        std::fs::read_dir(self.data_dir.path().join("archive/.staging")).map(|d| d.count() == 0).unwrap_or(true)
    }
}

/// Every file under `root`, sorted, medium `.staging` folders excluded.
/// Generates CT instances into `dir` with tests/data/gen_ct.py (pydicom and numpy) and `args`
/// (`-n`, `--studies`, `--rows`, ...); answers the files, sorted.
pub fn generate_cts(dir: &Path, args: &[&str]) -> Vec<PathBuf> {
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("tests/data/gen_ct.py"))
        .arg(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs");
    assert!(status.success(), "gen_ct.py failed (it needs pydicom and numpy)");
    let mut files: Vec<PathBuf> = files_under(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "dcm")).collect();
    files.sort();
    files
}

pub fn files_under(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != ".staging") {
                    walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// A file of the test set by name.
pub fn sample(name: &str) -> PathBuf {
    testset().into_iter().find(|p| p.file_name().is_some_and(|n| n == name)).unwrap_or_else(|| panic!("no sample {name}"))
}

/// Study, series and SOP Instance UID of a file.
pub fn uids(path: &Path) -> (String, String, String) {
    use dicom_dictionary_std::tags::{PIXEL_DATA, SERIES_INSTANCE_UID, SOP_INSTANCE_UID, STUDY_INSTANCE_UID};
    let o = dicom_object::OpenFileOptions::new().read_until(PIXEL_DATA).open_file(path).expect("a DICOM file");
    let text = |tag| o.element(tag).expect("the tag").to_str().expect("text").trim_end_matches(['\0', ' ']).to_owned();
    (text(STUDY_INSTANCE_UID), text(SERIES_INSTANCE_UID), text(SOP_INSTANCE_UID))
}
