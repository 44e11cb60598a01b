//! A real S3 protocol server for the bucket tests: `moto_server` (PyPI `moto[server]`, installed
//! by `.ci/run`) on a free local port, one per test, stopped when dropped. Tests look into its
//! buckets with a client of their own (object_store's S3 client, signed as any S3 client is),
//! not through the server.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// A running `moto_server`.
pub struct S3Server {
    pub endpoint: String,
    process: Child,
    http: reqwest::Client,
}

impl S3Server {
    /// Starts a server and waits until it answers.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        // As a module of the python3 that pip installed it for, whatever its scripts folder.
        let process = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut server = Self { endpoint: format!("http://127.0.0.1:{port}"), process, http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.http.get(&server.endpoint).send().await.is_err() {
            if let Ok(Some(status)) = server.process.try_wait() {
                panic!("moto_server exited ({status}): is it installed? (pip install 'moto[server]')");
            }
            assert!(Instant::now() < deadline, "moto_server did not answer on {} (pip install 'moto[server]')", server.endpoint);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// Creates the bucket `name`.
    pub async fn create_bucket(&self, name: &str) {
        let response = self.http.put(format!("{}/{name}", self.endpoint)).send().await.expect("create bucket");
        assert!(response.status().is_success(), "creating bucket {name}: {}", response.status());
    }

    /// The `[[storage.bucket]]` table of a bucket `name` on this server, S3 bucket `bucket`,
    /// objects under `prefix`.
    pub fn config(&self, name: &str, bucket: &str, prefix: &str) -> String {
        format!(
            "\n[[storage.bucket]]\nname = \"{name}\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\nendpoint = \"{}\"\n\
             region = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\nallow_http = true\n",
            self.endpoint
        )
    }

    /// A client of `bucket`.
    fn client(&self, bucket: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("S3 client")
    }

    /// The keys of every object in `bucket`, sorted.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let listed: Vec<_> = self.client(bucket).list(None).try_collect().await.expect("list objects");
        let mut keys: Vec<String> = listed.into_iter().map(|meta| meta.location.to_string()).collect();
        keys.sort();
        keys
    }

    /// The bytes of the object `key` in `bucket`.
    pub async fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let got = self.client(bucket).get(&ObjectPath::from(key)).await.expect("get object");
        got.bytes().await.expect("object body").to_vec()
    }

    /// Writes `bytes` as the object `key` of `bucket`.
    pub async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.client(bucket).put(&ObjectPath::from(key), PutPayload::from(bytes)).await.expect("put object");
    }

    /// Deletes the object `key` from `bucket`.
    pub async fn delete(&self, bucket: &str, key: &str) {
        self.client(bucket).delete(&ObjectPath::from(key)).await.expect("delete object");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
