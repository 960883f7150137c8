//! Interactive queries: read-only views of the state stores of the tasks
//! this instance runs (as Kafka Streams' `KafkaStreams#store`), by key, key
//! range, or — for window stores — key and time range.

use crate::error::{Result, StreamsError};
use crate::record::TaskId;
use crate::serdes::SerdeRef;
use crate::store::backend::Backend;
use crate::store::{window_range, WindowKey};
use crate::topology::QueryAdapter;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

type TaskBackends = BTreeMap<TaskId, Arc<dyn Backend>>;

/// The stores of the running tasks, by store name.
#[derive(Default)]
pub(crate) struct StoreRegistry {
    stores: RwLock<BTreeMap<String, TaskBackends>>,
    pub adapters: RwLock<BTreeMap<String, (QueryAdapter, bool)>>,
}

impl StoreRegistry {
    pub fn register(&self, store: &str, task: TaskId, backend: Arc<dyn Backend>) {
        self.stores
            .write()
            .entry(store.to_string())
            .or_default()
            .insert(task, backend);
    }
    pub fn unregister_task(&self, task: TaskId) {
        for tasks in self.stores.write().values_mut() {
            tasks.remove(&task);
        }
    }
    pub fn backends(&self, store: &str) -> Result<Vec<Arc<dyn Backend>>> {
        let known = self.adapters.read().contains_key(store);
        match self.stores.read().get(store) {
            Some(tasks) => Ok(tasks.values().cloned().collect()),
            None if known => Ok(Vec::new()),
            None => Err(StreamsError::Topology(format!(
                "no queryable store named {store}"
            ))),
        }
    }
}

fn decode<T: 'static>(serde: &SerdeRef<T>, bytes: &[u8], store: &str) -> Result<T> {
    serde
        .deserialize(bytes)
        .map_err(|e| StreamsError::store(store, format!("undecodable entry: {e}")))
}

/// A key-value store (or table), across this instance's tasks.
pub struct ReadOnlyKeyValueStore<K, V> {
    pub(crate) name: String,
    pub(crate) backends: Vec<Arc<dyn Backend>>,
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let kb = crate::dsl::ser_key(&*self.key, key, &self.name)?;
        for b in &self.backends {
            if let Some(v) = b.get(&kb)? {
                return decode(&self.value, &v, &self.name).map(Some);
            }
        }
        Ok(None)
    }

    /// Every entry, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut entries = Vec::new();
        for b in &self.backends {
            entries.extend(b.range(&[], None)?);
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    decode(&self.key, &k, &self.name)?,
                    decode(&self.value, &v, &self.name)?,
                ))
            })
            .collect()
    }

    pub fn approximate_num_entries(&self) -> Result<usize> {
        let mut n = 0;
        for b in &self.backends {
            n += b.range(&[], None)?.len();
        }
        Ok(n)
    }
}

/// One window of a window store.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowEntry<V> {
    pub start: i64,
    pub end: i64,
    pub value: V,
}

/// A window store (a windowed aggregation), across this instance's tasks.
pub struct ReadOnlyWindowStore<K, V> {
    pub(crate) name: String,
    pub(crate) backends: Vec<Arc<dyn Backend>>,
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    /// Windows of `key` starting in `from..=to` (ms), oldest first.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<WindowEntry<V>>> {
        let kb = crate::dsl::ser_key(&*self.key, key, &self.name)?;
        let (lo, hi) = window_range(&kb, from, to);
        let mut out = Vec::new();
        for b in &self.backends {
            for (k, v) in b.range(&lo, hi.as_deref())? {
                if let Some(wk) = WindowKey::decode(&k) {
                    out.push(WindowEntry {
                        start: wk.start,
                        end: wk.end,
                        value: decode(&self.value, &v, &self.name)?,
                    });
                }
            }
        }
        out.sort_by_key(|e| (e.start, e.end));
        Ok(out)
    }

    /// The window `[start, ...)` of `key`, if any.
    pub fn fetch_window(&self, key: &K, start: i64) -> Result<Option<V>> {
        Ok(self
            .fetch(key, start, start)?
            .into_iter()
            .next()
            .map(|e| e.value))
    }
}

pub(crate) fn kv_view<K, V>(
    registry: &StoreRegistry,
    name: &str,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
) -> Result<ReadOnlyKeyValueStore<K, V>> {
    Ok(ReadOnlyKeyValueStore {
        name: name.to_string(),
        backends: registry.backends(name)?,
        key,
        value,
    })
}

pub(crate) fn window_view<K, V>(
    registry: &StoreRegistry,
    name: &str,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
) -> Result<ReadOnlyWindowStore<K, V>> {
    Ok(ReadOnlyWindowStore {
        name: name.to_string(),
        backends: registry.backends(name)?,
        key,
        value,
    })
}
