//! Config definitions in Kafka's `ConfigDef` style: every key has a type, an
//! optional default (none = required), an importance, documentation and an
//! optional validator. [`ConfigDef::validate`] checks a whole map and names
//! every invalid field; [`Config`] reads typed values with defaults applied.
//!
//! ```
//! use strom_connect::sdk::config::{ConfigDef, ConfigType, Importance, Validator};
//! let def = ConfigDef::new()
//!     .define("file", ConfigType::String, None, Importance::High, "The file to read.")
//!     .define_with("batch.size", ConfigType::Int, Some("2000"), Importance::Low,
//!                  "Lines per poll.", Validator::AtLeast(1.0));
//! let mut raw = std::collections::BTreeMap::new();
//! raw.insert("batch.size".to_string(), "0".to_string());
//! let errors = def.validate(&raw);
//! assert!(errors.contains_key("file") && errors.contains_key("batch.size"));
//! ```

use serde::Serialize;
use std::collections::BTreeMap;

/// The raw form of every configuration: string keys and values.
pub type ConfigMap = BTreeMap<String, String>;

/// Kafka's config types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    /// Comma-separated values.
    List,
    /// A string that is never shown back (`[hidden]` in responses).
    Password,
    /// The name of a plugin (converter, transform, predicate, connector).
    Class,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Importance {
    High,
    Medium,
    Low,
}

/// A check on a (parsed) value beyond its type.
#[derive(Clone, Debug)]
pub enum Validator {
    /// Numeric value at least this.
    AtLeast(f64),
    /// Numeric value within [min, max].
    Between(f64, f64),
    /// One of these strings, case-insensitively.
    OneOf(&'static [&'static str]),
    /// A non-empty string (after trimming).
    NonEmpty,
    /// A valid regular expression.
    Regex,
    /// Any check: `Err(message)` when the value is invalid.
    Custom(fn(&str) -> Result<(), String>),
}

/// One key of a definition.
#[derive(Clone, Debug)]
pub struct ConfigKey {
    pub name: String,
    pub ty: ConfigType,
    /// `None`: the key is required.
    pub default: Option<String>,
    pub importance: Importance,
    pub doc: String,
    pub group: Option<String>,
    pub validator: Option<Validator>,
}

/// An ordered set of keys.
#[derive(Clone, Debug, Default)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
}

impl ConfigDef {
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    pub fn define(
        self,
        name: &str,
        ty: ConfigType,
        default: Option<&str>,
        importance: Importance,
        doc: &str,
    ) -> ConfigDef {
        self.with_key(ConfigKey {
            name: name.to_string(),
            ty,
            default: default.map(str::to_string),
            importance,
            doc: doc.to_string(),
            group: None,
            validator: None,
        })
    }

    pub fn define_with(
        self,
        name: &str,
        ty: ConfigType,
        default: Option<&str>,
        importance: Importance,
        doc: &str,
        validator: Validator,
    ) -> ConfigDef {
        self.with_key(ConfigKey {
            name: name.to_string(),
            ty,
            default: default.map(str::to_string),
            importance,
            doc: doc.to_string(),
            group: None,
            validator: Some(validator),
        })
    }

    /// Adds a key, replacing one of the same name.
    pub fn with_key(mut self, key: ConfigKey) -> ConfigDef {
        self.keys.retain(|k| k.name != key.name);
        self.keys.push(key);
        self
    }

    /// Sets the group of every key defined so far that has none.
    pub fn in_group(mut self, group: &str) -> ConfigDef {
        for key in &mut self.keys {
            if key.group.is_none() {
                key.group = Some(group.to_string());
            }
        }
        self
    }

    /// The keys of `other` added after these (with `prefix` before each name).
    pub fn merge(mut self, other: &ConfigDef, prefix: &str) -> ConfigDef {
        for key in &other.keys {
            let mut key = key.clone();
            key.name = format!("{prefix}{}", key.name);
            self = self.with_key(key);
        }
        self
    }

    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Every problem with `raw`, by field name. Keys not in the definition are
    /// ignored (connectors pass extra settings through, as in Kafka).
    pub fn validate(&self, raw: &ConfigMap) -> BTreeMap<String, Vec<String>> {
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in &self.keys {
            if let Err(message) = key.check(raw.get(&key.name).map(String::as_str)) {
                errors.entry(key.name.clone()).or_default().push(message);
            }
        }
        errors
    }

    /// The values with defaults applied, after validation.
    pub fn parse(&self, raw: &ConfigMap) -> Result<Config, crate::ConnectError> {
        let errors = self.validate(raw);
        if !errors.is_empty() {
            return Err(crate::ConnectError::InvalidConfig(errors));
        }
        Ok(Config {
            def: self.clone(),
            raw: raw.clone(),
        })
    }
}

impl ConfigKey {
    /// Checks one value (`None` = not set).
    pub fn check(&self, value: Option<&str>) -> Result<(), String> {
        let value = match (value, &self.default) {
            (Some(v), _) => v,
            (None, Some(default)) => default.as_str(),
            (None, None) => {
                return Err(format!(
                    "Missing required configuration \"{}\" which has no default value.",
                    self.name
                ))
            }
        };
        // An empty default means "optional, unset": empty is fine then.
        if value.trim().is_empty() && self.default.as_deref() == Some("") {
            return Ok(());
        }
        let invalid = |why: String| {
            let shown = if self.ty == ConfigType::Password {
                "[hidden]"
            } else {
                value
            };
            format!(
                "Invalid value {shown} for configuration {}: {why}",
                self.name
            )
        };
        let number = match self.ty {
            ConfigType::Boolean => {
                if !value.trim().eq_ignore_ascii_case("true")
                    && !value.trim().eq_ignore_ascii_case("false")
                {
                    return Err(invalid("Expected value to be either true or false".into()));
                }
                None
            }
            ConfigType::Int => Some(
                value
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| invalid("Not a number of type INT".into()))?
                    as f64,
            ),
            ConfigType::Long => Some(
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| invalid("Not a number of type LONG".into()))?
                    as f64,
            ),
            ConfigType::Double => Some(
                value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| invalid("Not a number of type DOUBLE".into()))?,
            ),
            _ => None,
        };
        match (&self.validator, number) {
            (None, _) => Ok(()),
            (Some(Validator::AtLeast(min)), Some(n)) if n < *min => {
                Err(invalid(format!("Value must be at least {min}")))
            }
            (Some(Validator::Between(min, max)), Some(n)) if n < *min || n > *max => {
                Err(invalid(format!("Value must be in [{min}, {max}]")))
            }
            (Some(Validator::OneOf(options)), _)
                if !options.iter().any(|o| o.eq_ignore_ascii_case(value.trim())) =>
            {
                Err(invalid(format!(
                    "String must be one of: {}",
                    options.join(", ")
                )))
            }
            (Some(Validator::NonEmpty), _) if value.trim().is_empty() => {
                Err(invalid("String must be non-empty".into()))
            }
            (Some(Validator::Regex), _) => regex::Regex::new(value)
                .map(|_| ())
                .map_err(|e| invalid(format!("not a valid regular expression: {e}"))),
            (Some(Validator::Custom(check)), _) => check(value).map_err(invalid),
            _ => Ok(()),
        }
    }
}

/// Validated values of a definition, read with their types.
#[derive(Clone, Debug)]
pub struct Config {
    def: ConfigDef,
    raw: ConfigMap,
}

impl Config {
    /// The raw string: set value, else the default, else empty.
    pub fn string(&self, name: &str) -> String {
        self.raw
            .get(name)
            .cloned()
            .or_else(|| self.def.key(name).and_then(|k| k.default.clone()))
            .unwrap_or_default()
    }

    /// `None` when neither set nor defaulted to something non-empty.
    pub fn optional_string(&self, name: &str) -> Option<String> {
        Some(self.string(name)).filter(|s| !s.trim().is_empty())
    }

    pub fn int(&self, name: &str) -> i32 {
        self.string(name).trim().parse().unwrap_or_default()
    }

    pub fn long(&self, name: &str) -> i64 {
        self.string(name).trim().parse().unwrap_or_default()
    }

    pub fn double(&self, name: &str) -> f64 {
        self.string(name).trim().parse().unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> bool {
        self.string(name).trim().eq_ignore_ascii_case("true")
    }

    /// A comma-separated list, trimmed, empty items dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        split_list(&self.string(name))
    }

    /// The raw map as given.
    pub fn raw(&self) -> &ConfigMap {
        &self.raw
    }

    /// Every raw key starting with `prefix`, with the prefix removed.
    pub fn with_prefix(&self, prefix: &str) -> ConfigMap {
        prefixed(&self.raw, prefix)
    }
}

/// Splits a comma-separated list.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every key of `raw` starting with `prefix`, with the prefix removed.
pub fn prefixed(raw: &ConfigMap, prefix: &str) -> ConfigMap {
    raw.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

/// Kafka Connect's `ConfigInfos` (the answer of `config/validate`).
#[derive(Debug, Serialize)]
pub struct ConfigInfos {
    pub name: String,
    pub error_count: usize,
    pub groups: Vec<String>,
    pub configs: Vec<ConfigInfo>,
}

#[derive(Debug, Serialize)]
pub struct ConfigInfo {
    pub definition: ConfigKeyInfo,
    pub value: ConfigValueInfo,
}

#[derive(Debug, Serialize)]
pub struct ConfigKeyInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ConfigType,
    pub required: bool,
    pub default_value: Option<String>,
    pub importance: Importance,
    pub documentation: String,
    pub group: Option<String>,
    pub order: usize,
    pub width: &'static str,
    pub display_name: String,
    pub dependents: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ConfigValueInfo {
    pub name: String,
    pub value: Option<String>,
    pub recommended_values: Vec<String>,
    pub errors: Vec<String>,
    pub visible: bool,
}

impl ConfigKey {
    /// The key's definition in Kafka Connect's REST shape.
    pub fn info(&self, order: usize) -> ConfigKeyInfo {
        ConfigKeyInfo {
            name: self.name.clone(),
            ty: self.ty,
            required: self.default.is_none(),
            default_value: self.default.clone(),
            importance: self.importance,
            documentation: self.doc.clone(),
            group: self.group.clone(),
            order,
            width: "NONE",
            display_name: self.name.clone(),
            dependents: Vec::new(),
        }
    }
}

impl ConfigInfos {
    /// The validation result of `raw` against `def`, with `errors` (which may
    /// hold more than the definition itself finds, and fields it lacks).
    pub fn build(
        name: &str,
        def: &ConfigDef,
        raw: &ConfigMap,
        errors: &BTreeMap<String, Vec<String>>,
    ) -> ConfigInfos {
        let mut groups: Vec<String> = Vec::new();
        let mut configs = Vec::new();
        for (order, key) in def.keys().iter().enumerate() {
            if let Some(group) = &key.group {
                if !groups.contains(group) {
                    groups.push(group.clone());
                }
            }
            let value = raw.get(&key.name).cloned().or_else(|| key.default.clone());
            let value = if key.ty == ConfigType::Password && value.is_some() {
                Some("[hidden]".to_string())
            } else {
                value
            };
            let recommended_values = match &key.validator {
                Some(Validator::OneOf(options)) => options.iter().map(|s| s.to_string()).collect(),
                _ => Vec::new(),
            };
            configs.push(ConfigInfo {
                definition: key.info(order + 1),
                value: ConfigValueInfo {
                    name: key.name.clone(),
                    value,
                    recommended_values,
                    errors: errors.get(&key.name).cloned().unwrap_or_default(),
                    visible: true,
                },
            });
        }
        // Fields with errors that no key defines (e.g. a transform's keys).
        for (field, problems) in errors {
            if def.key(field).is_none() {
                configs.push(ConfigInfo {
                    definition: ConfigKey {
                        name: field.clone(),
                        ty: ConfigType::String,
                        default: Some(String::new()),
                        importance: Importance::High,
                        doc: String::new(),
                        group: None,
                        validator: None,
                    }
                    .info(configs.len() + 1),
                    value: ConfigValueInfo {
                        name: field.clone(),
                        value: raw.get(field).cloned(),
                        recommended_values: Vec::new(),
                        errors: problems.clone(),
                        visible: true,
                    },
                });
            }
        }
        ConfigInfos {
            name: name.to_string(),
            error_count: errors.values().map(Vec::len).sum(),
            groups,
            configs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_invalid_field_is_named() {
        let def = ConfigDef::new()
            .define("a", ConfigType::String, None, Importance::High, "")
            .define("b", ConfigType::Int, Some("1"), Importance::Low, "")
            .define_with(
                "c",
                ConfigType::String,
                Some("x"),
                Importance::Low,
                "",
                Validator::OneOf(&["x", "y"]),
            )
            .define("d", ConfigType::Boolean, Some("false"), Importance::Low, "");
        let errors = def.validate(&map(&[("b", "one"), ("c", "z"), ("d", "yes")]));
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            vec!["a", "b", "c", "d"],
            "{errors:?}"
        );
        assert!(def.validate(&map(&[("a", "v"), ("c", "Y")])).is_empty());
    }

    #[test]
    fn typed_reads_apply_defaults() {
        let def = ConfigDef::new()
            .define("n", ConfigType::Int, Some("7"), Importance::Low, "")
            .define("l", ConfigType::List, Some("a, b,,c"), Importance::Low, "");
        let config = def.parse(&map(&[])).unwrap();
        assert_eq!(config.int("n"), 7);
        assert_eq!(config.list("l"), vec!["a", "b", "c"]);
    }

    #[test]
    fn passwords_are_hidden_in_messages() {
        let def = ConfigDef::new().define_with(
            "p",
            ConfigType::Password,
            None,
            Importance::High,
            "",
            Validator::Custom(|_| Err("no".into())),
        );
        let errors = def.validate(&map(&[("p", "secret")]));
        assert!(!errors["p"][0].contains("secret"), "{errors:?}");
    }
}
