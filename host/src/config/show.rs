//! The effective configuration as `wasmpacs config check` prints it: every key with its value
//! after defaults and environment overrides, secrets masked.

use super::Config;

/// How secrets are shown.
const MASK: &str = "***";

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &["api_key", "access_key_id", "secret_access_key", "slide_authorization"];

/// The printed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Toml,
    Json,
}

/// `config` as TOML or JSON text, with API keys, bucket credentials, the forward job's
/// Authorization and any password in a URL masked.
pub fn effective(config: &Config, format: Format) -> anyhow::Result<String> {
    let mut value = toml::Value::try_from(config)?;
    mask(&mut value);
    Ok(match format {
        Format::Toml => toml::to_string_pretty(&value)?,
        Format::Json => serde_json::to_string_pretty(&value)?,
    })
}

fn mask(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table.iter_mut() {
                if SECRET_KEYS.contains(&key.as_str()) {
                    *value = toml::Value::String(MASK.to_owned());
                } else {
                    mask(value);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(mask),
        toml::Value::String(text) => {
            if let Some(masked) = url_without_password(text) {
                *text = masked;
            }
        }
        _ => {}
    }
}

/// Query parameters that carry secrets in connection URLs (libpq's and sqlx's `password`,
/// `sslpassword`; tokens and keys of HTTP endpoints).
const SECRET_PARAMETERS: &[&str] = &["password", "sslpassword", "token", "access_token", "key", "api_key", "secret"];

/// A URL with a password (`postgres://user:secret@host/db`) or a secret query parameter
/// (`?password=secret`), with those masked; None for any other text.
fn url_without_password(text: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(text).ok()?;
    let secret = |name: &str| SECRET_PARAMETERS.iter().any(|s| name.eq_ignore_ascii_case(s));
    let has_secret_parameter = url.query_pairs().any(|(name, _)| secret(&name));
    if url.password().is_none() && !has_secret_parameter {
        return None;
    }
    if url.password().is_some() {
        url.set_password(Some(MASK)).ok()?;
    }
    if has_secret_parameter {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if secret(&name) { MASK.to_owned() } else { value.into_owned() };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        let text = r#"
            [database]
            url = "postgres://pacs:hunter2@db:5432/pacs?sslmode=require&password=hunter3"
            [admin]
            api_key = "root-key"
            [[tenant]]
            name = "default"
            api_key = "tenant-key"
            [[storage.bucket]]
            name = "cold"
            access_key_id = "AKIA"
            secret_access_key = "s3cr3t"
        "#;
        let config = Config::from_toml(text, vec![], std::path::Path::new("/srv")).unwrap();
        for format in [Format::Toml, Format::Json] {
            let shown = effective(&config, format).unwrap();
            for secret in ["hunter2", "hunter3", "root-key", "tenant-key", "AKIA", "s3cr3t"] {
                assert!(!shown.contains(secret), "{secret} shown in {shown}");
            }
            assert!(shown.contains("postgres://pacs:***@db:5432/pacs?sslmode=require") && shown.contains("default"), "{shown}");
            assert!(shown.contains("max_body_bytes"), "defaults are shown: {shown}");
        }
    }
}
