//! C-STORE and C-ECHO with real DICOM peers (dcmtk's storescu/echoscu, and a dicom-ul client
//! that drops the connection half way): every accepted transfer syntax is archived unchanged,
//! unknown nodes are refused, re-sends change nothing, and a broken store leaves nothing.

use std::path::{Path, PathBuf};

use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use sqlx::Row;
use wasmpacs_tests::commit_cut::CommitCut;
use wasmpacs_tests::{
    Backend, NODE_A, NODE_B, Options, SERVER_AE, TestServer, on_both_backends, postgres_admin_url, testset, transfer_syntax_of,
};

on_both_backends!(
    every_transfer_syntax_is_archived_unchanged,
    the_same_instances_sent_at_once_are_stored_once,
    study_totals_follow_what_several_associations_store,
    unknown_nodes_are_refused,
    a_dropped_store_leaves_nothing,
    the_storage_check_finds_what_is_missing_damaged_or_unnamed
);

/// The bytes of a Part-10 file after its meta group.
fn data_set_bytes(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[128..132], b"DICM", "{} is Part-10", path.display());
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    bytes[144 + group_length..].to_vec()
}

/// Every top-level element but group lengths and trailing padding: tag and a digest of its value (sequences by item
/// count, encapsulated pixel data by its fragments).
fn elements(path: &Path) -> Vec<(String, String)> {
    use dicom_core::value::Value;
    let object = dicom_object::open_file(path).unwrap();
    object
        .iter()
        .filter(|e| e.header().tag.element() != 0x0000 && e.header().tag != dicom_core::Tag(0xFFFC, 0xFFFC))
        .map(|e| {
            let value = match e.value() {
                // Text as text (senders may re-pad it), binary by a sum of its bytes.
                Value::Primitive(p) if p.to_str().is_ascii() => p.to_str().trim_end_matches(['\0', ' ']).to_owned(),
                Value::Primitive(p) => format!("{:?}", p.to_bytes().iter().map(|b| *b as u64).sum::<u64>()),
                Value::Sequence(seq) => format!("{} items", seq.items().len()),
                Value::PixelSequence(px) => {
                    format!("{} fragments, {} bytes", px.fragments().len(), px.fragments().iter().map(|f| f.len()).sum::<usize>())
                }
            };
            (format!("{}", e.header().tag), value)
        })
        .collect()
}

fn sop_instance_uid(path: &Path) -> String {
    let object = dicom_object::OpenFileOptions::new().read_until(dicom_dictionary_std::tags::PIXEL_DATA).open_file(path).unwrap();
    object.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0').to_owned()
}

async fn rows(s: &TestServer, sql: &str) -> Vec<(String, String)> {
    let pool = s.connect_db().await;
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.iter().map(|r| (r.try_get::<String, _>(0).unwrap(), r.try_get::<String, _>(1).unwrap())).collect()
}

async fn every_transfer_syntax_is_archived_unchanged(backend: Backend) {
    let s = TestServer::start(backend).await;
    let files = testset();
    let syntaxes: std::collections::BTreeSet<String> = files.iter().map(|f| transfer_syntax_of(f)).collect();
    for required in [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
    ] {
        assert!(syntaxes.contains(required), "the sample set covers {required}");
    }
    let (ok, output) = s.storescu(NODE_A, &files).await;
    assert!(ok, "{output}");

    // Every instance is archived once, for tenant alpha, in the transfer syntax it was sent in,
    // with its data set byte for byte.
    let stored =
        rows(&s, "SELECT sop_instance_uid, transfer_syntax FROM instances WHERE tenant = 'alpha' ORDER BY sop_instance_uid")
            .await;
    assert_eq!(stored.len(), files.len(), "{output}");
    let archived = s.archived_files();
    assert_eq!(archived.len(), files.len());
    for file in &files {
        let uid = sop_instance_uid(file);
        let (_, ts) = stored.iter().find(|(u, _)| *u == uid).unwrap_or_else(|| panic!("{uid} stored"));
        assert_eq!(*ts, transfer_syntax_of(file), "{}", file.display());
        let copy =
            archived.iter().find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{uid}_"))).expect("file");
        // storescu re-encodes what it sends (drops group lengths, deflates anew), so compare
        // element by element rather than byte by byte.
        let (stored_elements, sent_elements) = (elements(copy), elements(file));
        let differing: Vec<_> = stored_elements.iter().filter(|e| !sent_elements.contains(e)).collect();
        assert!(stored_elements == sent_elements, "{} archived with its content; differs: {differing:?}", file.display());
        assert_eq!(sop_instance_uid(copy), uid);
    }
    assert!(s.staging_is_empty());

    // A re-send is a success that changes nothing.
    let before = std::fs::metadata(&archived[0]).unwrap().modified().unwrap();
    let (ok, output) = s.storescu(NODE_A, &files[..3]).await;
    assert!(ok, "{output}");
    assert_eq!(rows(&s, "SELECT sop_instance_uid, tenant FROM instances").await.len(), files.len());
    assert_eq!(std::fs::metadata(&archived[0]).unwrap().modified().unwrap(), before);

    // Several associations at once, another tenant's node: beta gets its own copies.
    let halves: Vec<Vec<PathBuf>> = files.chunks(files.len() / 4 + 1).map(|c| c.to_vec()).collect();
    let sends = futures::future::join_all(halves.iter().map(|chunk| s.storescu(NODE_B, chunk))).await;
    assert!(sends.iter().all(|(ok, _)| *ok), "{sends:?}");
    let beta = rows(&s, "SELECT sop_instance_uid, tenant FROM instances WHERE tenant = 'beta'").await;
    assert_eq!(beta.len(), files.len());
    assert_eq!(s.archived_files().len(), 2 * files.len());

    // The study events feed saw each study arrive.
    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    let studies: std::collections::BTreeSet<_> =
        rows(&s, "SELECT study_uid, tenant FROM studies WHERE tenant = 'alpha'").await.into_iter().map(|r| r.0).collect();
    let received: std::collections::BTreeSet<_> = events
        .iter()
        .filter(|e| e["eventType"] == "STUDY_RECEIVED")
        .map(|e| e["studyInstanceUid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(received, studies);
    s.stop().await;
}

/// Four associations send the same instances at the same moment, so that copies of one instance
/// meet in one group commit: each instance is stored once, every send succeeds, the copies of
/// the re-sends are gone, and each row's file is there, with the digest the row records.
async fn the_same_instances_sent_at_once_are_stored_once(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let files = testset();
    let sends = futures::future::join_all((0..4).map(|_| s.storescu(NODE_A, &files))).await;
    assert!(sends.iter().all(|(ok, _)| *ok), "{sends:?}");
    let stored = rows(&s, "SELECT sop_instance_uid, digest FROM instances WHERE tenant = 'alpha'").await;
    assert_eq!(stored.len(), files.len());
    let archived = s.archived_files();
    assert_eq!(archived.len(), files.len(), "one file per instance: {archived:?}");
    assert!(s.staging_is_empty());
    for (uid, digest) in &stored {
        // The row records the copy that was kept, whichever of the copies the database took.
        let file = s.stored_file("alpha", uid).await;
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{uid}: the file its row records: {e}"));
        assert_eq!(*digest, format!("xxh3-128:{:032x}", twox_hash::XxHash3_128::oneshot(&bytes)), "{uid}");
    }
    s.stop().await;
}

/// Instances of a few series arrive over four associations at once, so that most are committed
/// in groups into series that exist already: each study's size is the sum of its files, its
/// series are counted once, each study and series is announced once, and sending it all again
/// changes none of that.
async fn study_totals_follow_what_several_associations_store(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    // 2 studies of 2 series, 48 instances of 160x160.
    let files = wasmpacs_tests::generate_cts(
        dir.path(),
        &["-n", "48", "--studies", "2", "--series-per-study", "2", "--rows", "160", "--cols", "160"],
    );
    assert_eq!(files.len(), 48);
    let shares: Vec<Vec<PathBuf>> = files.chunks(12).map(|c| c.to_vec()).collect();
    for _ in 0..2 {
        let sends = futures::future::join_all(shares.iter().map(|share| s.storescu(NODE_A, share))).await;
        assert!(sends.iter().all(|(ok, _)| *ok), "{sends:?}");
        let stored = rows(&s, "SELECT sop_instance_uid, file_path FROM instances WHERE tenant = 'alpha'").await;
        assert_eq!(stored.len(), files.len());
        assert_eq!(s.archived_files().len(), files.len(), "a re-send leaves no copy");
        let totals = rows(
            &s,
            "SELECT st.study_uid, CAST(st.size_bytes AS TEXT) || ' ' || CAST(st.series_count AS TEXT) || ' ' || \
             CAST((SELECT SUM(i.size_bytes) FROM instances i JOIN series se ON se.id = i.series_fk WHERE se.study_fk = st.id) AS TEXT) \
             FROM studies st WHERE st.tenant = 'alpha'",
        )
        .await;
        assert_eq!(totals.len(), 2, "{totals:?}");
        for (study, figures) in &totals {
            let figures: Vec<i64> = figures.split(' ').map(|f| f.parse().unwrap()).collect();
            let instances = rows(
                &s,
                &format!(
                    "SELECT i.sop_instance_uid, i.tenant FROM instances i JOIN series se ON se.id = i.series_fk \
                     JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = '{study}'"
                ),
            )
            .await;
            assert_eq!(instances.len(), files.len() / 2);
            let mut on_disk = 0;
            for (uid, tenant) in &instances {
                on_disk += std::fs::metadata(s.stored_file(tenant, uid).await).unwrap().len() as i64;
            }
            assert_eq!(figures, vec![on_disk, 2, on_disk], "study {study}: size, series, sum of its instances");
        }
        let events = s.events_as(wasmpacs_tests::KEY_A).await;
        let count = |kind: &str| events.iter().filter(|e| e["eventType"] == kind).count();
        assert_eq!((count("STUDY_RECEIVED"), count("SERIES_RECEIVED")), (2, 4), "{events:?}");
    }
    s.stop().await;
}

async fn unknown_nodes_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let files = testset();
    let (ok, output) = s.storescu("STRANGER", &files[..1]).await;
    assert!(!ok, "an unknown calling AE is refused: {output}");
    assert!(output.contains("Calling AE Title Not Recognized"), "{output}");
    // The right node calling the wrong AE title is refused too.
    let output = tokio::process::Command::new("storescu")
        .env("TCP_NODELAY", "1")
        .args(["-aet", NODE_A, "-aec", "SOMEONE_ELSE", "127.0.0.1", &s.dicom_port.to_string()])
        .arg(&files[0])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(s.archived_files().is_empty());
    // C-ECHO from a node works.
    let echo = tokio::process::Command::new("echoscu")
        .args(["-aet", NODE_A, "-aec", SERVER_AE, "127.0.0.1", &s.dicom_port.to_string()])
        .output()
        .await
        .unwrap();
    assert!(echo.status.success(), "{}", String::from_utf8_lossy(&echo.stderr));
    s.stop().await;
}

async fn a_dropped_store_leaves_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let file = testset().into_iter().find(|f| transfer_syntax_of(f) == "1.2.840.10008.1.2.1").unwrap();
    let data = data_set_bytes(&file);
    let uid = sop_instance_uid(&file);
    let mut association = ClientAssociationOptions::new()
        .calling_ae_title(NODE_A)
        .called_ae_title(SERVER_AE)
        .with_presentation_context("1.2.840.10008.5.1.4.1.1.2", vec!["1.2.840.10008.1.2.1"])
        .establish_with_async(&format!("127.0.0.1:{}", s.dicom_port))
        .await
        .expect("association");
    let context = association.presentation_contexts()[0].id;
    let command = store_command(&uid);
    association
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        })
        .await
        .unwrap();
    // Half the data set, then the connection goes away.
    association
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Data,
                is_last: false,
                data: data[..data.len() / 2].to_vec(),
            }],
        })
        .await
        .unwrap();
    // The server is writing the instance to a staging file...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.staging_is_empty() {
        assert!(std::time::Instant::now() < deadline, "no staging file for the instance being received");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // ...when the connection goes away. Wait until the server has noticed and cleaned up.
    drop(association);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s.staging_is_empty() {
        assert!(std::time::Instant::now() < deadline, "staging file left behind");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(s.archived_files().is_empty());
    assert!(rows(&s, "SELECT sop_instance_uid, tenant FROM instances").await.is_empty());
    // The same instance sent whole afterwards is stored.
    let (ok, output) = s.storescu(NODE_A, &[file]).await;
    assert!(ok, "{output}");
    assert_eq!(s.archived_files().len(), 1);
    assert!(s.staging_is_empty(), "a staging file left after the instance was stored");
    s.stop().await;
}

/// Sends `file` with `storescu -v`, which prints the status of each response; its output.
async fn storescu_verbose(s: &TestServer, file: &Path) -> String {
    let output = tokio::process::Command::new("storescu")
        .env("TCP_NODELAY", "1")
        .args(["-v", "-aet", NODE_A, "-aec", SERVER_AE, "127.0.0.1"])
        .arg(s.dicom_port.to_string())
        .arg(file)
        .output()
        .await
        .expect("storescu runs (apt-get install dcmtk)");
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// PostgreSQL: the answer to an ingest unit's COMMIT is lost (a proxy passes the COMMIT on and
/// cuts the connection before the answer). The instance is answered with a failure, since the
/// server cannot know it is stored, but its file stays: its row was committed, and the archive
/// stays whole. Sent again, it is a success that changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_keeps_the_file_its_row_may_name() {
    let admin = reqwest::Url::parse(&postgres_admin_url()).unwrap();
    let cut = CommitCut::start(format!("{}:{}", admin.host_str().unwrap(), admin.port().unwrap_or(5432))).await;
    let mut options = Options::new(Backend::Postgres);
    options.postgres_port = Some(cut.port);
    let s = TestServer::start_with(options).await.expect("server starts");
    let file = testset().into_iter().find(|f| transfer_syntax_of(f) == "1.2.840.10008.1.2.1").unwrap();
    let uid = sop_instance_uid(&file);

    cut.arm();
    let output = storescu_verbose(&s, &file).await;
    assert_eq!(cut.cuts(), 1, "the COMMIT was cut: {output}");
    assert!(output.contains("Received Store Response (Refused"), "the instance is answered with a failure: {output}");
    let stored = rows(&s, &format!("SELECT sop_instance_uid, tenant FROM instances WHERE sop_instance_uid = '{uid}'")).await;
    assert_eq!(stored.len(), 1, "the COMMIT reached the database");
    assert_eq!(s.archived_files().len(), 1, "the file its row names stays");
    let (code, report) = s.check(&[]);
    assert_eq!(code, 0, "the archive is whole: {report}");

    // Sent again: a success that changes nothing.
    let output = storescu_verbose(&s, &file).await;
    assert!(output.contains("Received Store Response (Success)"), "{output}");
    assert_eq!(rows(&s, "SELECT sop_instance_uid, tenant FROM instances").await.len(), 1);
    assert_eq!(s.archived_files().len(), 1);
    let (code, report) = s.check(&["--grace-minutes", "0"]);
    assert_eq!((code, report["orphans"]["count"].as_u64()), (0, Some(0)), "{report}");
    s.stop().await;
}

/// `wasmpacs check`, run beside the server: a whole archive passes; then a missing file, a file
/// with a byte changed, one cut short, files no row names and a file not of the archive's layout
/// are each found for what they are; the unnamed files are left alone within the grace period
/// and set aside (not deleted) past it; nothing else is touched.
async fn the_storage_check_finds_what_is_missing_damaged_or_unnamed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files = wasmpacs_tests::generate_cts(
        dir.path(),
        &["-n", "4", "--studies", "1", "--series-per-study", "1", "--rows", "160", "--cols", "160"],
    );
    let (ok, output) = s.storescu(NODE_A, &files).await;
    assert!(ok, "{output}");

    let (code, report) = s.check(&["--verify-digests"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        (report["rows_checked"].as_u64(), report["files_checked"].as_u64(), report["digests_verified"].as_u64()),
        (Some(4), Some(4), Some(4))
    );
    for kind in ["missing", "wrong_size", "damaged", "unreadable", "orphans", "foreign", "unlisted"] {
        assert_eq!(report[kind]["count"], 0, "{kind}: {report:#}");
    }

    let mut stored = rows(&s, "SELECT sop_instance_uid, file_path FROM instances WHERE tenant = 'alpha'").await;
    stored.sort();
    let path_of = |relative: &str| s.data_dir.path().join("archive").join(relative);
    let [(gone, gone_path), (changed, changed_path), (cut, cut_path), (_, whole_path)] = stored.as_slice() else {
        panic!("{stored:?}")
    };
    std::fs::remove_file(path_of(gone_path)).unwrap();
    let mut bytes = std::fs::read(path_of(changed_path)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(path_of(changed_path), &bytes).unwrap();
    let cut_bytes = std::fs::read(path_of(cut_path)).unwrap();
    std::fs::write(path_of(cut_path), &cut_bytes[..cut_bytes.len() - 1]).unwrap();
    let whole = std::fs::read(path_of(whole_path)).unwrap();
    let folder = Path::new(whole_path).parent().unwrap();
    let unnamed = [folder.join("9.9.8_left-by-a-crash.dcm"), folder.join("9.9.9_left-by-a-crash.dcm")];
    for file in &unnamed {
        std::fs::write(path_of(file.to_str().unwrap()), &whole).unwrap();
    }
    std::fs::write(s.data_dir.path().join("archive/notes.txt"), b"not the archive's").unwrap();

    // Files no row names that changed within the grace period may be being committed: counted,
    // not touched.
    let (code, report) = s.check(&["--verify-digests", "--set-aside-orphans"]);
    assert_eq!(code, 1, "{report:#}");
    let listed = |kind: &str| -> Vec<String> {
        report[kind]["listed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["sop_instance_uid"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(listed("missing"), [gone.as_str()], "{report:#}");
    assert_eq!(listed("damaged"), [changed.as_str()], "{report:#}");
    assert_eq!(listed("wrong_size"), [cut.as_str()], "{report:#}");
    assert_eq!(report["unreadable"]["count"], 0);
    assert_eq!((report["orphans"]["count"].as_u64(), report["unnamed_recent"].as_u64()), (Some(0), Some(2)), "{report:#}");
    assert_eq!(report["foreign"]["listed"], serde_json::json!(["default:notes.txt"]), "{report:#}");
    assert!(unnamed.iter().all(|file| path_of(file.to_str().unwrap()).exists()));

    // Past the grace period they are orphans, set aside whole, not deleted; nothing else moves.
    let (code, report) = s.check(&["--set-aside-orphans", "--grace-minutes", "0"]);
    assert_eq!(code, 1, "{report:#}");
    let mut orphans: Vec<String> =
        report["orphans"]["listed"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_owned()).collect();
    orphans.sort();
    assert_eq!(orphans, unnamed.iter().map(|file| format!("default:{}", file.display())).collect::<Vec<_>>(), "{report:#}");
    assert_eq!(report["orphans_set_aside"].as_u64(), Some(2), "{report:#}");
    for file in &unnamed {
        assert!(!path_of(file.to_str().unwrap()).exists());
        assert_eq!(std::fs::read(s.data_dir.path().join("archive/.orphans").join(file)).unwrap(), whole);
    }
    assert_eq!(std::fs::read(path_of(whole_path)).unwrap(), whole);
    assert!(s.data_dir.path().join("archive/notes.txt").exists());
    // The set-aside folder is not checked again.
    let (_, again) = s.check(&["--grace-minutes", "0"]);
    assert_eq!((again["orphans"]["count"].as_u64(), again["files_checked"].as_u64()), (Some(0), Some(4)), "{again:#}");
    s.stop().await;
}

/// A C-STORE-RQ command set (implicit VR little endian) for a CT instance.
fn store_command(sop_instance_uid: &str) -> Vec<u8> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let pad = |s: &str| if s.len() % 2 == 1 { format!("{s}\0") } else { s.to_owned() };
    let object = dicom_object::InMemDicomObject::from_element_iter([
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(pad("1.2.840.10008.5.1.4.1.1.2"))),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(0x0001u16)),
        DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::PRIORITY, VR::US, PrimitiveValue::from(0u16)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(0x0000u16)),
        DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(pad(sop_instance_uid))),
    ]);
    let mut body = Vec::new();
    object
        .write_dataset_with_ts(&mut body, &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .unwrap();
    let mut out = vec![0, 0, 0, 0, 4, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}
