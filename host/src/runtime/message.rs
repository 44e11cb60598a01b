//! Requests, responses and events as the host knows them, and their form in each WIT version.

use bytes::Bytes;

use super::bindings::v0_1_1::wasmpacs::plugin::types as v0_1_1;
use crate::capabilities::StagedFile;
use crate::db::events::StudyEvent;

/// A request on its way to a plugin.
#[derive(Debug, Clone)]
pub struct PluginRequest {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub files: Vec<StagedFile>,
}

/// A plugin's answer.
#[derive(Debug, Clone)]
pub struct PluginResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl PluginRequest {
    pub fn to_v0_1_1(&self, tenant: &str) -> v0_1_1::Request {
        v0_1_1::Request {
            method: self.method.clone(),
            path: self.path.clone(),
            params: self.params.clone(),
            query: self.query.clone(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| v0_1_1::Header { name: name.clone(), value: value.clone() })
                .collect(),
            body: self.body.to_vec(),
            files: self
                .files
                .iter()
                .map(|f| v0_1_1::StagedFile {
                    id: f.id,
                    part: f.part.clone(),
                    file_name: f.file_name.clone(),
                    content_type: f.content_type.clone(),
                    size: f.size,
                    sha1: f.sha1.clone(),
                })
                .collect(),
            tenant: tenant.to_owned(),
        }
    }
}

impl From<v0_1_1::Response> for PluginResponse {
    fn from(r: v0_1_1::Response) -> Self {
        PluginResponse { status: r.status, headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(), body: r.body }
    }
}

/// An event in the form WIT 0.1.1 (as 0.1.0) hands it to `on-event`.
pub fn event_v0_1_1(event: &StudyEvent, tenant: &str) -> v0_1_1::StudyEvent {
    v0_1_1::StudyEvent {
        offset: event.offset,
        kind: event.kind.clone(),
        study_uid: event.study_uid.clone(),
        detail: event.detail.to_string(),
        tenant: tenant.to_owned(),
    }
}
