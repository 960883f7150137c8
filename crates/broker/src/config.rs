//! Broker configuration: defaults, a TOML file, and `STROM_*` overrides.
//!
//! The TOML file uses Kafka's own property names where one exists, written
//! as quoted keys so they keep their dots:
//!
//! ```toml
//! data-dir = "/var/lib/strom"
//! listen = "0.0.0.0:9092"
//! "log.retention.ms" = 604800000
//! "auto.create.topics.enable" = true
//! flush = "always"          # or "never", or an interval in ms such as "1000"
//! "admin.listen" = "127.0.0.1:9644"   # or "none"
//! ```

use crate::error::BrokerError;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use strom_log::FlushPolicy;

/// Everything `strom serve` can be told.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    /// `HOST:PORT` given to clients in Metadata; `None` = the bound address.
    pub advertised_listener: Option<String>,
    pub node_id: i32,
    /// `socket.request.max.bytes`: larger frames close the connection.
    pub socket_request_max_bytes: usize,
    /// `max.connections`: further connections are refused until one closes.
    pub max_connections: usize,
    /// `max.connections.per.ip`: connections from one address beyond this
    /// are closed as soon as they are accepted (Kafka's semantics).
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: `host:count,host:count`.
    pub max_connections_per_ip_overrides: BTreeMap<std::net::IpAddr, usize>,
    /// `connections.max.idle.ms`: a connection is closed when no whole
    /// request arrives for this long (partial frames do not count).
    pub connections_max_idle: Duration,
    /// `queued.max.request.bytes`: bytes of requests read but not yet
    /// answered, broker-wide; when they are used up, connections stop
    /// reading their sockets (backpressure). `None` (-1): no limit.
    pub queued_max_request_bytes: Option<usize>,
    /// `fetch.max.bytes`: the most a Fetch response carries, whatever the
    /// request asks (beyond the first batch, which is always returned).
    pub fetch_max_bytes: usize,
    /// `log.offline.retry.ms` (Strom's): how often a partition that a
    /// storage failure took offline is reopened.
    pub log_offline_retry: Duration,
    /// The storage backend of partition logs; `None` is the real file
    /// system. Tests inject faults here; not a config setting.
    pub partition_storage: Option<std::sync::Arc<dyn strom_log::Storage>>,
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// `log.cleaner.backoff.ms`: how often the cleaner looks for partitions
    /// of compacted topics to clean.
    pub cleaner_backoff: Duration,
    /// Static broker-level topic defaults, by Kafka broker property name
    /// (`log.retention.ms`, `log.segment.bytes`, `message.max.bytes`, ...).
    pub log_defaults: BTreeMap<String, String>,
    /// The broker-wide flush default (`flush` in TOML, `STROM_FLUSH`).
    pub flush: FlushPolicy,
    /// `group.*` and `offsets.*` settings of the group coordinator.
    pub groups: strom_coordinator::GroupConfig,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// `transaction.max.timeout.ms` and friends.
    pub transactions: strom_coordinator::txn::TxnConfig,
    /// `transaction.state.log.num.partitions`
    pub transaction_topic_partitions: i32,
    /// `admin.listen`: the admin HTTP listener (health, readiness, metrics);
    /// `None` (`none` in config) turns it off.
    pub admin_listen: Option<String>,
    /// Set by the binary that owns the tracing subscriber, so that
    /// `PUT /log-filter` can change it; not a config setting.
    pub log_filter: Option<crate::admin_http::LogFilter>,
    /// The properties the file or the environment set (normalised names),
    /// so that DescribeConfigs reports STATIC_BROKER_CONFIG for those and
    /// DEFAULT_CONFIG for the rest, as Kafka does.
    pub explicit: BTreeSet<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("./strom-data"),
            listen: "127.0.0.1:9092".to_string(),
            advertised_listener: None,
            node_id: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: usize::MAX,
            max_connections_per_ip_overrides: BTreeMap::new(),
            connections_max_idle: Duration::from_millis(600_000),
            queued_max_request_bytes: Some(DEFAULT_QUEUED_MAX_REQUEST_BYTES),
            fetch_max_bytes: 55 * 1024 * 1024,
            log_offline_retry: Duration::from_millis(5_000),
            partition_storage: None,
            auto_create_topics_enable: true,
            num_partitions: 1,
            retention_check_interval: Duration::from_millis(300_000),
            cleaner_backoff: Duration::from_millis(15_000),
            log_defaults: BTreeMap::new(),
            flush: FlushPolicy::Interval(Duration::from_millis(1000)),
            groups: strom_coordinator::GroupConfig::default(),
            offsets_topic_partitions: 50,
            transactions: strom_coordinator::txn::TxnConfig::default(),
            transaction_topic_partitions: 50,
            admin_listen: Some(DEFAULT_ADMIN_LISTEN.to_string()),
            log_filter: None,
            explicit: BTreeSet::new(),
        }
    }
}

/// `queued.max.request.bytes` unless told otherwise: one request of the
/// largest size (`socket.request.max.bytes`) fits. Kafka's default is -1
/// (unbounded, with `queued.max.requests` = 500 requests instead).
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// Parses `max.connections.per.ip.overrides`: `host:count,host:count`.
pub fn parse_connection_overrides(
    value: &str,
) -> Result<BTreeMap<std::net::IpAddr, usize>, BrokerError> {
    let mut out = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry.rsplit_once(':').and_then(|(host, count)| {
            let host = host.trim_matches(['[', ']']);
            let ip = if host == "localhost" {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                host.parse().ok()?
            };
            Some((ip, count.parse().ok()?))
        });
        let (ip, count) = parsed.ok_or_else(|| {
            BrokerError::Config(format!(
                "max.connections.per.ip.overrides: `{entry}` is not IP:COUNT"
            ))
        })?;
        out.insert(ip, count);
    }
    Ok(out)
}

/// Where the admin HTTP listener binds unless told otherwise.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9644";

/// `admin.listen`: `HOST:PORT`, or `none` (also empty) for no admin listener.
pub fn parse_admin_listen(value: &str) -> Option<String> {
    match value.trim() {
        "" | "none" => None,
        other => Some(strip_scheme(other)),
    }
}

/// Parses `always`, `never` or an interval in milliseconds.
pub fn parse_flush_policy(value: &str) -> Result<FlushPolicy, BrokerError> {
    match value.trim() {
        "always" => Ok(FlushPolicy::Always),
        "never" => Ok(FlushPolicy::Never),
        other => other
            .parse::<u64>()
            .map(|ms| FlushPolicy::Interval(Duration::from_millis(ms)))
            .map_err(|_| {
                BrokerError::Config(format!(
                    "flush must be `always`, `never` or an interval in ms, not `{other}`"
                ))
            }),
    }
}

/// Broker properties that set topic defaults, and the topic config each maps to.
pub const BROKER_TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("message.max.bytes", "max.message.bytes"),
    ("log.message.timestamp.type", "message.timestamp.type"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("compression.type", "compression.type"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
    ),
    ("min.insync.replicas", "min.insync.replicas"),
    ("log.segment.delete.delay.ms", "file.delete.delay.ms"),
    ("log.index.size.max.bytes", "segment.index.bytes"),
    ("log.roll.jitter.ms", "segment.jitter.ms"),
    ("log.preallocate", "preallocate"),
    (
        "log.message.timestamp.before.max.ms",
        "message.timestamp.before.max.ms",
    ),
    (
        "log.message.timestamp.after.max.ms",
        "message.timestamp.after.max.ms",
    ),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
    ),
    ("log.local.retention.ms", "local.retention.ms"),
    ("log.local.retention.bytes", "local.retention.bytes"),
];

/// Broker properties of [`BROKER_TOPIC_DEFAULTS`] that Kafka leaves without
/// a default value (a coarser property, such as `log.retention.hours`, is in
/// force instead): DescribeConfigs lists no DEFAULT_CONFIG synonym for them.
pub const NULL_DEFAULT_BROKER_PROPS: &[&str] = &[
    "log.retention.ms",
    "log.roll.ms",
    "log.roll.jitter.ms",
    "log.flush.interval.ms",
];

impl BrokerConfig {
    /// Loads defaults, then the TOML file (if any), then `STROM_*` variables
    /// from `env`. Command-line flags are applied by the caller afterwards.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BrokerConfig, BrokerError> {
        let mut props: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                BrokerError::Config(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| BrokerError::Config(format!("config file {}: {e}", path.display())))?;
            for (key, value) in table {
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(BrokerError::Config(format!(
                            "config key `{key}`: expected a string, number or boolean, got {other}"
                        )))
                    }
                };
                props.insert(normalise_key(&key), value);
            }
        }
        for (key, value) in env {
            if let Some(rest) = key.strip_prefix("STROM_") {
                // STROM_LOG_RETENTION_MS -> log.retention.ms ; STROM_DATA_DIR -> data.dir
                let name = rest.to_ascii_lowercase().replace('_', ".");
                // Other STROM_* variables (the CLI's STROM_BOOTSTRAP, test
                // switches) are not broker settings: skip them.
                let probe = BTreeMap::from([(name.clone(), String::new())]);
                if matches!(
                    Self::from_properties(probe),
                    Err(BrokerError::UnknownConfig(_))
                ) {
                    tracing::debug!(variable = %key, "ignoring STROM_* variable that is not a broker setting");
                    continue;
                }
                props.insert(name, value);
            }
        }
        Self::from_properties(props)
    }

    /// Builds a config from flat properties (keys already normalised to dots).
    pub fn from_properties(props: BTreeMap<String, String>) -> Result<BrokerConfig, BrokerError> {
        let mut config = BrokerConfig::default();
        let mut queued_set = false;
        for (key, value) in props {
            config.explicit.insert(key.clone());
            let bad = |what: &str| BrokerError::Config(format!("`{key}`: {what}, got `{value}`"));
            match key.as_str() {
                "data.dir" | "log.dir" | "log.dirs" => config.data_dir = PathBuf::from(&value),
                "listen" | "listeners" => config.listen = strip_scheme(&value),
                "advertised.listener" | "advertised.listeners" => {
                    config.advertised_listener = Some(strip_scheme(&value))
                }
                "node.id" | "broker.id" => {
                    config.node_id = value.parse().map_err(|_| bad("expected an integer"))?
                }
                "socket.request.max.bytes" => {
                    config.socket_request_max_bytes =
                        value.parse().map_err(|_| bad("expected a byte count"))?
                }
                "max.connections" => {
                    config.max_connections = value.parse().map_err(|_| bad("expected a count"))?
                }
                "max.connections.per.ip" => {
                    config.max_connections_per_ip =
                        value.parse().map_err(|_| bad("expected a count"))?
                }
                "max.connections.per.ip.overrides" => {
                    config.max_connections_per_ip_overrides = parse_connection_overrides(&value)?
                }
                "connections.max.idle.ms" => {
                    config.connections_max_idle = Duration::from_millis(
                        value
                            .parse()
                            .ok()
                            .filter(|ms: &u64| *ms > 0)
                            .ok_or_else(|| bad("expected positive milliseconds"))?,
                    )
                }
                "queued.max.request.bytes" => {
                    let bytes: i64 = value
                        .parse()
                        .map_err(|_| bad("expected a byte count or -1"))?;
                    queued_set = true;
                    config.queued_max_request_bytes = match bytes {
                        -1 => None,
                        n if n > 0 => Some(n as usize),
                        _ => return Err(bad("expected a positive byte count or -1")),
                    }
                }
                "fetch.max.bytes" => {
                    config.fetch_max_bytes = value
                        .parse()
                        .ok()
                        .filter(|n: &usize| *n > 0)
                        .ok_or_else(|| bad("expected a positive byte count"))?
                }
                "log.offline.retry.ms" => {
                    config.log_offline_retry = Duration::from_millis(
                        value
                            .parse()
                            .ok()
                            .filter(|ms: &u64| *ms > 0)
                            .ok_or_else(|| bad("expected positive milliseconds"))?,
                    )
                }
                "auto.create.topics.enable" => {
                    config.auto_create_topics_enable =
                        value.parse().map_err(|_| bad("expected true or false"))?
                }
                "num.partitions" => {
                    config.num_partitions = value
                        .parse()
                        .ok()
                        .filter(|n: &i32| *n > 0)
                        .ok_or_else(|| bad("expected a positive integer"))?
                }
                "log.retention.check.interval.ms" => {
                    config.retention_check_interval = Duration::from_millis(
                        value.parse().map_err(|_| bad("expected milliseconds"))?,
                    )
                }
                "log.cleaner.backoff.ms" => {
                    config.cleaner_backoff = Duration::from_millis(
                        value
                            .parse()
                            .ok()
                            .filter(|ms: &u64| *ms > 0)
                            .ok_or_else(|| bad("expected positive milliseconds"))?,
                    )
                }
                "admin.listen" => config.admin_listen = parse_admin_listen(&value),
                "flush" | "log.flush.policy" => config.flush = parse_flush_policy(&value)?,
                "group.initial.rebalance.delay.ms" => {
                    config.groups.initial_rebalance_delay_ms =
                        value.parse().map_err(|_| bad("expected milliseconds"))?
                }
                "group.min.session.timeout.ms" => {
                    config.groups.min_session_timeout_ms =
                        value.parse().map_err(|_| bad("expected milliseconds"))?
                }
                "group.max.session.timeout.ms" => {
                    config.groups.max_session_timeout_ms =
                        value.parse().map_err(|_| bad("expected milliseconds"))?
                }
                "group.consumer.heartbeat.interval.ms" => {
                    config.groups.consumer_heartbeat_interval_ms =
                        value.parse().map_err(|_| bad("expected milliseconds"))?
                }
                "group.consumer.session.timeout.ms" => {
                    config.groups.consumer_session_timeout_ms =
                        value.parse().map_err(|_| bad("expected milliseconds"))?
                }
                "group.max.size" => {
                    config.groups.max_group_size =
                        value.parse().map_err(|_| bad("expected a count"))?
                }
                "offsets.retention.minutes" => {
                    let minutes: i64 = value.parse().map_err(|_| bad("expected minutes"))?;
                    config.groups.offsets_retention_ms = minutes * 60_000;
                }
                "offset.metadata.max.bytes" => {
                    config.groups.offset_metadata_max_bytes =
                        value.parse().map_err(|_| bad("expected a byte count"))?
                }
                "transaction.max.timeout.ms" => {
                    config.transactions.max_timeout_ms =
                        value.parse().map_err(|_| bad("expected milliseconds"))?
                }
                "transaction.state.log.num.partitions" => {
                    config.transaction_topic_partitions = value
                        .parse()
                        .ok()
                        .filter(|n: &i32| *n > 0)
                        .ok_or_else(|| bad("expected a positive integer"))?
                }
                "offsets.topic.num.partitions" => {
                    config.offsets_topic_partitions = value
                        .parse()
                        .ok()
                        .filter(|n: &i32| *n > 0)
                        .ok_or_else(|| bad("expected a positive integer"))?
                }
                "log.retention.hours" | "log.retention.minutes" => {
                    let n: u64 = value.parse().map_err(|_| bad("expected an integer"))?;
                    let ms = if key.ends_with("hours") {
                        n * 3_600_000
                    } else {
                        n * 60_000
                    };
                    config
                        .log_defaults
                        .entry("log.retention.ms".into())
                        .or_insert(ms.to_string());
                }
                "config" | "bootstrap" => {}
                other if BROKER_TOPIC_DEFAULTS.iter().any(|(b, _)| *b == other) => {
                    config.log_defaults.insert(key.clone(), value);
                }
                other => return Err(BrokerError::UnknownConfig(other.to_string())),
            }
        }
        if !queued_set {
            config.queued_max_request_bytes =
                Some(DEFAULT_QUEUED_MAX_REQUEST_BYTES.max(config.socket_request_max_bytes));
        }
        if let Some(queued) = config.queued_max_request_bytes {
            // As Kafka requires: the largest request must fit the pool.
            if queued < config.socket_request_max_bytes {
                return Err(BrokerError::Config(format!(
                    "queued.max.request.bytes ({queued}) must be at least socket.request.max.bytes ({})",
                    config.socket_request_max_bytes
                )));
            }
        }
        Ok(config)
    }

    /// `max.connections.per.ip`, or its override for `ip`.
    pub fn max_connections_for(&self, ip: std::net::IpAddr) -> usize {
        self.max_connections_per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(self.max_connections_per_ip)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, BrokerError> {
        self.listen.parse().map_err(|_| {
            BrokerError::Config(format!("listen address `{}` is not HOST:PORT", self.listen))
        })
    }
}

fn normalise_key(key: &str) -> String {
    key.replace(['-', '_'], ".")
}

fn strip_scheme(value: &str) -> String {
    // Accept Kafka's `PLAINTEXT://host:port` form as well as `host:port`.
    match value.split_once("://") {
        Some((_, rest)) => rest.to_string(),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_env_and_kafka_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strom.toml");
        std::fs::write(
            &path,
            "data-dir = \"/tmp/x\"\n\"log.retention.ms\" = 1000\nflush = \"always\"\nlisteners = \"PLAINTEXT://127.0.0.1:9999\"\n",
        )
        .unwrap();
        let env = vec![
            ("STROM_NUM_PARTITIONS".to_string(), "3".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let config = BrokerConfig::load(Some(&path), env).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert_eq!(config.num_partitions, 3);
        assert_eq!(config.flush, FlushPolicy::Always);
        assert_eq!(config.log_defaults.get("log.retention.ms").unwrap(), "1000");
        assert_eq!(config.admin_listen.as_deref(), Some(DEFAULT_ADMIN_LISTEN));
    }

    #[test]
    fn connection_and_memory_limits() {
        let props = |pairs: &[(&str, &str)]| {
            BrokerConfig::from_properties(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let config = props(&[
            ("max.connections.per.ip", "5"),
            ("max.connections.per.ip.overrides", "127.0.0.2:50, [::1]:7"),
            ("connections.max.idle.ms", "2000"),
            ("queued.max.request.bytes", "209715200"),
            ("fetch.max.bytes", "1048576"),
        ])
        .unwrap();
        assert_eq!(config.max_connections_for([127, 0, 0, 1].into()), 5);
        assert_eq!(config.max_connections_for([127, 0, 0, 2].into()), 50);
        assert_eq!(config.max_connections_for("::1".parse().unwrap()), 7);
        assert_eq!(config.connections_max_idle, Duration::from_secs(2));
        assert_eq!(config.queued_max_request_bytes, Some(200 << 20));
        assert_eq!(config.fetch_max_bytes, 1 << 20);
        assert_eq!(
            props(&[("queued.max.request.bytes", "-1")])
                .unwrap()
                .queued_max_request_bytes,
            None
        );
        // The pool follows a larger socket.request.max.bytes unless set.
        let big = props(&[("socket.request.max.bytes", "209715200")]).unwrap();
        assert_eq!(big.queued_max_request_bytes, Some(200 << 20));
        assert!(props(&[("queued.max.request.bytes", "1000")]).is_err());
        assert!(props(&[("max.connections.per.ip.overrides", "nohost")]).is_err());
    }

    #[test]
    fn admin_listen_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strom.toml");
        std::fs::write(&path, "\"admin.listen\" = \"0.0.0.0:9700\"\n").unwrap();
        let config = BrokerConfig::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(config.admin_listen.as_deref(), Some("0.0.0.0:9700"));
        let env = vec![("STROM_ADMIN_LISTEN".to_string(), "none".to_string())];
        let config = BrokerConfig::load(Some(&path), env).unwrap();
        assert_eq!(config.admin_listen, None);
    }

    #[test]
    fn other_strom_variables_are_not_broker_settings() {
        let env = vec![
            ("STROM_BOOTSTRAP".to_string(), "127.0.0.1:9092".to_string()),
            ("STROM_FULL".to_string(), "1".to_string()),
            ("STROM_NODE_ID".to_string(), "7".to_string()),
        ];
        let config = BrokerConfig::load(None, env).unwrap();
        assert_eq!(config.node_id, 7);
        let bad = vec![("STROM_NODE_ID".to_string(), "seven".to_string())];
        assert!(
            BrokerConfig::load(None, bad).is_err(),
            "a known setting with a bad value still fails"
        );
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        let mut props = BTreeMap::new();
        props.insert("no.such.thing".to_string(), "1".to_string());
        assert!(BrokerConfig::from_properties(props).is_err());
        let mut props = BTreeMap::new();
        props.insert("num.partitions".to_string(), "0".to_string());
        assert!(BrokerConfig::from_properties(props).is_err());
        assert!(parse_flush_policy("sometimes").is_err());
    }
}
