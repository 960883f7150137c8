//! The HTTP sink: POSTs records in batches.
//!
//! A batch is a JSON array of the record values (`request.body.format=json`)
//! or the values as text, one per line (`string`). A connection error, a
//! timeout, 408, 429 or a 5xx is retried with exponential backoff; when the
//! retries run out the runtime is told to try again later (the records are
//! given again, nothing is lost). Any other answer outside 2xx is permanent:
//! the batch's records go to the errant record reporter (the dead-letter
//! queue with `errors.tolerance=all`, or the task fails).

use crate::error::{ConnectError, Result};
use crate::sdk::config::{ConfigDef, ConfigMap, ConfigType, Importance, Validator};
use crate::sdk::data::{SinkRecord, Value};
use crate::sdk::{
    Connector, ConnectorPlugin, ConnectorType, CopyConfigConnector, SinkTask, SinkTaskContext,
};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct HttpSinkPlugin;

fn def() -> ConfigDef {
    ConfigDef::new()
        .define_with(
            "http.url",
            ConfigType::String,
            None,
            Importance::High,
            "The URL batches are sent to (http:// or https://).",
            Validator::Custom(|u| {
                if u.starts_with("http://") || u.starts_with("https://") {
                    Ok(())
                } else {
                    Err("must start with http:// or https://".into())
                }
            }),
        )
        .define_with(
            "http.method",
            ConfigType::String,
            Some("POST"),
            Importance::Medium,
            "POST or PUT.",
            Validator::OneOf(&["POST", "PUT"]),
        )
        .define(
            "http.headers",
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "Extra request headers, Name:Value pairs separated by |.",
        )
        .define_with(
            "http.auth.type",
            ConfigType::String,
            Some("none"),
            Importance::Medium,
            "none, basic (http.auth.username/password) or bearer (http.auth.token).",
            Validator::OneOf(&["none", "basic", "bearer"]),
        )
        .define(
            "http.auth.username",
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "Basic authentication user.",
        )
        .define(
            "http.auth.password",
            ConfigType::Password,
            Some(""),
            Importance::Medium,
            "Basic authentication password.",
        )
        .define(
            "http.auth.token",
            ConfigType::Password,
            Some(""),
            Importance::Medium,
            "Bearer token.",
        )
        .define(
            "http.ssl.ca.file",
            ConfigType::String,
            Some(""),
            Importance::Low,
            "PEM CA certificates to trust besides the system's.",
        )
        .define_with(
            "request.body.format",
            ConfigType::String,
            Some("json"),
            Importance::Medium,
            "json: a JSON array of values; string: the values as text, one per line.",
            Validator::OneOf(&["json", "string"]),
        )
        .define_with(
            "batch.max.size",
            ConfigType::Int,
            Some("100"),
            Importance::Medium,
            "Records per request.",
            Validator::AtLeast(1.0),
        )
        .define_with(
            "http.timeout.ms",
            ConfigType::Long,
            Some("30000"),
            Importance::Low,
            "Timeout of one request.",
            Validator::AtLeast(1.0),
        )
        .define_with(
            "retry.max.attempts",
            ConfigType::Int,
            Some("5"),
            Importance::Medium,
            "Attempts per batch before giving the records back to the runtime.",
            Validator::AtLeast(1.0),
        )
        .define_with(
            "retry.backoff.ms",
            ConfigType::Long,
            Some("200"),
            Importance::Low,
            "First wait between attempts; doubles each time.",
            Validator::AtLeast(1.0),
        )
        .define_with(
            "retry.backoff.max.ms",
            ConfigType::Long,
            Some("10000"),
            Importance::Low,
            "Longest wait between attempts.",
            Validator::AtLeast(1.0),
        )
        .in_group("HTTP")
}

impl ConnectorPlugin for HttpSinkPlugin {
    fn class(&self) -> &'static str {
        "io.strom.connect.http.HttpSinkConnector"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["HttpSink", "http-sink"]
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn config_def(&self) -> ConfigDef {
        def()
    }
    fn validate(&self, config: &ConfigMap) -> BTreeMap<String, Vec<String>> {
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let headers = config.get("http.headers").map_or("", String::as_str);
        if let Err(e) = parse_headers(headers) {
            errors.entry("http.headers".into()).or_default().push(e);
        }
        let auth = config
            .get("http.auth.type")
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default();
        let set = |k: &str| config.get(k).is_some_and(|v| !v.is_empty());
        if auth == "basic" && !set("http.auth.username") {
            errors
                .entry("http.auth.username".into())
                .or_default()
                .push("http.auth.type=basic needs http.auth.username".into());
        }
        if auth == "bearer" && !set("http.auth.token") {
            errors
                .entry("http.auth.token".into())
                .or_default()
                .push("http.auth.type=bearer needs http.auth.token".into());
        }
        errors
    }
    fn connector(&self) -> Box<dyn Connector> {
        Box::new(CopyConfigConnector::per_task())
    }
    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(HttpSinkTask::default()))
    }
}

fn parse_headers(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in text.split('|').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once(':').ok_or_else(|| {
            format!("Invalid value {pair} for configuration http.headers: expected Name:Value")
        })?;
        let name = name.trim();
        reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            format!("Invalid value {pair} for configuration http.headers: bad header name")
        })?;
        out.push((name.to_string(), value.trim().to_string()));
    }
    Ok(out)
}

#[derive(Default)]
struct HttpSinkTask {
    client: Option<reqwest::Client>,
    ctx: Option<SinkTaskContext>,
    url: String,
    put_method: bool,
    headers: Vec<(String, String)>,
    auth: Option<(String, Option<String>)>,
    bearer: Option<String>,
    json: bool,
    batch_size: usize,
    attempts: u32,
    backoff: Duration,
    backoff_max: Duration,
    buffer: Vec<SinkRecord>,
}

enum Outcome {
    Sent,
    Permanent(String),
    Transient(String),
}

impl HttpSinkTask {
    fn body(&self, records: &[SinkRecord]) -> Vec<u8> {
        if self.json {
            let values: Vec<serde_json::Value> = records
                .iter()
                .map(|r| match &r.record.value {
                    None => serde_json::Value::Null,
                    Some(Value::Bytes(b)) => serde_json::from_slice(b).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(b).into_owned())
                    }),
                    Some(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                })
                .collect();
            serde_json::to_vec(&values).expect("JSON")
        } else {
            let mut out = Vec::new();
            for r in records {
                match &r.record.value {
                    Some(Value::Bytes(b)) => out.extend_from_slice(b),
                    Some(v) => out.extend_from_slice(v.to_text().as_bytes()),
                    None => {}
                }
                out.push(b'\n');
            }
            out
        }
    }

    async fn attempt(&self, body: &[u8]) -> Outcome {
        let client = self.client.as_ref().expect("started");
        let mut request = if self.put_method {
            client.put(&self.url)
        } else {
            client.post(&self.url)
        };
        request = request.header(
            reqwest::header::CONTENT_TYPE,
            if self.json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            },
        );
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, password.as_ref());
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        match request.body(body.to_vec()).send().await {
            Err(e) => Outcome::Transient(format!("POST {}: {e}", self.url)),
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return Outcome::Sent;
                }
                let text = response.text().await.unwrap_or_default();
                let text: String = text.chars().take(500).collect();
                let message = format!("{} answered {status}: {text}", self.url);
                if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                    Outcome::Transient(message)
                } else {
                    Outcome::Permanent(message)
                }
            }
        }
    }

    /// Sends one batch, retrying transient failures.
    async fn send(&self, records: &[SinkRecord]) -> Result<()> {
        let body = self.body(records);
        let mut delay = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.attempt(&body).await {
                Outcome::Sent => return Ok(()),
                Outcome::Permanent(message) => {
                    tracing::warn!(
                        error = message,
                        records = records.len(),
                        "HTTP sink: permanent failure"
                    );
                    let ctx = self.ctx.as_ref().expect("started");
                    for record in records {
                        ctx.errant_record_reporter.report(record, &message).await?;
                    }
                    return Ok(());
                }
                Outcome::Transient(message) => {
                    tracing::debug!(attempt, error = message, "HTTP sink: retrying");
                    last = message;
                    if attempt < self.attempts {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(self.backoff_max);
                    }
                }
            }
        }
        Err(ConnectError::retriable(format!(
            "giving up after {} attempts: {last}",
            self.attempts
        )))
    }
}

#[async_trait]
impl SinkTask for HttpSinkTask {
    async fn start(&mut self, config: &ConfigMap, ctx: SinkTaskContext) -> Result<()> {
        let config = def().parse(config)?;
        crate::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.long("http.timeout.ms") as u64))
            .user_agent(concat!("strom-connect/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = config.optional_string("http.ssl.ca.file") {
            let pem =
                std::fs::read(&ca).map_err(|e| ConnectError::io(format!("reading {ca}"), e))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ConnectError::BadRequest(format!("http.ssl.ca.file: {e}")))?;
            builder = builder.add_root_certificate(certificate);
        }
        self.client = Some(
            builder
                .build()
                .map_err(|e| ConnectError::failed(format!("HTTP client: {e}")))?,
        );
        self.url = config.string("http.url");
        self.put_method = config.string("http.method").eq_ignore_ascii_case("PUT");
        self.headers =
            parse_headers(&config.string("http.headers")).map_err(ConnectError::BadRequest)?;
        match config
            .string("http.auth.type")
            .to_ascii_lowercase()
            .as_str()
        {
            "basic" => {
                self.auth = Some((
                    config.string("http.auth.username"),
                    config.optional_string("http.auth.password"),
                ))
            }
            "bearer" => self.bearer = config.optional_string("http.auth.token"),
            _ => {}
        }
        self.json = config
            .string("request.body.format")
            .eq_ignore_ascii_case("json");
        self.batch_size = config.int("batch.max.size").max(1) as usize;
        self.attempts = config.int("retry.max.attempts").max(1) as u32;
        self.backoff = Duration::from_millis(config.long("retry.backoff.ms") as u64);
        self.backoff_max = Duration::from_millis(config.long("retry.backoff.max.ms") as u64);
        self.ctx = Some(ctx);
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        self.buffer.extend(records);
        while self.buffer.len() >= self.batch_size {
            let batch: Vec<SinkRecord> = self.buffer.drain(..self.batch_size).collect();
            if let Err(e) = self.send(&batch).await {
                self.buffer.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.buffer);
        for chunk in batch.chunks(self.batch_size.max(1)) {
            self.send(chunk).await?;
        }
        Ok(())
    }
}
