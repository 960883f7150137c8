//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topic and
//! broker resources.

use super::{blocking, str_bytes, RequestContext};
use crate::config::{BrokerConfig, BROKER_TOPIC_DEFAULTS, NULL_DEFAULT_BROKER_PROPS};
use crate::error::ApiError;
use crate::server::BrokerContext;
use crate::topic_config::{self, ConfigSource, ConfigType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

struct Entry {
    name: String,
    /// None for a config without a value (Kafka's `log.retention.ms` when
    /// only `log.retention.hours` is in force).
    value: Option<String>,
    source: ConfigSource,
    kind: ConfigType,
    read_only: bool,
    synonyms: Vec<(String, String, ConfigSource)>,
}

pub fn describe(
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let b = ctx.broker;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.as_str().to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => topic_entries(b, &name),
                RESOURCE_BROKER => broker_entries(b, &name),
                other => Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("unsupported resource type {other}"),
                )),
            };
            match entries {
                Ok(entries) => {
                    let keys = resource.configuration_keys.as_ref();
                    let configs = entries
                        .into_iter()
                        .filter(|e| {
                            keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name))
                        })
                        .map(|e| {
                            let synonyms = if request.include_synonyms {
                                e.synonyms
                                    .into_iter()
                                    .map(|(n, v, s)| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(str_bytes(n))
                                            .with_value(Some(str_bytes(v)))
                                            .with_source(s as i8)
                                    })
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(e.name))
                                .with_value(e.value.map(str_bytes))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source as i8)
                                .with_is_sensitive(false)
                                .with_config_type(e.kind as i8)
                                .with_synonyms(synonyms)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn topic_entries(b: &BrokerContext, name: &str) -> Result<Vec<Entry>, ApiError> {
    let topic = b.topics.get(name).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("Topic {name} does not exist"),
        )
    })?;
    let defaults = b.topics.defaults();
    Ok(topic_config::resolve_all(&topic.configs, &defaults)
        .into_iter()
        .map(|c| {
            // Kafka's synonyms: the topic override, then every broker level
            // that sets the broker-wide default, then that property's
            // default (unless Kafka has none for it).
            let mut synonyms = Vec::new();
            if let Some(v) = topic.configs.get(c.name) {
                synonyms.push((c.name.to_string(), v.clone(), ConfigSource::DynamicTopic));
            }
            if let Some(broker_prop) = topic_config::broker_synonym(c.name) {
                synonyms.extend(broker_synonyms(&defaults, broker_prop, c.name));
            }
            Entry {
                name: c.name.to_string(),
                value: Some(c.value),
                source: c.source,
                kind: c.kind,
                read_only: false,
                synonyms,
            }
        })
        .collect())
}

/// The synonyms of a broker property that feeds a topic config: every level
/// that sets it, then its default, as Kafka lists them.
fn broker_synonyms(
    defaults: &topic_config::BrokerDefaults,
    broker_prop: &str,
    topic_prop: &str,
) -> Vec<(String, String, ConfigSource)> {
    let mut out: Vec<_> = defaults
        .broker_levels(broker_prop)
        .into_iter()
        .map(|(v, s)| (broker_prop.to_string(), v, s))
        .collect();
    if !NULL_DEFAULT_BROKER_PROPS.contains(&broker_prop) {
        if let Some(def) = topic_config::definition(topic_prop) {
            out.push((
                broker_prop.to_string(),
                def.default.to_string(),
                ConfigSource::Default,
            ));
        }
    }
    out
}

fn broker_entries(b: &BrokerContext, name: &str) -> Result<Vec<Entry>, ApiError> {
    let node = b.config.node_id.to_string();
    if !name.is_empty() && name != node {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("Unknown broker {name}: this is broker {node}"),
        ));
    }
    let c = &b.config;
    // Identity and listeners always come from the static configuration
    // (Kafka's server.properties; Strom's flags).
    let fixed = |name: &str, value: String, kind: ConfigType| Entry {
        name: name.to_string(),
        value: Some(value.clone()),
        source: ConfigSource::StaticBroker,
        kind,
        read_only: true,
        synonyms: vec![(name.to_string(), value, ConfigSource::StaticBroker)],
    };
    // Read-only settings: STATIC_BROKER_CONFIG only when the file or the
    // environment set them, DEFAULT_CONFIG otherwise.
    // Synonyms as Kafka lists them: the static setting, then the default.
    let setting = |name: &str, value: String, default: String, kind: ConfigType| {
        let mut synonyms = Vec::new();
        let source = if c.explicit.contains(name) {
            synonyms.push((name.to_string(), value.clone(), ConfigSource::StaticBroker));
            ConfigSource::StaticBroker
        } else {
            ConfigSource::Default
        };
        synonyms.push((name.to_string(), default, ConfigSource::Default));
        Entry {
            name: name.to_string(),
            value: Some(value),
            source,
            kind,
            read_only: true,
            synonyms,
        }
    };
    let d = BrokerConfig::default();
    let listener = format!("PLAINTEXT://{}", c.listen);
    let g = &c.groups;
    let retention_hours = if c.explicit.contains("log.retention.hours") {
        c.log_defaults
            .get("log.retention.ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map_or("168".to_string(), |ms| (ms / 3_600_000).to_string())
    } else {
        "168".to_string()
    };
    let mut entries = vec![
        fixed("node.id", node.clone(), ConfigType::Int),
        {
            let mut e = fixed("broker.id", node, ConfigType::Int);
            e.synonyms
                .push(("broker.id".into(), "-1".into(), ConfigSource::Default));
            e
        },
        fixed("listeners", listener, ConfigType::String),
        fixed(
            "advertised.listeners",
            format!("PLAINTEXT://{}:{}", b.advertised_host, b.advertised_port),
            ConfigType::String,
        ),
        fixed(
            "log.dirs",
            c.data_dir.display().to_string(),
            ConfigType::String,
        ),
        setting(
            "num.partitions",
            c.num_partitions.to_string(),
            d.num_partitions.to_string(),
            ConfigType::Int,
        ),
        setting(
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
            d.auto_create_topics_enable.to_string(),
            ConfigType::Boolean,
        ),
        setting(
            "delete.topic.enable",
            "true".into(),
            "true".into(),
            ConfigType::Boolean,
        ),
        setting(
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            d.socket_request_max_bytes.to_string(),
            ConfigType::Int,
        ),
        setting(
            "max.connections",
            c.max_connections.to_string(),
            d.max_connections.to_string(),
            ConfigType::Int,
        ),
        setting(
            "default.replication.factor",
            "1".into(),
            "1".into(),
            ConfigType::Int,
        ),
        setting(
            "log.retention.check.interval.ms",
            c.retention_check_interval.as_millis().to_string(),
            d.retention_check_interval.as_millis().to_string(),
            ConfigType::Long,
        ),
        setting(
            "log.retention.hours",
            retention_hours,
            "168".into(),
            ConfigType::Int,
        ),
        setting(
            "group.initial.rebalance.delay.ms",
            g.initial_rebalance_delay_ms.to_string(),
            d.groups.initial_rebalance_delay_ms.to_string(),
            ConfigType::Int,
        ),
        setting(
            "group.min.session.timeout.ms",
            g.min_session_timeout_ms.to_string(),
            d.groups.min_session_timeout_ms.to_string(),
            ConfigType::Int,
        ),
        setting(
            "group.max.session.timeout.ms",
            g.max_session_timeout_ms.to_string(),
            d.groups.max_session_timeout_ms.to_string(),
            ConfigType::Int,
        ),
        setting(
            "group.max.size",
            g.max_group_size.to_string(),
            d.groups.max_group_size.to_string(),
            ConfigType::Int,
        ),
        setting(
            "group.consumer.heartbeat.interval.ms",
            g.consumer_heartbeat_interval_ms.to_string(),
            d.groups.consumer_heartbeat_interval_ms.to_string(),
            ConfigType::Int,
        ),
        setting(
            "group.consumer.session.timeout.ms",
            g.consumer_session_timeout_ms.to_string(),
            d.groups.consumer_session_timeout_ms.to_string(),
            ConfigType::Int,
        ),
        setting(
            "offsets.retention.minutes",
            (g.offsets_retention_ms / 60_000).to_string(),
            (d.groups.offsets_retention_ms / 60_000).to_string(),
            ConfigType::Int,
        ),
        setting(
            "offset.metadata.max.bytes",
            g.offset_metadata_max_bytes.to_string(),
            d.groups.offset_metadata_max_bytes.to_string(),
            ConfigType::Int,
        ),
        setting(
            "offsets.topic.num.partitions",
            c.offsets_topic_partitions.to_string(),
            d.offsets_topic_partitions.to_string(),
            ConfigType::Int,
        ),
        setting(
            "transaction.max.timeout.ms",
            c.transactions.max_timeout_ms.to_string(),
            d.transactions.max_timeout_ms.to_string(),
            ConfigType::Int,
        ),
        setting(
            "transaction.state.log.num.partitions",
            c.transaction_topic_partitions.to_string(),
            d.transaction_topic_partitions.to_string(),
            ConfigType::Int,
        ),
    ];
    let defaults = b.topics.defaults();
    for (broker_prop, topic_prop) in BROKER_TOPIC_DEFAULTS {
        let def = topic_config::definition(topic_prop)
            .expect("every broker default maps to a topic config");
        let (value, source) = match defaults.broker_value(broker_prop) {
            Some((v, s)) => (Some(v), s),
            // Kafka leaves log.retention.ms unset; log.retention.hours
            // (168) is what is in force.
            None if *broker_prop == "log.retention.ms" => (None, ConfigSource::Default),
            None => (Some(def.default.to_string()), ConfigSource::Default),
        };
        let synonyms = broker_synonyms(&defaults, broker_prop, topic_prop);
        entries.push(Entry {
            name: broker_prop.to_string(),
            value,
            source,
            kind: def.kind,
            read_only: false,
            synonyms,
        });
    }
    Ok(entries)
}

fn broker_resource_configs(b: &BrokerContext, resource: &str) -> BTreeMap<String, String> {
    let defaults = b.topics.defaults();
    if resource.is_empty() {
        defaults.dynamic_default
    } else {
        defaults.dynamic_broker
    }
}

/// Applies a new full set of overrides to one resource.
fn apply(
    b: &Arc<BrokerContext>,
    resource_type: i8,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ApiError> {
    match resource_type {
        RESOURCE_TOPIC => b.topics.set_topic_configs(name, configs, validate_only),
        RESOURCE_BROKER => b.topics.set_broker_configs(name, configs, validate_only),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unsupported resource type {other}"),
        )),
    }
}

fn current(
    b: &BrokerContext,
    resource_type: i8,
    name: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    match resource_type {
        RESOURCE_TOPIC => b
            .topics
            .get(name)
            .map(|t| t.configs.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist"),
                )
            }),
        RESOURCE_BROKER => Ok(broker_resource_configs(b, name)),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unsupported resource type {other}"),
        )),
    }
}

pub async fn alter(ctx: &RequestContext<'_>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let b = ctx.broker.clone();
    let responses = blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                let name = r.resource_name.as_str().to_string();
                let mut configs = BTreeMap::new();
                let mut outcome = Ok(());
                for c in &r.configs {
                    match &c.value {
                        Some(v) => {
                            configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
                        }
                        None => {
                            outcome = Err(ApiError::new(
                                ResponseError::InvalidConfig,
                                format!("Null value not supported for : {}", c.name.as_str()),
                            ))
                        }
                    }
                }
                let outcome = outcome
                    .and_then(|_| current(&b, r.resource_type, &name))
                    .and_then(|_| {
                        apply(&b, r.resource_type, &name, configs, request.validate_only)
                    });
                let response = alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name);
                match outcome {
                    Ok(()) => response,
                    Err(e) => response
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message))),
                }
            })
            .collect()
    })
    .await;
    AlterConfigsResponse::default().with_responses(responses)
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn incremental_alter(
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let b = ctx.broker.clone();
    let responses = blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                let name = r.resource_name.as_str().to_string();
                let outcome = current(&b, r.resource_type, &name).and_then(|mut configs| {
                    for c in &r.configs {
                        let key = c.name.as_str().to_string();
                        let value = c.value.as_ref().map(|v| v.as_str().to_string());
                        edit(
                            &b,
                            r.resource_type,
                            &mut configs,
                            key,
                            c.config_operation,
                            value,
                        )?;
                    }
                    apply(&b, r.resource_type, &name, configs, request.validate_only)
                });
                let response =
                    incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(r.resource_type)
                        .with_resource_name(r.resource_name);
                match outcome {
                    Ok(()) => response,
                    Err(e) => response
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message))),
                }
            })
            .collect()
    })
    .await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn edit(
    b: &BrokerContext,
    resource_type: i8,
    configs: &mut BTreeMap<String, String>,
    key: String,
    op: i8,
    value: Option<String>,
) -> Result<(), ApiError> {
    let invalid = |m: String| ApiError::new(ResponseError::InvalidConfig, m);
    let topic_name = if resource_type == RESOURCE_BROKER {
        BROKER_TOPIC_DEFAULTS
            .iter()
            .find(|(bp, _)| *bp == key)
            .map(|(_, t)| *t)
            .unwrap_or("")
    } else {
        key.as_str()
    };
    let is_list = topic_config::definition(topic_name).is_some_and(|d| d.kind == ConfigType::List);
    match op {
        OP_SET => {
            let value =
                value.ok_or_else(|| invalid(format!("Null value not supported for : {key}")))?;
            configs.insert(key, value);
        }
        OP_DELETE => {
            configs.remove(&key);
        }
        OP_APPEND | OP_SUBTRACT => {
            if !is_list {
                return Err(invalid(format!(
                    "Config value {} is not allowed for config key {key}",
                    if op == OP_APPEND {
                        "append"
                    } else {
                        "subtract"
                    }
                )));
            }
            let value = value.unwrap_or_default();
            let current = match configs.get(&key) {
                Some(v) => v.clone(),
                None => match resource_type {
                    RESOURCE_TOPIC => {
                        let defaults = b.topics.defaults();
                        let def = topic_config::definition(&key).expect("checked above");
                        defaults.topic_default(def).0
                    }
                    _ => String::new(),
                },
            };
            let mut items: Vec<String> = current
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if op == OP_APPEND {
                    if !items.iter().any(|i| i == v) {
                        items.push(v.to_string());
                    }
                } else {
                    items.retain(|i| i != v);
                }
            }
            configs.insert(key, items.join(","));
        }
        other => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}
