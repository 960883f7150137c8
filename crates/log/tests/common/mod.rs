//! Shared helpers for the integration tests: batches built with
//! kafka-protocol's encoder, a linear scan of the segment files on disk, and
//! storage wrappers (no-op or slow fsyncs, counting). The crash-simulating
//! storage is `strom_log::sim::SimStorage`.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_log::batch::{self, BatchHeader};
use strom_log::storage::{OpenMode, StdStorage, Storage, StorageFile};
use strom_log::{LogConfig, PartitionLog};

pub const COMPRESSIONS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// One v2 batch of `records` records with `value_len`-byte values, the i-th
/// record stamped `first_timestamp + i`, as a producer would send it (base
/// offset 0).
pub fn batch_with(
    records: usize,
    value_len: usize,
    first_timestamp: i64,
    compression: Compression,
) -> Vec<u8> {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Equal offset-sequence gaps keep the encoder to one batch.
            sequence: i as i32,
            timestamp: first_timestamp + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(
                (0..value_len)
                    .map(|j| (i * 31 + j) as u8)
                    .collect::<Vec<u8>>(),
            )),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding a batch");
    let bytes = buf.to_vec();
    assert_eq!(
        batch::batches(&bytes).count(),
        1,
        "the encoder produced more than one batch"
    );
    bytes
}

/// An uncompressed batch.
pub fn batch(records: usize, value_len: usize, first_timestamp: i64) -> Vec<u8> {
    batch_with(records, value_len, first_timestamp, Compression::None)
}

/// A key and a value; `None` value = tombstone, `None` key = keyless.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// One v2 batch of the given records, all stamped `timestamp` (base offset 0).
pub fn keyed_batch(records: &[KeyValue], timestamp: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp,
            key: key.clone().map(Bytes::from),
            value: value.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding a batch");
    buf.to_vec()
}

/// Every record of the log from its start, decoded, following offset gaps
/// (a compacted log has them).
pub fn log_records(log: &PartitionLog) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 64 * 1024, None).unwrap();
        if read.records.is_empty() {
            break;
        }
        for record in decode(&read.records) {
            if record.offset >= offset {
                offset = record.offset + 1;
                out.push(record);
            }
        }
        let last = batch::batches(&read.records)
            .map(|b| b.unwrap().header.next_offset())
            .last()
            .unwrap();
        offset = offset.max(last);
    }
    out
}

/// Decodes every record in `bytes` with kafka-protocol's decoder.
pub fn decode(bytes: &[u8]) -> Vec<Record> {
    let mut buf = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("decoding batches")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// A batch found by [`scan_dir`].
#[derive(Clone, Debug)]
pub struct OnDisk {
    pub segment_base_offset: i64,
    pub position: u64,
    pub header: BatchHeader,
    pub bytes: Vec<u8>,
}

/// Base offsets of the `.log` files in `dir`, sorted.
pub fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Every batch in every `.log` file of `dir`, by a plain linear scan.
pub fn scan_dir(dir: &Path) -> Vec<OnDisk> {
    let mut out = Vec::new();
    for base in segment_bases(dir) {
        let data = std::fs::read(log_path(dir, base)).unwrap();
        for found in batch::batches(&data) {
            let found = found.expect("a valid segment file");
            out.push(OnDisk {
                segment_base_offset: base,
                position: found.position as u64,
                header: found.header,
                bytes: found.bytes.to_vec(),
            });
        }
    }
    out
}

/// All records of the log, read back batch by batch through `read`.
pub fn read_all(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1, None).unwrap();
        let header = BatchHeader::parse(&read.records).unwrap();
        assert!(header.last_offset() >= offset);
        out.extend_from_slice(&read.records);
        offset = header.next_offset();
    }
    out
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_ms: None,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// A storage wrapper: fsyncs can be skipped or slowed down, and are counted.
#[derive(Debug, Default)]
pub struct TestStorage {
    pub skip_sync: bool,
    pub sync_delay: Duration,
    /// fsyncs of any file (data, index, checkpoint) and directory.
    pub syncs: Arc<AtomicU64>,
}

impl TestStorage {
    /// fsyncs are no-ops: for tests that reopen logs many times.
    pub fn no_sync() -> Arc<TestStorage> {
        Arc::new(TestStorage {
            skip_sync: true,
            ..TestStorage::default()
        })
    }

    pub fn slow_sync(delay: Duration) -> Arc<TestStorage> {
        Arc::new(TestStorage {
            sync_delay: delay,
            ..TestStorage::default()
        })
    }

    fn sync(&self, real: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if !self.sync_delay.is_zero() {
            std::thread::sleep(self.sync_delay);
        }
        if self.skip_sync {
            Ok(())
        } else {
            real()
        }
    }
}

#[derive(Debug)]
struct TestFile {
    inner: Arc<dyn StorageFile>,
    storage_syncs: Arc<AtomicU64>,
    skip_sync: bool,
    sync_delay: Duration,
}

impl Storage for TestStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(TestFile {
            inner: StdStorage.open(path, mode)?,
            storage_syncs: Arc::clone(&self.syncs),
            skip_sync: self.skip_sync,
            sync_delay: self.sync_delay,
        }))
    }
    fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        StdStorage.read_file(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        StdStorage.exists(path)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        StdStorage.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdStorage.rename(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdStorage.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdStorage.create_dir_all(dir)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdStorage.remove_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sync(|| StdStorage.sync_dir(dir))
    }
}

impl StorageFile for TestFile {
    fn append(&self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)
    }
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.inner.read_at(buf, position)
    }
    fn sync(&self) -> io::Result<()> {
        self.storage_syncs.fetch_add(1, Ordering::Relaxed);
        if !self.sync_delay.is_zero() {
            std::thread::sleep(self.sync_delay);
        }
        if self.skip_sync {
            Ok(())
        } else {
            self.inner.sync()
        }
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn modified_ms(&self) -> io::Result<Option<i64>> {
        self.inner.modified_ms()
    }
}

/// Copies the plain files of `from` into a fresh directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
