//! No connection is held forever, on HTTP or DICOM: raw sockets that send half a request head,
//! or nothing, or stall a body, are closed (or answered and closed) within bounds several times
//! the configured timeouts while normal clients are served; a slow upload that keeps sending
//! succeeds; the connection and association limits refuse the extra one and serve again once
//! others close.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::Pdu;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wasmpacs_tests::{Backend, KEY_A, NODE_A, Options, SERVER_AE, TestServer, on_both_backends, testset, transfer_syntax_of};

on_both_backends!(
    half_sent_heads_and_idle_connections_are_closed_while_others_are_served,
    a_stalled_body_is_cut_and_leaves_nothing_while_a_slow_one_succeeds,
    the_connection_limits_refuse_the_extra_one_and_serve_again,
    a_silent_connection_and_an_idle_association_are_closed,
    the_association_limit_rejects_the_extra_one_and_accepts_again
);

/// Far beyond every timeout configured here (1 to 2 s): a close must come well before.
const BOUND: Duration = Duration::from_secs(20);

async fn start(backend: Backend, http: &str, dicom: &str) -> TestServer {
    let mut options = Options::new(backend);
    options.http_config = http.to_owned();
    options.dicom_config = dicom.to_owned();
    TestServer::start_with(options).await.expect("server starts")
}

/// Reads until the server closes the connection (end of file or reset) and returns what came;
/// fails when it stays open past `BOUND`.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let deadline = Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => panic!("the connection is still open after {BOUND:?}; received {:?}", String::from_utf8_lossy(&received)),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Reads one response with a `content-length` off a kept-alive connection; its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(BOUND, stream.read(&mut buffer)).await.expect("an answer").expect("readable");
        assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .expect("content-length");
            if body.len() >= length {
                return head[9..12].parse().unwrap();
            }
        }
    }
}

fn count_request(addr: SocketAddr) -> String {
    format!("GET /o3-dpacs-wado/studies/count HTTP/1.1\r\nhost: {addr}\r\nauthorization: {KEY_A}\r\n\r\n")
}

/// A connection from `source` (any 127.x.y.z address is this machine) to `addr`.
async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn half_sent_heads_and_idle_connections_are_closed_while_others_are_served(backend: Backend) {
    let s = start(backend, "header_timeout_s = 1\nidle_timeout_s = 2", "").await;
    // Half a head, sent once.
    let mut half = TcpStream::connect(s.addr).await.unwrap();
    half.write_all(b"GET /o3-dpacs-wado/studies/count HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    // A head sent a byte at a time, never quiet for long: the head timeout counts from its start.
    let mut trickle = TcpStream::connect(s.addr).await.unwrap();
    let trickling = tokio::spawn(async move {
        let head = b"GET /o3-dpacs-wado/studies/count HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let (mut read, mut write) = trickle.split();
        let writing = async {
            for byte in head {
                if write.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("the whole trickled head was sent and the connection is still open");
        };
        let mut buffer = [0u8; 1024];
        tokio::select! {
            _ = writing => {}
            read = read.read(&mut buffer) => assert!(matches!(read, Ok(0) | Err(_)), "answered: {read:?}"),
        }
    });
    // Connected, and not a byte.
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    // Served once, then kept alive and idle.
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(count_request(s.addr).as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut idle).await, 200);

    // Meanwhile normal clients are served, on fresh and kept-alive connections.
    for _ in 0..6 {
        let (status, body) = s.get("studies/count").await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (name, stream) in [("half head", &mut half), ("silent", &mut silent), ("idle", &mut idle)] {
        let after = read_until_closed(stream).await;
        assert!(after.is_empty(), "{name}: answered {after:?}");
    }
    tokio::time::timeout(BOUND, trickling).await.expect("the trickled head was cut").unwrap();
    let (status, _) = s.get("studies/count").await;
    assert_eq!(status, 200);
    s.stop().await;
}

/// A `multipart/related` STOW-RS body holding `file`, and its boundary.
fn stow_body(file: &PathBuf) -> (Vec<u8>, &'static str) {
    let boundary = "connections-test-boundary";
    let mut body = format!("--{boundary}\r\ncontent-type: application/dicom\r\n\r\n").into_bytes();
    body.extend_from_slice(&std::fs::read(file).unwrap());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, boundary)
}

fn stow_head(addr: SocketAddr, boundary: &str, length: usize) -> String {
    format!(
        "POST /o3-dpacs-wado/stowRsListener/{NODE_A}/studies HTTP/1.1\r\nhost: {addr}\r\nauthorization: {KEY_A}\r\n\
         content-type: multipart/related; type=\"application/dicom\"; boundary={boundary}\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
    )
}

async fn a_stalled_body_is_cut_and_leaves_nothing_while_a_slow_one_succeeds(backend: Backend) {
    let s = start(backend, "body_timeout_s = 1", "").await;
    let file = testset().into_iter().find(|f| transfer_syntax_of(f) == "1.2.840.10008.1.2.1").unwrap();
    let (body, boundary) = stow_body(&file);

    // Half the body, then nothing: the server waits for the rest, then cuts the request.
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    stalled.write_all(stow_head(s.addr, boundary, body.len()).as_bytes()).await.unwrap();
    stalled.write_all(&body[..body.len() / 2]).await.unwrap();
    let answer = read_until_closed(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let deadline = Instant::now() + BOUND;
    while !s.staging_is_empty() {
        assert!(Instant::now() < deadline, "a staging file was left behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(s.archived_files().is_empty());
    assert_eq!(s.get("studies/count").await.1["study_count"], 0);

    // The same body in twelve pieces, 300 ms apart: three times the body timeout in all, but
    // never a second without a byte.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(stow_head(s.addr, boundary, body.len()).as_bytes()).await.unwrap();
    let started = Instant::now();
    for piece in body.chunks(body.len().div_ceil(12)) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        slow.write_all(piece).await.unwrap();
    }
    assert!(started.elapsed() > Duration::from_secs(3));
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(s.archived_files().len(), 1);
    assert_eq!(s.get("studies/count").await.1["study_count"], 1);
    s.stop().await;
}

async fn the_connection_limits_refuse_the_extra_one_and_serve_again(backend: Backend) {
    let s = start(backend, "max_connections = 3\nmax_connections_per_peer = 2", "").await;
    let request = count_request(s.addr);
    // Two connections from 127.0.0.1, served and kept alive: that peer's share.
    let mut first = connect_from("127.0.0.1", s.addr).await;
    let mut second = connect_from("127.0.0.1", s.addr).await;
    for stream in [&mut first, &mut second] {
        stream.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(read_response(stream).await, 200);
    }
    // A third from the same peer is refused with a 503.
    let mut third = connect_from("127.0.0.1", s.addr).await;
    let _ = third.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("from this peer"), "{answer}");
    // Another peer has room, until the total is reached.
    let mut other = connect_from("127.0.0.2", s.addr).await;
    other.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut other).await, 200);
    let mut over = connect_from("127.0.0.3", s.addr).await;
    let _ = over.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut over).await;
    assert!(answer.starts_with("HTTP/1.1 503") && !answer.contains("from this peer"), "{answer}");
    // Those open carry on.
    second.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut second).await, 200);
    // One closes: a new connection from 127.0.0.1 is served again (once the server has seen it go).
    drop(first);
    let deadline = Instant::now() + BOUND;
    loop {
        let mut again = connect_from("127.0.0.1", s.addr).await;
        let _ = again.write_all(request.as_bytes()).await;
        let mut buffer = [0u8; 12];
        let _ = tokio::time::timeout(BOUND, again.read_exact(&mut buffer)).await;
        if buffer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after a connection closed: {:?}", String::from_utf8_lossy(&buffer));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

async fn echoscu(s: &TestServer) -> (bool, String) {
    let output = tokio::process::Command::new("echoscu")
        .args(["-aet", NODE_A, "-aec", SERVER_AE, "127.0.0.1", &s.dicom_port.to_string()])
        .output()
        .await
        .expect("echoscu runs (apt-get install dcmtk)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn associate(s: &TestServer) -> dicom_ul::association::client::AsyncClientAssociation<TcpStream> {
    ClientAssociationOptions::new()
        .calling_ae_title(NODE_A)
        .called_ae_title(SERVER_AE)
        .with_abstract_syntax("1.2.840.10008.1.1")
        .establish_with_async(&format!("127.0.0.1:{}", s.dicom_port))
        .await
        .expect("association")
}

async fn a_silent_connection_and_an_idle_association_are_closed(backend: Backend) {
    let s = start(backend, "", "association_timeout_s = 1\ntimeout_s = 2").await;
    let mut silent = TcpStream::connect(("127.0.0.1", s.dicom_port)).await.unwrap();
    let mut idle = associate(&s).await;
    // Meanwhile other peers are served.
    for _ in 0..3 {
        let (ok, output) = echoscu(&s).await;
        assert!(ok, "{output}");
    }
    assert!(read_until_closed(&mut silent).await.is_empty());
    let received = tokio::time::timeout(BOUND, idle.receive()).await.expect("the idle association ends");
    assert!(matches!(received, Ok(Pdu::AbortRQ { .. })), "{received:?}");
    let (ok, output) = echoscu(&s).await;
    assert!(ok, "{output}");
    s.stop().await;
}

async fn the_association_limit_rejects_the_extra_one_and_accepts_again(backend: Backend) {
    let s = start(backend, "", "max_associations = 1").await;
    let held = associate(&s).await;
    let (ok, output) = echoscu(&s).await;
    assert!(!ok && output.to_ascii_lowercase().contains("local limit exceeded"), "{output}");
    held.release().await.unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        let (ok, output) = echoscu(&s).await;
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "still rejected after the association was released: {output}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}
