//! The DIMSE server: accepts associations from configured nodes only, answers C-ECHO, and
//! streams each C-STORE data set to a staging file (never holding an instance in memory) before
//! handing it to ingest. A dropped connection leaves nothing behind. No peer holds a connection
//! forever: one that does not ask for an association within `association_timeout_s` is
//! closed, an association without a PDU for `timeout_s` is aborted, and beyond
//! `max_associations` a request is rejected (transient, "local limit exceeded").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dicom_object::FileMetaTableBuilder;
use dicom_ul::association::Association as _;
use dicom_ul::association::server::{AccessControl, ServerAssociationOptions};
use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationRJ, AssociationRJResult,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason, AssociationRJSource, PDataValue,
    PDataValueType, Pdu, UserIdentity,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use futures::FutureExt;
use tokio::io::AsyncWriteExt;

use super::dimse::{self, Command, field, status};
use super::pdu_reader::{PduReader, Received};
use super::worklist;
use crate::app::App;
use crate::dicom::completeness::Damage;
use crate::ingest::{IngestError, PlacedInstance, StagedInstance};
use crate::net::limits::ConnectionLimits;
use crate::storage::{Algorithm, StagedWriter, StagingFile, StorageError};

/// Root under which this implementation's UIDs are made (a UUID-derived `2.25` root).
pub const UID_ROOT: &str = "2.25.329628117552550639259218041455443066116";
/// Implementation Class UID written in the file meta of every stored file.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.329628117552550639259218041455443066116.1";
/// Implementation Version Name.
pub const IMPLEMENTATION_VERSION: &str = "WASMPACS_010";

/// Transfer syntaxes accepted for storage, in order of preference.
pub const ACCEPTED_TRANSFER_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2.1",    // Explicit VR Little Endian
    "1.2.840.10008.1.2",      // Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99", // Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",    // Explicit VR Big Endian (retired, still sent by old modalities)
    "1.2.840.10008.1.2.4.50", // JPEG Baseline
    "1.2.840.10008.1.2.4.51", // JPEG Extended
    "1.2.840.10008.1.2.4.57", // JPEG Lossless
    "1.2.840.10008.1.2.4.70", // JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80", // JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81", // JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90", // JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    "1.2.840.10008.1.2.5",    // RLE Lossless
];

/// Connections over the limit being answered at once; beyond, one is just closed.
const REJECTIONS_IN_PROGRESS: usize = 64;

/// Admits associations whose called AE title is ours and whose calling AE title is a node.
struct NodeAccess {
    nodes: Arc<HashMap<String, String>>,
}

impl AccessControl for NodeAccess {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            tracing::info!(
                calling = calling_ae_title,
                called = called_ae_title,
                "association refused: called AE title is not ours"
            );
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self.nodes.contains_key(calling_ae_title.trim()) {
            tracing::info!(calling = calling_ae_title, "association refused: calling AE title is not a configured node");
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

/// Serves DIMSE on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let nodes: Arc<HashMap<String, String>> =
        Arc::new(app.config.nodes.iter().map(|n| (n.ae_title.clone(), n.tenant.clone())).collect());
    // The limit is on associations in all: a modality may rightly open many at once.
    let limits = ConnectionLimits::new("DICOM", app.config.dicom.max_associations, usize::MAX);
    let rejections = Arc::new(Semaphore::new(REJECTIONS_IN_PROGRESS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "DICOM accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let slot = match limits.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(_) => {
                        if let Ok(permit) = rejections.clone().try_acquire_owned() {
                            let (timeout, max_pdu) = (Duration::from_secs(app.config.dicom.association_timeout_s), app.config.dicom.max_pdu_length);
                            tokio::spawn(async move {
                                let _permit = permit;
                                let _ = tokio::time::timeout(timeout, reject_over_limit(socket, max_pdu)).await;
                            });
                        }
                        continue;
                    }
                };
                let (app, nodes) = (app.clone(), nodes.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = association(app, nodes, socket).await {
                        tracing::info!(%peer, error = %e, "association ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
}

/// Reads the peer's A-ASSOCIATE-RQ and rejects it: transient, "local limit exceeded", so that
/// the peer tries again later.
async fn reject_over_limit(mut socket: TcpStream, max_pdu_length: u32) -> anyhow::Result<()> {
    let mut reader = PduReader::new(max_pdu_length);
    if let Received::Pdu(Pdu::AssociationRQ(_)) = reader.next(&mut socket).await? {
        let rejection = AssociationRJ {
            result: AssociationRJResult::Transient,
            source: AssociationRJSource::ServiceProviderPresentation(
                AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
            ),
        };
        let mut bytes = Vec::new();
        dicom_ul::pdu::write_pdu(&mut bytes, &Pdu::from(rejection))?;
        socket.write_all(&bytes).await?;
        socket.shutdown().await?;
    }
    Ok(())
}

/// A C-STORE whose data set is arriving.
struct Incoming {
    command: Command,
    context_id: u8,
    file: StagingFile,
    writer: StagedWriter,
}

/// A request whose (small) data set is collected in memory, e.g. a C-FIND identifier.
struct Collecting {
    command: Command,
    context_id: u8,
    bytes: Vec<u8>,
}

async fn association(app: Arc<App>, nodes: Arc<HashMap<String, String>>, socket: TcpStream) -> anyhow::Result<()> {
    let dicom = &app.config.dicom;
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(NodeAccess { nodes: nodes.clone() })
        .ae_title(dicom.ae_title.as_str())
        .promiscuous(true)
        .max_pdu_length(dicom.max_pdu_length)
        .read_timeout(Duration::from_secs(dicom.timeout_s));
    for ts in ACCEPTED_TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(*ts);
    }
    let asked = Duration::from_secs(dicom.association_timeout_s);
    let mut association = tokio::time::timeout(asked, options.establish_async(socket))
        .await
        .map_err(|_| anyhow::anyhow!("no association request within {} s of connecting", asked.as_secs()))??;
    let calling = association.peer_ae_title().trim().to_owned();
    let tenant = nodes.get(&calling).cloned().expect("access control admitted a known node");
    let contexts: HashMap<u8, String> = association
        .presentation_contexts()
        .iter()
        .map(|pc| (pc.id, pc.transfer_syntax.trim_end_matches('\0').to_owned()))
        .collect();
    tracing::debug!(calling, tenant, contexts = contexts.len(), "association established");

    let mut reader = PduReader::new(dicom.max_pdu_length);
    let read_timeout = Duration::from_secs(dicom.timeout_s);
    let mut command_bytes = Vec::new();
    let mut incoming: Option<Incoming> = None;
    let mut collecting: Option<Collecting> = None;
    loop {
        let Ok(received) = tokio::time::timeout(read_timeout, reader.next(association.inner_stream())).await else {
            // The peer learns why the association ends, rather than seeing the connection drop.
            let abort = Pdu::AbortRQ { source: AbortRQSource::ServiceProvider(AbortRQServiceProviderReason::ReasonNotSpecified) };
            let _ = tokio::time::timeout(read_timeout, association.send(&abort)).await;
            anyhow::bail!("association aborted: no PDU from the peer for {} s", read_timeout.as_secs());
        };
        // A connection dropped mid-instance: the staging file deletes itself on drop.
        match received? {
            Received::Value { context_id, command: true, bytes, end } => {
                command_bytes.extend_from_slice(bytes);
                if !end {
                    continue;
                }
                let command = dimse::parse_command(&std::mem::take(&mut command_bytes))?;
                match command.field {
                    field::C_ECHO_RQ => {
                        let rsp = dimse::response(field::C_ECHO_RSP, &command, status::SUCCESS, false, None);
                        send_command(&mut association, context_id, rsp).await?;
                    }
                    field::C_STORE_RQ if command.has_data_set => {
                        let ts = contexts.get(&context_id).cloned().unwrap_or_default();
                        incoming = Some(begin_store(&app, command, context_id, &ts, &calling)?);
                    }
                    field::C_CANCEL_RQ => {}
                    _ if command.has_data_set => {
                        collecting = Some(Collecting { command, context_id, bytes: Vec::new() });
                    }
                    _ => {
                        let rsp = dimse::response(command.field | 0x8000, &command, status::UNRECOGNIZED_OPERATION, false, None);
                        send_command(&mut association, context_id, rsp).await?;
                    }
                }
            }
            Received::Value { command: false, bytes, end, .. } => {
                if let Some(current) = incoming.as_mut() {
                    current.writer.write_all(bytes)?;
                    if end {
                        let done = incoming.take().expect("instance in progress");
                        let context_id = done.context_id;
                        let rsp = finish_store(&app, &tenant, &calling, done).await;
                        send_command(&mut association, context_id, rsp).await?;
                    }
                } else if let Some(current) = collecting.as_mut() {
                    current.bytes.extend_from_slice(bytes);
                    if end {
                        let done = collecting.take().expect("request in progress");
                        if done.command.field == field::C_FIND_RQ && done.command.sop_class_uid == worklist::MWL_FIND {
                            let ts = contexts.get(&done.context_id).cloned().unwrap_or_default();
                            worklist_find(&app, &mut association, &mut reader, &mut command_bytes, &tenant, &ts, done).await?;
                        } else {
                            let rsp = dimse::response(
                                done.command.field | 0x8000,
                                &done.command,
                                status::SOP_CLASS_NOT_SUPPORTED,
                                false,
                                None,
                            );
                            send_command(&mut association, done.context_id, rsp).await?;
                        }
                    }
                } else {
                    anyhow::bail!("data set without a command");
                }
            }
            Received::Pdu(Pdu::ReleaseRQ) => {
                association.send(&Pdu::ReleaseRP).await?;
                return Ok(());
            }
            Received::Pdu(Pdu::AbortRQ { .. }) => return Ok(()),
            Received::Pdu(other) => anyhow::bail!("unexpected PDU: {other:?}"),
        }
    }
}

type ServerAssociation = dicom_ul::association::server::AsyncServerAssociation<TcpStream>;

/// Answers a worklist C-FIND: one pending response per matching order of the node's tenant,
/// then the final status; a C-CANCEL from the modality stops the answers.
async fn worklist_find(
    app: &App,
    association: &mut ServerAssociation,
    reader: &mut PduReader,
    command_bytes: &mut Vec<u8>,
    tenant: &str,
    transfer_syntax: &str,
    request: Collecting,
) -> anyhow::Result<()> {
    let Collecting { command, context_id, bytes } = request;
    let identifier = match worklist::read_identifier(&bytes, transfer_syntax) {
        Ok(identifier) => identifier,
        Err(e) => {
            let rsp =
                dimse::response(field::C_FIND_RSP, &command, status::IDENTIFIER_DOES_NOT_MATCH, false, Some(&e.to_string()));
            return send_command(association, context_id, rsp).await;
        }
    };
    let query = worklist::query_of(&identifier);
    let matches = match crate::db::worklist::find(app.db.reader(), tenant, &query, worklist::MAX_MATCHES).await {
        Ok(matches) => matches,
        Err(e) => {
            tracing::error!(tenant, error = %e, "worklist query failed");
            let rsp = dimse::response(field::C_FIND_RSP, &command, status::OUT_OF_RESOURCES, false, Some("worklist unavailable"));
            return send_command(association, context_id, rsp).await;
        }
    };
    tracing::debug!(tenant, ?query, matches = matches.len(), "worklist query");
    if matches.len() as u32 == worklist::MAX_MATCHES {
        tracing::warn!(tenant, ?query, "worklist query answered with the first {} matches only", worklist::MAX_MATCHES);
    }
    for (order, patient) in &matches {
        if cancelled(association, reader, command_bytes, command.message_id).await? {
            let rsp = dimse::response(field::C_FIND_RSP, &command, status::CANCEL, false, None);
            return send_command(association, context_id, rsp).await;
        }
        let data = worklist::write_identifier(&worklist::answer(order, patient), transfer_syntax)?;
        let rsp = dimse::response(field::C_FIND_RSP, &command, status::PENDING, true, None);
        send_command(association, context_id, rsp).await?;
        let mut writer = association.send_pdata(context_id);
        writer.write_all(&data).await?;
        writer.finish().await?;
    }
    let rsp = dimse::response(field::C_FIND_RSP, &command, status::SUCCESS, false, None);
    send_command(association, context_id, rsp).await
}

/// True when the peer has sent a C-CANCEL for the request `message_id` (checked without waiting;
/// a command arriving in parts gathers in `command_bytes`, where the association's loop finds
/// what is left when the answers end).
async fn cancelled(
    association: &mut ServerAssociation,
    reader: &mut PduReader,
    command_bytes: &mut Vec<u8>,
    message_id: u16,
) -> anyhow::Result<bool> {
    // Reading is cancel safe: bytes already read stay in the reader's buffer.
    let Some(received) = reader.next(association.inner_stream()).now_or_never() else { return Ok(false) };
    match received? {
        Received::Value { command: true, bytes, end, .. } => {
            command_bytes.extend_from_slice(bytes);
            if !end {
                return Ok(false);
            }
            let command = dimse::parse_command(&std::mem::take(command_bytes));
            Ok(command.is_ok_and(|c| c.field == field::C_CANCEL_RQ && c.responding_to == message_id))
        }
        Received::Value { command: false, .. } => anyhow::bail!("a data set during a C-FIND"),
        Received::Pdu(Pdu::AbortRQ { .. }) => anyhow::bail!("association aborted during a C-FIND"),
        Received::Pdu(other) => anyhow::bail!("unexpected PDU during a C-FIND: {other:?}"),
    }
}

async fn send_command(association: &mut ServerAssociation, context_id: u8, bytes: Vec<u8>) -> anyhow::Result<()> {
    let pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: context_id,
            value_type: PDataValueType::Command,
            is_last: true,
            data: bytes,
        }],
    };
    association.send(&pdu).await?;
    Ok(())
}

/// Opens the staging file of a C-STORE and writes its Part-10 preamble and file meta.
fn begin_store(app: &App, command: Command, context_id: u8, transfer_syntax: &str, calling: &str) -> anyhow::Result<Incoming> {
    let storage = app.ingest.storage();
    let mut file = storage.stage(storage.default_medium())?;
    let mut writer = file.writer(Algorithm::Xxh3)?;
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(command.sop_class_uid.as_str())
        .media_storage_sop_instance_uid(command.sop_instance_uid.as_str())
        .transfer_syntax(transfer_syntax)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION)
        .source_application_entity_title(calling)
        .build()?;
    let mut head = vec![0u8; 128];
    head.extend_from_slice(b"DICM");
    meta.write(&mut head)?;
    writer.write_all(&head)?;
    Ok(Incoming { command, context_id, file, writer })
}

/// Completes a C-STORE: sync the staged file, read its header, check its data set is whole and
/// place it (in one trip to a blocking thread), register it, and build the response: 0xC000 for
/// a data set that does not parse to its end, 0xA900 for pixel data that does not match the
/// image, with nothing stored.
async fn finish_store(app: &App, tenant: &str, calling: &str, done: Incoming) -> Vec<u8> {
    let Incoming { command, writer, file, .. } = done;
    let (storage, owner) = (app.ingest.storage().clone(), tenant.to_owned());
    let finished = tokio::task::spawn_blocking(move || {
        let path = file.path().to_owned();
        // Checked (header read, data set walked) and placed while the file's pages are cached.
        let placed = writer
            .finish_then(|size, digest| PlacedInstance::place(&storage, &owner, StagedInstance::completed(file, size, digest)));
        placed.map_err(|source| IngestError::Storage(StorageError::Io { path, source }))?
    })
    .await
    .unwrap_or_else(|e| Err(IngestError::Database(format!("staging task failed: {e}"))));
    let stored = match finished {
        Ok(placed) => app.ingest.store_placed(tenant, calling, placed).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(outcome) => {
            app.deliver_events(tenant, outcome.events);
            dimse::response(field::C_STORE_RSP, &command, status::SUCCESS, false, None)
        }
        Err(e) => {
            let code = match &e {
                IngestError::Damaged { damage: Damage::PixelData(_), .. } => status::DATA_SET_DOES_NOT_MATCH,
                IngestError::Invalid(_) | IngestError::Damaged { .. } => status::CANNOT_UNDERSTAND,
                IngestError::Conflict(_) => status::CANNOT_UNDERSTAND,
                IngestError::Storage(_) | IngestError::Database(_) => status::OUT_OF_RESOURCES,
            };
            tracing::warn!(tenant, calling, sop = %command.sop_instance_uid, error = %e, "C-STORE refused");
            // The peer learns what was wrong with its instance, not where this server keeps files.
            let comment = match &e {
                IngestError::Storage(_) => "storage failure".to_owned(),
                IngestError::Database(_) => "database failure".to_owned(),
                other => other.to_string(),
            };
            dimse::response(field::C_STORE_RSP, &command, code, false, Some(&comment))
        }
    }
}
