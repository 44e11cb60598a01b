//! C-STORE SCU: one association to a node sending stored files as they are. Each file's data set
//! streams from disk in the transfer syntax it was stored in (never whole in memory), over a
//! presentation context proposed for its SOP class and that transfer syntax. A file in a bucket
//! is fetched while the one before it is sent, and its copy removed once it is sent: the files of
//! a series are never all fetched at once.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use dicom_ul::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use tokio::io::AsyncSeekExt;

use super::dimse::{self, status};
use crate::storage::Storage;

/// Longest wait for the peer: to connect, to take a PDU, to answer a C-STORE.
const TIMEOUT: Duration = Duration::from_secs(60);

/// One file to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax: String,
    /// Where the stored file is (see [`Storage::local`]).
    pub medium: String,
    pub relative_path: String,
}

/// Why the files were not all offered to the peer: the association failed (worth trying again
/// later), or a stored file could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ScuError {
    #[error("cannot associate with {0}: {1}")]
    Associate(String, String),
    #[error("association with {0} lost: {1}")]
    Lost(String, String),
    /// `transient` when its bucket is out of reach for now, not when it is gone (lost, or
    /// moved since the files were listed: see [`Outgoing::medium`]).
    #[error("cannot read a stored file to send: {message}")]
    Source { transient: bool, medium: String, relative_path: String, message: String },
}

/// What became of the files of one association.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: usize,
    /// SOP Instance UID and why, for each file the peer refused or that could not be read.
    pub refused: Vec<(String, String)>,
}

/// The destination of a forward.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
}

/// Sends `files`, read from `storage`, to `peer` as `calling_ae` over one association.
pub async fn send_all(
    calling_ae: &str,
    peer: &Peer,
    storage: &Storage,
    files: &[Outgoing],
    max_pdu: u32,
) -> Result<Report, ScuError> {
    let address = format!("{}:{}", peer.host, peer.port);
    let mut pairs: Vec<(String, String)> = files.iter().map(|f| (f.sop_class_uid.clone(), f.transfer_syntax.clone())).collect();
    pairs.sort();
    pairs.dedup();
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae)
        .called_ae_title(peer.ae_title.as_str())
        .max_pdu_length(max_pdu)
        .connection_timeout(TIMEOUT)
        .read_timeout(TIMEOUT)
        .write_timeout(TIMEOUT);
    for (class, syntax) in &pairs {
        options = options.with_presentation_context(class.as_str(), vec![syntax.as_str()]);
    }
    let mut association =
        options.establish_async(address.as_str()).await.map_err(|e| ScuError::Associate(address.clone(), e.to_string()))?;
    let _ = association.inner_stream().set_nodelay(true);
    let accepted: HashMap<(String, String), u8> = association
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| {
            let key =
                (pc.abstract_syntax.trim_end_matches('\0').to_owned(), pc.transfer_syntax.trim_end_matches('\0').to_owned());
            (key, pc.id)
        })
        .collect();
    let lost = |e: &dyn std::fmt::Display| ScuError::Lost(address.clone(), e.to_string());

    let mut report = Report::default();
    let fetch = |file: &Outgoing| {
        let (storage, medium, relative) = (storage.clone(), file.medium.clone(), file.relative_path.clone());
        tokio::spawn(async move { storage.local(&medium, &relative).await })
    };
    let mut next = files.first().map(fetch);
    for (n, file) in files.iter().enumerate() {
        let fetching = next.take().expect("each file is fetched ahead of its turn");
        next = files.get(n + 1).map(fetch);
        let source = |transient: bool, message: String| ScuError::Source {
            transient,
            medium: file.medium.clone(),
            relative_path: file.relative_path.clone(),
            message,
        };
        let local = match fetching.await {
            Ok(Ok(local)) => local,
            Ok(Err(e)) => return Err(source(e.is_transient(), e.to_string())),
            Err(e) => return Err(source(true, e.to_string())),
        };
        let Some(&context) = accepted.get(&(file.sop_class_uid.clone(), file.transfer_syntax.clone())) else {
            report.refused.push((file.sop_instance_uid.clone(), "the peer accepts no presentation context for it".into()));
            continue;
        };
        let path = local.path().to_owned();
        let offset = match data_set_offset(path.clone()).await {
            Ok(offset) => offset,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read a stored file to forward");
                report.refused.push((file.sop_instance_uid.clone(), format!("cannot read the stored file: {e}")));
                continue;
            }
        };
        let message_id = (n % 0xFFFF + 1) as u16;
        let command = dimse::store_request(message_id, &file.sop_class_uid, &file.sop_instance_uid);
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        };
        association.send(&pdu).await.map_err(|e| lost(&e))?;
        let mut source = tokio::fs::File::open(&path).await.map_err(|e| lost(&e))?;
        source.seek(std::io::SeekFrom::Start(offset)).await.map_err(|e| lost(&e))?;
        let mut writer = association.send_pdata(context);
        tokio::io::copy(&mut source, &mut writer).await.map_err(|e| lost(&e))?;
        writer.finish().await.map_err(|e| lost(&e))?;
        let answer = loop {
            let pdu = tokio::time::timeout(TIMEOUT, association.receive()).await.map_err(|_| lost(&"no answer to a C-STORE"))?;
            match pdu.map_err(|e| lost(&e))? {
                Pdu::PData { data } => {
                    if let Some(pdv) = data.into_iter().find(|p| p.value_type == PDataValueType::Command) {
                        break dimse::parse_command(&pdv.data).map_err(|e| lost(&e))?;
                    }
                }
                Pdu::AbortRQ { .. } => return Err(lost(&"the peer aborted the association")),
                other => return Err(lost(&format!("unexpected PDU {other:?}"))),
            }
        };
        if answer.field != dimse::field::C_STORE_RSP || answer.responding_to != message_id {
            return Err(lost(&format!(
                "answer {:#06X} to message {} while waiting for the C-STORE-RSP to {message_id}",
                answer.field, answer.responding_to
            )));
        }
        // Success, or a warning (0xB000, 0xB006, 0xB007): the peer has it. No status is a failure.
        match answer.status {
            Some(code) if code == status::SUCCESS || code & 0xF000 == 0xB000 => report.sent += 1,
            code => report.refused.push((file.sop_instance_uid.clone(), format!("the peer answered status {code:04X?}"))),
        }
    }
    if let Err(e) = association.release().await {
        tracing::debug!(peer = %address, error = %e, "association release");
    }
    Ok(report)
}

/// Where the data set starts in a stored Part-10 file: after the preamble, `DICM` and the file
/// meta group, whose length its first element gives.
async fn data_set_offset(path: PathBuf) -> std::io::Result<u64> {
    tokio::task::spawn_blocking(move || {
        let mut head = [0u8; 144];
        std::fs::File::open(&path)?.read_exact(&mut head)?;
        let group_length_tag = [0x02, 0x00, 0x00, 0x00];
        if &head[128..132] != b"DICM" || head[132..136] != group_length_tag || &head[136..138] != b"UL" {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "no Part-10 file meta group length"));
        }
        let length = u32::from_le_bytes([head[140], head[141], head[142], head[143]]);
        Ok(144 + u64::from(length))
    })
    .await
    .map_err(std::io::Error::other)?
}
