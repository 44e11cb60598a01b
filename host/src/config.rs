//! Server configuration: a TOML file (see `wasmpacs.example.toml`) whose every key can be
//! overridden by a `WASMPACS_<SECTION>_<KEY>` environment variable ([`env`]), checked once
//! deserialized; [`show`] prints it with secrets masked.

pub mod env;
pub mod shape;
pub mod show;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    /// A key of the wrong type or value, named by its path (`preview.quality`).
    #[error("configuration key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error("unknown configuration variable {0}")]
    UnknownVariable(String),
    /// A variable naming a key with a value it cannot take, or naming no key.
    #[error("configuration variable {variable}: {message}")]
    Variable { variable: String, message: String },
    #[error("configuration is invalid: {0}")]
    Invalid(String),
}

/// Longest `storage.staging_grace_s`: a week.
const MAX_STAGING_GRACE_S: u64 = 7 * 24 * 3600;

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Tenants; each API key selects one.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default)]
    pub reload: ReloadConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub dicom: DicomConfig,
    /// DICOM nodes (modalities, other PACS) allowed to associate, each bound to a tenant.
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeConfig>,
    #[serde(default)]
    pub preview: PreviewConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// The forward job of `POST series/forward`; absent: "forward job not configured".
    pub forward: Option<ForwardConfig>,
}

/// `[forward]`: where `POST series/forward` sends series, and how hard it tries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// AE title of the destination, a `[[node]]` with host and port.
    pub node: Option<String>,
    /// Attempts per series before it is marked failed.
    #[serde(default = "default_forward_attempts")]
    pub attempts: u32,
    /// Seconds between attempts.
    #[serde(default = "default_forward_retry_delay")]
    pub retry_delay_s: u64,
    /// Where non-DICOM slides are forwarded (`POST series/forward` with `containerIdentifier`):
    /// another archive's `pathoRsListener` URL, e.g.
    /// `https://peer/o3-dpacs-wado/pathoRsListener/WASMPACS/studies`.
    pub slide_endpoint: Option<String>,
    /// The `Authorization` header sent to `slide_endpoint` (e.g. the peer's API key).
    pub slide_authorization: Option<String>,
}

fn default_forward_attempts() -> u32 {
    3
}
fn default_forward_retry_delay() -> u64 {
    30
}

/// `[log]`: how the server's log lines are written to stdout.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
}

/// The form of each log line.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: `time level target: message key=value...`.
    #[default]
    Text,
    /// One JSON object per line, fields at its top level: for log collectors.
    Json,
}

/// `[preview]`: the JPEG thumbnails of `GET preview`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewConfig {
    /// Longest side of a thumbnail in pixels (aspect ratio kept; smaller images are not enlarged).
    #[serde(default = "default_preview_side")]
    pub max_side: u32,
    /// JPEG quality, 1 to 100.
    #[serde(default = "default_preview_quality")]
    pub quality: u8,
}

fn default_preview_side() -> u32 {
    256
}
fn default_preview_quality() -> u8 {
    85
}
impl Default for PreviewConfig {
    fn default() -> Self {
        Self { max_side: default_preview_side(), quality: default_preview_quality() }
    }
}

/// `[dicom]`: the DICOM listener (C-ECHO, C-STORE, worklist C-FIND).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DicomConfig {
    /// Address of the DIMSE listener; no listener when absent.
    pub listen: Option<SocketAddr>,
    /// This server's AE title: the title peers must call, and the Retrieve AE Title it publishes.
    #[serde(default = "default_ae_title")]
    pub ae_title: String,
    /// Largest PDU this server accepts, in bytes (senders send PDUs up to this size).
    #[serde(default = "default_max_pdu")]
    pub max_pdu_length: u32,
    /// Seconds without a PDU from the peer before an association is aborted (A-ABORT).
    #[serde(default = "default_dimse_timeout")]
    pub timeout_s: u64,
    /// Seconds a peer has, once connected, to send its A-ASSOCIATE-RQ; then the connection is
    /// closed.
    #[serde(default = "default_association_timeout")]
    pub association_timeout_s: u64,
    /// Associations open at once; one more is rejected (transient, "local limit exceeded").
    #[serde(default = "default_max_associations")]
    pub max_associations: usize,
}

/// `[[node]]`: a DICOM peer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub ae_title: String,
    /// Host and port where the peer listens (for forwarding to it).
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    /// Tenant whose archive the peer's images go to and whose worklist it sees.
    pub tenant: String,
}

impl Default for DicomConfig {
    fn default() -> Self {
        Self {
            listen: None,
            ae_title: default_ae_title(),
            max_pdu_length: default_max_pdu(),
            timeout_s: default_dimse_timeout(),
            association_timeout_s: default_association_timeout(),
            max_associations: default_max_associations(),
        }
    }
}

fn default_ae_title() -> String {
    "WASMPACS".to_owned()
}
fn default_max_pdu() -> u32 {
    262_144
}
fn default_dimse_timeout() -> u64 {
    60
}
fn default_association_timeout() -> u64 {
    30
}
fn default_max_associations() -> usize {
    200
}

/// `[http]`: the REST listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest request body read into memory for a plugin (JSON and the like), in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest `multipart/form-data` upload to a plugin (a whole slide, a MIRAX archive), in
    /// bytes; it is streamed to disk, never held in memory.
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// Seconds a client has to send a whole request head, from its first byte.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_s: u64,
    /// Seconds a connection may wait, with no request in flight, for its next request.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_s: u64,
    /// Seconds a request body may make no progress (no byte received while the server waits
    /// for one) before the request is cut; a slow body that keeps coming is never cut.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_s: u64,
    /// Connections open at once, in all; one more is answered 503 and closed.
    #[serde(default = "default_max_http_connections")]
    pub max_connections: usize,
    /// Connections open at once from one IP address; one more is answered 503 and closed.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
}

/// `[storage]`: where files live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Data directory: default database, default storage medium, compiled plugin cache.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Further physical media (filesystem roots), by name.
    #[serde(default, rename = "medium")]
    pub media: Vec<MediumConfig>,
    /// S3-compatible buckets, by name: studies can be relocated there (`bucketName`).
    #[serde(default, rename = "bucket")]
    pub buckets: Vec<BucketConfig>,
    /// The medium new instances are written to; default: `default` (`<data_dir>/archive`).
    pub default_medium: Option<String>,
    /// Seconds the old copies of a relocated study are kept for readers that found them just
    /// before the relocation committed.
    #[serde(default = "default_relocation_keep")]
    pub relocation_keep_s: u64,
    /// Seconds a staging file may go unmodified before it is taken for what a crash left and
    /// removed (at start and while running); see [`crate::storage::sweep`].
    #[serde(default = "default_staging_grace")]
    pub staging_grace_s: u64,
}

fn default_relocation_keep() -> u64 {
    60
}

fn default_staging_grace() -> u64 {
    15 * 60
}

/// `[[storage.medium]]`: a named filesystem root.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MediumConfig {
    pub name: String,
    pub path: PathBuf,
}

/// `[[storage.bucket]]`: a named S3-compatible bucket. Credentials not given here are taken from
/// the standard `AWS_*` environment variables.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// The name relocation requests use (`bucketName`), distinct from every medium's.
    pub name: String,
    /// The bucket's name on the S3 service; default: `name`.
    pub bucket: Option<String>,
    /// Folder of the bucket the archive's objects go under; default: the bucket's root.
    #[serde(default)]
    pub prefix: String,
    /// The S3 service's URL, for a service other than AWS (MinIO, Garage, Ceph...).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain `http://` endpoint.
    #[serde(default)]
    pub allow_http: bool,
}

impl std::fmt::Debug for BucketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketConfig")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "***"))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// `[database]`: the archive index.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://...`; default: `wasmpacs.db` in the data directory.
    pub url: Option<String>,
    /// Connections in each pool (PostgreSQL: units of work, and queries), or SQLite readers.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How durable each SQLite commit is (see [`SqliteSync`]).
    #[serde(default)]
    pub sqlite_synchronous: SqliteSync,
}

/// SQLite's `PRAGMA synchronous` in WAL mode: what a commit survives. Neither setting can corrupt
/// the database.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// The log is synced at every commit: an acknowledged change survives power loss.
    #[default]
    Full,
    /// The log is synced at checkpoints only: an acknowledged change survives a crash of the
    /// server, but the last ones may be lost on power loss or an OS crash.
    Normal,
}

/// `[[tenant]]`: one tenant and its API key.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    pub api_key: String,
}

impl std::fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantConfig").field("name", &self.name).field("api_key", &"***").finish()
    }
}

/// `[plugins]`: where the plugins manifest is.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Path of plugins.toml; relative paths are taken from the config file's folder.
    #[serde(default = "default_manifest")]
    pub manifest: PathBuf,
}

/// `[reload]`: hot reload of plugin components (for staging servers).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Quiet time after the last change to a file before it is reloaded.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
}

/// `[admin]`: the admin endpoints (`/admin/...`), enabled when a key is set.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub api_key: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig").field("api_key", &self.api_key.as_ref().map(|_| "***")).finish()
    }
}

/// `[runtime]`: the WebAssembly engine.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Use the pooling instance allocator when the machine allows it.
    #[serde(default = "default_true")]
    pub pooling: bool,
    /// Plugin instances alive at once (concurrent plugin requests) with the pooling allocator.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Interval of the epoch clock that enforces plugin deadlines, in milliseconds.
    #[serde(default = "default_epoch_tick_ms")]
    pub epoch_tick_ms: u64,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid default address")
}
fn default_max_body() -> usize {
    16 * 1024 * 1024
}
fn default_max_upload() -> u64 {
    64 << 30
}
fn default_header_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_body_timeout() -> u64 {
    60
}
fn default_max_http_connections() -> usize {
    4096
}
fn default_max_connections_per_peer() -> usize {
    512
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_max_connections() -> u32 {
    16
}
fn default_manifest() -> PathBuf {
    PathBuf::from("plugins.toml")
}
fn default_debounce_ms() -> u64 {
    200
}
fn default_true() -> bool {
    true
}
fn default_max_instances() -> u32 {
    256
}
fn default_epoch_tick_ms() -> u64 {
    10
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            max_upload_bytes: default_max_upload(),
            header_timeout_s: default_header_timeout(),
            idle_timeout_s: default_idle_timeout(),
            body_timeout_s: default_body_timeout(),
            max_connections: default_max_http_connections(),
            max_connections_per_peer: default_max_connections_per_peer(),
        }
    }
}
impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            media: Vec::new(),
            buckets: Vec::new(),
            default_medium: None,
            relocation_keep_s: default_relocation_keep(),
            staging_grace_s: default_staging_grace(),
        }
    }
}
impl Default for PluginsConfig {
    fn default() -> Self {
        Self { manifest: default_manifest() }
    }
}
impl Default for ReloadConfig {
    fn default() -> Self {
        Self { enabled: false, debounce_ms: default_debounce_ms() }
    }
}
impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { pooling: true, max_instances: default_max_instances(), epoch_tick_ms: default_epoch_tick_ms() }
    }
}

impl Config {
    /// Reads a config file, applies `WASMPACS_*` overrides from the process environment, and
    /// resolves relative paths against the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, std::env::vars(), base).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.to_owned(), source },
            other => other,
        })
    }

    /// Builds a config from TOML text and environment pairs; relative paths are taken from `base`.
    pub fn from_toml(text: &str, env: impl IntoIterator<Item = (String, String)>, base: &Path) -> Result<Self, ConfigError> {
        let parse_err = |source| ConfigError::Parse { path: PathBuf::from("<config>"), source };
        let mut table: toml::Table = toml::from_str(text).map_err(parse_err)?;
        env::apply_all(&mut table, env)?;
        // Deserialized once, from file and environment together, so that a wrong value names
        // its key wherever it came from.
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Key { key, message: e.into_inner().message().to_owned() }
        })?;
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        if self.storage.data_dir.is_relative() {
            self.storage.data_dir = base.join(&self.storage.data_dir);
        }
        for medium in &mut self.storage.media {
            if medium.path.is_relative() {
                medium.path = base.join(&medium.path);
            }
        }
        if self.plugins.manifest.is_relative() {
            self.plugins.manifest = base.join(&self.plugins.manifest);
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        // Zero would sweep other hosts' uploads as they arrive; a grace past a week overflows
        // the sweep's timer and keeps crash leftovers for no one.
        if !(1..=MAX_STAGING_GRACE_S).contains(&self.storage.staging_grace_s) {
            return Err(ConfigError::Invalid(format!(
                "storage.staging_grace_s must be between 1 and {MAX_STAGING_GRACE_S} seconds"
            )));
        }
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for t in &self.tenants {
            if t.name.is_empty() || t.api_key.is_empty() {
                return Err(ConfigError::Invalid("every [[tenant]] needs a name and an api_key".into()));
            }
            if !names.insert(&t.name) {
                return Err(ConfigError::Invalid(format!("tenant `{}` is configured twice", t.name)));
            }
            if !keys.insert(&t.api_key) {
                return Err(ConfigError::Invalid(format!("tenant `{}` reuses another tenant's api_key", t.name)));
            }
        }
        if self.tenants.is_empty() {
            return Err(ConfigError::Invalid("at least one [[tenant]] is required".into()));
        }
        if !(16..=4096).contains(&self.preview.max_side) || !(1..=100).contains(&self.preview.quality) {
            return Err(ConfigError::Invalid("[preview] max_side must be 16 to 4096 and quality 1 to 100".into()));
        }
        let mut titles = std::collections::HashSet::new();
        for node in &self.nodes {
            if node.ae_title.is_empty() || node.ae_title.len() > 16 {
                return Err(ConfigError::Invalid(format!("node AE title `{}` must be 1 to 16 characters", node.ae_title)));
            }
            if !titles.insert(&node.ae_title) {
                return Err(ConfigError::Invalid(format!("node `{}` is configured twice", node.ae_title)));
            }
            if !names.contains(&&node.tenant) {
                return Err(ConfigError::Invalid(format!("node `{}` names unknown tenant `{}`", node.ae_title, node.tenant)));
            }
        }
        let http = &self.http;
        if [
            http.header_timeout_s,
            http.idle_timeout_s,
            http.body_timeout_s,
            self.dicom.timeout_s,
            self.dicom.association_timeout_s,
        ]
        .contains(&0)
            || http.max_connections == 0
            || http.max_connections_per_peer == 0
            || self.dicom.max_associations == 0
        {
            return Err(ConfigError::Invalid("timeouts and connection limits of [http] and [dicom] must be at least 1".into()));
        }
        if self.dicom.ae_title.is_empty() || self.dicom.ae_title.len() > 16 {
            return Err(ConfigError::Invalid("dicom.ae_title must be 1 to 16 characters".into()));
        }
        let mut media = std::collections::HashSet::from(["default"]);
        let configured = self.storage.media.iter().map(|m| &m.name).filter(|name| *name != "default");
        for name in configured.chain(self.storage.buckets.iter().map(|b| &b.name)) {
            if name.is_empty() || !media.insert(name.as_str()) {
                return Err(ConfigError::Invalid(format!("storage medium or bucket name `{name}` is empty or used twice")));
            }
        }
        if let Some(bucket) = self.storage.buckets.iter().find(|b| self.storage.default_medium.as_ref() == Some(&b.name)) {
            return Err(ConfigError::Invalid(format!(
                "bucket `{}` cannot be the default medium: new files go to a filesystem medium",
                bucket.name
            )));
        }
        if let Some(endpoint) = self.forward.as_ref().and_then(|f| f.slide_endpoint.as_deref()) {
            let url = reqwest::Url::parse(endpoint)
                .map_err(|e| ConfigError::Invalid(format!("forward.slide_endpoint `{endpoint}` is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid(format!("forward.slide_endpoint `{endpoint}` must be an http or https URL")));
            }
        }
        Ok(())
    }

    /// The database URL: the configured one, or a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.storage.data_dir.join("wasmpacs.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [http]
        listen = "127.0.0.1:8080"
        [[tenant]]
        name = "default"
        api_key = "change-me"
    "#;

    #[test]
    fn environment_overrides_keys_and_keeps_types() {
        let env = vec![
            ("WASMPACS_HTTP_LISTEN".to_owned(), "127.0.0.1:9999".to_owned()),
            ("WASMPACS_TENANT_0_API_KEY".to_owned(), "12345".to_owned()),
            ("WASMPACS_RELOAD_ENABLED".to_owned(), "true".to_owned()),
            ("WASMPACS_STORAGE_DATA_DIR".to_owned(), "/var/lib/wasmpacs".to_owned()),
            ("WASMPACS_STORAGE_BUCKET_0_NAME".to_owned(), "online".to_owned()),
            ("WASMPACS_STORAGE_BUCKET_0_SECRET_ACCESS_KEY".to_owned(), "s3cr3t".to_owned()),
        ];
        let c = Config::from_toml(BASE, env, Path::new("/etc")).unwrap();
        assert_eq!(c.http.listen.port(), 9999);
        assert_eq!(c.tenants[0].api_key, "12345");
        assert!(c.reload.enabled);
        assert_eq!(c.storage.data_dir, PathBuf::from("/var/lib/wasmpacs"));
        assert_eq!(c.plugins.manifest, PathBuf::from("/etc/plugins.toml"));
        assert_eq!(c.storage.buckets[0].name, "online");
        assert_eq!(c.storage.buckets[0].secret_access_key.as_deref(), Some("s3cr3t"));
    }

    #[test]
    fn a_bucket_name_is_unique_among_media_and_never_the_default_medium() {
        let twice = format!("{BASE}\n[[storage.medium]]\nname = \"a\"\npath = \"/a\"\n[[storage.bucket]]\nname = \"a\"");
        let err = Config::from_toml(&twice, vec![], Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
        let default = format!("{BASE}\n[storage]\ndefault_medium = \"b\"\n[[storage.bucket]]\nname = \"b\"");
        let err = Config::from_toml(&default, vec![], Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("default medium"), "{err}");
    }

    #[test]
    fn the_documented_and_bundled_configs_are_valid() {
        for text in [include_str!("../../wasmpacs.example.toml"), include_str!("../../wasmpacs.toml")] {
            let c = Config::from_toml(text, vec![], Path::new("/srv")).unwrap();
            assert_eq!(c.tenants[0].name, "default");
        }
    }

    #[test]
    fn connection_timeouts_and_limits_have_safe_defaults_and_are_never_zero() {
        let c = Config::from_toml(BASE, vec![], Path::new(".")).unwrap();
        assert_eq!((c.http.header_timeout_s, c.http.idle_timeout_s, c.http.body_timeout_s), (30, 60, 60));
        assert_eq!((c.http.max_connections, c.http.max_connections_per_peer), (4096, 512));
        assert_eq!((c.dicom.association_timeout_s, c.dicom.max_associations), (30, 200));
        for key in ["WASMPACS_HTTP_IDLE_TIMEOUT_S", "WASMPACS_HTTP_MAX_CONNECTIONS_PER_PEER", "WASMPACS_DICOM_MAX_ASSOCIATIONS"] {
            let err = Config::from_toml(BASE, vec![(key.to_owned(), "0".to_owned())], Path::new(".")).unwrap_err();
            assert!(err.to_string().contains("at least 1"), "{key}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_duplicate_tenants_are_refused() {
        let err = Config::from_toml(&format!("{BASE}\n[http2]\nx=1"), vec![], Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("http2"), "{err}");
        let dup = format!("{BASE}\n[[tenant]]\nname = \"default\"\napi_key = \"other\"");
        let err = Config::from_toml(&dup, vec![], Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("configured twice"), "{err}");
        let err = Config::from_toml(BASE, vec![("WASMPACS_NOPE_X".into(), "1".into())], Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("WASMPACS_NOPE_X"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key_from_the_file_or_the_environment() {
        let err = Config::from_toml(&format!("{BASE}\n[preview]\nquality = \"high\""), vec![], Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("preview.quality"), "{err}");
        let env = vec![("WASMPACS_PREVIEW_QUALITY".to_owned(), "300".to_owned())];
        let err = Config::from_toml(BASE, env, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("preview.quality"), "{err}");
        let env = vec![("WASMPACS_RELOAD_ENABLED".to_owned(), "yes".to_owned())];
        let err = Config::from_toml(BASE, env, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("WASMPACS_RELOAD_ENABLED") && err.to_string().contains("reload.enabled"), "{err}");
    }

    #[test]
    fn the_config_path_variable_and_new_sections_are_accepted() {
        let env = vec![
            ("WASMPACS_CONFIG".to_owned(), "/etc/wasmpacs.toml".to_owned()),
            ("WASMPACS_PREVIEW_MAX_SIDE".to_owned(), "512".to_owned()),
            ("WASMPACS_LOG_FORMAT".to_owned(), "json".to_owned()),
            ("WASMPACS_NODE_0_AE_TITLE".to_owned(), "CT01".to_owned()),
            ("WASMPACS_NODE_0_TENANT".to_owned(), "default".to_owned()),
            ("WASMPACS_NODE_0_PORT".to_owned(), "104".to_owned()),
        ];
        let c = Config::from_toml(BASE, env, Path::new(".")).unwrap();
        assert_eq!(c.preview.max_side, 512);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!((c.nodes[0].ae_title.as_str(), c.nodes[0].port), ("CT01", 104));
    }
}
