//! HTTP response bodies: one boxed body type for the whole server, JSON helpers, and files
//! streamed from disk.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Response, StatusCode, header};

/// The body type of every response the server sends (buffered or streamed).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Bytes read from a file per body chunk.
const FILE_CHUNK: usize = 256 * 1024;

/// A body streamed from an open file, a chunk at a time: the file is never held in memory.
pub fn file(file: tokio::fs::File) -> Body {
    use futures::StreamExt;
    use tokio::io::AsyncReadExt;
    let chunks = futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buffer = bytes::BytesMut::with_capacity(FILE_CHUNK);
        match file.read_buf(&mut buffer).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buffer.freeze()), Some(file))),
            Err(e) => Some((Err(e), None)),
        }
    });
    BodyExt::boxed(http_body_util::StreamBody::new(chunks.map(|chunk| chunk.map(hyper::body::Frame::data))))
}

/// A JSON response with the given status.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(bytes))
        .expect("static response parts are valid")
}
