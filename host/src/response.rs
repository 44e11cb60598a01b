//! HTTP response bodies: one boxed body type for the whole server, JSON helpers, and bodies
//! streamed a chunk at a time (stored files, multipart).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Response, StatusCode, header};

/// The body type of every response the server sends (buffered or streamed).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A body streamed from chunks as they come (a file read from a bucket, a multipart body).
pub fn stream(chunks: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static) -> Body {
    use futures::StreamExt;
    let frames = chunks.map(|chunk| chunk.map(hyper::body::Frame::data));
    BodyExt::boxed(http_body_util::StreamBody::new(sync_wrapper::SyncStream::new(frames)))
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
