//! The environment layer: `WASMPACS_<SECTION>_<KEY>` variables applied onto the parsed TOML
//! before it is deserialized, guided by the config's [`Shape`] (so every key of every section
//! is covered). Lists of tables take an index (`WASMPACS_TENANT_0_API_KEY`,
//! `WASMPACS_STORAGE_MEDIUM_1_PATH`); a list of scalars takes a TOML array or comma-separated
//! items. A value is converted to its key's kind here, so a wrong one names its variable.

use std::sync::LazyLock;

use super::shape::{self, Kind, Shape};
use super::{Config, ConfigError};

/// The prefix of every configuration variable.
pub const PREFIX: &str = "WASMPACS_";

/// The config's shape, learned once.
static SHAPE: LazyLock<Shape> = LazyLock::new(shape::of::<Config>);

/// Variables under the prefix that are not keys: the config file's path (read by the command
/// line), and those the test suite reads (`WASMPACS_TEST_POSTGRES`).
fn is_not_a_key(rest: &str) -> bool {
    rest == "CONFIG" || rest.starts_with("TEST_")
}

/// Applies every `WASMPACS_*` variable of `env` onto `table`, in the order of their names with
/// indexes compared as numbers (so `TENANT_2_*` comes before `TENANT_10_*`, whatever the
/// environment's order).
pub fn apply_all(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
    let mut keys: Vec<(String, String)> =
        env.into_iter().filter(|(variable, _)| variable.strip_prefix(PREFIX).is_some_and(|rest| !is_not_a_key(rest))).collect();
    keys.sort_by_cached_key(|(variable, _)| natural_order(variable));
    for (variable, value) in keys {
        apply(table, &SHAPE, &variable, &variable[PREFIX.len()..], &value)?;
    }
    Ok(())
}

/// `name` cut into runs of digits (as numbers) and of other characters.
fn natural_order(name: &str) -> Vec<(u64, String)> {
    let mut runs: Vec<(u64, String)> = Vec::new();
    for c in name.chars() {
        let digit = c.is_ascii_digit();
        match runs.last_mut() {
            Some((_, run)) if run.chars().last().is_some_and(|l| l.is_ascii_digit()) == digit => run.push(c),
            _ => runs.push((0, c.to_string())),
        }
    }
    // Digit runs sort by value before any text at the same place.
    runs.into_iter().map(|(_, run)| (run.parse().unwrap_or(u64::MAX), run)).collect()
}

/// Applies one variable (`rest` is its name past the prefix) onto `table`, whose shape is `shape`.
fn apply(table: &mut toml::Table, shape: &Shape, variable: &str, rest: &str, value: &str) -> Result<(), ConfigError> {
    let wrong = |message: String| ConfigError::Variable { variable: variable.to_owned(), message };
    let mut rest = rest.to_ascii_lowercase();
    let mut table = table;
    let mut shape = shape;
    let mut path = String::new();
    loop {
        let Shape::Table(fields) = shape else { return Err(wrong(format!("`{path}` has no keys"))) };
        // The longest key that the name starts with, at a `_` boundary.
        let (key, key_shape) = fields
            .iter()
            .filter(|(key, _)| rest == *key || rest.strip_prefix(*key).is_some_and(|r| r.starts_with('_')))
            .max_by_key(|(key, _)| key.len())
            .ok_or_else(|| ConfigError::UnknownVariable(variable.to_owned()))?;
        path = if path.is_empty() { (*key).to_owned() } else { format!("{path}.{key}") };
        let remainder = rest[key.len()..].trim_start_matches('_').to_owned();
        if remainder.is_empty() {
            let typed = match key_shape {
                Shape::Scalar(kind) => scalar(*kind, value).map_err(|m| wrong(format!("`{path}` {m}")))?,
                Shape::List(item) => match item.as_ref() {
                    Shape::Scalar(kind) => list(*kind, value).map_err(|m| wrong(format!("`{path}` {m}")))?,
                    _ => {
                        return Err(wrong(format!(
                            "`{path}` is a list of tables: give one key of one item, e.g. {variable}_0_<KEY>"
                        )));
                    }
                },
                Shape::Table(_) => {
                    return Err(wrong(format!("`{path}` is a section: give one of its keys, e.g. {variable}_<KEY>")));
                }
                Shape::Map | Shape::Unknown => toml::Value::String(value.to_owned()),
            };
            table.insert((*key).to_owned(), typed);
            return Ok(());
        }
        match key_shape {
            Shape::Table(_) => {
                let entry = table.entry(*key).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                table = entry.as_table_mut().ok_or_else(|| wrong(format!("`{path}` is not a table in the file")))?;
                shape = key_shape;
                rest = remainder;
            }
            Shape::List(item) if matches!(item.as_ref(), Shape::Table(_)) => {
                let (index, after) = remainder.split_once('_').unwrap_or((&remainder, ""));
                let index: usize = index.parse().map_err(|_| {
                    wrong(format!(
                        "`{path}` is a list: the name goes on with an index, e.g. {PREFIX}{}_0_<KEY>",
                        path.replace('.', "_").to_ascii_uppercase()
                    ))
                })?;
                let entries = table
                    .entry(*key)
                    .or_insert_with(|| toml::Value::Array(Vec::new()))
                    .as_array_mut()
                    .ok_or_else(|| wrong(format!("`{path}` is not a list in the file")))?;
                if index > entries.len() {
                    return Err(wrong(format!("`{path}` has {} items: index {index} would leave a gap", entries.len())));
                }
                if index == entries.len() {
                    entries.push(toml::Value::Table(toml::Table::new()));
                }
                path = format!("{path}[{index}]");
                table = entries[index].as_table_mut().ok_or_else(|| wrong(format!("`{path}` is not a table in the file")))?;
                shape = item.as_ref();
                rest = after.to_owned();
                if rest.is_empty() {
                    return Err(wrong(format!("`{path}`: name one of its keys")));
                }
            }
            Shape::Map => {
                let entry = table.entry(*key).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let map = entry.as_table_mut().ok_or_else(|| wrong(format!("`{path}` is not a table in the file")))?;
                map.insert(remainder, toml::Value::String(value.to_owned()));
                return Ok(());
            }
            _ => return Err(ConfigError::UnknownVariable(variable.to_owned())),
        }
    }
}

/// `raw` as a value of `kind`, or why it is not one.
fn scalar(kind: Kind, raw: &str) -> Result<toml::Value, String> {
    match kind {
        Kind::Text => Ok(toml::Value::String(raw.to_owned())),
        Kind::Bool => raw.parse().map(toml::Value::Boolean).map_err(|_| format!("takes true or false, not `{raw}`")),
        Kind::Integer => raw.parse().map(toml::Value::Integer).map_err(|_| format!("takes an integer, not `{raw}`")),
        Kind::Float => raw.parse().map(toml::Value::Float).map_err(|_| format!("takes a number, not `{raw}`")),
    }
}

/// A list of scalars: a TOML array (`["a", "b"]`) or comma-separated items (`a,b`).
fn list(kind: Kind, raw: &str) -> Result<toml::Value, String> {
    if raw.trim_start().starts_with('[') {
        let parsed: toml::Table =
            toml::from_str(&format!("v = {raw}")).map_err(|_| format!("takes a TOML array, not `{raw}`"))?;
        return Ok(parsed["v"].clone());
    }
    let items = raw.split(',').map(str::trim).filter(|item| !item.is_empty());
    Ok(toml::Value::Array(items.map(|item| scalar(kind, item)).collect::<Result<_, _>>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape::Table(vec![
            ("http", Shape::Table(vec![("listen", Shape::Scalar(Kind::Text)), ("max_body_bytes", Shape::Scalar(Kind::Integer))])),
            ("names", Shape::List(Box::new(Shape::Scalar(Kind::Text)))),
            ("ports", Shape::List(Box::new(Shape::Scalar(Kind::Integer)))),
        ])
    }

    fn applied(name: &str, value: &str) -> Result<toml::Table, ConfigError> {
        let mut table = toml::Table::new();
        apply(&mut table, &shape(), &format!("{PREFIX}{name}"), name, value)?;
        Ok(table)
    }

    #[test]
    fn indexes_are_applied_in_numeric_order() {
        let mut names = vec!["WASMPACS_TENANT_10_NAME", "WASMPACS_TENANT_2_NAME", "WASMPACS_TENANT_1_API_KEY"];
        names.sort_by_cached_key(|n| natural_order(n));
        assert_eq!(names, ["WASMPACS_TENANT_1_API_KEY", "WASMPACS_TENANT_2_NAME", "WASMPACS_TENANT_10_NAME"]);
    }

    #[test]
    fn lists_of_scalars_take_a_toml_array_or_commas() {
        assert_eq!(applied("NAMES", "a, b").unwrap()["names"], toml::Value::Array(vec!["a".into(), "b".into()]));
        assert_eq!(applied("PORTS", "[1, 2]").unwrap()["ports"], toml::Value::Array(vec![1.into(), 2.into()]));
        let err = applied("PORTS", "1,x").unwrap_err().to_string();
        assert!(err.contains("WASMPACS_PORTS") && err.contains("integer"), "{err}");
    }

    #[test]
    fn a_section_alone_or_an_unknown_key_is_refused_by_name() {
        let err = applied("HTTP", "x").unwrap_err().to_string();
        assert!(err.contains("WASMPACS_HTTP") && err.contains("section"), "{err}");
        let err = applied("HTTP_LISTENER", "x").unwrap_err().to_string();
        assert!(err.contains("WASMPACS_HTTP_LISTENER"), "{err}");
        let err = applied("HTTP_MAX_BODY_BYTES", "lots").unwrap_err().to_string();
        assert!(err.contains("http.max_body_bytes") && err.contains("lots"), "{err}");
    }
}
