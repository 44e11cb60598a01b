//! The query endpoints' figures: `studies/count` p50/p99 at 1,000,000 studies (bulk-loaded with
//! one SQL statement) on SQLite and PostgreSQL, and `preview` p50 for a 512x512 CT.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::any::AnyPoolOptions;
use wasmpacs_tests::{Backend, KEY_A, NODE_A, TestServer};

const STUDIES: i64 = 1_000_000;

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    (at(0.50), at(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn timed(s: &TestServer, path: &str, n: usize) -> (Vec<Duration>, String) {
    let url = format!("{}/{path}", s.base);
    let mut samples = Vec::with_capacity(n);
    let mut last = String::new();
    for _ in 0..n {
        let started = Instant::now();
        let response = s.http.get(&url).header("Authorization", KEY_A).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.bytes().await.expect("body");
        samples.push(started.elapsed());
        last = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
    }
    (samples, last)
}

/// One INSERT ... SELECT of `STUDIES` studies of tenant alpha: received over 2020-2023, 20 calling
/// AEs, 30 stations, sizes up to 500 MB, 2 % without series, 1 % deprecated.
async fn bulk_load(s: &TestServer, backend: Backend) -> Duration {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect(&s.database_url).await.expect("db");
    sqlx::query(
        "INSERT INTO patients (tenant, patient_id, issuer, name, created_at, updated_at) \
         VALUES ('alpha', 'BULK', '', 'BULK^LOAD', '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z')",
    )
    .execute(&pool)
    .await
    .expect("patient");
    let started = Instant::now();
    // Without the count indexes, then each rebuilt in one sort, as migration 0003 defines it:
    // far faster than maintaining them row by row.
    let folder = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    let migration =
        std::fs::read_to_string(wasmpacs_tests::repo_root().join(format!("migrations/{folder}/0003_study_count.sql")))
            .expect("migration 0003");
    let creates: Vec<String> = migration
        .split(';')
        .map(|statement| statement.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n"))
        .map(|statement| statement.trim().to_owned())
        .filter(|statement| statement.starts_with("CREATE INDEX"))
        .collect();
    if backend == Backend::Sqlite {
        sqlx::query("PRAGMA cache_size = -262144").execute(&pool).await.expect("cache");
    } else {
        sqlx::query("SET maintenance_work_mem = '512MB'").execute(&pool).await.expect("work mem");
    }
    for create in &creates {
        let name = create.split_whitespace().nth(2).expect("index name");
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}"))).execute(&pool).await.expect("drop index");
    }
    let columns = "tenant, study_uid, patient_fk, received_at, calling_aet, station_name, size_bytes, series_count, deprecated";
    let values = |received: &str| {
        format!(
            "'alpha', '1.2.826.0.1.3680043.8.498.77.' || i, (SELECT id FROM patients WHERE patient_id = 'BULK'), {received}, \
             'AET' || (i % 20), 'ST' || ((i / 7) % 30), (i * 7919) % 524288000, \
             CASE WHEN i % 50 = 0 THEN 0 ELSE 1 + i % 3 END, CASE WHEN i % 97 = 0 THEN 1 ELSE 0 END"
        )
    };
    let sql = match backend {
        Backend::Sqlite => format!(
            "INSERT INTO studies ({columns}) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {STUDIES}) \
             SELECT {} FROM n",
            values(
                "strftime('%Y-%m-%dT%H:%M:%S.000Z', '2020-01-01', '+' || (i % 1461) || ' days', '+' || (i % 86400) || ' seconds')"
            )
        ),
        Backend::Postgres => format!(
            "INSERT INTO studies ({columns}) SELECT {} FROM generate_series(1, {STUDIES}::bigint) AS g(i)",
            values(
                "to_char(timestamp '2020-01-01' + (i % 1461) * interval '1 day' + (i % 86400) * interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            )
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.expect("bulk insert");
    for create in creates {
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&pool).await.expect("create index");
    }
    let analyze = if backend == Backend::Sqlite { "ANALYZE" } else { "VACUUM ANALYZE studies" };
    sqlx::query(analyze).execute(&pool).await.expect("analyze");
    let elapsed = started.elapsed();
    pool.close().await;
    elapsed
}

/// `studies/count` latency at 1,000,000 studies, with every filter and with broad ones.
pub async fn count_latency(backend: Backend) {
    let s = TestServer::start(backend).await;
    let loaded = bulk_load(&s, backend).await;
    println!(
        "studies/count on {backend:?}: {STUDIES} studies bulk-loaded (with indexes, ANALYZE) in {:.1} s",
        loaded.as_secs_f64()
    );
    let queries = [
        (
            "all filters",
            "receivedAt=20210101-20210201&studySize=1000-400000&aet=AET1&aet=AET2&excludeAet=AET3\
             &stationName=ST1&stationName=ST2&stationName=ST3&excludeStationName=ST4",
        ),
        ("aet + one year", "receivedAt=20210101-20220101&aet=AET1"),
        ("one month only", "receivedAt=20210101-20210201"),
        ("no filter", ""),
    ];
    for (label, query) in queries {
        let path = format!("studies/count?{query}");
        timed(&s, &path, 10).await;
        let (samples, body) = timed(&s, &path, 200).await;
        let (p50, p99) = percentiles(samples);
        println!("  {label:<16} p50 {:>10}  p99 {:>10}   {body}", ms(p50), ms(p99));
    }
    s.stop().await;
}

/// `preview` latency of a 512x512 16-bit CT (generated by tests/data/gen_ct.py, sent by storescu).
pub async fn preview_latency() {
    let s = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = wasmpacs_tests::generate_cts(dir.path(), &["-n", "1"]).into_iter().next().expect("a CT");
    let object =
        dicom_object::OpenFileOptions::new().read_until(dicom_dictionary_std::tags::PIXEL_DATA).open_file(&file).expect("DICOM");
    let sop = object.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID).expect("SOP UID").to_str().expect("text");
    let sop = sop.trim_end_matches(['\0', ' ']).to_owned();
    let (ok, output) = s.storescu(NODE_A, &[file]).await;
    assert!(ok, "{output}");
    let path = format!("preview?objectUID={sop}");
    timed(&s, &path, 10).await;
    let (samples, _) = timed(&s, &path, 200).await;
    let (p50, p99) = percentiles(samples);
    println!("preview of a 512x512 CT (256x256 JPEG)              p50 {:>10}  p99 {:>10}", ms(p50), ms(p99));
    s.stop().await;
}
