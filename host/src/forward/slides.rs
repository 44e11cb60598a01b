//! Sends non-DICOM slides to another archive's `pathoRsListener`: one `multipart/form-data`
//! POST per slide with its sidecar, the slide file streamed from disk, and the file's SHA-1 and
//! length for the receiver to check. Any answer but a success is a failure of the attempt.

use std::path::Path;
use std::time::Duration;

use reqwest::multipart::{Form, Part};

use crate::db::slides::SlideFile;

/// How long connecting may take, and the longest silence while sending or waiting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Most bytes of a refusal's body quoted in the job's error.
const QUOTED: usize = 300;

/// The endpoint of a forward job for non-DICOM slides.
pub struct SlideEndpoint {
    client: reqwest::Client,
    url: String,
    /// The URL as logs and job errors show it (without credentials).
    shown: String,
    authorization: Option<String>,
}

impl SlideEndpoint {
    pub fn new(url: String, authorization: Option<String>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let shown = without_credentials(&url);
        Ok(Self { client, url, shown, authorization })
    }

    /// The URL without credentials, for logs.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// Sends one slide: the sidecar at `sidecar` and the slide file at `file`.
    pub async fn send(&self, sidecar: &Path, file: &Path, slide: &SlideFile) -> Result<(), String> {
        let sidecar_bytes =
            tokio::fs::read(sidecar).await.map_err(|e| format!("cannot read the sidecar {}: {e}", sidecar.display()))?;
        let opened =
            tokio::fs::File::open(file).await.map_err(|e| format!("cannot read the slide file {}: {e}", file.display()))?;
        let slide_part = Part::stream_with_length(reqwest::Body::from(opened), slide.size)
            .file_name(slide.file_name.clone())
            .mime_str(slide.media_type())
            .map_err(|e| e.to_string())?;
        let form = Form::new()
            .part(
                "sidecar",
                Part::bytes(sidecar_bytes).file_name("sidecar.dcm").mime_str("application/dicom").map_err(|e| e.to_string())?,
            )
            .part("file", slide_part)
            .text("fileLength", slide.size.to_string());
        // The receiver checks a single file's hash directly; a MIRAX archive's hash is that of
        // its .mrxs descriptor, which the receiver computes itself.
        let form = if slide.mirax { form } else { form.text("fileHash", slide.sha1.clone()) };
        let mut request = self.client.post(&self.url).multipart(form);
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().await.map_err(|e| format!("cannot send to {}: {}", self.shown, with_causes(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let quoted: String = body.chars().take(QUOTED).collect();
        Err(format!("{} answered {status}: {quoted}", self.shown))
    }
}

/// An error and its causes, innermost last ("error sending request: connection reset ...").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// `url` with any user name and password removed: what jobs, events and logs show.
pub fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}
