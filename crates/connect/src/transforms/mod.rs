//! Single message transforms (SMTs) and predicates, chained by connector
//! config as in Kafka Connect:
//!
//! ```text
//! transforms = addSite,route
//! transforms.addSite.type = org.apache.kafka.connect.transforms.InsertField$Value
//! transforms.addSite.static.field = site
//! transforms.addSite.static.value = plant-7
//! transforms.route.type = RegexRouter
//! transforms.route.regex = (.*)-raw
//! transforms.route.replacement = $1
//! transforms.route.predicate = isRaw
//! predicates = isRaw
//! predicates.isRaw.type = TopicNameMatches
//! predicates.isRaw.pattern = .*-raw
//! ```
//!
//! Class names are Kafka's (`org.apache.kafka.connect.transforms.X$Value`);
//! the short forms `X$Value`, `X$Key` and `X` (for the routers, `Filter` and
//! predicates) work too.

mod fields;
mod routers;

use crate::error::{ConnectError, Result};
use crate::sdk::config::{prefixed, split_list, Config, ConfigDef, ConfigMap};
use crate::sdk::data::Record;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which side of a record a transform acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Key,
    Value,
}

/// A transform of one record: `Ok(None)` drops it.
pub trait Transformation: Send + Sync {
    fn apply(&self, record: Record, offset: Option<i64>) -> Result<Option<Record>>;
}

/// A condition on a record, for conditional transforms.
pub trait Predicate: Send + Sync {
    fn test(&self, record: &Record) -> bool;
}

type TransformFactory = fn(Side, &Config) -> Result<Box<dyn Transformation>>;

/// A transform plugin: its class, whether it has `$Key`/`$Value` variants,
/// its settings and how to build it.
pub struct TransformPlugin {
    pub name: &'static str,
    pub sided: bool,
    pub config_def: fn() -> ConfigDef,
    pub build: TransformFactory,
}

pub struct PredicatePlugin {
    pub name: &'static str,
    pub config_def: fn() -> ConfigDef,
    pub build: fn(&Config) -> Result<Box<dyn Predicate>>,
}

const TRANSFORM_PACKAGE: &str = "org.apache.kafka.connect.transforms.";
const PREDICATE_PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";

pub fn transform_plugins() -> Vec<TransformPlugin> {
    vec![
        fields::insert_field(),
        fields::replace_field(),
        fields::mask_field(),
        fields::value_to_key(),
        fields::extract_field(),
        routers::timestamp_router(),
        routers::regex_router(),
        routers::filter(),
    ]
}

pub fn predicate_plugins() -> Vec<PredicatePlugin> {
    routers::predicates()
}

/// Every transform class name (Kafka's full names), for `connector-plugins`.
pub fn transform_classes() -> Vec<String> {
    let mut out = Vec::new();
    for p in transform_plugins() {
        if p.sided {
            out.push(format!("{TRANSFORM_PACKAGE}{}$Key", p.name));
            out.push(format!("{TRANSFORM_PACKAGE}{}$Value", p.name));
        } else {
            out.push(format!("{TRANSFORM_PACKAGE}{}", p.name));
        }
    }
    out
}

pub fn predicate_classes() -> Vec<String> {
    predicate_plugins()
        .iter()
        .map(|p| format!("{PREDICATE_PACKAGE}{}", p.name))
        .collect()
}

/// Finds a transform plugin and side by class name.
fn find_transform(class: &str) -> Option<(TransformPlugin, Side)> {
    let short = class.strip_prefix(TRANSFORM_PACKAGE).unwrap_or(class);
    let (name, side) = match short.split_once('$') {
        Some((name, "Key")) => (name, Some(Side::Key)),
        Some((name, "Value")) => (name, Some(Side::Value)),
        Some(_) => return None,
        None => (short, None),
    };
    let plugin = transform_plugins().into_iter().find(|p| p.name == name)?;
    match (plugin.sided, side) {
        (true, Some(side)) => Some((plugin, side)),
        (false, None) => Some((plugin, Side::Value)),
        _ => None,
    }
}

fn find_predicate(class: &str) -> Option<PredicatePlugin> {
    let short = class.strip_prefix(PREDICATE_PACKAGE).unwrap_or(class);
    predicate_plugins().into_iter().find(|p| p.name == short)
}

struct Step {
    transform: Box<dyn Transformation>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// The transforms of one connector, in order.
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

impl TransformChain {
    /// Builds the chain from a connector's config, or names every invalid
    /// `transforms.*`/`predicates.*` field.
    pub fn from_config(config: &ConfigMap) -> Result<TransformChain> {
        let (chain, errors) = Self::build(config);
        if errors.is_empty() {
            Ok(chain)
        } else {
            Err(ConnectError::InvalidConfig(errors))
        }
    }

    /// Every problem with the `transforms.*` and `predicates.*` settings.
    pub fn validate(config: &ConfigMap) -> BTreeMap<String, Vec<String>> {
        Self::build(config).1
    }

    fn build(config: &ConfigMap) -> (TransformChain, BTreeMap<String, Vec<String>>) {
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut error = |field: String, message: String| {
            errors.entry(field).or_default().push(message);
        };
        let mut predicates: BTreeMap<String, Arc<dyn Predicate>> = BTreeMap::new();
        let predicate_names = split_list(config.get("predicates").map_or("", String::as_str));
        for name in &predicate_names {
            let type_key = format!("predicates.{name}.type");
            let Some(class) = config.get(&type_key) else {
                error(type_key, format!("Missing required configuration \"predicates.{name}.type\" which has no default value."));
                continue;
            };
            let Some(plugin) = find_predicate(class) else {
                error(type_key, format!("Invalid value {class} for configuration predicates.{name}.type: unknown predicate; known: {}", predicate_classes().join(", ")));
                continue;
            };
            let settings = prefixed(config, &format!("predicates.{name}."));
            let def = (plugin.config_def)();
            let field_errors = def.validate(&settings);
            if !field_errors.is_empty() {
                for (field, problems) in field_errors {
                    for p in problems {
                        error(format!("predicates.{name}.{field}"), p);
                    }
                }
                continue;
            }
            match def.parse(&settings).and_then(|c| (plugin.build)(&c)) {
                Ok(p) => {
                    predicates.insert(name.clone(), Arc::from(p));
                }
                Err(e) => error(format!("predicates.{name}.type"), e.to_string()),
            }
        }
        let mut steps = Vec::new();
        for name in split_list(config.get("transforms").map_or("", String::as_str)) {
            let type_key = format!("transforms.{name}.type");
            let Some(class) = config.get(&type_key) else {
                error(type_key, format!("Missing required configuration \"transforms.{name}.type\" which has no default value."));
                continue;
            };
            let Some((plugin, side)) = find_transform(class) else {
                error(type_key, format!("Invalid value {class} for configuration transforms.{name}.type: unknown transform; known: {}", transform_classes().join(", ")));
                continue;
            };
            let settings = prefixed(config, &format!("transforms.{name}."));
            let def = (plugin.config_def)();
            let field_errors = def.validate(&settings);
            let mut ok = field_errors.is_empty();
            for (field, problems) in field_errors {
                for p in problems {
                    error(format!("transforms.{name}.{field}"), p);
                }
            }
            let predicate = match settings.get("predicate").filter(|p| !p.trim().is_empty()) {
                None => None,
                Some(p) if !predicate_names.contains(p) => {
                    error(
                        format!("transforms.{name}.predicate"),
                        format!("predicate {p} is not listed in \"predicates\""),
                    );
                    ok = false;
                    None
                }
                Some(p) => {
                    let negate = settings
                        .get("negate")
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                    predicates.get(p).cloned().map(|pred| (pred, negate))
                }
            };
            if !ok {
                continue;
            }
            match def.parse(&settings).and_then(|c| (plugin.build)(side, &c)) {
                Ok(transform) => steps.push(Step {
                    transform,
                    predicate,
                }),
                Err(ConnectError::InvalidConfig(fields)) => {
                    for (field, problems) in fields {
                        for p in problems {
                            error(format!("transforms.{name}.{field}"), p);
                        }
                    }
                }
                Err(e) => error(type_key, e.to_string()),
            }
        }
        (TransformChain { steps }, errors)
    }

    /// Applies every transform in turn; `Ok(None)` when one dropped the record.
    pub fn apply(&self, mut record: Record, offset: Option<i64>) -> Result<Option<Record>> {
        for step in &self.steps {
            if let Some((predicate, negate)) = &step.predicate {
                if predicate.test(&record) == *negate {
                    continue;
                }
            }
            match step.transform.apply(record, offset)? {
                Some(next) => record = next,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

#[cfg(test)]
mod tests;
