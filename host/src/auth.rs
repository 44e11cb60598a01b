//! API-key authentication: the `Authorization` header selects exactly one tenant.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::config::TenantConfig;
use crate::error::ApiError;

/// The tenant a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub Arc<str>);

impl Tenant {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Maps API keys to tenants.
#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<Vec<(Vec<u8>, Tenant)>>,
    admin_key: Option<Arc<Vec<u8>>>,
}

impl Authenticator {
    pub fn new(tenants: &[TenantConfig], admin_key: Option<&str>) -> Self {
        let keys = tenants.iter().map(|t| (t.api_key.as_bytes().to_vec(), Tenant(Arc::from(t.name.as_str())))).collect();
        Self { keys: Arc::new(keys), admin_key: admin_key.map(|k| Arc::new(k.as_bytes().to_vec())) }
    }

    /// The tenant whose key is the header value. Every key is compared, in constant time, so
    /// the time taken says nothing about which key (or how much of one) matched.
    pub fn tenant(&self, header: Option<&[u8]>) -> Result<Tenant, ApiError> {
        let presented = header.ok_or(ApiError::Unauthorized)?;
        let mut found = None;
        for (key, tenant) in self.keys.iter() {
            if bool::from(key.as_slice().ct_eq(presented)) {
                found = Some(tenant);
            }
        }
        found.cloned().ok_or(ApiError::Unauthorized)
    }

    /// Checks the admin key; admin endpoints are off (401) when none is configured.
    pub fn admin(&self, header: Option<&[u8]>) -> Result<(), ApiError> {
        match (&self.admin_key, header) {
            (Some(key), Some(presented)) if bool::from(key.as_slice().ct_eq(presented)) => Ok(()),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_select_their_tenant_and_nothing_else() {
        let tenants = vec![
            TenantConfig { name: "a".into(), api_key: "key-a".into() },
            TenantConfig { name: "b".into(), api_key: "key-b".into() },
        ];
        let auth = Authenticator::new(&tenants, None);
        assert_eq!(auth.tenant(Some(b"key-a")).unwrap().name(), "a");
        assert_eq!(auth.tenant(Some(b"key-b")).unwrap().name(), "b");
        assert!(auth.tenant(Some(b"key-")).is_err());
        assert!(auth.tenant(Some(b"")).is_err());
        assert!(auth.tenant(None).is_err());
        assert!(auth.admin(Some(b"key-a")).is_err());
    }
}
