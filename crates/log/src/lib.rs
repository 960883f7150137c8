//! Strom's on-disk log: one partition's Kafka record batches (magic v2) in
//! segment files, with sparse offset and time indexes, crash recovery,
//! group-committed fsyncs, retention, DeleteRecords and compaction.
//!
//! The format is Kafka's: a partition directory holds segments named by their
//! base offset (`00000000000000000000.log`, `.index`, `.timeindex`); a `.log`
//! holds batches byte for byte as the wire carries them, with broker-assigned
//! offsets. Fetches return stored bytes unchanged, compression included.
//!
//! ```
//! use strom_log::{LogConfig, PartitionLog};
//! # fn batch() -> Vec<u8> {
//! #     // A minimal v2 batch with one empty record, built by hand.
//! #     let record = [0x0cu8, 0, 0, 0, 1, 1, 0];
//! #     let mut b = vec![0u8; strom_log::batch::HEADER_LEN];
//! #     b.extend_from_slice(&record);
//! #     let len = (b.len() - 12) as i32;
//! #     b[8..12].copy_from_slice(&len.to_be_bytes());
//! #     b[16] = 2;
//! #     b[57..61].copy_from_slice(&1i32.to_be_bytes());
//! #     let crc = strom_log::batch::compute_crc(&b);
//! #     b[17..21].copy_from_slice(&crc.to_be_bytes());
//! #     b
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data_dir = tempfile::tempdir()?;
//! // At startup: was the last shutdown clean? (Removes the marker.)
//! let clean = strom_log::take_clean_shutdown_marker(data_dir.path())?;
//! let log = PartitionLog::open(&data_dir.path().join("orders-0"), LogConfig::default(), clean)?;
//!
//! // Produce: validate, assign offsets, append (no fsync yet).
//! let info = log.append(&batch(), 1_700_000_000_000)?;
//! assert_eq!((info.base_offset, info.last_offset), (0, 0));
//! // acks=all with flush = always: group-commit before acknowledging.
//! log.flush_up_to(info.last_offset + 1)?;
//!
//! // Fetch: whole batches from the one containing the offset.
//! let read = log.read(0, 1024 * 1024, None)?;
//! assert_eq!(read.log_end_offset, 1);
//! let header = strom_log::batch::BatchHeader::parse(&read.records)?;
//! assert_eq!(header.base_offset, 0);
//!
//! // Shutdown: flush, write checkpoints, then mark the data dir clean.
//! log.close()?;
//! strom_log::write_clean_shutdown_marker(data_dir.path())?;
//! # Ok(()) }
//! ```
//!
//! Durability: `append` only writes to the page cache. `flush_up_to(offset)`
//! is a group commit: concurrent callers share one fdatasync round, and
//! [`PartitionLog::durable_offset`] says how far the disk is known to hold.
//! A small recovery-point checkpoint lets an unclean restart rescan only the
//! segments written since; the rescan validates every batch (length, magic,
//! CRC-32C, contiguous offsets), truncates a torn or corrupt tail and rebuilds
//! indexes. The log start offset (DeleteRecords, retention) has its own
//! checkpoint. [`PartitionLog::close`] leaves everything durable and indexed,
//! so that a clean start loads index files instead of scanning.
//!
//! Concurrency: every method takes `&self`. Appends, rolls and retention
//! serialise on an internal lock; reads copy what they need under a shared
//! lock and read the files without holding it, so they never wait for an
//! fsync or for another reader.
//!
//! Compaction: with `cleanup.policy` including `compact`,
//! [`PartitionLog::compact`] (called periodically by the broker's cleaner)
//! keeps the latest record per key in the durably sealed segments, removes
//! tombstones `delete.retention.ms` after their first clean, and never
//! renumbers offsets; cleaned segments are swapped in crash-safely (a crash
//! recovers the old or the new segments) while reads go on.
//!
//! Modules: [`batch`] parses and validates batch headers; [`storage`] is the
//! only place that touches files (swap in a fault-injecting [`Storage`] with
//! [`PartitionLog::open_with_storage`]); the rest is internal: `index`,
//! `segment`, `log` (append/read), `recovery` (open), `flush` (group commit,
//! checkpoints), `retention`, `checkpoint`, `compaction` (the cleaner),
//! `records` (record-level decoding and rebuilding of batches), `swap`
//! (the crash-safe segment swap).

pub mod batch;
mod checkpoint;
mod compaction;
mod config;
pub mod control;
mod error;
mod flush;
pub mod fuzzing;
mod index;
mod log;
pub mod producer_state;
mod read;
pub mod records;
mod recovery;
mod retention;
mod segment;
pub mod sim;
pub mod storage;
mod swap;

use std::path::Path;

pub use compaction::{CleanerOptions, CompactionReport, CompactionSkipped};
pub use config::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType};
pub use error::LogError;
pub use log::{AppendInfo, BatchLocation, FsyncObserver, PartitionLog, ReadResult};
pub use read::{FileSlice, SliceRead};
pub use recovery::RecoveryReport;
pub use storage::{StdStorage, Storage, StorageFile};

/// The data-dir marker of a clean shutdown (Kafka's is `.kafka_cleanshutdown`).
pub const CLEAN_SHUTDOWN_MARKER: &str = ".strom_clean_shutdown";

/// At startup: returns whether the clean-shutdown marker was present in
/// `data_dir`, and removes it (durably), so that a crash from now on is seen
/// as unclean on the next start.
pub fn take_clean_shutdown_marker(data_dir: &Path) -> Result<bool, LogError> {
    let storage = StdStorage;
    let path = data_dir.join(CLEAN_SHUTDOWN_MARKER);
    let present = storage
        .exists(&path)
        .map_err(|e| LogError::io("checking", &path, e))?;
    if present {
        storage
            .remove(&path)
            .map_err(|e| LogError::io("removing", &path, e))?;
        storage
            .sync_dir(data_dir)
            .map_err(|e| LogError::io("fsyncing directory", data_dir, e))?;
    }
    Ok(present)
}

/// At clean shutdown, after every log was closed: writes the marker durably.
pub fn write_clean_shutdown_marker(data_dir: &Path) -> Result<(), LogError> {
    let storage = StdStorage;
    storage
        .create_dir_all(data_dir)
        .map_err(|e| LogError::io("creating", data_dir, e))?;
    let path = data_dir.join(CLEAN_SHUTDOWN_MARKER);
    let file = storage
        .open(&path, storage::OpenMode::Truncate)
        .map_err(|e| LogError::io("creating", &path, e))?;
    file.sync()
        .map_err(|e| LogError::io("fsyncing", &path, e))?;
    storage
        .sync_dir(data_dir)
        .map_err(|e| LogError::io("fsyncing directory", data_dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_shutdown_marker_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take_clean_shutdown_marker(dir.path()).unwrap());
        write_clean_shutdown_marker(dir.path()).unwrap();
        assert!(dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
        assert!(take_clean_shutdown_marker(dir.path()).unwrap());
        assert!(!take_clean_shutdown_marker(dir.path()).unwrap());
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn partition_log_is_send_and_sync() {
        assert_send_sync::<PartitionLog>();
    }
}
