//! S3-compatible buckets as media: a study relocated to a bucket keeps its files there under the
//! same layout as on a filesystem medium. An object appears only once it is whole (S3 writes are
//! atomic) and is read back as a stream of chunks. A file up to [`SINGLE_PUT`] is sent in one
//! request from memory; a larger one in parts of [`PART`], [`PARTS_IN_FLIGHT`] at a time, so an
//! upload holds at most about 24 MiB whatever the file's size.

use std::io::{self, Read as _};
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::digest::{Algorithm, Hasher};
use super::{StagedWriter, StagingFile, StorageError};
use crate::config::BucketConfig;

/// Files up to this size are sent in one request; larger ones in parts of [`PART`].
const SINGLE_PUT: u64 = 8 << 20;
/// Size of each part of a multipart upload (S3 wants at least 5 MiB but for the last).
const PART: usize = 8 << 20;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes written to a staging file per trip to a blocking thread when fetching an object.
const WRITE_BATCH: usize = 1 << 20;

/// One configured bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    name: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl Bucket {
    /// The client of the bucket `config` describes; credentials it does not give come from the
    /// `AWS_*` environment variables. Nothing is sent until the bucket is used.
    pub fn open(config: &BucketConfig) -> Result<Self, StorageError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(config.bucket.as_deref().unwrap_or(&config.name))
            .with_allow_http(config.allow_http)
            .with_checksum_algorithm(Checksum::SHA256);
        if let Some(endpoint) = &config.endpoint {
            // Path-style requests (`endpoint/bucket/key`), which every S3-compatible service serves.
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder.build().map_err(|source| StorageError::Bucket { name: config.name.clone(), source })?;
        let prefix = config.prefix.trim_matches('/').to_owned();
        Ok(Self { name: config.name.clone(), store: Arc::new(store), prefix })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed(&self) -> impl FnOnce(object_store::Error) -> StorageError + '_ {
        move |source| StorageError::Bucket { name: self.name.clone(), source }
    }

    /// The object key of a file's path in the archive's layout.
    fn key(&self, relative: &str) -> ObjectPath {
        if self.prefix.is_empty() { ObjectPath::from(relative) } else { ObjectPath::from(format!("{}/{relative}", self.prefix)) }
    }

    /// The size of the object at `relative`, `None` when there is none.
    pub async fn size(&self, relative: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&self.key(relative)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed()(e)),
        }
    }

    /// The object at `relative`, as its length and a stream of its bytes (of its first
    /// `first` bytes only, when given).
    pub async fn read(
        &self,
        relative: &str,
        first: Option<u64>,
    ) -> Result<(u64, BoxStream<'static, io::Result<Bytes>>), StorageError> {
        let (size, chunks) = self.get(relative, first).await?;
        Ok((size, chunks.map_err(io::Error::other).boxed()))
    }

    async fn get(
        &self,
        relative: &str,
        first: Option<u64>,
    ) -> Result<(u64, BoxStream<'static, object_store::Result<Bytes>>), StorageError> {
        let options = GetOptions { range: first.map(|n| GetRange::Bounded(0..n)), ..GetOptions::default() };
        let got = self.store.get_opts(&self.key(relative), options).await.map_err(self.failed())?;
        Ok((got.meta.size, got.into_stream()))
    }

    /// Writes the file at `source` to `relative`, digesting it (with `algorithm`) as it is read;
    /// returns its length and digest. The object is there whole or not at all.
    pub async fn upload(&self, source: &Path, relative: &str, algorithm: Algorithm) -> Result<(u64, String), StorageError> {
        let at = source.to_owned();
        let io_failed = move |e: io::Error| StorageError::Io { path: at.clone(), source: e };
        let opened = source.to_owned();
        let (file, len) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&opened)?;
            let len = file.metadata()?.len();
            Ok::<_, io::Error>((file, len))
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r)
        .map_err(&io_failed)?;
        let key = self.key(relative);
        let mut reader = ChunkReader { file, hasher: Hasher::new(algorithm), read: 0 };
        if len <= SINGLE_PUT {
            let (bytes, rest) = reader.next(len as usize).await.map_err(&io_failed)?;
            reader = rest;
            self.store.put(&key, PutPayload::from(bytes)).await.map_err(self.failed())?;
        } else {
            let upload = self.store.put_multipart(&key).await.map_err(self.failed())?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
            reader = match self.send_parts(&mut writer, reader, source, len).await {
                Ok(reader) => reader,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            writer.finish().await.map_err(self.failed())?;
        }
        let (read, digest) = (reader.read, reader.hasher.finish());
        // The file changed under the copy, or the object is not what was sent: no copy at all.
        let stored = self.size(relative).await?;
        if read != len || stored != Some(len) {
            self.remove(relative).await;
            return Err(StorageError::Io {
                path: source.to_owned(),
                source: io::Error::other(format!("{len} bytes to copy, {read} read, {stored:?} in bucket `{}`", self.name)),
            });
        }
        Ok((len, digest))
    }

    /// Reads the rest of the file into the parts of a multipart upload, a few in flight at once.
    async fn send_parts(
        &self,
        writer: &mut WriteMultipart,
        mut reader: ChunkReader,
        source: &Path,
        len: u64,
    ) -> Result<ChunkReader, StorageError> {
        while reader.read < len {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(self.failed())?;
            let (bytes, rest) = reader.next(PART).await.map_err(|e| StorageError::Io { path: source.to_owned(), source: e })?;
            reader = rest;
            if bytes.is_empty() {
                break;
            }
            writer.put(bytes);
        }
        Ok(reader)
    }

    /// Writes the object at `relative` into `file` (a staging file), digesting it with
    /// `algorithm` and syncing it; returns its length and digest.
    pub async fn download(
        &self,
        relative: &str,
        file: &mut StagingFile,
        algorithm: Algorithm,
    ) -> Result<(u64, String), StorageError> {
        let (writer, _) = self.write_into(relative, file, algorithm, None).await?;
        let path = file.path().to_owned();
        tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(|source| StorageError::Io { path, source })
    }

    /// Writes the object at `relative` (its first `first` bytes only, when given) into `file`, to
    /// be read once and removed (not synced); returns the bytes written and the object's size.
    pub async fn fetch(&self, relative: &str, file: &mut StagingFile, first: Option<u64>) -> Result<(u64, u64), StorageError> {
        let (writer, size) = self.write_into(relative, file, Algorithm::Xxh3, first).await?;
        let written = writer.finish_unsynced().map_err(|source| StorageError::Io { path: file.path().to_owned(), source })?.1;
        Ok((written, size))
    }

    /// Streams the object (or its first `first` bytes) into `file`, a batch at a time on a
    /// blocking thread; returns the writer and the object's size.
    async fn write_into(
        &self,
        relative: &str,
        file: &mut StagingFile,
        algorithm: Algorithm,
        first: Option<u64>,
    ) -> Result<(StagedWriter, u64), StorageError> {
        let path = file.path().to_owned();
        let io_failed = |e: io::Error| StorageError::Io { path: path.clone(), source: e };
        let mut writer = Some(file.writer(algorithm).map_err(io_failed)?);
        let (size, mut chunks) = self.get(relative, first).await?;
        let mut batch = BytesMut::new();
        loop {
            let chunk = chunks.next().await.transpose().map_err(self.failed())?;
            let last = chunk.is_none();
            if let Some(chunk) = chunk {
                batch.extend_from_slice(&chunk);
            }
            if batch.len() >= WRITE_BATCH || (last && !batch.is_empty()) {
                let (mut w, bytes) = (writer.take().expect("writer is back after each batch"), batch.split().freeze());
                let w = tokio::task::spawn_blocking(move || w.write_all(&bytes).map(|()| w))
                    .await
                    .map_err(io::Error::other)
                    .and_then(|r| r)
                    .map_err(io_failed)?;
                writer = Some(w);
            }
            if last {
                return Ok((writer.take().expect("writer is back after each batch"), size));
            }
        }
    }

    /// Deletes the object at `relative`; a failure is logged (it leaves an unnamed object behind,
    /// which loses nothing).
    pub async fn remove(&self, relative: &str) {
        if let Err(e) = self.delete(relative).await {
            tracing::warn!(bucket = %self.name, path = relative, error = %e, "cannot remove object");
        }
    }

    /// Deletes an object; one that is gone already is no error.
    pub async fn delete(&self, relative: &str) -> Result<(), StorageError> {
        match self.store.delete(&self.key(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StorageError::Bucket { name: self.name.clone(), source }),
        }
    }

    /// Every object under the bucket's prefix: its path in the archive's layout, its size and
    /// when it was written.
    pub fn list(&self) -> BoxStream<'static, Result<(String, u64, std::time::SystemTime), StorageError>> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let name = self.name.clone();
        self.store
            .list(prefix.as_ref())
            .map(move |listed| {
                let meta = listed.map_err(|source| StorageError::Bucket { name: name.clone(), source })?;
                let key = meta.location.to_string();
                Ok((key.strip_prefix(&strip).unwrap_or(&key).to_owned(), meta.size, meta.last_modified.into()))
            })
            .boxed()
    }
}

/// A file read in chunks on a blocking thread, digested as it goes.
struct ChunkReader {
    file: std::fs::File,
    hasher: Hasher,
    read: u64,
}

impl ChunkReader {
    /// Up to `max` further bytes (fewer only at the end of the file), and the reader back.
    async fn next(mut self, max: usize) -> io::Result<(Bytes, Self)> {
        tokio::task::spawn_blocking(move || {
            let mut buffer = BytesMut::zeroed(max);
            let mut filled = 0;
            while filled < max {
                match self.file.read(&mut buffer[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buffer.truncate(filled);
            self.hasher.update(&buffer);
            self.read += filled as u64;
            Ok((buffer.freeze(), self))
        })
        .await
        .map_err(io::Error::other)?
    }
}
