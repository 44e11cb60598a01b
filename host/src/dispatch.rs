//! One request from start to answer: probe, admin or API, authenticate the tenant, route, and
//! hand the request to its native handler or its plugin; every failure becomes a JSON error, and
//! every request one log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::app::App;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::native::{self, Native, NativeCall};
use crate::net::body::RequestBody;
use crate::response::{self, Body};
use crate::router::{API_PREFIX, Target};
use crate::runtime::{PluginRequest, PluginResponse};
use crate::{health, request_id, upload};

/// What routing learned of a request, for its log line.
#[derive(Default)]
struct Seen {
    tenant: Option<Tenant>,
    route: Option<String>,
}

/// Serves one request; never fails (errors are answers). Every answer carries the request's id
/// (`X-Request-Id`), and the request is logged at info with it.
pub async fn handle(app: Arc<App>, peer: SocketAddr, request: Request<RequestBody>) -> Response<Body> {
    let started = Instant::now();
    let id = request_id::of(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut seen = Seen::default();
    let mut response = request_id::scope(id.clone(), async {
        match route(&app, request, &mut seen).await {
            Ok(response) => response,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(request_id = id.to_str().unwrap_or_default(), %method, %path, error = %e, "request failed");
                }
                e.into_response()
            }
        }
    })
    .await;
    response.headers_mut().insert(request_id::HEADER, id.clone());
    // Latency to the answer's head: a streamed body may go on after it.
    tracing::info!(
        request_id = id.to_str().unwrap_or_default(),
        tenant = seen.tenant.as_ref().map_or("-", Tenant::name),
        route = seen.route.as_deref().unwrap_or("-"),
        %method,
        %path,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        %peer,
        "request"
    );
    response
}

async fn route(app: &Arc<App>, request: Request<RequestBody>, seen: &mut Seen) -> Result<Response<Body>, ApiError> {
    let path = request.uri().path().to_owned();
    let key = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    // Probes of load balancers and orchestrators: no key.
    if let Some(probe) = health::Probe::at(&path) {
        seen.route = Some(path.clone());
        return Ok(probe.answer(app).await);
    }
    if path == "/admin/plugins" {
        seen.route = Some(path.clone());
        app.auth.admin(key)?;
        return Ok(native::admin_plugins(app));
    }
    if path == "/admin/forward" {
        seen.route = Some(path.clone());
        app.auth.admin(key)?;
        return native::admin_forward_jobs(app).await;
    }
    let below = if let Some(rest) = path.strip_prefix(API_PREFIX) {
        rest.to_owned()
    } else if path == API_PREFIX.trim_end_matches('/') {
        String::new()
    } else {
        return Err(ApiError::NotFound(path));
    };
    // Authentication comes before routing: an unknown path without a key is a 401, not a 404.
    let tenant = app.auth.tenant(key)?;
    seen.tenant = Some(tenant.clone());
    let matched = app.router.route(request.method(), &below)?;
    seen.route = Some(matched.route.to_owned());
    let query = parse_query(request.uri().query());
    match matched.target {
        Target::Native(native) => {
            let native: Native = *native;
            let params = matched.params;
            native.serve(app, NativeCall { tenant, params, query, request }).await
        }
        Target::Plugin(plugin) => {
            let plugin = plugin.clone();
            let params = matched.params;
            call_plugin(app, &plugin, &tenant, below, params, query, request).await
        }
    }
}

async fn call_plugin(
    app: &Arc<App>,
    plugin: &str,
    tenant: &Tenant,
    path: String,
    params: Vec<(String, String)>,
    query: Vec<(String, String)>,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    if let Some((_, aet)) = params.iter().find(|(name, _)| name == "callingAet")
        && !app.config.nodes.iter().any(|n| n.ae_title == *aet && n.tenant == tenant.name())
    {
        return Err(ApiError::BadRequest(format!("calling AE title `{aet}` is not a configured node of this tenant")));
    }
    let (parts, body) = request.into_parts();
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    // A form is streamed part by part to staging files; any other body is read whole (small).
    let (body, form) = match upload::form_boundary(content_type) {
        Some(boundary) => (
            Bytes::new(),
            Some(upload::stage_form(app.ingest.storage(), body, boundary, app.config.http.max_upload_bytes).await?),
        ),
        None => (read_body(body, app.config.http.max_body_bytes).await?, None),
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| **name != AUTHORIZATION)
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str().to_owned(), v.to_owned())))
        .collect();
    let request = PluginRequest {
        method: parts.method.to_string(),
        path,
        params,
        query,
        headers,
        body,
        files: form.as_ref().map(|f| f.files.clone()).unwrap_or_default(),
    };
    let response = app.runtime.handle(plugin, tenant.name(), request).await?;
    // Staged parts the plugin did not store are removed now.
    drop(form);
    Ok(into_http(plugin, response))
}

fn into_http(plugin: &str, r: PluginResponse) -> Response<Body> {
    let status = StatusCode::from_u16(r.status).unwrap_or_else(|_| {
        tracing::warn!(plugin, status = r.status, "plugin answered an invalid status");
        StatusCode::INTERNAL_SERVER_ERROR
    });
    let mut response = Response::new(response::full(r.body));
    *response.status_mut() = status;
    for (name, value) in r.headers {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => tracing::warn!(plugin, header = %name, "plugin answered an invalid header; dropped"),
        }
    }
    response
}

/// Decoded query pairs, in order.
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// Reads a whole (small) request body: 413 beyond `max` bytes, 400 if it cannot be read.
pub async fn read_body(body: RequestBody, max: usize) -> Result<Bytes, ApiError> {
    Ok(Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge(max as u64)
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {e}"))
            }
        })?
        .to_bytes())
}
