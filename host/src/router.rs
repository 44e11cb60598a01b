//! Routing under `/o3-dpacs-wado/`: a table built once at start from the native handlers and the
//! plugins manifest. A route claimed twice is refused when the table is built.

use std::sync::Arc;

use hyper::Method;

use crate::error::ApiError;
use crate::native::Native;

/// The prefix every PACS API path starts with.
pub const API_PREFIX: &str = "/o3-dpacs-wado/";

/// Who serves a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A handler compiled into the host.
    Native(Native),
    /// The plugin with this name in plugins.toml.
    Plugin(Arc<str>),
}

impl Target {
    fn owner(&self) -> String {
        match self {
            Target::Native(n) => format!("native handler {n:?}"),
            Target::Plugin(p) => format!("plugin `{p}`"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug)]
struct Route {
    /// As logged: `GET rs/studies/{study}`.
    spec: String,
    method: Method,
    segments: Vec<Segment>,
    target: Target,
}

/// A request matched to its target, with the values of `{name}` segments.
#[derive(Debug)]
pub struct Matched<'a> {
    /// The route, as `METHOD path` with its `{name}` segments.
    pub route: &'a str,
    pub target: &'a Target,
    pub params: Vec<(String, String)>,
}

/// Why a route table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("route `{route}` is claimed by both {first} and {second}")]
    Duplicate { route: String, first: String, second: String },
    #[error("route `{0}` is malformed: expected `METHOD path/{{param}}/...`")]
    Malformed(String),
}

/// The route table.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Adds `spec` ("POST patients/create", "POST pathoRsListener/{callingAet}/studies").
    pub fn add(&mut self, spec: &str, target: Target) -> Result<(), RouteError> {
        let malformed = || RouteError::Malformed(spec.to_owned());
        let (method, path) = spec.trim().split_once(' ').ok_or_else(malformed)?;
        let method: Method = method.parse().map_err(|_| malformed())?;
        let path = path.trim().trim_matches('/');
        if path.is_empty() {
            return Err(malformed());
        }
        let segments = path
            .split('/')
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !name.is_empty() => Ok(Segment::Param(name.to_owned())),
                _ if s.is_empty() || s.contains(['{', '}']) => Err(malformed()),
                _ => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(existing) = self.routes.iter().find(|r| r.method == method && same_shape(&r.segments, &segments)) {
            return Err(RouteError::Duplicate {
                route: format!("{method} {path}"),
                first: existing.target.owner(),
                second: target.owner(),
            });
        }
        self.routes.push(Route { spec: format!("{method} {path}"), method, segments, target });
        Ok(())
    }

    /// Finds the target of `path` (below the API prefix): 404 when no route has this path,
    /// 405 when routes have it but not for this method, 400 when it leaves out a route's
    /// parameter (the seed's "CALLING_AET url part was not included").
    pub fn route(&self, method: &Method, path: &str) -> Result<Matched<'_>, ApiError> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(params) = match_segments(&route.segments, &parts) else { continue };
            if route.method == *method {
                return Ok(Matched { route: &route.spec, target: &route.target, params });
            }
            allowed.push(route.method.to_string());
        }
        let missing = || self.routes.iter().filter(|r| r.method == *method).find_map(|r| missing_param(&r.segments, &parts));
        if let (true, Some(name)) = (allowed.is_empty(), missing()) {
            return Err(ApiError::BadRequest(format!("the `{name}` part of the path is missing")));
        }
        if allowed.is_empty() {
            Err(ApiError::NotFound(format!("{API_PREFIX}{}", path.trim_matches('/'))))
        } else {
            Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
                path: format!("{API_PREFIX}{}", path.trim_matches('/')),
                allowed: allowed.join(", "),
            })
        }
    }
}

fn same_shape(a: &[Segment], b: &[Segment]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
            (Segment::Param(_), Segment::Param(_)) => true,
            _ => false,
        })
}

fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<Vec<(String, String)>> {
    if segments.len() != parts.len() {
        return None;
    }
    let mut params = Vec::new();
    for (segment, part) in segments.iter().zip(parts) {
        match segment {
            Segment::Literal(l) if l == part => {}
            Segment::Param(name) if !part.is_empty() => params.push((name.clone(), (*part).to_owned())),
            _ => return None,
        }
    }
    Some(params)
}

/// The parameter of a route that `parts` would match had they not left it empty
/// (`pathoRsListener//studies`) or out (`pathoRsListener/studies`).
fn missing_param(segments: &[Segment], parts: &[&str]) -> Option<String> {
    segments.iter().enumerate().find_map(|(i, segment)| {
        let Segment::Param(name) = segment else { return None };
        let filled = match parts.len() {
            n if n == segments.len() && parts[i].is_empty() => [&parts[..i], &["?"], &parts[i + 1..]].concat(),
            n if n + 1 == segments.len() => [&parts[..i], &["?"], &parts[i..]].concat(),
            _ => return None,
        };
        match_segments(segments, &filled).map(|_| name.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(name: &str) -> Target {
        Target::Plugin(Arc::from(name))
    }

    #[test]
    fn matches_literals_and_params_and_tells_404_from_405() {
        let mut r = Router::default();
        r.add("POST patients/create", plugin("patients")).unwrap();
        r.add("POST pathoRsListener/{callingAet}/studies", plugin("pathology")).unwrap();
        let m = r.route(&Method::POST, "pathoRsListener/SCANNER/studies").unwrap();
        assert_eq!(m.target, &plugin("pathology"));
        assert_eq!(m.params, vec![("callingAet".to_owned(), "SCANNER".to_owned())]);
        assert!(matches!(r.route(&Method::GET, "patients/create"), Err(ApiError::MethodNotAllowed { .. })));
        assert!(matches!(r.route(&Method::POST, "patients/nope"), Err(ApiError::NotFound(_))));
        for missing in ["pathoRsListener//studies", "pathoRsListener/studies"] {
            let err = r.route(&Method::POST, missing).err();
            assert!(matches!(&err, Some(ApiError::BadRequest(m)) if m.contains("callingAet")), "{missing}: {err:?}");
        }
        assert!(matches!(r.route(&Method::POST, "pathoRsListener/studies/x"), Err(ApiError::NotFound(_))));
        assert!(matches!(r.route(&Method::GET, "pathoRsListener//studies"), Err(ApiError::NotFound(_))));
    }

    #[test]
    fn a_route_claimed_twice_is_refused() {
        let mut r = Router::default();
        r.add("POST studies/move", plugin("patients")).unwrap();
        let err = r.add("POST studies/move", plugin("other")).unwrap_err();
        assert!(err.to_string().contains("`patients`") && err.to_string().contains("`other`"), "{err}");
        r.add("GET studies/move", plugin("other")).unwrap();
        assert!(r.add("bogus", plugin("x")).is_err());
    }
}
