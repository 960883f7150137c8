//! The runtime: [`KafkaStreams`] runs a topology against a Kafka-compatible
//! cluster.
//!
//! One stream thread per instance: a consumer in the group
//! `application.id` (range assignor, so partition N of every source topic
//! of a sub-topology goes to the same instance: one task per sub-topology
//! and partition number), a producer (transactional under exactly-once),
//! and a restore consumer that replays changelog topics into the fjall
//! stores when a task is created. See `docs/streams.md`.

mod engine;
mod setup;

use crate::error::{Result, StreamsError};
use crate::query::{
    kv_view, window_view, ReadOnlyKeyValueStore, ReadOnlyWindowStore, StoreRegistry,
};
use crate::serdes::SerdeRef;
use crate::topology::Topology;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::http::serve_queries;

/// Kafka Streams' `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// `at_least_once` (the default): offsets are committed after the
    /// produced records (outputs and changelogs) are acknowledged; a crash
    /// reprocesses what came after the last commit.
    AtLeastOnce,
    /// `exactly_once_v2`: per commit interval, one transaction holds the
    /// produced records, the changelog writes and the input offsets.
    ExactlyOnce,
}

/// Configuration of one application instance.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    pub application_id: String,
    pub bootstrap_servers: String,
    pub guarantee: ProcessingGuarantee,
    /// `commit.interval.ms`: 30 s at-least-once, 100 ms exactly-once (Kafka's defaults).
    pub commit_interval: Option<Duration>,
    /// `state.dir`; stores live in `<state.dir>/<application.id>/`.
    pub state_dir: PathBuf,
    /// `replication.factor` of the internal topics.
    pub replication_factor: i32,
    /// Extra librdkafka properties for the consumer and producer (e.g.
    /// `session.timeout.ms`, `group.instance.id`).
    pub client: BTreeMap<String, String>,
}

impl StreamsConfig {
    pub fn new(application_id: &str, bootstrap_servers: &str) -> Self {
        StreamsConfig {
            application_id: application_id.to_string(),
            bootstrap_servers: bootstrap_servers.to_string(),
            guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval: None,
            state_dir: std::env::temp_dir().join("strom-streams"),
            replication_factor: 1,
            client: BTreeMap::new(),
        }
    }
    pub fn exactly_once(mut self) -> Self {
        self.guarantee = ProcessingGuarantee::ExactlyOnce;
        self
    }
    pub fn guarantee(mut self, guarantee: ProcessingGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = Some(interval);
        self
    }
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }
    pub fn replication_factor(mut self, n: i32) -> Self {
        self.replication_factor = n;
        self
    }
    /// A librdkafka property for the consumer and producer.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.client.insert(key.to_string(), value.to_string());
        self
    }
    pub(crate) fn effective_commit_interval(&self) -> Duration {
        self.commit_interval.unwrap_or(match self.guarantee {
            ProcessingGuarantee::AtLeastOnce => Duration::from_secs(30),
            ProcessingGuarantee::ExactlyOnce => Duration::from_millis(100),
        })
    }
}

/// The life cycle of an instance, as Kafka Streams' `KafkaStreams.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Rebalancing,
    Running,
    PendingShutdown,
    NotRunning,
    Error,
}

/// Counters of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamsMetrics {
    pub processed_records: u64,
    pub commits: u64,
    pub restored_records: u64,
    pub dropped_records: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub processed: AtomicU64,
    pub commits: AtomicU64,
    pub restored: AtomicU64,
    pub dropped: AtomicU64,
}

/// What the stream thread shares with the application and the HTTP endpoint.
pub(crate) struct Shared {
    pub registry: StoreRegistry,
    pub state: Mutex<State>,
    pub shutdown: AtomicBool,
    pub counters: Counters,
    pub error: Mutex<Option<String>>,
    /// The tasks this instance runs now.
    pub tasks: Mutex<Vec<crate::TaskId>>,
}

impl Shared {
    pub fn set_state(&self, state: State) {
        *self.state.lock() = state;
    }
}

/// A running (or runnable) Streams application instance.
pub struct KafkaStreams {
    topology: Option<Topology>,
    config: StreamsConfig,
    pub(crate) shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl KafkaStreams {
    pub fn new(topology: Topology, config: StreamsConfig) -> Self {
        let shared = Arc::new(Shared {
            registry: StoreRegistry::default(),
            state: Mutex::new(State::Created),
            shutdown: AtomicBool::new(false),
            counters: Counters::default(),
            error: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
        });
        for spec in &topology.stores {
            if let Some(adapter) = &spec.query {
                shared.registry.adapters.write().insert(
                    spec.name.clone(),
                    (
                        adapter.clone(),
                        matches!(spec.kind, crate::store::StoreKind::Window { .. }),
                    ),
                );
            }
        }
        KafkaStreams {
            topology: Some(topology),
            config,
            shared,
            thread: None,
        }
    }

    /// Starts the stream thread: it creates the internal topics, joins the
    /// group and processes until [`close`](Self::close).
    pub fn start(&mut self) -> Result<()> {
        let topology = self
            .topology
            .take()
            .ok_or_else(|| StreamsError::NotRunning("start called twice".into()))?;
        let config = self.config.clone();
        let shared = self.shared.clone();
        shared.set_state(State::Rebalancing);
        let thread = std::thread::Builder::new()
            .name(format!("{}-StreamThread-1", config.application_id))
            .spawn(move || {
                let result = engine::run(topology, config, shared.clone());
                match &result {
                    Ok(()) => shared.set_state(State::NotRunning),
                    Err(e) => {
                        tracing::error!("stream thread failed: {e}");
                        *shared.error.lock() = Some(e.to_string());
                        shared.set_state(State::Error);
                    }
                }
                result
            })
            .map_err(|e| StreamsError::io("spawning the stream thread", e))?;
        self.thread = Some(thread);
        Ok(())
    }

    pub fn state(&self) -> State {
        *self.shared.state.lock()
    }

    /// The stream thread's error, if it stopped on one.
    pub fn error(&self) -> Option<String> {
        self.shared.error.lock().clone()
    }

    pub fn metrics(&self) -> StreamsMetrics {
        let c = &self.shared.counters;
        StreamsMetrics {
            processed_records: c.processed.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            restored_records: c.restored.load(Ordering::Relaxed),
            dropped_records: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// The tasks this instance runs now (empty during a rebalance).
    pub fn local_tasks(&self) -> Vec<crate::TaskId> {
        self.shared.tasks.lock().clone()
    }

    /// Commits, closes the tasks (checkpointing their stores), leaves the
    /// group and waits for the stream thread.
    pub fn close(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if self.state() != State::Error {
            self.shared.set_state(State::PendingShutdown);
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| StreamsError::NotRunning("the stream thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Waits until the stream thread stops on its own (an error) — for
    /// applications that run until killed.
    pub fn join(mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| StreamsError::NotRunning("the stream thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Read-only view of a key-value store over the tasks this instance
    /// runs now.
    pub fn store<K, V>(
        &self,
        name: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Result<ReadOnlyKeyValueStore<K, V>> {
        kv_view(&self.shared.registry, name, key, value)
    }

    /// Read-only view of a window store.
    pub fn window_store<K, V>(
        &self,
        name: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Result<ReadOnlyWindowStore<K, V>> {
        window_view(&self.shared.registry, name, key, value)
    }

    /// Serves interactive queries over HTTP on `addr` (e.g.
    /// `127.0.0.1:0`); returns the bound address.
    pub fn serve_queries(&self, addr: &str) -> Result<SocketAddr> {
        serve_queries(self.shared.clone(), addr)
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}
