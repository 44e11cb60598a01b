//! The study lifecycle through HTTP, on studies received from a real `storescu`: series and
//! study deprecation (by UID, container identifier, accession number) with every status of the
//! seed, and relocation to another physical medium, which moves every file whole, removes the old
//! copies once due (across a restart too), and leaves the study where it was when a stored file
//! turns out damaged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmpacs_tests::{Backend, KEY_A, KEY_B, NODE_A, Options, TestServer, on_both_backends, sample, uids};

on_both_backends!(
    series_deprecation_follows_the_seed,
    series_deprecated_at_once_leave_true_totals,
    study_deprecation_follows_the_seed,
    relocation_moves_every_file_whole,
    relocations_of_one_study_at_once_leave_no_stray_copy,
    relocation_refuses_damaged_files_and_bad_targets,
    old_copies_outlive_a_stop_and_go_once_due,
);

/// A copy of `source` with `(tag, value)` pairs set by dcmodify.
fn modified(source: &Path, changes: &[(&str, &str)], dir: &Path) -> PathBuf {
    let target = dir.join(source.file_name().unwrap());
    std::fs::copy(source, &target).unwrap();
    let mut command = std::process::Command::new("dcmodify");
    command.arg("-nb");
    for (tag, value) in changes {
        command.args(["-i", &format!("{tag}={value}")]);
    }
    assert!(command.arg(&target).status().expect("dcmodify runs (apt-get install dcmtk)").success());
    target
}

/// Stores four studies with `storescu`: the CT (two instances, one series, accession ACC-CT),
/// the MR (container CASE-MR), and two more sharing the accession number ACC-DUP and the
/// container identifier CASE-DUP. Returns the files sent, by name.
async fn store_samples(s: &TestServer, dir: &Path) -> BTreeMap<&'static str, PathBuf> {
    let files = BTreeMap::from([
        ("ct", modified(&sample("ele_ct16_CT_small.dcm"), &[("(0008,0050)", "ACC-CT")], dir)),
        ("ct2", modified(&sample("jpegll70_ct16_CT_small_dcmcjpeg.dcm"), &[("(0008,0050)", "ACC-CT")], dir)),
        ("mr", modified(&sample("ele_mr16_examples_overlay.dcm"), &[("(0040,0512)", "CASE-MR")], dir)),
        (
            "dose",
            modified(
                &sample("ile_rtdose32_15frames_rtdose.dcm"),
                &[("(0008,0050)", "ACC-DUP"), ("(0040,0512)", "CASE-DUP")],
                dir,
            ),
        ),
        (
            "rgb",
            modified(&sample("j2k91_rgb_SC_rgb_gdcm_KY.dcm"), &[("(0008,0050)", "ACC-DUP"), ("(0040,0512)", "CASE-DUP")], dir),
        ),
    ]);
    let (ok, output) = s.storescu(NODE_A, &files.values().cloned().collect::<Vec<_>>()).await;
    assert!(ok, "{output}");
    files
}

async fn count(s: &TestServer) -> i64 {
    let (status, body) = s.get("studies/count").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["study_count"].as_i64().expect("study_count")
}

async fn qido_series(s: &TestServer, series_uid: &str) -> usize {
    let (status, body) = s.get(&format!("rs/series?SeriesInstanceUID={series_uid}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().map(Vec::len).unwrap_or(0)
}

async fn qido_study(s: &TestServer, study_uid: &str) -> usize {
    let (status, body) = s.get(&format!("rs/studies?StudyInstanceUID={study_uid}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().map(Vec::len).unwrap_or(0)
}

/// POSTs text that need not be JSON, labelled as JSON.
async fn post_raw(s: &TestServer, path: &str, body: &str) -> (StatusCode, Value) {
    s.post_text(KEY_A, path, "application/json", body.to_owned()).await
}

/// Asserts a 400 whose message names `field`.
fn assert_bad(answer: (StatusCode, Value), field: &str) {
    let (status, body) = answer;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(field), "the 400 names `{field}`: {message}");
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["eventType"] == kind).collect()
}

/// Both series of each of several studies deprecated at once: each study is left with no
/// series and no bytes, and is no longer counted. A deprecation recomputes its study's totals;
/// computed from what it saw before another deprecation of the same study committed, they
/// would keep that other series.
async fn series_deprecated_at_once_leave_true_totals(backend: Backend) {
    const STUDIES: usize = 8;
    let mut s = TestServer::start(backend).await;
    let mut series = Vec::new();
    for n in 0..STUDIES {
        let study = format!("1.2.826.0.1.9.{n}");
        let pair = [format!("{study}.1"), format!("{study}.2")];
        s.seed_study("alpha", &format!("P-{n}"), &study, &[(&pair[0], 2), (&pair[1], 3)]).await;
        series.extend(pair);
    }
    assert_eq!(count(&s).await, STUDIES as i64);
    let requests: Vec<Value> =
        series.iter().map(|uid| json!({"seriesInstanceUid": uid, "author": "JaneDoe", "reason": "x"})).collect();
    let answers = futures::future::join_all(requests.iter().map(|r| s.post("series/deprecation", r))).await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK), "{answers:?}");
    assert_eq!(count(&s).await, 0, "no study has a series left");
    let left: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT study_uid, series_count, size_bytes FROM studies WHERE series_count <> 0 OR size_bytes <> 0")
            .fetch_all(&s.connect_db().await)
            .await
            .unwrap();
    assert!(left.is_empty(), "studies with totals left: {left:?}");
    s.stop().await;
}

async fn series_deprecation_follows_the_seed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files = store_samples(&s, dir.path()).await;
    let (mr_study, mr_series, _) = uids(&files["mr"]);
    let (ct_study, ct_series, _) = uids(&files["ct"]);
    assert_eq!(count(&s).await, 4);

    // Malformed requests: 400 naming what is wrong.
    assert_bad(post_raw(&s, "series/deprecation", "not json").await, "JSON");
    assert_bad(post_raw(&s, "series/deprecation", "[1, 2]").await, "JSON object");
    assert_bad(s.post("series/deprecation", &json!({"author": "JaneDoe", "reason": "Wrong series"})).await, "seriesInstanceUid");
    assert_bad(
        s.post(
            "series/deprecation",
            &json!({"seriesInstanceUid": mr_series, "containerIdentifier": "CASE-MR", "author": "JaneDoe", "reason": "Wrong series"}),
        )
        .await,
        "only one",
    );
    assert_bad(s.post("series/deprecation", &json!({"seriesInstanceUid": mr_series, "reason": "Wrong series"})).await, "author");
    assert_bad(s.post("series/deprecation", &json!({"seriesInstanceUid": mr_series, "author": "JaneDoe"})).await, "reason");
    assert_bad(
        s.post("series/deprecation", &json!({"seriesInstanceUid": mr_series, "author": 7, "reason": "x"})).await,
        "author",
    );
    assert_bad(
        s.post("series/deprecation", &json!({"seriesInstanceUid": "", "author": "JaneDoe", "reason": "x"})).await,
        "seriesInstanceUid",
    );

    // Unknown series, another tenant's series: 404.
    let (status, body) =
        s.post("series/deprecation", &json!({"seriesInstanceUid": "1.2.3.4.5", "author": "JaneDoe", "reason": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s
        .post_as(KEY_B, "series/deprecation", &json!({"seriesInstanceUid": mr_series, "author": "JaneDoe", "reason": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "tenant B cannot see tenant A's series: {body}");
    // A container identifier shared by two series: 409; unknown: 404.
    let (status, body) =
        s.post("series/deprecation", &json!({"containerIdentifier": "CASE-DUP", "author": "JaneDoe", "reason": "x"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) =
        s.post("series/deprecation", &json!({"containerIdentifier": "CASE-NONE", "author": "JaneDoe", "reason": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(count(&s).await, 4, "refused requests change nothing");

    // By UID: 200 with the seed's body; the series is hidden and its study (no series left)
    // is no longer counted.
    let request = json!({"seriesInstanceUid": ct_series, "author": "JaneDoe", "reason": "Wrong series"});
    let (status, body) = s.post("series/deprecation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"message": "deprecation successful", "request": request}));
    assert_eq!(qido_series(&s, &ct_series).await, 0);
    assert_eq!(count(&s).await, 3);
    // Again: 409.
    let (status, body) = s.post("series/deprecation", &request).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // By container identifier.
    assert_eq!(qido_series(&s, &mr_series).await, 1);
    let request = json!({"containerIdentifier": "CASE-MR", "author": "JohnDoe", "reason": "Wrong slide"});
    let (status, body) = s.post("series/deprecation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request"], request);
    assert_eq!(qido_series(&s, &mr_series).await, 0);
    assert_eq!(count(&s).await, 2);

    // Recorded in the feed with author and reason.
    let events = s.events_as(KEY_A).await;
    let deprecated = events_of(&events, "SERIES_DEPRECATED");
    assert_eq!(deprecated.len(), 2, "{events:?}");
    assert_eq!(deprecated[0]["studyInstanceUid"], json!(ct_study));
    assert_eq!(deprecated[0]["detail"], json!({"seriesInstanceUid": ct_series, "author": "JaneDoe", "reason": "Wrong series"}));
    assert_eq!(deprecated[1]["studyInstanceUid"], json!(mr_study));
    assert!(s.events_as(KEY_B).await.is_empty());

    // A series of a deprecated study: 409.
    let (dose_study, dose_series, _) = uids(&files["dose"]);
    let (status, _) = s.post("studies/deprecation", &json!({"studyInstanceUid": dose_study, "author": "a", "reason": "b"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        s.post("series/deprecation", &json!({"seriesInstanceUid": dose_series, "author": "a", "reason": "b"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    s.stop().await;
}

async fn study_deprecation_follows_the_seed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files = store_samples(&s, dir.path()).await;
    let (ct_study, _, _) = uids(&files["ct"]);
    let (mr_study, _, _) = uids(&files["mr"]);

    assert_bad(s.post("studies/deprecation", &json!({"author": "JaneDoe", "reason": "Wrong study"})).await, "studyInstanceUid");
    assert_bad(
        s.post(
            "studies/deprecation",
            &json!({"studyInstanceUid": ct_study, "accessionNumber": "ACC-CT", "author": "a", "reason": "b"}),
        )
        .await,
        "only one",
    );
    assert_bad(s.post("studies/deprecation", &json!({"accessionNumber": "ACC-CT", "reason": "b"})).await, "author");
    assert_bad(s.post("studies/deprecation", &json!({"accessionNumber": "ACC-CT", "author": "a"})).await, "reason");
    let (status, _) =
        s.post("studies/deprecation", &json!({"studyInstanceUid": "1.2.3.4.5", "author": "a", "reason": "b"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.post("studies/deprecation", &json!({"accessionNumber": "ACC-NONE", "author": "a", "reason": "b"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) =
        s.post("studies/deprecation", &json!({"accessionNumber": "ACC-DUP", "author": "a", "reason": "b"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "two studies have ACC-DUP: {body}");
    assert_eq!(count(&s).await, 4);

    // By accession number: the answer echoes the accession number.
    let request = json!({"accessionNumber": "ACC-CT", "author": "JaneDoe", "reason": "Wrong study"});
    let (status, body) = s.post("studies/deprecation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"message": "deprecation successful", "request": request}));
    assert_eq!(qido_study(&s, &ct_study).await, 0);
    assert_eq!(count(&s).await, 3);
    let (status, body) = s.post("studies/deprecation", &request).await;
    assert_eq!(status, StatusCode::CONFLICT, "deprecated already: {body}");

    // The accession number given to a new study: it names the live study, not the deprecated one.
    let again = tempfile::tempdir().unwrap();
    let reused = modified(
        &sample("ele_ct16_CT_small.dcm"),
        &[
            ("(0020,000D)", "1.2.826.0.1.3680043.8.498.91"),
            ("(0020,000E)", "1.2.826.0.1.3680043.8.498.92"),
            ("(0008,0018)", "1.2.826.0.1.3680043.8.498.93"),
            ("(0008,0050)", "ACC-CT"),
        ],
        again.path(),
    );
    let (ok, output) = s.storescu(NODE_A, &[reused]).await;
    assert!(ok, "{output}");
    assert_eq!(count(&s).await, 4);
    let (status, body) = s.post("studies/deprecation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(qido_study(&s, "1.2.826.0.1.3680043.8.498.91").await, 0);
    assert_eq!(count(&s).await, 3);

    // By UID.
    let request = json!({"studyInstanceUid": mr_study, "author": "JaneDoe", "reason": "Wrong patient"});
    let (status, body) = s.post("studies/deprecation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request"], request);
    assert_eq!(qido_study(&s, &mr_study).await, 0);
    assert_eq!(count(&s).await, 2);
    // The instances of a deprecated study are no longer listed.
    let (status, body) = s.get(&format!("studyInstances?studyUid={mr_study}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let events = s.events_as(KEY_A).await;
    let deprecated = events_of(&events, "STUDY_DEPRECATED");
    assert_eq!(deprecated.len(), 3, "{events:?}");
    assert_eq!(deprecated[0]["studyInstanceUid"], json!(ct_study));
    assert_eq!(deprecated[0]["detail"], json!({"author": "JaneDoe", "reason": "Wrong study"}));
    assert_eq!(deprecated[1]["studyInstanceUid"], json!("1.2.826.0.1.3680043.8.498.91"));
    assert_eq!(deprecated[2]["studyInstanceUid"], json!(mr_study));
    // Files are kept.
    assert_eq!(s.archived_files().len(), 6);
    s.stop().await;
}

/// A server with a second medium, `nearline`, in `nearline`.
async fn with_nearline(backend: Backend, nearline: &Path) -> TestServer {
    with_media(backend, &[("nearline", nearline)], 0).await
}

/// A server with the physical `media` (name, folder) besides the default one, and
/// `[storage] relocation_keep_s = keep_s`.
async fn with_media(backend: Backend, media: &[(&str, &Path)], keep_s: u64) -> TestServer {
    let mut options = Options::new(backend);
    for (name, path) in media {
        options.extra_config += &format!("\n[[storage.medium]]\nname = \"{name}\"\npath = \"{}\"\n", path.display());
    }
    options.relocation_keep_s = keep_s;
    TestServer::start_with(options).await.expect("server starts")
}

/// The samples stored on the default medium, with the CT study's UID and files.
struct StoredCt {
    _samples: tempfile::TempDir,
    study: String,
    archive: PathBuf,
    /// Every stored file (see [`files_under`]), and those of the CT study.
    before: BTreeMap<String, Vec<u8>>,
    ct_files: BTreeMap<String, Vec<u8>>,
}

async fn store_ct(s: &TestServer) -> StoredCt {
    let samples = tempfile::tempdir().unwrap();
    let files = store_samples(s, samples.path()).await;
    let (study, _, _) = uids(&files["ct"]);
    let archive = s.data_dir.path().join("archive");
    let before = files_under(&archive);
    let ct_files = files_of_study(&before, &study);
    StoredCt { _samples: samples, study, archive, before, ct_files }
}

/// Every file under `root` (staging excluded), by relative path with the name's unique token left
/// out (`<folders>/<sop>.dcm`: every copy has a name of its own), with its bytes.
fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let without_token = |path: &Path| {
        let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let (folder, name) = relative.rsplit_once('/').unwrap();
        let (stem, extension) = name.rsplit_once('.').unwrap();
        format!("{folder}/{}.{extension}", stem.split_once('_').map_or(stem, |(sop, _)| sop))
    };
    let files: Vec<PathBuf> = wasmpacs_tests::files_under(root);
    let named: BTreeMap<String, Vec<u8>> = files.iter().map(|path| (without_token(path), std::fs::read(path).unwrap())).collect();
    assert_eq!(named.len(), files.len(), "one file per instance under {}", root.display());
    named
}

/// Waits (up to 10 s) until `condition` holds.
async fn eventually(condition: impl Fn() -> bool) {
    eventually_within(std::time::Duration::from_secs(10), condition).await
}

/// Waits until `condition` holds, for at most `limit`.
async fn eventually_within(limit: std::time::Duration, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "the condition never held");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The files among `files` (see [`files_under`]) of the study `study_uid`.
fn files_of_study(files: &BTreeMap<String, Vec<u8>>, study_uid: &str) -> BTreeMap<String, Vec<u8>> {
    files.iter().filter(|(path, _)| path.contains(study_uid)).map(|(path, bytes)| (path.clone(), bytes.clone())).collect()
}

fn staging_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join(".staging")).map(|d| d.count() == 0).unwrap_or(true)
}

/// Two relocations of one study to two media at once: both succeed, and once the old copies
/// are removed the study's files are on one medium and nowhere else. A relocation that pointed
/// the index at its copies over the other's, unaware of them, would leave the other's copies
/// named by no row and never removed.
async fn relocations_of_one_study_at_once_leave_no_stray_copy(backend: Backend) {
    let (nearline, farline) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = with_media(backend, &[("nearline", nearline.path()), ("farline", farline.path())], 0).await;
    let StoredCt { study: ct_study, archive, before, ct_files, .. } = store_ct(&s).await;
    let to = |medium: &str| json!({"studyInstanceUid": ct_study, "physicalMediumName": medium, "author": "JaneDoe"});
    let (near, far) = (to("nearline"), to("farline"));
    let (a, b) = tokio::join!(s.post("studies/relocation", &near), s.post("studies/relocation", &far));
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{a:?} {b:?}");
    eventually(|| files_under(&archive).len() == before.len() - ct_files.len()).await;
    eventually(|| {
        let (on_near, on_far) = (files_under(nearline.path()), files_under(farline.path()));
        (on_near == ct_files && on_far.is_empty()) || (on_far == ct_files && on_near.is_empty())
    })
    .await;
    let (code, report) = s.check(&[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["orphans"]["count"].as_u64(), Some(0), "{report}");
    s.stop().await;
}

async fn relocation_moves_every_file_whole(backend: Backend) {
    let nearline = tempfile::tempdir().unwrap();
    let s = with_nearline(backend, nearline.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let files = store_samples(&s, dir.path()).await;
    let (ct_study, _, ct_sop) = uids(&files["ct"]);
    let archive = s.data_dir.path().join("archive");
    let before = files_under(&archive);
    assert_eq!(before.len(), 5);
    let ct_files = files_of_study(&before, &ct_study);
    assert_eq!(ct_files.len(), 2);

    let request = json!({"studyInstanceUid": ct_study, "physicalMediumName": "nearline", "author": "JaneDoe"});
    let (status, body) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"message": "relocation successful", "request": request}));

    // The CT's two files are on nearline, byte for byte, and gone from the default medium (the
    // old copies are removed in the background once nothing points at them).
    assert_eq!(files_under(nearline.path()), ct_files);
    eventually(|| wasmpacs_tests::files_under(&archive).len() == 3).await;
    let after = files_under(&archive);
    assert_eq!(after.len(), 3);
    assert!(after.keys().all(|k| !k.contains(&ct_study)));
    assert!(staging_empty(nearline.path()) && staging_empty(&archive));
    // Served from its new place.
    let response =
        s.http.get(format!("{}/preview?objectUID={ct_sop}", s.base)).header("Authorization", KEY_A).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count(&s).await, 4, "a relocated study is still counted");

    // Again to the same medium: nothing to do.
    let (status, _) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(files_under(nearline.path()), ct_files);

    // Back to the default medium, by accession number.
    let request = json!({"accessionNumber": "ACC-CT", "physicalMediumName": "default", "author": "JohnDoe"});
    let (status, body) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request"], request);
    eventually(|| wasmpacs_tests::files_under(nearline.path()).is_empty()).await;
    assert_eq!(files_under(&archive), before);

    let events = s.events_as(KEY_A).await;
    let relocated = events_of(&events, "STUDY_RELOCATED");
    assert_eq!(relocated.len(), 2, "the no-op relocation records nothing: {events:?}");
    assert_eq!(relocated[0]["studyInstanceUid"], json!(ct_study));
    assert_eq!(relocated[0]["detail"]["physicalMediumName"], "nearline");
    assert_eq!(relocated[0]["detail"]["instances"], 2);
    assert_eq!(relocated[0]["detail"]["author"], "JaneDoe");
    s.stop().await;
}

async fn relocation_refuses_damaged_files_and_bad_targets(backend: Backend) {
    let nearline = tempfile::tempdir().unwrap();
    let s = with_nearline(backend, nearline.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let files = store_samples(&s, dir.path()).await;
    let (mr_study, _, _) = uids(&files["mr"]);
    let archive = s.data_dir.path().join("archive");

    let base = |extra: Value| {
        let mut request = json!({"studyInstanceUid": mr_study, "author": "JaneDoe"});
        request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        request
    };
    assert_bad(s.post("studies/relocation", &json!({"studyInstanceUid": mr_study, "author": "a"})).await, "physicalMediumName");
    assert_bad(
        s.post("studies/relocation", &base(json!({"physicalMediumName": "nearline", "bucketName": "online-bucket"}))).await,
        "only one",
    );
    assert_bad(
        s.post("studies/relocation", &json!({"studyInstanceUid": mr_study, "physicalMediumName": "nearline"})).await,
        "author",
    );
    assert_bad(s.post("studies/relocation", &json!({"physicalMediumName": "nearline", "author": "a"})).await, "studyInstanceUid");
    // No such medium: 404; no bucket configured: 409 (bucket error).
    let (status, body) = s.post("studies/relocation", &base(json!({"physicalMediumName": "tape"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap().contains("tape"));
    let (status, body) = s.post("studies/relocation", &base(json!({"bucketName": "online-bucket"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains("bucket"));
    // Several studies with the accession number: 409; unknown study: 404.
    let (status, _) = s
        .post("studies/relocation", &json!({"accessionNumber": "ACC-DUP", "physicalMediumName": "nearline", "author": "a"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = s
        .post("studies/relocation", &json!({"studyInstanceUid": "1.2.3.4.5", "physicalMediumName": "nearline", "author": "a"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A stored file damaged on disk: 409, and the study stays whole where it was.
    let before = files_under(&archive);
    let mr_path = wasmpacs_tests::files_under(&archive).into_iter().find(|p| p.to_string_lossy().contains(&mr_study)).unwrap();
    let mr_bytes = std::fs::read(&mr_path).unwrap();
    let mut damaged = mr_bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xFF;
    std::fs::write(&mr_path, &damaged).unwrap();
    let (status, body) = s.post("studies/relocation", &base(json!({"physicalMediumName": "nearline"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains("does not match its recorded digest"), "{body}");
    assert_eq!(std::fs::read(&mr_path).unwrap(), damaged, "left where it was");
    assert!(files_under(&archive).keys().eq(before.keys()), "every file stays where it was");
    assert!(files_under(nearline.path()).is_empty());
    assert!(staging_empty(nearline.path()) && staging_empty(&archive));
    assert!(events_of(&s.events_as(KEY_A).await, "STUDY_RELOCATED").is_empty());
    s.stop().await;
}

/// Old copies are removed `relocation_keep_s` after the relocation's commit, by the server running
/// then: a stop in between leaves none behind for good. Until then the check does not take them
/// for orphans.
async fn old_copies_outlive_a_stop_and_go_once_due(backend: Backend) {
    let nearline = tempfile::tempdir().unwrap();
    let mut s = with_media(backend, &[("nearline", nearline.path())], 4).await;
    let StoredCt { study: ct_study, archive, before, ct_files, _samples } = store_ct(&s).await;

    let request = json!({"studyInstanceUid": ct_study, "physicalMediumName": "nearline", "author": "JaneDoe"});
    let (status, body) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(files_under(nearline.path()), ct_files);
    // Not due yet: the old copies are still there, and they are not orphans.
    assert_eq!(files_under(&archive), before);
    let (code, report) = s.check(&[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!((report["orphans"]["count"].as_u64(), report["unnamed_recent"].as_u64()), (Some(0), Some(0)), "{report}");

    // Stopped before they are due: the server started next removes them once due.
    s.restart().await;
    eventually_within(std::time::Duration::from_secs(20), || files_under(&archive).len() == before.len() - ct_files.len()).await;
    assert!(files_under(&archive).keys().all(|k| !k.contains(&ct_study)));
    assert_eq!(files_under(nearline.path()), ct_files, "the copies the index names stay");
    // The removals are forgotten once the files are gone and their folders synced.
    let pool = s.connect_db().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM file_removals").fetch_one(&pool).await.unwrap();
        if waiting == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{waiting} removals left after their files went");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let response =
        s.http.get(format!("{}/studyInstances?studyUid={ct_study}", s.base)).header("Authorization", KEY_A).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (code, report) = s.check(&["--verify-digests"]);
    assert_eq!(code, 0, "{report}");
    s.stop().await;
}
