//! Retention by time and size, DeleteRecords, and reopening.

mod common;

use common::*;
use strom_log::batch::BatchHeader;
use strom_log::{LogConfig, LogError, PartitionLog};

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// Five segments of two batches each; segment k's batches are stamped
/// `T0 + k minutes`.
fn five_segments(dir: &std::path::Path, config: LogConfig) -> (PartitionLog, Vec<usize>) {
    let log = PartitionLog::open_with_storage(dir, config, true, TestStorage::no_sync()).unwrap();
    let mut sizes = Vec::new();
    for k in 0..5 {
        for _ in 0..2 {
            let b = batch(2, 100, T0 + k * MINUTE);
            sizes.push(b.len());
            log.append(&b, T0 + k * MINUTE).unwrap();
        }
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8, 12, 16]);
    (log, sizes)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        ..small_config()
    }
}

#[test]
fn retention_by_time_deletes_expired_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = five_segments(
        dir.path(),
        LogConfig {
            retention_ms: Some(90_000),
            ..config()
        },
    );
    // At T0 + 3 min, segments stamped T0 and T0 + 1 min are older than 90 s.
    assert_eq!(log.apply_retention(T0 + 3 * MINUTE).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![8, 12, 16]);
    assert_eq!(segment_bases(dir.path()), vec![8, 12, 16]);
    assert_eq!(log.log_start_offset(), 8);
    assert!(matches!(
        log.read(7, 100, None),
        Err(LogError::OffsetOutOfRange { log_start: 8, .. })
    ));
    assert_eq!(
        BatchHeader::parse(&log.read(8, 0, None).unwrap().records)
            .unwrap()
            .base_offset,
        8
    );
    // Nothing more is due.
    assert_eq!(log.apply_retention(T0 + 3 * MINUTE).unwrap(), 0);
    // Later everything expires: the active segment is rolled, then deleted.
    assert_eq!(log.apply_retention(T0 + 60 * MINUTE).unwrap(), 3);
    assert_eq!(log.segment_base_offsets(), vec![20]);
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(log.max_timestamp(), None);
    // An empty active segment is never deleted.
    assert_eq!(log.apply_retention(T0 + 120 * MINUTE).unwrap(), 0);
    assert_eq!(log.append(&batch(1, 1, T0), T0).unwrap().base_offset, 20);
}

#[test]
fn retention_by_size_keeps_at_least_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sizes) = five_segments(dir.path(), config());
    let segment_size = (sizes[0] + sizes[1]) as u64;
    assert_eq!(log.size_bytes(), 5 * segment_size);
    // Limit of 2.5 segments: deleting two leaves 3 >= 2.5; a third would not.
    log.update_config(LogConfig {
        retention_bytes: Some(segment_size * 5 / 2),
        ..config()
    });
    assert_eq!(log.apply_retention(T0).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![8, 12, 16]);
    assert_eq!(log.log_start_offset(), 8);
    // Exactly at the limit: delete while the rest still meets it.
    log.update_config(LogConfig {
        retention_bytes: Some(segment_size),
        ..config()
    });
    assert_eq!(log.apply_retention(T0).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![16]);
    // A limit of zero rolls and deletes the active segment too.
    log.update_config(LogConfig {
        retention_bytes: Some(0),
        ..config()
    });
    assert_eq!(log.apply_retention(T0).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![20]);
    assert_eq!(log.log_start_offset(), 20);
}

#[test]
fn delete_records_advances_log_start_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = five_segments(dir.path(), config());
    let all = read_all(&log);

    assert!(matches!(
        log.delete_records_before(21),
        Err(LogError::OffsetOutOfRange { requested: 21, .. })
    ));
    // Mid-segment: the segment stays, reads below the start fail, a read at
    // the start returns the batch containing it (which begins before it).
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    assert_eq!(log.segment_base_offsets(), vec![4, 8, 12, 16]);
    assert!(matches!(
        log.read(4, 100, None),
        Err(LogError::OffsetOutOfRange { log_start: 5, .. })
    ));
    let read = log.read(5, 0, None).unwrap();
    assert_eq!(BatchHeader::parse(&read.records).unwrap().base_offset, 4);
    assert_eq!(read.log_start_offset, 5);
    // Never backwards.
    assert_eq!(log.delete_records_before(2).unwrap(), 5);
    // A segment boundary deletes the segments below it.
    assert_eq!(log.delete_records_before(12).unwrap(), 12);
    assert_eq!(log.segment_base_offsets(), vec![12, 16]);
    assert_eq!(segment_bases(dir.path()), vec![12, 16]);
    assert_eq!(log.delete_records_before(17).unwrap(), 17);
    assert_eq!(log.segment_base_offsets(), vec![16]);
    assert_eq!(log.apply_retention(T0).unwrap(), 0);
    log.close().unwrap();
    drop(log);

    for clean in [true, false] {
        let log = PartitionLog::open(dir.path(), config(), clean).unwrap();
        assert_eq!(log.log_start_offset(), 17);
        assert_eq!(log.log_end_offset(), 20);
        let start = all.len() - read_all(&log).len();
        assert_eq!(read_all(&log), all[start..]);
        log.close().unwrap();
    }
    // At the log end: everything is logically deleted, but the active
    // segment stays.
    let log = PartitionLog::open(dir.path(), config(), true).unwrap();
    assert_eq!(log.delete_records_before(20).unwrap(), 20);
    assert_eq!(log.segment_base_offsets(), vec![16]);
    assert!(log.read(20, 100, None).unwrap().records.is_empty());
    drop(log);
    let log = PartitionLog::open(dir.path(), config(), false).unwrap();
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(log.append(&batch(2, 100, T0), T0).unwrap().base_offset, 20);
    // Once that segment is sealed, retention drops it: it lies wholly below
    // the log start offset.
    assert_eq!(log.segment_base_offsets(), vec![16, 20]);
    assert_eq!(log.apply_retention(T0).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![20]);
    assert_eq!(segment_bases(dir.path()), vec![20]);
}

#[test]
fn reopen_keeps_all_data_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = five_segments(dir.path(), config());
    let all = read_all(&log);
    let max = log.max_timestamp();
    log.close().unwrap();
    drop(log);
    write_and_take_marker(dir.path());

    for clean in [true, false, true] {
        let log = PartitionLog::open(dir.path(), config(), clean).unwrap();
        assert_eq!(log.log_end_offset(), 20);
        assert_eq!(log.segment_base_offsets(), vec![0, 4, 8, 12, 16]);
        assert_eq!(read_all(&log), all);
        assert_eq!(log.max_timestamp().map(|m| m.0), max.map(|m| m.0));
        assert_eq!(log.recovery_report().is_some(), !clean);
        if !clean {
            let report = log.recovery_report().unwrap();
            assert_eq!(report.truncated_bytes, 0);
            assert_eq!(report.log_end_offset, 20);
        }
        log.close().unwrap();
    }
    // Appends continue the offsets after a reopen.
    let log = PartitionLog::open(dir.path(), config(), true).unwrap();
    assert_eq!(log.append(&batch(1, 1, T0), T0).unwrap().base_offset, 20);
}

fn write_and_take_marker(data_dir: &std::path::Path) {
    strom_log::write_clean_shutdown_marker(data_dir).unwrap();
    assert!(strom_log::take_clean_shutdown_marker(data_dir).unwrap());
}

#[test]
fn delete_removes_the_partition_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("topic-0");
    let log = PartitionLog::open(&dir, config(), false).unwrap();
    log.append(&batch(1, 1, T0), T0).unwrap();
    assert!(dir.exists());
    log.delete().unwrap();
    assert!(!dir.exists());
}
