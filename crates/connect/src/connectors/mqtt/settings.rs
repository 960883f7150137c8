//! The connection settings both MQTT connectors share.

use crate::error::{ConnectError, Result};
use crate::sdk::config::{Config, ConfigDef, ConfigType, Importance, Validator};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqttVersion {
    V311,
    V5,
}

#[derive(Clone, Debug)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub version: MqttVersion,
    pub client_id: Option<String>,
    pub credentials: Option<(String, String)>,
    pub qos: u8,
    pub clean_session: bool,
    pub session_expiry: u32,
    pub keep_alive: Duration,
    pub connect_timeout: Duration,
    pub reconnect_backoff_initial: Duration,
    pub reconnect_backoff_max: Duration,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub max_packet_size: usize,
}

fn valid_uri(uri: &str) -> std::result::Result<(), String> {
    parse_uri(uri).map(|_| ())
}

/// `tcp://host:port`, `mqtt://`, `ssl://`, `tls://`, `mqtts://`.
pub fn parse_uri(uri: &str) -> std::result::Result<(String, u16, bool), String> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| "expected SCHEME://HOST:PORT (tcp, mqtt, ssl, tls or mqtts)".to_string())?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => false,
        "ssl" | "tls" | "mqtts" => true,
        other => return Err(format!("unsupported scheme {other}")),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().map_err(|_| format!("invalid port {p}"))?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok((
        host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
        tls,
    ))
}

/// The settings of both connectors.
pub fn connection_def() -> ConfigDef {
    ConfigDef::new()
        .define_with("mqtt.server.uri", ConfigType::String, None, Importance::High, "The MQTT broker: tcp://HOST:PORT (or mqtt://), ssl://HOST:PORT (or tls://, mqtts://) for TLS.", Validator::Custom(valid_uri))
        .define_with("mqtt.version", ConfigType::String, Some("3.1.1"), Importance::Medium, "MQTT protocol version: 3.1.1 or 5.", Validator::OneOf(&["3.1.1", "5"]))
        .define("mqtt.client.id", ConfigType::String, Some(""), Importance::Medium, "Client id; default strom-connect-CONNECTOR-TASK. Each task appends -TASK to a configured id.")
        .define("mqtt.username", ConfigType::String, Some(""), Importance::Medium, "User name for the broker.")
        .define("mqtt.password", ConfigType::Password, Some(""), Importance::Medium, "Password for the broker.")
        .define_with("mqtt.qos", ConfigType::Int, Some("1"), Importance::High, "QoS of subscriptions (source) or publishes (sink): 0 or 1.", Validator::Between(0.0, 1.0))
        .define("mqtt.clean.session", ConfigType::Boolean, Some("false"), Importance::Medium, "Start a clean session (3.1.1 clean session, 5 clean start). false keeps the session (subscriptions and unacknowledged QoS 1 messages) across reconnects.")
        .define_with("mqtt.session.expiry.interval.s", ConfigType::Long, Some("3600"), Importance::Low, "MQTT 5: seconds the broker keeps a session after a disconnect (with clean.session=false).", Validator::Between(0.0, 4_294_967_295.0))
        .define_with("mqtt.keepalive.interval.s", ConfigType::Int, Some("30"), Importance::Low, "Keep-alive interval in seconds.", Validator::AtLeast(5.0))
        .define_with("mqtt.connect.timeout.ms", ConfigType::Long, Some("10000"), Importance::Low, "Connection timeout.", Validator::AtLeast(1000.0))
        .define_with("mqtt.reconnect.backoff.initial.ms", ConfigType::Long, Some("500"), Importance::Low, "First wait before reconnecting; doubles after each failure.", Validator::AtLeast(1.0))
        .define_with("mqtt.reconnect.backoff.max.ms", ConfigType::Long, Some("30000"), Importance::Low, "Longest wait between reconnects.", Validator::AtLeast(1.0))
        .define("mqtt.ssl.ca.file", ConfigType::String, Some(""), Importance::Medium, "PEM file of CA certificates to trust (TLS); default: the system's.")
        .define("mqtt.ssl.cert.file", ConfigType::String, Some(""), Importance::Low, "PEM client certificate (TLS client authentication).")
        .define("mqtt.ssl.key.file", ConfigType::String, Some(""), Importance::Low, "PEM private key of the client certificate.")
        .define_with("mqtt.max.packet.size", ConfigType::Int, Some("268435455"), Importance::Low, "Largest MQTT packet sent or accepted, in bytes.", Validator::AtLeast(1024.0))
        .in_group("MQTT")
}

impl MqttSettings {
    pub fn from_config(config: &Config) -> Result<MqttSettings> {
        let (host, port, tls) = parse_uri(&config.string("mqtt.server.uri"))
            .map_err(|e| ConnectError::BadRequest(format!("mqtt.server.uri: {e}")))?;
        let username = config.optional_string("mqtt.username");
        Ok(MqttSettings {
            host,
            port,
            tls,
            version: if config.string("mqtt.version").trim() == "5" {
                MqttVersion::V5
            } else {
                MqttVersion::V311
            },
            client_id: config.optional_string("mqtt.client.id"),
            credentials: username.map(|u| (u, config.string("mqtt.password"))),
            qos: config.int("mqtt.qos") as u8,
            clean_session: config.bool("mqtt.clean.session"),
            session_expiry: config.long("mqtt.session.expiry.interval.s") as u32,
            keep_alive: Duration::from_secs(config.int("mqtt.keepalive.interval.s").max(5) as u64),
            connect_timeout: Duration::from_millis(config.long("mqtt.connect.timeout.ms") as u64),
            reconnect_backoff_initial: Duration::from_millis(
                config.long("mqtt.reconnect.backoff.initial.ms") as u64,
            ),
            reconnect_backoff_max: Duration::from_millis(
                config.long("mqtt.reconnect.backoff.max.ms") as u64,
            ),
            ca_file: config.optional_string("mqtt.ssl.ca.file"),
            cert_file: config.optional_string("mqtt.ssl.cert.file"),
            key_file: config.optional_string("mqtt.ssl.key.file"),
            max_packet_size: config.int("mqtt.max.packet.size") as usize,
        })
    }

    /// The client id of one task.
    pub fn client_id(&self, connector: &str, task: u32) -> String {
        match &self.client_id {
            Some(id) => format!("{id}-{task}"),
            None => format!("strom-connect-{connector}-{task}"),
        }
    }

    pub fn transport(&self) -> Result<rumqttc::Transport> {
        if !self.tls {
            return Ok(rumqttc::Transport::tcp());
        }
        let read = |path: &str| {
            std::fs::read(path).map_err(|e| ConnectError::io(format!("reading {path}"), e))
        };
        let client_auth = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            (None, None) => None,
            _ => {
                return Err(ConnectError::BadRequest(
                    "mqtt.ssl.cert.file and mqtt.ssl.key.file go together".into(),
                ))
            }
        };
        match &self.ca_file {
            Some(ca) => Ok(rumqttc::Transport::tls(read(ca)?, client_auth, None)),
            None if client_auth.is_none() => Ok(rumqttc::Transport::tls_with_default_config()),
            None => Err(ConnectError::BadRequest(
                "TLS client authentication needs mqtt.ssl.ca.file too".into(),
            )),
        }
    }
}

/// Cross-field checks of both connectors.
pub fn validate(
    raw: &crate::sdk::config::ConfigMap,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut errors = std::collections::BTreeMap::new();
    let set = |k: &str| raw.get(k).is_some_and(|v| !v.trim().is_empty());
    if set("mqtt.ssl.cert.file") != set("mqtt.ssl.key.file") {
        errors
            .entry("mqtt.ssl.key.file".to_string())
            .or_insert_with(Vec::new)
            .push("mqtt.ssl.cert.file and mqtt.ssl.key.file must be set together".to_string());
    }
    for key in [
        "mqtt.ssl.ca.file",
        "mqtt.ssl.cert.file",
        "mqtt.ssl.key.file",
    ] {
        if let Some(path) = raw.get(key).filter(|v| !v.trim().is_empty()) {
            if !std::path::Path::new(path).is_file() {
                errors
                    .entry(key.to_string())
                    .or_insert_with(Vec::new)
                    .push(format!(
                        "Invalid value {path} for configuration {key}: no such file"
                    ));
            }
        }
    }
    if set("mqtt.password") && !set("mqtt.username") {
        errors
            .entry("mqtt.username".to_string())
            .or_insert_with(Vec::new)
            .push("mqtt.password is set but mqtt.username is not".to_string());
    }
    errors
}
