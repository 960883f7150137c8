//! Worker configuration: Kafka Connect's worker property names, from a TOML
//! file (quoted keys keep their dots; nested tables are flattened with dots).
//!
//! ```toml
//! "bootstrap.servers" = "127.0.0.1:9092"
//! "group.id" = "connect-cluster"              # distributed mode
//! listeners = "http://127.0.0.1:8083"
//! "key.converter" = "org.apache.kafka.connect.storage.StringConverter"
//! "value.converter" = "org.apache.kafka.connect.json.JsonConverter"
//! "value.converter.schemas.enable" = false
//! "offset.storage.file.filename" = "/var/lib/strom-connect/offsets.json"  # standalone mode
//! ```

use crate::error::{ConnectError, Result};
use crate::sdk::config::{prefixed, ConfigMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether sources may run exactly-once (KIP-618's worker setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExactlyOnceSourceSupport {
    Disabled,
    Preparing,
    Enabled,
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Every property as given (after flattening), for the client prefixes.
    pub props: ConfigMap,
    pub bootstrap_servers: String,
    pub group_id: String,
    /// `HOST:PORT` the REST API listens on.
    pub rest_listen: String,
    /// `http://HOST:PORT` other workers and clients reach this one at.
    pub rest_advertised_url: Option<String>,
    pub offset_file: Option<PathBuf>,
    pub offset_flush_interval: Duration,
    pub offset_flush_timeout: Duration,
    pub config_topic: String,
    pub offset_topic: String,
    pub status_topic: String,
    pub config_replication_factor: i32,
    pub offset_replication_factor: i32,
    pub status_replication_factor: i32,
    pub offset_partitions: i32,
    pub status_partitions: i32,
    pub heartbeat_interval: Duration,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub task_shutdown_timeout: Duration,
    pub exactly_once_source_support: ExactlyOnceSourceSupport,
}

const KNOWN_PREFIXES: &[&str] = &[
    "producer.",
    "consumer.",
    "admin.",
    "key.converter.",
    "value.converter.",
    "header.converter.",
    "rest.",
    "listeners.",
];

const KNOWN_KEYS: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "listeners",
    "rest.advertised.listener",
    "rest.advertised.host.name",
    "rest.advertised.port",
    "key.converter",
    "value.converter",
    "header.converter",
    "offset.storage.file.filename",
    "offset.flush.interval.ms",
    "offset.flush.timeout.ms",
    "config.storage.topic",
    "offset.storage.topic",
    "status.storage.topic",
    "config.storage.replication.factor",
    "offset.storage.replication.factor",
    "status.storage.replication.factor",
    "offset.storage.partitions",
    "status.storage.partitions",
    "heartbeat.interval.ms",
    "session.timeout.ms",
    "rebalance.timeout.ms",
    "task.shutdown.graceful.timeout.ms",
    "exactly.once.source.support",
    "plugin.path",
    "client.id",
    "connector.client.config.override.policy",
    "security.protocol",
    "ssl.ca.location",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
];

impl WorkerConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<WorkerConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConnectError::io(format!("reading {}", path.display()), e))?;
        Self::from_toml(&text)
            .map_err(|e| ConnectError::WorkerConfig(format!("{}: {e}", path.display())))
    }

    pub fn from_toml(text: &str) -> Result<WorkerConfig> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ConnectError::WorkerConfig(e.to_string()))?;
        let mut props = ConfigMap::new();
        flatten("", &table, &mut props)?;
        Self::from_props(props)
    }

    pub fn from_props(props: ConfigMap) -> Result<WorkerConfig> {
        for key in props.keys() {
            if !KNOWN_KEYS.contains(&key.as_str())
                && !KNOWN_PREFIXES.iter().any(|p| key.starts_with(p))
            {
                tracing::warn!(key, "unknown worker config key (ignored)");
            }
        }
        let get = |k: &str| props.get(k).map(|v| v.trim().to_string());
        let ms = |k: &str, default: u64| -> Result<Duration> {
            match get(k) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => v.parse::<u64>().map(Duration::from_millis).map_err(|_| {
                    ConnectError::WorkerConfig(format!("{k}: expected milliseconds, got {v}"))
                }),
            }
        };
        let int = |k: &str, default: i32| -> Result<i32> {
            match get(k) {
                None => Ok(default),
                Some(v) => v.parse::<i32>().map_err(|_| {
                    ConnectError::WorkerConfig(format!("{k}: expected an integer, got {v}"))
                }),
            }
        };
        let listeners = get("listeners").unwrap_or_else(|| "http://:8083".into());
        let first = listeners.split(',').next().unwrap_or("").trim();
        let rest_listen = match first.strip_prefix("http://") {
            Some(addr) => {
                if addr.starts_with(':') {
                    format!("0.0.0.0{addr}")
                } else {
                    addr.to_string()
                }
            }
            None => {
                return Err(ConnectError::WorkerConfig(format!(
                    "listeners: only http://HOST:PORT listeners are supported, got {first}"
                )))
            }
        };
        let rest_advertised_url = get("rest.advertised.host.name").and_then(|host| {
            let port = get("rest.advertised.port")
                .or_else(|| rest_listen.rsplit_once(':').map(|(_, p)| p.to_string()))?;
            Some(format!("http://{host}:{port}"))
        });
        let exactly_once_source_support = match get("exactly.once.source.support")
            .unwrap_or_else(|| "disabled".into())
            .to_ascii_lowercase()
            .as_str()
        {
            "disabled" => ExactlyOnceSourceSupport::Disabled,
            "preparing" => ExactlyOnceSourceSupport::Preparing,
            "enabled" => ExactlyOnceSourceSupport::Enabled,
            other => {
                return Err(ConnectError::WorkerConfig(format!(
                "exactly.once.source.support: expected disabled, preparing or enabled, got {other}"
            )))
            }
        };
        Ok(WorkerConfig {
            bootstrap_servers: get("bootstrap.servers").unwrap_or_else(|| "127.0.0.1:9092".into()),
            group_id: get("group.id").unwrap_or_else(|| "connect-cluster".into()),
            rest_listen,
            rest_advertised_url,
            offset_file: get("offset.storage.file.filename").map(PathBuf::from),
            offset_flush_interval: ms("offset.flush.interval.ms", 60_000)?,
            offset_flush_timeout: ms("offset.flush.timeout.ms", 5_000)?,
            config_topic: get("config.storage.topic").unwrap_or_else(|| "connect-configs".into()),
            offset_topic: get("offset.storage.topic").unwrap_or_else(|| "connect-offsets".into()),
            status_topic: get("status.storage.topic").unwrap_or_else(|| "connect-status".into()),
            config_replication_factor: int("config.storage.replication.factor", -1)?,
            offset_replication_factor: int("offset.storage.replication.factor", -1)?,
            status_replication_factor: int("status.storage.replication.factor", -1)?,
            offset_partitions: int("offset.storage.partitions", 25)?,
            status_partitions: int("status.storage.partitions", 5)?,
            heartbeat_interval: ms("heartbeat.interval.ms", 3_000)?,
            session_timeout: ms("session.timeout.ms", 10_000)?,
            rebalance_timeout: ms("rebalance.timeout.ms", 60_000)?,
            task_shutdown_timeout: ms("task.shutdown.graceful.timeout.ms", 5_000)?,
            exactly_once_source_support,
            props,
        })
    }

    /// librdkafka settings for a client of `kind` (`producer`, `consumer`,
    /// `admin`): the bootstrap servers, the shared security settings, then the
    /// worker's `KIND.*` overrides.
    pub fn client_props(&self, kind: &str) -> ConfigMap {
        let mut out = ConfigMap::new();
        out.insert("bootstrap.servers".into(), self.bootstrap_servers.clone());
        for key in [
            "security.protocol",
            "ssl.ca.location",
            "sasl.mechanism",
            "sasl.username",
            "sasl.password",
            "client.id",
        ] {
            if let Some(v) = self.props.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        out.extend(prefixed(&self.props, &format!("{kind}.")));
        out
    }

    /// The converter setting (class and its own settings) the worker gives
    /// connectors that do not choose their own.
    pub fn converter(&self, side: &str) -> (String, ConfigMap) {
        let class = self
            .props
            .get(&format!("{side}.converter"))
            .cloned()
            .unwrap_or_else(|| "org.apache.kafka.connect.json.JsonConverter".into());
        (class, prefixed(&self.props, &format!("{side}.converter.")))
    }

    /// The URL this worker's REST API is reached at.
    pub fn advertised_url(&self, bound: std::net::SocketAddr) -> String {
        self.rest_advertised_url.clone().unwrap_or_else(|| {
            let host = if bound.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                bound.ip().to_string()
            };
            format!("http://{host}:{}", bound.port())
        })
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut ConfigMap) -> Result<()> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Table(t) => {
                flatten(&name, t, out)?;
                continue;
            }
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(ConnectError::WorkerConfig(format!(
                    "{name}: unsupported value {other}"
                )))
            }
        };
        out.insert(name, text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_nested_keys_and_defaults() {
        let config = WorkerConfig::from_toml(
            r#"
            "bootstrap.servers" = "b:1"
            listeners = "http://127.0.0.1:0"
            [offset.flush]
            "interval.ms" = 500
            [producer]
            "linger.ms" = 1
            "#,
        )
        .unwrap();
        assert_eq!(config.bootstrap_servers, "b:1");
        assert_eq!(config.rest_listen, "127.0.0.1:0");
        assert_eq!(config.offset_flush_interval, Duration::from_millis(500));
        assert_eq!(config.config_topic, "connect-configs");
        assert_eq!(config.client_props("producer")["linger.ms"], "1");
        assert!(WorkerConfig::from_toml("\"offset.flush.interval.ms\" = \"soon\"").is_err());
        assert!(WorkerConfig::from_toml("listeners = \"https://:1\"").is_err());
    }
}
