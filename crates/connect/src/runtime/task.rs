//! What running connectors and tasks share: the worker context (stores,
//! worker id, generation), task handles with their target state and stop
//! signal, and the converters a connector uses.

use crate::error::{ConnectError, Result};
use crate::runtime::connector_config::PluginRegistry;
use crate::runtime::store::{OffsetStore, State, Status, StatusId, StatusStore, TargetState};
use crate::runtime::worker_config::WorkerConfig;
use crate::sdk::config::{prefixed, ConfigMap};
use crate::sdk::converter::{converter, Converter};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Everything a worker's connectors and tasks need.
pub struct WorkerContext {
    /// `HOST:PORT` of this worker's REST API, as Kafka Connect names workers.
    pub worker_id: String,
    pub config: WorkerConfig,
    pub registry: PluginRegistry,
    pub offsets: Arc<dyn OffsetStore>,
    pub statuses: Arc<dyn StatusStore>,
    /// The group generation (distributed mode; 0 standalone).
    pub generation: AtomicI32,
    /// Distributed mode: the offsets topic, for exactly-once sources that
    /// write offsets in their transactions.
    pub offsets_topic: Option<String>,
}

impl WorkerContext {
    pub async fn set_status(&self, id: StatusId, state: State, trace: Option<String>) {
        let status = Status {
            state,
            trace,
            worker_id: self.worker_id.clone(),
            generation: self.generation.load(Ordering::Acquire),
        };
        self.statuses.put(id, Some(status)).await;
    }

    /// Client settings for a connector's `kind` client: the worker's, then the
    /// connector's `KIND.override.*` (policy All, Kafka's default).
    pub fn client_props(&self, kind: &str, connector_config: &ConfigMap) -> ConfigMap {
        let mut props = self.config.client_props(kind);
        props.extend(prefixed(connector_config, &format!("{kind}.override.")));
        props
    }

    /// The connector's key and value converters (its own or the worker's).
    pub fn converters(
        &self,
        connector_config: &ConfigMap,
    ) -> Result<(Box<dyn Converter>, Box<dyn Converter>)> {
        let side = |name: &str| -> Result<Box<dyn Converter>> {
            let own = connector_config
                .get(&format!("{name}.converter"))
                .filter(|c| !c.trim().is_empty());
            let (class, settings) = match own {
                Some(class) => (
                    class.trim().to_string(),
                    prefixed(connector_config, &format!("{name}.converter.")),
                ),
                None => self.config.converter(name),
            };
            converter(&class, &settings, name == "key")
        };
        Ok((side("key")?, side("value")?))
    }
}

/// Control of a running task (or connector).
pub struct Control {
    pub target: watch::Receiver<TargetState>,
    pub stop: watch::Receiver<bool>,
}

impl Control {
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub fn paused(&self) -> bool {
        *self.target.borrow() == TargetState::Paused
    }

    /// Waits until the target state changes or a stop is asked for.
    pub async fn changed(&mut self) {
        tokio::select! {
            _ = self.target.changed() => {}
            _ = self.stop.changed() => {}
        }
    }

    /// Sleeps for `duration` unless a stop comes first; true if stopping.
    pub async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.stop.changed() => {}
        }
        self.stopping()
    }
}

/// The worker's side of a running task.
pub struct TaskHandle {
    target: watch::Sender<TargetState>,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
    /// The task config it runs with (to notice changes).
    pub config: ConfigMap,
    /// The connector config it runs with (converters, transforms, ...).
    pub connector_config: ConfigMap,
}

impl TaskHandle {
    /// Spawns `run` with a fresh control.
    pub fn spawn<F, Fut>(
        config: ConfigMap,
        connector_config: ConfigMap,
        target: TargetState,
        run: F,
    ) -> TaskHandle
    where
        F: FnOnce(Control) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (target_tx, target_rx) = watch::channel(target);
        let (stop_tx, stop_rx) = watch::channel(false);
        let join = tokio::spawn(run(Control {
            target: target_rx,
            stop: stop_rx,
        }));
        TaskHandle {
            target: target_tx,
            stop: stop_tx,
            join,
            config,
            connector_config,
        }
    }

    pub fn set_target(&self, target: TargetState) {
        self.target.send_if_modified(|current| {
            let changed = *current != target;
            *current = target;
            changed
        });
    }

    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Asks the task to stop and waits up to `timeout`; then aborts it.
    pub async fn stop(self, timeout: Duration) {
        let _ = self.stop.send(true);
        let mut join = self.join;
        if tokio::time::timeout(timeout, &mut join).await.is_err() {
            tracing::warn!("a task did not stop within {timeout:?}; cancelling it");
            join.abort();
            let _ = join.await;
        }
    }
}

/// A task's failure as a status trace.
pub fn trace(error: &ConnectError) -> String {
    format!("{error}\n{error:?}")
}

/// Converts record headers for rdkafka.
pub fn kafka_headers(
    headers: &[crate::sdk::data::Header],
) -> Option<rdkafka::message::OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut out = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
    for h in headers {
        out = out.insert(rdkafka::message::Header {
            key: &h.key,
            value: h.value.as_deref(),
        });
    }
    Some(out)
}

/// Reads rdkafka headers into records.
pub fn record_headers(message: &impl rdkafka::Message) -> Vec<crate::sdk::data::Header> {
    use rdkafka::message::Headers as _;
    let Some(headers) = message.headers() else {
        return Vec::new();
    };
    headers
        .iter()
        .map(|h| crate::sdk::data::Header {
            key: h.key.to_string(),
            value: h.value.map(<[u8]>::to_vec),
        })
        .collect()
}
