//! Byte-level storage behind every state store: an in-memory B-tree (the
//! test driver) or a fjall partition (the runtime), one per store per task.

use crate::error::{Result, StreamsError};
use crate::record::TaskId;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An ordered map of bytes. Readers (interactive queries) may run on other
/// threads while the stream thread writes.
pub trait Backend: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&self, key: &[u8]) -> Result<()>;
    /// Entries with `from <= key < to` (`to = None`: to the end), in key order.
    fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<KeyValue>>;
}

/// Opens the backend of one store of one task; `wipe` throws a store's
/// local contents away (before a full restore from its changelog).
pub trait StoreProvider: Send + Sync {
    fn open(&self, task: TaskId, store: &str) -> Result<Arc<dyn Backend>>;
    fn wipe(&self, task: TaskId, store: &str) -> Result<()>;
}

#[derive(Default)]
pub struct MemoryBackend {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.map.write().insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &[u8]) -> Result<()> {
        self.map.write().remove(key);
        Ok(())
    }
    fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        let map = self.map.read();
        let upper = to.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(map
            .range::<[u8], _>((Bound::Included(from), upper))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// In-memory stores that survive a task being closed and reopened (the
/// test driver).
#[derive(Default)]
pub struct MemoryProvider {
    stores: Mutex<HashMap<(TaskId, String), Arc<MemoryBackend>>>,
}

impl StoreProvider for MemoryProvider {
    fn open(&self, task: TaskId, store: &str) -> Result<Arc<dyn Backend>> {
        let mut stores = self.stores.lock();
        let backend = stores.entry((task, store.to_string())).or_default().clone();
        Ok(backend)
    }
    fn wipe(&self, task: TaskId, store: &str) -> Result<()> {
        self.stores.lock().remove(&(task, store.to_string()));
        Ok(())
    }
}

/// One fjall keyspace per application instance (`<state.dir>/<application.id>/fjall`),
/// one partition per store per task, named `<task>.<store>`.
pub struct FjallProvider {
    keyspace: fjall::Keyspace,
}

fn fjall_err(store: &str, e: impl std::fmt::Display) -> StreamsError {
    StreamsError::store(store, format!("fjall: {e}"))
}

/// fjall allows `[A-Za-z0-9_.#$-]` in partition names; anything else is
/// written as `$XX`.
fn partition_name(task: TaskId, store: &str) -> String {
    let mut name = format!("{task}.");
    for b in store.bytes() {
        if b.is_ascii_alphanumeric() || b"_-.#".contains(&b) {
            name.push(b as char);
        } else {
            name.push_str(&format!("${b:02x}"));
        }
    }
    name.truncate(255);
    name
}

impl FjallProvider {
    pub fn open(dir: &Path) -> Result<FjallProvider> {
        let keyspace = fjall::Config::new(dir)
            // The changelog is the durable copy: no fsync of local state.
            .fsync_ms(None)
            .open()
            .map_err(|e| fjall_err("<keyspace>", e))?;
        Ok(FjallProvider { keyspace })
    }
}

impl StoreProvider for FjallProvider {
    fn open(&self, task: TaskId, store: &str) -> Result<Arc<dyn Backend>> {
        let partition = self
            .keyspace
            .open_partition(&partition_name(task, store), Default::default())
            .map_err(|e| fjall_err(store, e))?;
        Ok(Arc::new(FjallBackend {
            name: store.to_string(),
            partition,
        }))
    }
    fn wipe(&self, task: TaskId, store: &str) -> Result<()> {
        let name = partition_name(task, store);
        if self.keyspace.partition_exists(&name) {
            let partition = self
                .keyspace
                .open_partition(&name, Default::default())
                .map_err(|e| fjall_err(store, e))?;
            self.keyspace
                .delete_partition(partition)
                .map_err(|e| fjall_err(store, e))?;
        }
        Ok(())
    }
}

pub struct FjallBackend {
    name: String,
    partition: fjall::PartitionHandle,
}

impl Backend for FjallBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.partition
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| fjall_err(&self.name, e))
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.partition
            .insert(key, value)
            .map_err(|e| fjall_err(&self.name, e))
    }
    fn delete(&self, key: &[u8]) -> Result<()> {
        self.partition
            .remove(key)
            .map_err(|e| fjall_err(&self.name, e))
    }
    fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        let upper: Bound<Vec<u8>> = to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.to_vec()));
        self.partition
            .range::<Vec<u8>, _>((Bound::Included(from.to_vec()), upper))
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| fjall_err(&self.name, e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(backend: &dyn Backend) {
        backend.put(b"b", b"2").unwrap();
        backend.put(b"a", b"1").unwrap();
        backend.put(b"c", b"3").unwrap();
        assert_eq!(backend.get(b"a").unwrap(), Some(b"1".to_vec()));
        backend.delete(b"a").unwrap();
        assert_eq!(backend.get(b"a").unwrap(), None);
        let keys: Vec<Vec<u8>> = backend
            .range(b"b", Some(b"c"))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"b".to_vec()]);
        assert_eq!(backend.range(b"", None).unwrap().len(), 2);
    }

    #[test]
    fn memory_and_fjall_behave_alike() {
        exercise(&MemoryBackend::default());
        let dir = tempfile::tempdir().unwrap();
        let provider = FjallProvider::open(dir.path()).unwrap();
        let task = TaskId {
            subtopology: 0,
            partition: 1,
        };
        exercise(
            &*provider
                .open(task, "KSTREAM-AGGREGATE-STATE-STORE-0000000003")
                .unwrap(),
        );
        provider
            .wipe(task, "KSTREAM-AGGREGATE-STATE-STORE-0000000003")
            .unwrap();
        let reopened = provider
            .open(task, "KSTREAM-AGGREGATE-STATE-STORE-0000000003")
            .unwrap();
        assert!(reopened.range(b"", None).unwrap().is_empty());
        assert_eq!(partition_name(task, "my store/x"), "0_1.my$20store$2fx");
    }
}
