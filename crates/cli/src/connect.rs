//! `strom connect standalone|distributed` (run a Connect worker) and
//! `strom connector ...` (a client of any Kafka Connect REST API).
//!
//! ```text
//! strom connect standalone worker.toml mqtt-source.json file-sink.properties
//! strom connect distributed --config worker.toml
//! strom connector list
//! strom connector create mqtt-source.json
//! strom connector status mqtt-source
//! strom connector pause mqtt-source
//! ```

use crate::client::common::{print_json, print_stdout, render_table};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;
use strom_connect::{read_connector_file, PluginRegistry, Worker, WorkerConfig};

/// Run a Connect worker (Kafka Connect's connect-standalone / connect-distributed).
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// One worker; connectors from files, source offsets in a local file.
    Standalone {
        /// Worker config (TOML with Kafka Connect's property names).
        worker: PathBuf,
        /// Connector configs: JSON ({"name":..,"config":{..}} or flat) or .properties.
        connectors: Vec<PathBuf>,
    },
    /// A worker of a group: configs, offsets and statuses in Kafka topics.
    Distributed {
        /// Worker config (TOML with Kafka Connect's property names).
        #[arg(long)]
        config: PathBuf,
    },
}

pub async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    strom_connect::install_crypto_provider();
    let worker = match args.mode {
        Mode::Standalone { worker, connectors } => {
            let config = WorkerConfig::from_file(&worker)?;
            let connectors = connectors
                .iter()
                .map(|path| read_connector_file(path))
                .collect::<Result<Vec<_>, _>>()?;
            Worker::standalone(config, PluginRegistry::builtin(), connectors).await?
        }
        Mode::Distributed { config } => {
            let config = WorkerConfig::from_file(&config)?;
            Worker::distributed(config, PluginRegistry::builtin()).await?
        }
    };
    println!("REST API on {}", worker.rest_url());
    crate::serve::wait_for_signal().await;
    tracing::info!("signal received: stopping the worker");
    worker.stop().await;
    Ok(())
}

/// Manage connectors through a Connect REST API.
#[derive(Debug, Args)]
pub struct ConnectorArgs {
    /// The worker's REST API.
    #[arg(
        long,
        global = true,
        env = "STROM_CONNECT_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    url: String,
    #[command(subcommand)]
    command: ConnectorCommand,
}

#[derive(Debug, Subcommand)]
enum ConnectorCommand {
    /// Connectors with their type, state and tasks.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A connector's and its tasks' states.
    Status {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Create a connector from a file and/or `--config key=value` settings.
    Create {
        /// JSON ({"name":..,"config":{..}} or flat) or .properties.
        file: Option<PathBuf>,
        /// The connector's name (default: the file's `name`).
        #[arg(long)]
        name: Option<String>,
        /// A setting (repeatable); wins over the file's.
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = crate::client::common::parse_key_value)]
        config: Vec<(String, String)>,
    },
    /// Delete a connector.
    Delete { name: String },
    /// Restart a connector (with --include-tasks, its tasks too) or one task.
    Restart {
        name: String,
        #[arg(long)]
        include_tasks: bool,
        #[arg(long)]
        only_failed: bool,
        /// Restart only this task.
        #[arg(long, conflicts_with_all = ["include_tasks", "only_failed"])]
        task: Option<u32>,
    },
    /// Pause a connector and its tasks.
    Pause { name: String },
    /// Resume a paused or stopped connector.
    Resume { name: String },
    /// Stop a connector (KIP-875: its tasks shut down; offsets may then change).
    Stop { name: String },
}

struct Rest {
    client: reqwest::Client,
    url: String,
}

impl Rest {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = self.client.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            bail!("{method} {path}: HTTP {status}: {message}");
        }
        Ok((status, value))
    }
}

pub async fn connector(args: ConnectorArgs) -> anyhow::Result<()> {
    strom_connect::install_crypto_provider();
    let rest = Rest {
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?,
        url: args.url,
    };
    use reqwest::Method;
    match args.command {
        ConnectorCommand::List { json } => {
            let (_, value) = rest
                .call(Method::GET, "/connectors?expand=status", None)
                .await?;
            if json {
                return print_json(&value);
            }
            let mut rows = Vec::new();
            if let Some(map) = value.as_object() {
                for (name, entry) in map {
                    let status = &entry["status"];
                    let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
                    let running = tasks.iter().filter(|t| t["state"] == "RUNNING").count();
                    rows.push(vec![
                        name.clone(),
                        status["type"].as_str().unwrap_or("").to_string(),
                        status["connector"]["state"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        format!("{running}/{}", tasks.len()),
                        status["connector"]["worker_id"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    ]);
                }
            }
            print_stdout(&render_table(
                &["NAME", "TYPE", "STATE", "TASKS RUNNING", "WORKER"],
                &rows,
            ))
        }
        ConnectorCommand::Status { name, json } => {
            let (_, value) = rest
                .call(
                    Method::GET,
                    &format!("/connectors/{}/status", encode(&name)),
                    None,
                )
                .await?;
            if json {
                return print_json(&value);
            }
            let mut rows = vec![vec![
                "connector".to_string(),
                value["connector"]["state"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                value["connector"]["worker_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                first_line(&value["connector"]["trace"]),
            ]];
            for task in value["tasks"].as_array().cloned().unwrap_or_default() {
                rows.push(vec![
                    format!("task {}", task["id"]),
                    task["state"].as_str().unwrap_or("").to_string(),
                    task["worker_id"].as_str().unwrap_or("").to_string(),
                    first_line(&task["trace"]),
                ]);
            }
            print_stdout(&render_table(&["", "STATE", "WORKER", "TRACE"], &rows))
        }
        ConnectorCommand::Create { file, name, config } => {
            let mut settings = match &file {
                Some(path) => read_connector_file(path)?,
                None => Default::default(),
            };
            settings.extend(config);
            if let Some(name) = name {
                settings.insert("name".into(), name);
            }
            let Some(name) = settings.get("name").cloned() else {
                bail!("the connector needs a name (--name, or \"name\" in the file)");
            };
            let body = serde_json::json!({"name": name, "config": settings});
            let (_, value) = rest.call(Method::POST, "/connectors", Some(&body)).await?;
            print_json(&value)
        }
        ConnectorCommand::Delete { name } => {
            rest.call(
                Method::DELETE,
                &format!("/connectors/{}", encode(&name)),
                None,
            )
            .await?;
            print_stdout(&format!("deleted connector {name}\n"))
        }
        ConnectorCommand::Restart {
            name,
            include_tasks,
            only_failed,
            task,
        } => {
            let path = match task {
                Some(t) => format!("/connectors/{}/tasks/{t}/restart", encode(&name)),
                None => format!(
                    "/connectors/{}/restart?includeTasks={include_tasks}&onlyFailed={only_failed}",
                    encode(&name)
                ),
            };
            let (_, value) = rest.call(Method::POST, &path, None).await?;
            if value.is_null() {
                print_stdout(&format!("restart of {name} requested\n"))
            } else {
                print_json(&value)
            }
        }
        ConnectorCommand::Pause { name } => target(&rest, &name, "pause", "paused").await,
        ConnectorCommand::Resume { name } => target(&rest, &name, "resume", "resumed").await,
        ConnectorCommand::Stop { name } => target(&rest, &name, "stop", "stopped").await,
    }
}

async fn target(rest: &Rest, name: &str, action: &str, done: &str) -> anyhow::Result<()> {
    rest.call(
        reqwest::Method::PUT,
        &format!("/connectors/{}/{action}", encode(name)),
        None,
    )
    .await?;
    print_stdout(&format!("{done} connector {name}\n"))
}

fn first_line(value: &Value) -> String {
    value
        .as_str()
        .and_then(|t| t.lines().next())
        .unwrap_or("")
        .to_string()
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
