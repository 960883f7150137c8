//! The settings every connector has (Kafka Connect's ConnectorConfig,
//! SinkConnectorConfig, SourceConnectorConfig), the plugin registry, and the
//! validation of a whole connector config that names every invalid field.

use crate::error::{ConnectError, Result};
use crate::runtime::worker_config::{ExactlyOnceSourceSupport, WorkerConfig};
use crate::sdk::config::{
    split_list, Config, ConfigDef, ConfigInfos, ConfigMap, ConfigType, Importance, Validator,
};
use crate::sdk::converter::canonical_converter;
use crate::sdk::{ConnectorPlugin, ConnectorType};
use crate::transforms::TransformChain;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

fn valid_name(name: &str) -> std::result::Result<(), String> {
    if name.trim().is_empty() {
        return Err("Connector name must not be empty".into());
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("Connector name must not contain control characters".into());
    }
    if name.contains('/') {
        return Err("Connector name must not contain '/'".into());
    }
    Ok(())
}

fn valid_converter(class: &str) -> std::result::Result<(), String> {
    if class.trim().is_empty() || canonical_converter(class.trim()).is_some() {
        Ok(())
    } else {
        Err(format!(
            "unknown converter; known: {}",
            crate::sdk::converter::CONVERTERS
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// The settings of every connector.
pub fn common_def() -> ConfigDef {
    ConfigDef::new()
        .define_with("name", ConfigType::String, None, Importance::High, "Globally unique name to use for this connector.", Validator::Custom(valid_name))
        .define_with("connector.class", ConfigType::String, None, Importance::High, "Name or alias of the class for this connector.", Validator::NonEmpty)
        .define_with("tasks.max", ConfigType::Int, Some("1"), Importance::High, "Maximum number of tasks to use for this connector.", Validator::AtLeast(1.0))
        .define_with("key.converter", ConfigType::Class, Some(""), Importance::Low, "Converter for record keys; empty = the worker's.", Validator::Custom(valid_converter))
        .define_with("value.converter", ConfigType::Class, Some(""), Importance::Low, "Converter for record values; empty = the worker's.", Validator::Custom(valid_converter))
        .define("header.converter", ConfigType::Class, Some(""), Importance::Low, "Accepted for compatibility; headers are passed through as bytes.")
        .define("transforms", ConfigType::List, Some(""), Importance::Low, "Aliases for the transformations to be applied to records.")
        .define("predicates", ConfigType::List, Some(""), Importance::Low, "Aliases for the predicates used by transformations.")
        .in_group("Common")
        .define_with("errors.retry.timeout", ConfigType::Long, Some("0"), Importance::Medium, "Milliseconds to retry a failed operation (conversion, transformation); -1 = forever.", Validator::AtLeast(-1.0))
        .define_with("errors.retry.delay.max.ms", ConfigType::Long, Some("60000"), Importance::Medium, "Maximum milliseconds between retries.", Validator::AtLeast(1.0))
        .define_with("errors.tolerance", ConfigType::String, Some("none"), Importance::Medium, "none: an error fails the task; all: problematic records are skipped (and sent to the dead-letter queue of a sink, if configured).", Validator::OneOf(&["none", "all"]))
        .define("errors.log.enable", ConfigType::Boolean, Some("false"), Importance::Medium, "Log every tolerated error.")
        .define("errors.log.include.messages", ConfigType::Boolean, Some("false"), Importance::Medium, "Include the record in the error log.")
        .in_group("Error Handling")
}

/// The settings of every sink connector.
pub fn sink_def() -> ConfigDef {
    common_def()
        .define("topics", ConfigType::List, Some(""), Importance::High, "Topics to consume. Exactly one of topics and topics.regex must be set.")
        .define_with("topics.regex", ConfigType::String, Some(""), Importance::High, "Regular expression of topics to consume.", Validator::Regex)
        .define("errors.deadletterqueue.topic.name", ConfigType::String, Some(""), Importance::Medium, "Dead-letter queue topic for records that failed (with errors.tolerance=all or reported by the task).")
        .define("errors.deadletterqueue.topic.replication.factor", ConfigType::Int, Some("-1"), Importance::Low, "Replication factor of the dead-letter queue topic when created (-1 = the broker's default).")
        .define("errors.deadletterqueue.context.headers.enable", ConfigType::Boolean, Some("false"), Importance::Medium, "Add __connect.errors.* headers describing the error to dead-letter records.")
        .in_group("Sink")
}

/// The settings of every source connector.
pub fn source_def() -> ConfigDef {
    common_def()
        .define_with("exactly.once.support", ConfigType::String, Some("requested"), Importance::Medium, "required: fail unless the worker and connector can run exactly-once; requested: exactly-once when the worker has it enabled.", Validator::OneOf(&["requested", "required"]))
        .define_with("transaction.boundary", ConfigType::String, Some("poll"), Importance::Medium, "poll: one transaction per poll batch; interval: one per transaction.boundary.interval.ms.", Validator::OneOf(&["poll", "interval", "connector"]))
        .define("transaction.boundary.interval.ms", ConfigType::Long, Some(""), Importance::Low, "Milliseconds per transaction with transaction.boundary=interval (default: the worker's offset.flush.interval.ms).")
        .define("topic.creation.default.partitions", ConfigType::Int, Some("-1"), Importance::Low, "When > 0, topics written to are created with this many partitions if missing.")
        .define("topic.creation.default.replication.factor", ConfigType::Int, Some("-1"), Importance::Low, "Replication factor of created topics (-1 = the broker's default).")
        .in_group("Source")
}

/// The connector classes a worker can run.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    plugins: Vec<Arc<dyn ConnectorPlugin>>,
}

/// An entry of `GET /connector-plugins`.
#[derive(Clone, Debug, Serialize)]
pub struct PluginInfo {
    pub class: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl PluginRegistry {
    pub fn new() -> PluginRegistry {
        PluginRegistry::default()
    }

    /// The built-in connectors.
    pub fn builtin() -> PluginRegistry {
        let mut registry = PluginRegistry::new();
        for plugin in crate::connectors::builtin() {
            registry.register(plugin);
        }
        registry
    }

    pub fn register(&mut self, plugin: Arc<dyn ConnectorPlugin>) {
        self.plugins.push(plugin);
    }

    /// By class name, alias, or simple class name (with or without the
    /// `Connector` suffix), as Kafka resolves them.
    pub fn find(&self, name: &str) -> Option<Arc<dyn ConnectorPlugin>> {
        let name = name.trim();
        self.plugins
            .iter()
            .find(|p| {
                let class = p.class();
                let simple = class.rsplit('.').next().unwrap_or(class);
                class == name
                    || simple == name
                    || simple.strip_suffix("Connector") == Some(name)
                    || p.aliases().contains(&name)
            })
            .cloned()
    }

    pub fn connectors(&self) -> Vec<PluginInfo> {
        let mut out: Vec<PluginInfo> = self
            .plugins
            .iter()
            .map(|p| PluginInfo {
                class: p.class().to_string(),
                ty: match p.connector_type() {
                    ConnectorType::Source => "source".into(),
                    ConnectorType::Sink => "sink".into(),
                },
                version: Some(p.version().to_string()),
            })
            .collect();
        out.sort_by(|a, b| a.class.cmp(&b.class));
        out
    }

    /// Connectors, then transforms, predicates and converters.
    pub fn all(&self) -> Vec<PluginInfo> {
        let version = Some(env!("CARGO_PKG_VERSION").to_string());
        let mut out = self.connectors();
        let mut add = |class: String, ty: &str| {
            out.push(PluginInfo {
                class,
                ty: ty.into(),
                version: version.clone(),
            })
        };
        for class in crate::transforms::transform_classes() {
            add(class, "transformation");
        }
        for class in crate::transforms::predicate_classes() {
            add(class, "predicate");
        }
        for (class, _) in crate::sdk::converter::CONVERTERS {
            add(class.to_string(), "converter");
        }
        out
    }
}

/// The result of validating a connector config.
pub struct Validation {
    pub plugin: Option<Arc<dyn ConnectorPlugin>>,
    pub def: ConfigDef,
    pub errors: BTreeMap<String, Vec<String>>,
}

impl Validation {
    pub fn infos(&self, name: &str, raw: &ConfigMap) -> ConfigInfos {
        ConfigInfos::build(name, &self.def, raw, &self.errors)
    }

    pub fn into_result(self) -> Result<Arc<dyn ConnectorPlugin>> {
        match (self.plugin, self.errors.is_empty()) {
            (Some(plugin), true) => Ok(plugin),
            (_, _) => Err(ConnectError::InvalidConfig(self.errors)),
        }
    }
}

/// Validates a connector config completely: common settings, the
/// connector's own, its transforms and predicates, converters, and the
/// cross-field rules (topics vs topics.regex, exactly-once requirements).
pub fn validate(registry: &PluginRegistry, worker: &WorkerConfig, raw: &ConfigMap) -> Validation {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let class = raw.get("connector.class").cloned().unwrap_or_default();
    let plugin = if class.trim().is_empty() {
        None
    } else {
        let found = registry.find(&class);
        if found.is_none() {
            errors.entry("connector.class".into()).or_default().push(format!(
                "Invalid value {class} for configuration connector.class: unknown connector class; known: {}",
                registry
                    .connectors()
                    .iter()
                    .map(|p| p.class.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        found
    };
    let def = match plugin.as_ref().map(|p| p.connector_type()) {
        Some(ConnectorType::Sink) => sink_def(),
        Some(ConnectorType::Source) => source_def(),
        None => common_def(),
    };
    let def = match &plugin {
        Some(p) => def.merge(&p.config_def().in_group(p.class()), ""),
        None => def,
    };
    for (field, problems) in def.validate(raw) {
        errors.entry(field).or_default().extend(problems);
    }
    for (field, problems) in TransformChain::validate(raw) {
        errors.entry(field).or_default().extend(problems);
    }
    if let Some(plugin) = &plugin {
        for (field, problems) in plugin.validate(raw) {
            errors.entry(field).or_default().extend(problems);
        }
        let get = |k: &str| raw.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        match plugin.connector_type() {
            ConnectorType::Sink => {
                let topics = split_list(&get("topics"));
                let regex = get("topics.regex");
                if topics.is_empty() && regex.is_empty() {
                    errors
                        .entry("topics".into())
                        .or_default()
                        .push("Must configure one of topics or topics.regex".into());
                } else if !topics.is_empty() && !regex.is_empty() {
                    errors.entry("topics".into()).or_default().push(
                        "topics and topics.regex are mutually exclusive options, but both are set."
                            .into(),
                    );
                }
                let dlq = get("errors.deadletterqueue.topic.name");
                if !dlq.is_empty() && topics.contains(&dlq) {
                    errors
                        .entry("errors.deadletterqueue.topic.name".into())
                        .or_default()
                        .push(format!(
                            "The DLQ topic '{dlq}' may not be included in the list of topics ('topics') to consume."
                        ));
                }
            }
            ConnectorType::Source => {
                if get("exactly.once.support").eq_ignore_ascii_case("required") {
                    if worker.exactly_once_source_support != ExactlyOnceSourceSupport::Enabled {
                        errors.entry("exactly.once.support".into()).or_default().push(
                            "exactly.once.support=required, but the worker does not have exactly.once.source.support=enabled".into(),
                        );
                    } else if !plugin.exactly_once_support(raw) {
                        errors.entry("exactly.once.support".into()).or_default().push(format!(
                            "exactly.once.support=required, but {} cannot provide exactly-once semantics",
                            plugin.class()
                        ));
                    }
                }
                if get("transaction.boundary").eq_ignore_ascii_case("connector") {
                    errors
                        .entry("transaction.boundary".into())
                        .or_default()
                        .push(
                            "transaction.boundary=connector is not supported by this connector"
                                .into(),
                        );
                }
            }
        }
    }
    Validation {
        plugin,
        def,
        errors,
    }
}

/// A connector config read with its definition (after validation).
pub struct ConnectorSettings {
    pub name: String,
    pub plugin: Arc<dyn ConnectorPlugin>,
    pub config: Config,
}

impl ConnectorSettings {
    pub fn parse(
        registry: &PluginRegistry,
        worker: &WorkerConfig,
        raw: &ConfigMap,
    ) -> Result<ConnectorSettings> {
        let validation = validate(registry, worker, raw);
        let def = validation.def.clone();
        let plugin = validation.into_result()?;
        let config = def.parse(raw)?;
        Ok(ConnectorSettings {
            name: config.string("name"),
            plugin,
            config,
        })
    }

    pub fn tasks_max(&self) -> usize {
        self.config.int("tasks.max").max(1) as usize
    }
}
