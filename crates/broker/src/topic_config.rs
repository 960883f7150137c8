//! Topic configs under Kafka's names, their defaults, validation, and how
//! they resolve (topic override → dynamic broker default → static broker
//! config → Kafka's default) into a [`strom_log::LogConfig`].

use crate::config::{BrokerConfig, BROKER_TOPIC_DEFAULTS};
use std::collections::BTreeMap;
use std::time::Duration;
use strom_log::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType};

/// Kafka's `ConfigType` as carried by DescribeConfigs v3+.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Kafka's `ConfigSource`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

pub struct TopicConfigDef {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: ConfigType,
    /// Allowed values for enumerations (each element for lists).
    pub one_of: &'static [&'static str],
    /// Smallest allowed value for numbers.
    pub min: Option<f64>,
}

const LONG_MAX: &str = "9223372036854775807";

macro_rules! def {
    ($name:expr, $default:expr, $kind:ident) => {
        TopicConfigDef {
            name: $name,
            default: $default,
            kind: ConfigType::$kind,
            one_of: &[],
            min: None,
        }
    };
    ($name:expr, $default:expr, $kind:ident, min = $min:expr) => {
        TopicConfigDef {
            name: $name,
            default: $default,
            kind: ConfigType::$kind,
            one_of: &[],
            min: Some($min),
        }
    };
    ($name:expr, $default:expr, $kind:ident, one_of = $one_of:expr) => {
        TopicConfigDef {
            name: $name,
            default: $default,
            kind: ConfigType::$kind,
            one_of: $one_of,
            min: None,
        }
    };
}

/// The topic configs Strom knows, with Kafka 4's defaults.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!(
        "cleanup.policy",
        "delete",
        List,
        one_of = &["delete", "compact"]
    ),
    def!(
        "compression.type",
        "producer",
        String,
        one_of = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]
    ),
    def!("delete.retention.ms", "86400000", Long, min = 0.0),
    def!("file.delete.delay.ms", "60000", Long, min = 0.0),
    def!("flush.messages", LONG_MAX, Long, min = 1.0),
    def!("flush.ms", LONG_MAX, Long, min = 0.0),
    def!("index.interval.bytes", "4096", Int, min = 0.0),
    // Tiered storage (KIP-405) is not offered: with everything local, the
    // local retention is the retention, and remote storage cannot be
    // enabled. Listed so that topic descriptions match Kafka's.
    def!("local.retention.bytes", "-2", Long, min = -2.0),
    def!("local.retention.ms", "-2", Long, min = -2.0),
    def!("max.compaction.lag.ms", LONG_MAX, Long, min = 1.0),
    def!("max.message.bytes", "1048588", Int, min = 0.0),
    def!("message.timestamp.after.max.ms", "3600000", Long, min = 0.0),
    def!("message.timestamp.before.max.ms", LONG_MAX, Long, min = 0.0),
    def!(
        "message.timestamp.type",
        "CreateTime",
        String,
        one_of = &["CreateTime", "LogAppendTime"]
    ),
    def!("min.cleanable.dirty.ratio", "0.5", Double, min = 0.0),
    def!("min.compaction.lag.ms", "0", Long, min = 0.0),
    def!("min.insync.replicas", "1", Int, min = 1.0),
    def!("preallocate", "false", Boolean),
    def!("remote.storage.enable", "false", Boolean),
    def!("retention.bytes", "-1", Long),
    def!("retention.ms", "604800000", Long, min = -1.0),
    def!("segment.bytes", "1073741824", Int, min = 1048576.0),
    def!("segment.index.bytes", "10485760", Int, min = 4.0),
    def!("segment.jitter.ms", "0", Long, min = 0.0),
    def!("segment.ms", "604800000", Long, min = 1.0),
    def!("unclean.leader.election.enable", "false", Boolean),
];

pub fn definition(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The broker property that sets the default of a topic config.
pub fn broker_synonym(topic_config: &str) -> Option<&'static str> {
    BROKER_TOPIC_DEFAULTS
        .iter()
        .find(|(_, t)| *t == topic_config)
        .map(|(b, _)| *b)
}

/// Checks one value against its definition; the error names the config.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = definition(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let invalid = |why: &str| format!("Invalid value {value} for configuration {name}: {why}");
    match def.kind {
        ConfigType::Boolean => {
            if !matches!(value.to_ascii_lowercase().as_str(), "true" | "false") {
                return Err(invalid("Expected value to be either true or false"));
            }
            if name == "remote.storage.enable" && value.eq_ignore_ascii_case("true") {
                return Err("Tiered Storage functionality is disabled in the broker. \
                     Topic cannot be configured with remote log storage."
                    .to_string());
            }
        }
        ConfigType::Int | ConfigType::Long => {
            let n: i64 = value.trim().parse().map_err(|_| invalid("Not a number"))?;
            if def.kind == ConfigType::Int && i32::try_from(n).is_err() {
                return Err(invalid("Not a 32-bit integer"));
            }
            if let Some(min) = def.min {
                if (n as f64) < min {
                    return Err(invalid(&format!("Value must be at least {min}")));
                }
            }
        }
        ConfigType::Double => {
            let n: f64 = value.trim().parse().map_err(|_| invalid("Not a number"))?;
            if let Some(min) = def.min {
                if n < min {
                    return Err(invalid(&format!("Value must be at least {min}")));
                }
            }
        }
        ConfigType::String => {
            if !def.one_of.is_empty() && !def.one_of.contains(&value) {
                return Err(invalid(&format!(
                    "String must be one of: {}",
                    def.one_of.join(", ")
                )));
            }
        }
        ConfigType::List => {
            for item in value.split(',').map(str::trim) {
                if !def.one_of.is_empty() && !def.one_of.contains(&item) {
                    return Err(invalid(&format!(
                        "Each item must be one of: {}",
                        def.one_of.join(", ")
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Broker-level defaults that topic configs fall back to.
#[derive(Clone, Debug, Default)]
pub struct BrokerDefaults {
    /// From the static configuration (TOML / env), by broker property name.
    pub static_props: BTreeMap<String, String>,
    /// Set at run time with AlterConfigs on the cluster default broker resource.
    pub dynamic_default: BTreeMap<String, String>,
    /// Set at run time with AlterConfigs on this broker's resource.
    pub dynamic_broker: BTreeMap<String, String>,
    /// Strom's own defaults where they differ from Kafka's (the flush
    /// policy), reported as DEFAULT_CONFIG: nobody configured them.
    pub builtin: BTreeMap<String, String>,
}

impl BrokerDefaults {
    pub fn from_config(config: &BrokerConfig) -> Self {
        let mut static_props = config.log_defaults.clone();
        let mut builtin = BTreeMap::new();
        // The `flush` shorthand feeds Kafka's own flush properties; left
        // unset, Strom's default policy is a default, not a static setting.
        let flush_set = ["flush", "log.flush.policy"]
            .iter()
            .any(|k| config.explicit.contains(*k));
        let flush_props = if flush_set {
            &mut static_props
        } else {
            &mut builtin
        };
        match config.flush {
            FlushPolicy::Always => {
                flush_props
                    .entry("log.flush.interval.messages".into())
                    .or_insert("1".into());
            }
            FlushPolicy::Interval(d) => {
                flush_props
                    .entry("log.flush.interval.ms".into())
                    .or_insert(d.as_millis().to_string());
            }
            FlushPolicy::Never => {}
        }
        for key in static_props.keys() {
            builtin.remove(key);
        }
        BrokerDefaults {
            static_props,
            builtin,
            ..Default::default()
        }
    }

    /// The broker-level value of a broker property and where it comes from.
    pub fn broker_value(&self, broker_prop: &str) -> Option<(String, ConfigSource)> {
        if let Some(v) = self.dynamic_broker.get(broker_prop) {
            return Some((v.clone(), ConfigSource::DynamicBroker));
        }
        if let Some(v) = self.dynamic_default.get(broker_prop) {
            return Some((v.clone(), ConfigSource::DynamicDefaultBroker));
        }
        if let Some(v) = self.static_props.get(broker_prop) {
            return Some((v.clone(), ConfigSource::StaticBroker));
        }
        self.builtin
            .get(broker_prop)
            .map(|v| (v.clone(), ConfigSource::Default))
    }

    /// Every level that sets a broker property, highest precedence first
    /// (Kafka's synonyms list; defaults are not listed).
    pub fn broker_levels(&self, broker_prop: &str) -> Vec<(String, ConfigSource)> {
        [
            (&self.dynamic_broker, ConfigSource::DynamicBroker),
            (&self.dynamic_default, ConfigSource::DynamicDefaultBroker),
            (&self.static_props, ConfigSource::StaticBroker),
        ]
        .into_iter()
        .filter_map(|(map, source)| map.get(broker_prop).map(|v| (v.clone(), source)))
        .collect()
    }

    /// The value a topic config takes when the topic does not override it.
    pub fn topic_default(&self, def: &TopicConfigDef) -> (String, ConfigSource) {
        broker_synonym(def.name)
            .and_then(|b| self.broker_value(b))
            .unwrap_or_else(|| (def.default.to_string(), ConfigSource::Default))
    }
}

/// One topic config as DescribeConfigs reports it.
pub struct ResolvedConfig {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub kind: ConfigType,
}

/// Every topic config with its effective value and source.
pub fn resolve_all(
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerDefaults,
) -> Vec<ResolvedConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (v.clone(), ConfigSource::DynamicTopic),
                None => defaults.topic_default(def),
            };
            ResolvedConfig {
                name: def.name,
                value,
                source,
                kind: def.kind,
            }
        })
        .collect()
}

/// The log settings that follow from a topic's configs.
pub fn log_config(overrides: &BTreeMap<String, String>, defaults: &BrokerDefaults) -> LogConfig {
    let resolved = resolve_all(overrides, defaults);
    let get = |name: &str| {
        resolved
            .iter()
            .find(|r| r.name == name)
            .expect("known config")
    };
    let num = |name: &str| get(name).value.trim().parse::<i64>().unwrap_or(i64::MAX);
    let positive_ms = |name: &str| {
        let n = num(name);
        (n >= 0).then_some(n as u64)
    };
    let flush_messages = num("flush.messages");
    let flush_ms = num("flush.ms");
    let flush = if flush_messages == 1 {
        FlushPolicy::Always
    } else if flush_ms == i64::MAX {
        FlushPolicy::Never
    } else {
        FlushPolicy::Interval(Duration::from_millis(flush_ms.max(0) as u64))
    };
    let policy: Vec<&str> = get("cleanup.policy")
        .value
        .split(',')
        .map(str::trim)
        .collect();
    let cleanup_policy = match (policy.contains(&"delete"), policy.contains(&"compact")) {
        (false, false) => CleanupPolicy::DELETE,
        (delete, compact) => CleanupPolicy { delete, compact },
    };
    let max_compaction_lag_ms = num("max.compaction.lag.ms");
    LogConfig {
        segment_bytes: num("segment.bytes").max(1) as u64,
        segment_ms: positive_ms("segment.ms"),
        retention_ms: positive_ms("retention.ms"),
        retention_bytes: positive_ms("retention.bytes"),
        index_interval_bytes: num("index.interval.bytes").clamp(0, u32::MAX as i64) as u32,
        max_message_bytes: num("max.message.bytes").max(0) as usize,
        timestamp_type: if get("message.timestamp.type").value == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        flush,
        cleanup_policy,
        delete_retention_ms: num("delete.retention.ms").max(0) as u64,
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite())
            .map_or(0.5, |r| r.clamp(0.0, 1.0)),
        min_compaction_lag_ms: num("min.compaction.lag.ms").max(0) as u64,
        max_compaction_lag_ms: (max_compaction_lag_ms != i64::MAX)
            .then_some(max_compaction_lag_ms.max(1) as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_kafka() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("segment.bytes", "100").is_err());
        assert!(validate("no.such.config", "1").is_err());
        assert!(validate("max.message.bytes", "99999999999").is_err());
        // No tiered storage: local retention may be set, remote storage not.
        assert!(validate("local.retention.ms", "-2").is_ok());
        assert!(validate("local.retention.bytes", "1000").is_ok());
        assert!(validate("remote.storage.enable", "false").is_ok());
        let refused = validate("remote.storage.enable", "true").unwrap_err();
        assert!(refused.contains("Tiered Storage"), "{refused}");
    }

    #[test]
    fn resolution_order() {
        let mut defaults = BrokerDefaults::default();
        let overrides = BTreeMap::new();
        let r = resolve_all(&overrides, &defaults);
        let retention = r.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("604800000", ConfigSource::Default)
        );

        defaults
            .static_props
            .insert("log.retention.ms".into(), "1000".into());
        defaults
            .dynamic_default
            .insert("log.retention.ms".into(), "2000".into());
        let r = resolve_all(&overrides, &defaults);
        let retention = r.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("2000", ConfigSource::DynamicDefaultBroker)
        );

        let overrides = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        let log = log_config(&overrides, &defaults);
        assert_eq!(log.retention_ms, Some(5));
    }

    #[test]
    fn compaction_configs_reach_the_log() {
        let mut defaults = BrokerDefaults::default();
        let plain = log_config(&BTreeMap::new(), &defaults);
        assert_eq!(plain.cleanup_policy, CleanupPolicy::DELETE);
        assert_eq!(plain.delete_retention_ms, 86_400_000);
        assert_eq!(plain.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(plain.min_compaction_lag_ms, 0);
        assert_eq!(plain.max_compaction_lag_ms, None);

        let configs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let compacted = log_config(
            &configs(&[
                ("cleanup.policy", "compact"),
                ("delete.retention.ms", "100"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("min.compaction.lag.ms", "5000"),
                ("max.compaction.lag.ms", "60000"),
            ]),
            &defaults,
        );
        assert_eq!(compacted.cleanup_policy, CleanupPolicy::COMPACT);
        assert_eq!(compacted.delete_retention_ms, 100);
        assert_eq!(compacted.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(compacted.min_compaction_lag_ms, 5000);
        assert_eq!(compacted.max_compaction_lag_ms, Some(60000));
        let both = log_config(
            &configs(&[("cleanup.policy", "compact, delete")]),
            &defaults,
        );
        assert_eq!(both.cleanup_policy, CleanupPolicy::COMPACT_DELETE);

        defaults
            .static_props
            .insert("log.cleanup.policy".into(), "compact".into());
        defaults
            .static_props
            .insert("log.cleaner.min.cleanable.ratio".into(), "0.2".into());
        let from_broker = log_config(&BTreeMap::new(), &defaults);
        assert_eq!(from_broker.cleanup_policy, CleanupPolicy::COMPACT);
        assert_eq!(from_broker.min_cleanable_dirty_ratio, 0.2);
    }

    #[test]
    fn flush_policy_from_kafka_names() {
        let defaults = BrokerDefaults::default();
        let always = BTreeMap::from([("flush.messages".to_string(), "1".to_string())]);
        assert_eq!(log_config(&always, &defaults).flush, FlushPolicy::Always);
        let interval = BTreeMap::from([("flush.ms".to_string(), "250".to_string())]);
        assert_eq!(
            log_config(&interval, &defaults).flush,
            FlushPolicy::Interval(Duration::from_millis(250))
        );
        assert_eq!(
            log_config(&BTreeMap::new(), &defaults).flush,
            FlushPolicy::Never
        );
    }
}
