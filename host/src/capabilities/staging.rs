//! The `staging` capability: bounded reads of staged uploads and a look inside staged ZIP archives.

use std::io::{Read, Seek, SeekFrom};

use sha1::{Digest, Sha1};

use super::{Capability, HostError, RequestState, StagedFile};
use crate::runtime::bindings::v0_1_1::wasmpacs::plugin::staging::{self as wit, ZipEntry};

/// Most bytes one `read` returns.
const MAX_READ: u32 = 1024 * 1024;

impl RequestState {
    pub(super) fn staged_file(&self, id: u32) -> Result<StagedFile, HostError> {
        self.staged
            .iter()
            .find(|f| f.id == id)
            .cloned()
            .ok_or_else(|| HostError::NotFound(format!("no staged file with id {id}")))
    }
}

fn io_error(e: impl std::fmt::Display) -> HostError {
    HostError::Internal(format!("staged file: {e}"))
}

fn zip_error(e: zip::result::ZipError) -> HostError {
    HostError::Invalid(format!("not a readable ZIP archive: {e}"))
}

impl wit::Host for RequestState {
    async fn read(&mut self, file: u32, offset: u64, len: u32) -> wasmtime::Result<Result<Vec<u8>, HostError>> {
        self.require(Capability::Staging)?;
        let staged = match self.staged_file(file) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let len = len.min(MAX_READ) as usize;
        let result = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&staged.path).map_err(io_error)?;
            f.seek(SeekFrom::Start(offset)).map_err(io_error)?;
            let mut buf = Vec::with_capacity(len);
            f.take(len as u64).read_to_end(&mut buf).map_err(io_error)?;
            Ok(buf)
        })
        .await?;
        Ok(result)
    }

    async fn zip_entries(&mut self, file: u32) -> wasmtime::Result<Result<Vec<ZipEntry>, HostError>> {
        self.require(Capability::Staging)?;
        let staged = match self.staged_file(file) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let result = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&staged.path).map_err(io_error)?;
            let mut archive = zip::ZipArchive::new(f).map_err(zip_error)?;
            (0..archive.len())
                .map(|i| {
                    let entry = archive.by_index(i).map_err(zip_error)?;
                    Ok(ZipEntry {
                        name: entry.name().map_err(zip_error)?.into_owned(),
                        size: entry.size(),
                        is_dir: entry.is_dir(),
                    })
                })
                .collect()
        })
        .await?;
        Ok(result)
    }

    async fn zip_entry_sha1(&mut self, file: u32, name: String) -> wasmtime::Result<Result<String, HostError>> {
        self.require(Capability::Staging)?;
        let staged = match self.staged_file(file) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let result = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&staged.path).map_err(io_error)?;
            let mut archive = zip::ZipArchive::new(f).map_err(zip_error)?;
            let mut entry =
                archive.by_name(&name).map_err(|_| HostError::NotFound(format!("no member `{name}` in the archive")))?;
            let mut hasher = Sha1::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buf).map_err(io_error)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Ok(hex::encode(hasher.finalize()))
        })
        .await?;
        Ok(result)
    }
}
