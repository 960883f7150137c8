//! Cluster metadata (topics, their ids, partition counts and configs, and
//! dynamic broker configs), kept as keyed records in an internal log,
//! `__cluster_metadata-0`, written with fsync before any change is
//! acknowledged and replayed at start-up — the same recovery path as every
//! other log. The latest record for a key wins; a null value deletes it.

use crate::error::BrokerError;
use kafka_protocol::records::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strom_log::{FlushPolicy, LogConfig, PartitionLog};
use uuid::Uuid;

pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// What the metadata log holds once replayed.
#[derive(Clone, Debug, Default)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicRecord>,
    /// Dynamic broker configs by resource name ("" = cluster default, else a node id).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Producer ids below this were handed out (in blocks) before.
    pub next_producer_id_block: i64,
}

pub enum MetadataChange {
    Topic(TopicRecord),
    TopicDeleted(String),
    BrokerConfig {
        resource: String,
        configs: BTreeMap<String, String>,
    },
    /// A block of producer ids `[start, end)` was taken.
    ProducerIdBlock {
        end: i64,
    },
}

impl MetadataChange {
    fn key_value(&self) -> Result<(String, Option<Vec<u8>>), BrokerError> {
        Ok(match self {
            MetadataChange::Topic(t) => (format!("topic:{}", t.name), Some(json(t)?)),
            MetadataChange::TopicDeleted(name) => (format!("topic:{name}"), None),
            MetadataChange::ProducerIdBlock { end } => (
                "producer-ids".to_string(),
                Some(json(&serde_json::json!({ "end": end }))?),
            ),
            MetadataChange::BrokerConfig { resource, configs } => {
                (format!("broker-config:{resource}"), Some(json(configs)?))
            }
        })
    }
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, BrokerError> {
    serde_json::to_vec(value).map_err(|e| BrokerError::Metadata(e.to_string()))
}

pub struct MetadataStore {
    log: PartitionLog,
}

impl MetadataStore {
    pub fn open(
        data_dir: &Path,
        clean_shutdown: bool,
    ) -> Result<(MetadataStore, MetadataImage), BrokerError> {
        let config = LogConfig {
            flush: FlushPolicy::Always,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: 64 * 1024 * 1024,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&data_dir.join(METADATA_LOG_DIR), config, clean_shutdown)?;
        let image = replay(&log)?;
        Ok((MetadataStore { log }, image))
    }

    /// Appends the changes as one batch and fsyncs it.
    pub fn write(&self, changes: &[MetadataChange]) -> Result<(), BrokerError> {
        let now = now_ms();
        let records = changes
            .iter()
            .map(MetadataChange::key_value)
            .collect::<Result<Vec<_>, _>>()?;
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = records
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v))
            .collect();
        let buf =
            crate::internal_log::encode_batch(&records, now).map_err(BrokerError::Metadata)?;
        let info = self.log.append(&buf, now)?;
        self.log.flush_up_to(info.last_offset + 1)?;
        Ok(())
    }

    pub fn close(&self) -> Result<(), BrokerError> {
        self.log.close()?;
        Ok(())
    }
}

fn replay(log: &PartitionLog) -> Result<MetadataImage, BrokerError> {
    let mut image = MetadataImage::default();
    let mut failed = None;
    crate::internal_log::for_each_record(log, |record| {
        if failed.is_none() {
            failed = apply(&mut image, &record).err();
        }
    })
    .map_err(|e| BrokerError::Metadata(e.to_string()))?;
    match failed {
        Some(e) => Err(e),
        None => Ok(image),
    }
}

fn apply(image: &mut MetadataImage, record: &Record) -> Result<(), BrokerError> {
    let key = record
        .key
        .as_ref()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    let bad = |e: serde_json::Error| BrokerError::Metadata(format!("metadata record `{key}`: {e}"));
    if let Some(name) = key.strip_prefix("topic:") {
        match &record.value {
            Some(v) => {
                let topic: TopicRecord = serde_json::from_slice(v).map_err(bad)?;
                image.topics.insert(name.to_string(), topic);
            }
            None => {
                image.topics.remove(name);
            }
        }
    } else if let Some(resource) = key.strip_prefix("broker-config:") {
        match &record.value {
            Some(v) => {
                image.broker_configs.insert(
                    resource.to_string(),
                    serde_json::from_slice(v).map_err(bad)?,
                );
            }
            None => {
                image.broker_configs.remove(resource);
            }
        }
    } else if key == "producer-ids" {
        if let Some(v) = &record.value {
            let value: serde_json::Value = serde_json::from_slice(v).map_err(bad)?;
            image.next_producer_id_block = value["end"]
                .as_i64()
                .unwrap_or(0)
                .max(image.next_producer_id_block);
        }
    } else {
        tracing::warn!(key, "ignoring unknown metadata record");
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `meta.properties` as Kafka writes it: the cluster id and node id of a data dir.
pub fn load_or_create_cluster_id(data_dir: &Path, node_id: i32) -> Result<String, BrokerError> {
    let path: PathBuf = data_dir.join("meta.properties");
    let io = |context: &str, source| BrokerError::Io {
        context: format!("{context} {}", path.display()),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for line in text.lines() {
                if let Some(id) = line.strip_prefix("cluster.id=") {
                    return Ok(id.trim().to_string());
                }
            }
            Err(BrokerError::Metadata(format!(
                "{} has no cluster.id",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = kafka_uuid_string(Uuid::new_v4());
            let text = format!("version=1\ncluster.id={id}\nnode.id={node_id}\n");
            let tmp = data_dir.join("meta.properties.tmp");
            std::fs::write(&tmp, text).map_err(|e| io("writing", e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("syncing", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io("renaming", e))?;
            Ok(id)
        }
        Err(e) => Err(io("reading", e)),
    }
}

/// Kafka prints UUIDs as unpadded URL-safe base64 of their 16 bytes.
pub fn kafka_uuid_string(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_uuid_format() {
        let id = Uuid::from_bytes([0; 16]);
        assert_eq!(kafka_uuid_string(id), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = Uuid::from_bytes([0xff; 16]);
        assert_eq!(kafka_uuid_string(id), "_____________________w");
    }

    #[test]
    fn changes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, image) = MetadataStore::open(dir.path(), false).unwrap();
        assert!(image.topics.is_empty());
        let t = TopicRecord {
            name: "a".into(),
            id: Uuid::new_v4(),
            partitions: 2,
            configs: BTreeMap::new(),
        };
        let mut t2 = t.clone();
        t2.name = "b".into();
        store
            .write(&[MetadataChange::Topic(t.clone()), MetadataChange::Topic(t2)])
            .unwrap();
        store
            .write(&[MetadataChange::TopicDeleted("b".into())])
            .unwrap();
        store
            .write(&[MetadataChange::BrokerConfig {
                resource: "".into(),
                configs: BTreeMap::from([("log.retention.ms".into(), "5".into())]),
            }])
            .unwrap();
        drop(store);
        let (_store, image) = MetadataStore::open(dir.path(), false).unwrap();
        assert_eq!(image.topics.len(), 1);
        assert_eq!(image.topics["a"], t);
        assert_eq!(image.broker_configs[""]["log.retention.ms"], "5");
    }
}
