//! Starting and stopping a worker in either mode, with its REST API.

use crate::distributed::member::{Member, MemberSettings};
use crate::distributed::stores::{
    create_topics, KafkaConfigStore, KafkaOffsetStore, KafkaStatusStore,
};
use crate::error::{ConnectError, Result};
use crate::runtime::connector_config::PluginRegistry;
use crate::runtime::herder::Herder;
use crate::runtime::store::{
    ConfigStore, FileOffsetStore, MemoryConfigStore, MemoryStatusStore, OffsetStore, StatusStore,
    TargetState,
};
use crate::runtime::task::WorkerContext;
use crate::runtime::worker_config::WorkerConfig;
use crate::sdk::config::ConfigMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// A running worker: its herder and REST server.
pub struct Worker {
    herder: Arc<Herder>,
    rest_addr: SocketAddr,
    rest_shutdown: watch::Sender<bool>,
    rest: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Standalone mode: the given connector configs (each with `name`), source
    /// offsets in `offset.storage.file.filename`.
    pub async fn standalone(
        config: WorkerConfig,
        registry: PluginRegistry,
        connectors: Vec<ConfigMap>,
    ) -> Result<Worker> {
        let offset_file = config.offset_file.clone().ok_or_else(|| {
            ConnectError::WorkerConfig(
                "standalone mode needs offset.storage.file.filename (where source offsets are kept)".into(),
            )
        })?;
        let listener = bind(&config).await?;
        let rest_addr = listener
            .local_addr()
            .map_err(|e| ConnectError::io("REST listener", e))?;
        let offsets: Arc<dyn OffsetStore> = Arc::new(FileOffsetStore::open(offset_file)?);
        let statuses: Arc<dyn StatusStore> = Arc::new(MemoryStatusStore::default());
        let configs: Arc<dyn ConfigStore> = Arc::new(MemoryConfigStore::new());
        let context = Arc::new(WorkerContext {
            worker_id: worker_id(&config, rest_addr),
            config,
            registry,
            offsets,
            statuses,
            generation: AtomicI32::new(0),
            offsets_topic: None,
        });
        let herder = Herder::start(context, configs, None);
        for connector in connectors {
            let name = connector.get("name").cloned().ok_or_else(|| {
                ConnectError::WorkerConfig("a connector config without \"name\"".into())
            })?;
            if let Err(e) = herder
                .create_connector(&name, connector, TargetState::Started)
                .await
            {
                herder.stop().await;
                return Err(e);
            }
        }
        Ok(Self::serve(herder, listener, rest_addr))
    }

    /// Distributed mode: joins the group `group.id`; configs, offsets and
    /// statuses in their topics (created if missing).
    pub async fn distributed(config: WorkerConfig, registry: PluginRegistry) -> Result<Worker> {
        let listener = bind(&config).await?;
        let rest_addr = listener
            .local_addr()
            .map_err(|e| ConnectError::io("REST listener", e))?;
        create_topics(&config).await?;
        let (configs, offsets, statuses) = tokio::try_join!(
            KafkaConfigStore::start(&config),
            KafkaOffsetStore::start(&config),
            KafkaStatusStore::start(&config),
        )?;
        let offsets_topic = offsets.topic().to_string();
        let configs: Arc<dyn ConfigStore> = Arc::new(configs);
        let url = config.advertised_url(rest_addr);
        let member_settings = MemberSettings {
            bootstrap: config.bootstrap_servers.clone(),
            group_id: config.group_id.clone(),
            url: url.clone(),
            session_timeout: config.session_timeout,
            rebalance_timeout: config.rebalance_timeout,
            heartbeat_interval: config.heartbeat_interval,
        };
        let context = Arc::new(WorkerContext {
            worker_id: worker_id(&config, rest_addr),
            config,
            registry,
            offsets: Arc::new(offsets),
            statuses: Arc::new(statuses),
            generation: AtomicI32::new(-1),
            offsets_topic: Some(offsets_topic),
        });
        let (events_tx, events_rx) = mpsc::channel(4);
        let herder = Herder::start(context, configs.clone(), Some(events_rx));
        herder.set_member(Member::start(member_settings, configs, events_tx));
        Ok(Self::serve(herder, listener, rest_addr))
    }

    fn serve(
        herder: Arc<Herder>,
        listener: tokio::net::TcpListener,
        rest_addr: SocketAddr,
    ) -> Worker {
        let (rest_shutdown, mut shutdown_rx) = watch::channel(false);
        let app = crate::rest::router(herder.clone());
        let rest = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.changed().await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "the REST server stopped");
            }
        });
        tracing::info!(%rest_addr, distributed = herder.distributed, "Strom Connect worker started");
        Worker {
            herder,
            rest_addr,
            rest_shutdown,
            rest,
        }
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// `http://HOST:PORT`.
    pub fn rest_url(&self) -> String {
        self.herder.context.config.advertised_url(self.rest_addr)
    }

    pub fn herder(&self) -> &Arc<Herder> {
        &self.herder
    }

    /// Stops the REST server, leaves the group, stops every task (sinks
    /// flush and commit, sources store their offsets).
    pub async fn stop(self) {
        let _ = self.rest_shutdown.send(true);
        self.herder.stop().await;
        let _ = self.rest.await;
    }
}

async fn bind(config: &WorkerConfig) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(&config.rest_listen)
        .await
        .map_err(|e| {
            ConnectError::io(
                format!("binding the REST listener {}", config.rest_listen),
                e,
            )
        })
}

fn worker_id(config: &WorkerConfig, bound: SocketAddr) -> String {
    let url = config.advertised_url(bound);
    url.trim_start_matches("http://").to_string()
}

/// Reads a connector config file: JSON (`{"name": ..., "config": {...}}` or a
/// flat object) or Java properties (`key=value` lines).
pub fn read_connector_file(path: &std::path::Path) -> Result<ConfigMap> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConnectError::io(format!("reading {}", path.display()), e))?;
    let bad = |why: String| ConnectError::WorkerConfig(format!("{}: {why}", path.display()));
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let (name, object) = match value.get("config") {
            Some(config) => (
                value
                    .get("name")
                    .and_then(|n| n.as_str())
                    .map(str::to_string),
                config.clone(),
            ),
            None => (None, value.clone()),
        };
        let object = object
            .as_object()
            .ok_or_else(|| bad("\"config\" must be an object".into()))?;
        let mut out = ConfigMap::new();
        for (k, v) in object {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(k.clone(), text);
        }
        if let Some(name) = name {
            out.entry("name".into()).or_insert(name);
        }
        return Ok(out);
    }
    let mut out = ConfigMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .ok_or_else(|| bad(format!("expected key=value, got {line}")))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}
