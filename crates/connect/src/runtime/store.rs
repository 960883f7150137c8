//! The three kinds of state a worker keeps: connector configs (with target
//! states and task configs), source offsets, and statuses. Standalone mode
//! keeps configs and statuses in memory and offsets in a local file;
//! distributed mode keeps all three in compacted topics
//! ([`crate::distributed::stores`]), in the record format defined here.

use crate::error::{ConnectError, Result};
use crate::sdk::config::ConfigMap;
use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Map as JsonMap;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

pub type JsonObject = JsonMap<String, serde_json::Value>;

// --- configs -------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TargetState {
    Started,
    Paused,
    Stopped,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConnectorEntry {
    pub config: ConfigMap,
    pub target: TargetState,
    /// `None` until the connector has generated its task configs.
    pub tasks: Option<Vec<ConfigMap>>,
}

/// Every connector's config as of some position in the config log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigState {
    /// How many config records have been applied.
    pub offset: i64,
    pub connectors: BTreeMap<String, ConnectorEntry>,
    /// Target states written before their connector (a connector created
    /// paused or stopped).
    pub pending_targets: BTreeMap<String, TargetState>,
}

impl ConfigState {
    /// Every (connector, task) that has a config and should run.
    pub fn task_ids(&self) -> Vec<TaskId> {
        let mut out = Vec::new();
        for (name, entry) in &self.connectors {
            if entry.target == TargetState::Stopped {
                continue;
            }
            for task in 0..entry.tasks.as_ref().map_or(0, Vec::len) {
                out.push(TaskId::new(name, task as u32));
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId {
    pub connector: String,
    pub task: u32,
}

impl TaskId {
    pub fn new(connector: &str, task: u32) -> TaskId {
        TaskId {
            connector: connector.to_string(),
            task,
        }
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.connector, self.task)
    }
}

/// A restart asked for over REST, carried to the worker that owns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestartRequest {
    pub connector: String,
    /// `Some`: one task only.
    pub task: Option<u32>,
    pub include_tasks: bool,
    pub only_failed: bool,
    /// Makes each request a distinct record.
    pub id: String,
}

/// A change to the config state.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigRecord {
    /// `None` deletes the connector.
    Connector(String, Option<ConfigMap>),
    TargetState(String, TargetState),
    Tasks(String, Vec<ConfigMap>),
    Restart(RestartRequest),
}

#[derive(Serialize, Deserialize)]
struct ConnectorValue {
    properties: ConfigMap,
}

#[derive(Serialize, Deserialize)]
struct TargetValue {
    state: TargetState,
}

#[derive(Serialize, Deserialize)]
struct TasksValue {
    tasks: Vec<ConfigMap>,
}

impl ConfigRecord {
    /// The record's key and value in the config topic.
    pub fn encode(&self) -> (String, Option<Vec<u8>>) {
        let json = |v: &dyn erased::Json| Some(v.to_vec());
        match self {
            ConfigRecord::Connector(name, config) => (
                format!("connector-{name}"),
                config.as_ref().and_then(|c| {
                    json(&ConnectorValue {
                        properties: c.clone(),
                    })
                }),
            ),
            ConfigRecord::TargetState(name, state) => (
                format!("target-state-{name}"),
                json(&TargetValue { state: *state }),
            ),
            ConfigRecord::Tasks(name, tasks) => (
                format!("tasks-{name}"),
                json(&TasksValue {
                    tasks: tasks.clone(),
                }),
            ),
            ConfigRecord::Restart(request) => {
                (format!("restart-{}", request.connector), json(request))
            }
        }
    }

    /// The record a key and value from the config topic stand for.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<ConfigRecord> {
        let key = std::str::from_utf8(key)
            .map_err(|_| ConnectError::Failed("config record key is not UTF-8".into()))?;
        let bad = |e: serde_json::Error| ConnectError::Failed(format!("config record {key}: {e}"));
        if let Some(name) = key.strip_prefix("connector-") {
            let config = match value {
                None => None,
                Some(v) => Some(
                    serde_json::from_slice::<ConnectorValue>(v)
                        .map_err(bad)?
                        .properties,
                ),
            };
            Ok(ConfigRecord::Connector(name.to_string(), config))
        } else if let Some(name) = key.strip_prefix("target-state-") {
            let state = match value {
                None => TargetState::Started,
                Some(v) => serde_json::from_slice::<TargetValue>(v).map_err(bad)?.state,
            };
            Ok(ConfigRecord::TargetState(name.to_string(), state))
        } else if let Some(name) = key.strip_prefix("tasks-") {
            let tasks = match value {
                None => Vec::new(),
                Some(v) => serde_json::from_slice::<TasksValue>(v).map_err(bad)?.tasks,
            };
            Ok(ConfigRecord::Tasks(name.to_string(), tasks))
        } else if key.starts_with("restart-") {
            let value = value.ok_or_else(|| ConnectError::Failed(format!("{key}: no value")))?;
            Ok(ConfigRecord::Restart(
                serde_json::from_slice(value).map_err(bad)?,
            ))
        } else {
            Err(ConnectError::Failed(format!(
                "unknown config record key {key}"
            )))
        }
    }
}

mod erased {
    pub trait Json {
        fn to_vec(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_vec(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("config records serialize")
        }
    }
}

impl ConfigState {
    /// Applies one record; returns a restart request to act on, if it was one.
    pub fn apply(&mut self, record: ConfigRecord) -> Option<RestartRequest> {
        self.offset += 1;
        match record {
            ConfigRecord::Connector(name, None) => {
                self.connectors.remove(&name);
            }
            ConfigRecord::Connector(name, Some(config)) => match self.connectors.get_mut(&name) {
                Some(entry) => entry.config = config,
                None => {
                    let target = self
                        .pending_targets
                        .remove(&name)
                        .unwrap_or(TargetState::Started);
                    self.connectors.insert(
                        name,
                        ConnectorEntry {
                            config,
                            target,
                            tasks: None,
                        },
                    );
                }
            },
            ConfigRecord::TargetState(name, state) => match self.connectors.get_mut(&name) {
                Some(entry) => entry.target = state,
                None => {
                    self.pending_targets.insert(name, state);
                }
            },
            ConfigRecord::Tasks(name, tasks) => {
                if let Some(entry) = self.connectors.get_mut(&name) {
                    entry.tasks = Some(tasks);
                }
            }
            ConfigRecord::Restart(request) => return Some(request),
        }
        None
    }
}

/// Where connector configs live.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    fn snapshot(&self) -> ConfigState;
    /// Writes a record; when this returns, `snapshot` includes it.
    async fn write(&self, record: ConfigRecord) -> Result<()>;
    /// Reads every record written so far by anyone.
    async fn refresh(&self) -> Result<()>;
    /// Bumped after every applied record.
    fn changes(&self) -> watch::Receiver<i64>;
    /// Restart requests, as they arrive (not those replayed at start-up).
    fn restarts(&self) -> broadcast::Receiver<RestartRequest>;
}

/// Applies records to a shared state and notifies; the core of both stores.
#[derive(Clone)]
pub struct ConfigApplier {
    pub state: Arc<Mutex<ConfigState>>,
    changes: watch::Sender<i64>,
    restarts: broadcast::Sender<RestartRequest>,
    live: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for ConfigApplier {
    fn default() -> Self {
        ConfigApplier {
            state: Arc::default(),
            changes: watch::channel(0).0,
            restarts: broadcast::channel(64).0,
            live: Arc::default(),
        }
    }
}

impl ConfigApplier {
    /// Applies a record; `log_offset` is its offset in the config topic.
    pub fn apply(&self, record: ConfigRecord, log_offset: Option<i64>) {
        let (restart, offset) = {
            let mut state = self.state.lock();
            let restart = state.apply(record);
            if let Some(o) = log_offset {
                state.offset = o + 1;
            }
            (restart, state.offset)
        };
        if let Some(request) = restart {
            if self.live.load(std::sync::atomic::Ordering::Acquire) {
                let _ = self.restarts.send(request);
            }
        }
        self.changes.send_replace(offset);
    }

    /// From now on restart requests are passed on (not replays).
    pub fn go_live(&self) {
        self.live.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn changes(&self) -> watch::Receiver<i64> {
        self.changes.subscribe()
    }

    pub fn restarts(&self) -> broadcast::Receiver<RestartRequest> {
        self.restarts.subscribe()
    }
}

/// Standalone mode: configs in memory (connector files are read at start).
#[derive(Default)]
pub struct MemoryConfigStore {
    applier: ConfigApplier,
}

impl MemoryConfigStore {
    pub fn new() -> MemoryConfigStore {
        let store = MemoryConfigStore::default();
        store.applier.go_live();
        store
    }
}

#[async_trait]
impl ConfigStore for MemoryConfigStore {
    fn snapshot(&self) -> ConfigState {
        self.applier.state.lock().clone()
    }

    async fn write(&self, record: ConfigRecord) -> Result<()> {
        self.applier.apply(record, None);
        Ok(())
    }

    async fn refresh(&self) -> Result<()> {
        Ok(())
    }

    fn changes(&self) -> watch::Receiver<i64> {
        self.applier.changes()
    }

    fn restarts(&self) -> broadcast::Receiver<RestartRequest> {
        self.applier.restarts()
    }
}

// --- offsets -------------------------------------------------------------

/// The key of a source offset: Kafka Connect's `["connector", {partition}]`.
pub fn offset_key(connector: &str, partition: &JsonObject) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([connector, partition])).expect("JSON")
}

pub fn parse_offset_key(key: &[u8]) -> Option<(String, JsonObject)> {
    let value: serde_json::Value = serde_json::from_slice(key).ok()?;
    let array = value.as_array()?;
    match array.as_slice() {
        [serde_json::Value::String(connector), serde_json::Value::Object(partition)] => {
            Some((connector.clone(), partition.clone()))
        }
        _ => None,
    }
}

/// Where source offsets live.
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// Reads what others wrote (distributed mode), before a task starts.
    async fn refresh(&self) -> Result<()> {
        Ok(())
    }
    fn get(&self, connector: &str, partition: &JsonObject) -> Option<JsonObject>;
    /// Stores offsets durably; `None` removes a partition's offset.
    async fn put(
        &self,
        connector: &str,
        offsets: Vec<(JsonObject, Option<JsonObject>)>,
    ) -> Result<()>;
    /// Records offsets already made durable elsewhere (in a transaction).
    fn put_local(&self, connector: &str, offsets: Vec<(JsonObject, Option<JsonObject>)>);
    fn all(&self, connector: &str) -> Vec<(JsonObject, JsonObject)>;
}

/// (connector, partition as JSON) → (partition, offset).
type OffsetEntries = HashMap<(String, String), (JsonObject, JsonObject)>;

/// The in-memory map of offsets both stores keep.
#[derive(Default, Clone)]
pub struct OffsetMap {
    inner: Arc<Mutex<OffsetEntries>>,
}

impl OffsetMap {
    fn partition_key(partition: &JsonObject) -> String {
        serde_json::to_string(partition).expect("JSON")
    }

    pub fn set(&self, connector: &str, partition: &JsonObject, offset: Option<&JsonObject>) {
        let key = (connector.to_string(), Self::partition_key(partition));
        let mut map = self.inner.lock();
        match offset {
            Some(o) => {
                map.insert(key, (partition.clone(), o.clone()));
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// Applies a raw record of the offsets topic.
    pub fn apply_raw(&self, key: &[u8], value: Option<&[u8]>) {
        let Some((connector, partition)) = parse_offset_key(key) else {
            tracing::warn!("ignoring an offset record with an invalid key");
            return;
        };
        let offset = value.and_then(|v| serde_json::from_slice::<JsonObject>(v).ok());
        self.set(&connector, &partition, offset.as_ref());
    }

    pub fn get(&self, connector: &str, partition: &JsonObject) -> Option<JsonObject> {
        self.inner
            .lock()
            .get(&(connector.to_string(), Self::partition_key(partition)))
            .map(|(_, o)| o.clone())
    }

    pub fn all(&self, connector: &str) -> Vec<(JsonObject, JsonObject)> {
        let map = self.inner.lock();
        let mut out: Vec<_> = map
            .iter()
            .filter(|((c, _), _)| c == connector)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, v)| v).collect()
    }

    fn entries(&self) -> Vec<(String, JsonObject, JsonObject)> {
        self.inner
            .lock()
            .iter()
            .map(|((c, _), (p, o))| (c.clone(), p.clone(), o.clone()))
            .collect()
    }
}

/// Standalone mode: offsets in a JSON file, replaced atomically (written to
/// a temporary file, fsynced, renamed) on every flush.
pub struct FileOffsetStore {
    path: PathBuf,
    map: OffsetMap,
    write_lock: tokio::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    connector: String,
    partition: JsonObject,
    offset: JsonObject,
}

impl FileOffsetStore {
    pub fn open(path: PathBuf) -> Result<FileOffsetStore> {
        let map = OffsetMap::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let entries: Vec<FileEntry> = serde_json::from_slice(&bytes).map_err(|e| {
                    ConnectError::Failed(format!("offset file {}: {e}", path.display()))
                })?;
                for e in entries {
                    map.set(&e.connector, &e.partition, Some(&e.offset));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConnectError::io(format!("reading {}", path.display()), e)),
        }
        Ok(FileOffsetStore {
            path,
            map,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn write_file(path: &std::path::Path, entries: Vec<FileEntry>) -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(&entries)?)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[async_trait]
impl OffsetStore for FileOffsetStore {
    fn get(&self, connector: &str, partition: &JsonObject) -> Option<JsonObject> {
        self.map.get(connector, partition)
    }

    async fn put(
        &self,
        connector: &str,
        offsets: Vec<(JsonObject, Option<JsonObject>)>,
    ) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        for (partition, offset) in &offsets {
            self.map.set(connector, partition, offset.as_ref());
        }
        let mut entries: Vec<FileEntry> = self
            .map
            .entries()
            .into_iter()
            .map(|(connector, partition, offset)| FileEntry {
                connector,
                partition,
                offset,
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.connector, serde_json::to_string(&a.partition).ok())
                .cmp(&(&b.connector, serde_json::to_string(&b.partition).ok()))
        });
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || Self::write_file(&path, entries))
            .await
            .map_err(ConnectError::failed)?
            .map_err(|e| ConnectError::io(format!("writing {}", self.path.display()), e))
    }

    fn put_local(&self, connector: &str, offsets: Vec<(JsonObject, Option<JsonObject>)>) {
        for (partition, offset) in &offsets {
            self.map.set(connector, partition, offset.as_ref());
        }
    }

    fn all(&self, connector: &str) -> Vec<(JsonObject, JsonObject)> {
        self.map.all(connector)
    }
}

// --- statuses ------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Failed,
    Restarting,
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace: Option<String>,
    pub worker_id: String,
    pub generation: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusId {
    Connector(String),
    Task(TaskId),
}

impl StatusId {
    pub fn key(&self) -> String {
        match self {
            StatusId::Connector(name) => format!("status-connector-{name}"),
            StatusId::Task(id) => format!("status-task-{}-{}", id.connector, id.task),
        }
    }

    pub fn parse(key: &str) -> Option<StatusId> {
        if let Some(name) = key.strip_prefix("status-connector-") {
            return Some(StatusId::Connector(name.to_string()));
        }
        let rest = key.strip_prefix("status-task-")?;
        let (connector, task) = rest.rsplit_once('-')?;
        Some(StatusId::Task(TaskId::new(connector, task.parse().ok()?)))
    }

    pub fn connector(&self) -> &str {
        match self {
            StatusId::Connector(name) => name,
            StatusId::Task(id) => &id.connector,
        }
    }
}

/// The statuses every worker can see.
#[async_trait]
pub trait StatusStore: Send + Sync {
    /// Records a status (`None` removes it, when a connector is deleted).
    async fn put(&self, id: StatusId, status: Option<Status>);
    fn get(&self, id: &StatusId) -> Option<Status>;
    fn tasks(&self, connector: &str) -> Vec<(u32, Status)>;
}

/// The in-memory view both status stores keep.
#[derive(Default, Clone)]
pub struct StatusMap {
    inner: Arc<Mutex<BTreeMap<StatusId, Status>>>,
}

impl StatusMap {
    /// Sets a status unless the one known is from a newer generation of a
    /// different worker (a stale write from a worker that lost the task).
    pub fn apply(&self, id: StatusId, status: Option<Status>) {
        let mut map = self.inner.lock();
        match status {
            None => {
                map.remove(&id);
            }
            Some(status) => {
                if let Some(current) = map.get(&id) {
                    if current.generation > status.generation
                        && current.worker_id != status.worker_id
                    {
                        return;
                    }
                }
                map.insert(id, status);
            }
        }
    }

    pub fn get(&self, id: &StatusId) -> Option<Status> {
        self.inner.lock().get(id).cloned()
    }

    pub fn tasks(&self, connector: &str) -> Vec<(u32, Status)> {
        self.inner
            .lock()
            .iter()
            .filter_map(|(id, s)| match id {
                StatusId::Task(t) if t.connector == connector => Some((t.task, s.clone())),
                _ => None,
            })
            .collect()
    }
}

#[derive(Default)]
pub struct MemoryStatusStore {
    map: StatusMap,
}

#[async_trait]
impl StatusStore for MemoryStatusStore {
    async fn put(&self, id: StatusId, status: Option<Status>) {
        self.map.apply(id, status);
    }

    fn get(&self, id: &StatusId) -> Option<Status> {
        self.map.get(id)
    }

    fn tasks(&self, connector: &str) -> Vec<(u32, Status)> {
        self.map.tasks(connector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_records_round_trip() {
        let records = vec![
            ConfigRecord::Connector(
                "a-b".into(),
                Some(ConfigMap::from([("k".into(), "v".into())])),
            ),
            ConfigRecord::Connector("a-b".into(), None),
            ConfigRecord::TargetState("x".into(), TargetState::Paused),
            ConfigRecord::Tasks("x".into(), vec![ConfigMap::new()]),
            ConfigRecord::Restart(RestartRequest {
                connector: "x".into(),
                task: Some(2),
                include_tasks: false,
                only_failed: true,
                id: "1".into(),
            }),
        ];
        for record in records {
            let (key, value) = record.encode();
            assert_eq!(
                ConfigRecord::decode(key.as_bytes(), value.as_deref()).unwrap(),
                record
            );
        }
    }

    #[test]
    fn status_ids_parse_connector_names_with_dashes() {
        for id in [
            StatusId::Connector("my-conn-1".into()),
            StatusId::Task(TaskId::new("my-conn-1", 12)),
        ] {
            assert_eq!(StatusId::parse(&id.key()), Some(id));
        }
    }

    #[tokio::test]
    async fn file_offsets_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.json");
        let partition: JsonObject = serde_json::from_str(r#"{"filename":"/a"}"#).unwrap();
        let offset: JsonObject = serde_json::from_str(r#"{"position":42}"#).unwrap();
        let store = FileOffsetStore::open(path.clone()).unwrap();
        store
            .put("c", vec![(partition.clone(), Some(offset.clone()))])
            .await
            .unwrap();
        let reopened = FileOffsetStore::open(path).unwrap();
        assert_eq!(reopened.get("c", &partition), Some(offset));
        assert_eq!(reopened.all("c").len(), 1);
        assert!(reopened.all("other").is_empty());
    }
}
