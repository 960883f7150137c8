//! A full disk (ENOSPC) and I/O errors (EIO), injected through the
//! [`Storage`] trait with [`SimStorage`]:
//! - ENOSPC fails the write that hit it and leaves no trace; the log stays
//!   online and takes writes again once there is space, whatever step hit
//!   the limit (append, roll, producer-state snapshot, index files,
//!   checkpoints, retention, compaction);
//! - a failed fsync takes the log offline (reads go on), and `reopen` brings
//!   it back once the storage works, without anything that was not durable;
//! - a failed read is an error, not a panic;
//! - and after all of it, a power loss keeps every acknowledged record.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{batch, read_all};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strom_log::batch as wire;
use strom_log::sim::{IoFaults, SimStorage};
use strom_log::storage::Storage;
use strom_log::{CleanupPolicy, LogConfig, LogError, PartitionLog};

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        retention_bytes: Some(4000),
        ..common::small_config()
    }
}

fn open(storage: &Arc<SimStorage>, config: LogConfig) -> PartitionLog {
    PartitionLog::open_with_storage(
        &dir(),
        config,
        false,
        Arc::clone(storage) as Arc<dyn Storage>,
    )
    .unwrap()
}

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

fn os_error(e: &LogError) -> Option<i32> {
    match e {
        LogError::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

/// Appended batches as stored (with their offsets), for comparing.
fn stored(input: &[u8], base_offset: i64) -> Vec<u8> {
    let mut b = input.to_vec();
    wire::set_base_offset(&mut b, base_offset);
    b
}

#[test]
fn a_full_disk_fails_the_append_and_the_log_resumes_when_space_returns() {
    let disk = SimStorage::new(1);
    let log = open(&disk, config());
    let mut expected = Vec::new();
    for _ in 0..3 {
        let input = batch(2, 100, T0);
        let info = log.append(&input, T0).unwrap();
        expected.extend(stored(&input, info.base_offset));
    }
    log.flush().unwrap();
    disk.set_capacity(Some(disk.used_bytes() + 150));
    let input = batch(2, 100, T0); // ~300 bytes: does not fit
    let end = log.log_end_offset();
    let e = log.append(&input, T0).unwrap_err();
    assert_eq!(os_error(&e), Some(28), "{e}");
    assert_eq!(
        log.offline_reason(),
        None,
        "ENOSPC must not take the log offline"
    );
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(&log), expected, "a failed append left a trace");
    // Still full: still refused, still consistent.
    assert!(log.append(&input, T0).is_err());
    disk.set_capacity(None);
    let info = log.append(&input, T0).unwrap();
    assert_eq!(info.base_offset, end);
    expected.extend(stored(&input, end));
    log.flush().unwrap();
    assert_eq!(read_all(&log), expected);
    drop(log);
    let after = open(&disk.power_loss(), config());
    assert_eq!(read_all(&after), expected);
}

/// Random workloads with the disk filling up and emptying at random: no
/// step may leave the log inconsistent or offline, and a final power loss
/// keeps every acknowledged record.
#[test]
fn enospc_at_any_step_leaves_the_log_consistent() {
    let base: u64 = std::env::var("STROM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("base seed {base} (rerun with STROM_TEST_SEED={base})");
    let (mut refused, mut ops) = (0u64, 0u64);
    for seed in base..base + 300 {
        let mut rng = StdRng::seed_from_u64(seed);
        let compacted = rng.gen_bool(0.3);
        let config = LogConfig {
            cleanup_policy: if compacted {
                CleanupPolicy::COMPACT_DELETE
            } else {
                CleanupPolicy::DELETE
            },
            min_cleanable_dirty_ratio: 0.0,
            ..config()
        };
        let disk = SimStorage::new(seed);
        let log = open(&disk, config.clone());
        // offset -> stored batch bytes, for what the log accepted
        let mut accepted: Vec<Vec<u8>> = Vec::new();
        let mut acknowledged = 0;
        for _ in 0..rng.gen_range(10..60) {
            ops += 1;
            if rng.gen_bool(0.3) {
                let slack = rng.gen_range(0..400);
                disk.set_capacity(rng.gen_bool(0.7).then(|| disk.used_bytes() + slack));
            }
            let now = T0 + ops as i64;
            let result = match rng.gen_range(0..10) {
                0..=5 => {
                    let input = if compacted {
                        let key = vec![rng.gen_range(0..4u8)];
                        common::keyed_batch(
                            &[(Some(key), Some(vec![b'v'; rng.gen_range(0..200)]))],
                            now,
                            kafka_protocol::records::Compression::None,
                        )
                    } else {
                        batch(rng.gen_range(1..3), rng.gen_range(0..200), now)
                    };
                    log.append(&input, now)
                        .map(|info| accepted.push(stored(&input, info.base_offset)))
                }
                6 | 7 => log.flush().map(|()| acknowledged = log.log_end_offset()),
                8 => log.apply_retention(now).map(drop),
                _ => log.compact(now).map(drop),
            };
            if let Err(e) = result {
                assert_eq!(os_error(&e), Some(28), "seed {seed}: {e}");
                refused += 1;
            }
            if let Some(reason) = log.offline_reason() {
                panic!("seed {seed}: a full disk took the log offline: {reason}");
            }
            if !compacted {
                // Everything accepted and not deleted by retention is there.
                let start = log.log_start_offset();
                let expected: Vec<u8> = accepted
                    .iter()
                    .filter(|b| wire::BatchHeader::parse(b).unwrap().base_offset >= start)
                    .flatten()
                    .copied()
                    .collect();
                assert_eq!(read_all(&log), expected, "seed {seed}");
            }
        }
        disk.set_capacity(None);
        drop(log);
        let after = open(&disk.power_loss(), config.clone());
        assert!(after.log_end_offset() >= acknowledged, "seed {seed}");
        let info = after.append(&batch(1, 1, T0), T0).unwrap();
        assert_eq!(info.base_offset, after.log_end_offset() - 1, "seed {seed}");
    }
    println!("{ops} operations, {refused} refused with ENOSPC, 0 left the log inconsistent");
    assert!(refused > 100);
}

#[test]
fn a_failed_fsync_takes_the_log_offline_until_reopened() {
    let disk = SimStorage::new(2);
    let log = open(&disk, config());
    let mut expected = Vec::new();
    for _ in 0..4 {
        let input = batch(1, 50, T0);
        let info = log.append(&input, T0).unwrap();
        expected.extend(stored(&input, info.base_offset));
    }
    log.flush().unwrap();
    let durable = log.log_end_offset();
    let unsynced = batch(1, 50, T0);
    log.append(&unsynced, T0).unwrap();

    disk.set_faults(IoFaults {
        syncs: true,
        ..IoFaults::default()
    });
    let e = log.flush().unwrap_err();
    assert_eq!(os_error(&e), Some(5), "{e}");
    assert!(log.offline_reason().is_some());
    // Offline: no writes, even once fsyncs work again ...
    disk.set_faults(IoFaults::default());
    assert!(log.append(&batch(1, 1, T0), T0).is_err());
    assert!(log.flush().is_err());
    assert!(log.delete_records_before(1).is_err());
    // ... but reads go on.
    assert_eq!(
        log.read(0, 1 << 20, None).unwrap().log_end_offset,
        durable + 1
    );

    // Reopening while the disk still fails fails, and changes nothing.
    disk.set_faults(IoFaults {
        syncs: true,
        ..IoFaults::default()
    });
    assert!(log.reopen().is_err());
    disk.set_faults(IoFaults::default());
    let log = log.reopen().unwrap();
    assert_eq!(log.offline_reason(), None);
    assert_eq!(
        log.log_end_offset(),
        durable,
        "the unsynced batch must be cut"
    );
    assert_eq!(read_all(&log), expected);
    let input = batch(1, 50, T0);
    assert_eq!(log.append(&input, T0).unwrap().base_offset, durable);
    expected.extend(stored(&input, durable));
    log.flush().unwrap();
    drop(log);
    assert_eq!(read_all(&open(&disk.power_loss(), config())), expected);
}

#[test]
fn a_failed_write_that_cannot_be_undone_takes_the_log_offline() {
    let disk = SimStorage::new(3);
    let log = open(&disk, config());
    let input = batch(1, 50, T0);
    log.append(&input, T0).unwrap();
    log.flush().unwrap();
    disk.set_faults(IoFaults {
        writes: true,
        ..IoFaults::default()
    });
    let e = log.append(&batch(1, 50, T0), T0).unwrap_err();
    assert_eq!(os_error(&e), Some(5), "{e}");
    assert!(log.offline_reason().is_some());
    disk.set_faults(IoFaults::default());
    let log = log.reopen().unwrap();
    assert_eq!(read_all(&log), stored(&input, 0));
    assert_eq!(log.append(&input, T0).unwrap().base_offset, 1);
}

#[test]
fn a_failed_read_is_an_error() {
    let disk = SimStorage::new(4);
    let log = open(&disk, config());
    log.append(&batch(3, 50, T0), T0).unwrap();
    disk.set_faults(IoFaults {
        reads: true,
        ..IoFaults::default()
    });
    let e = log.read(0, 1 << 20, None).unwrap_err();
    assert_eq!(os_error(&e), Some(5), "{e}");
    assert!(log.locate(1).is_err());
    assert_eq!(log.offline_reason(), None);
    disk.set_faults(IoFaults::default());
    assert_eq!(log.read(0, 1 << 20, None).unwrap().log_end_offset, 3);
    // Recovery that cannot read fails cleanly too.
    drop(log);
    disk.set_faults(IoFaults {
        reads: true,
        ..IoFaults::default()
    });
    assert!(PartitionLog::open_with_storage(&dir(), config(), false, disk.clone()).is_err());
}

/// The newest value of each key, from a log's records.
fn newest(log: &PartitionLog) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    common::log_records(log)
        .into_iter()
        .map(|r| (r.key.unwrap().to_vec(), r.value.unwrap().to_vec()))
        .collect()
}

/// A full disk at every byte of a compaction pass (the cleaned segments,
/// their indexes, the swap manifest, the checkpoints): the pass fails with
/// ENOSPC, every key keeps its newest value, the log stays online (before
/// the swap manifest is committed nothing refers to the cleaned files, so a
/// full disk there must not count as an unknown outcome), and with space again
/// the next pass cleans it; a power loss after either keeps the newest
/// value of every key.
#[test]
fn a_full_disk_at_any_byte_of_a_compaction_pass_leaves_the_log_online() {
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        retention_bytes: None,
        ..config()
    };
    let (mut refused, mut cleaned, mut slack) = (0u32, 0u32, 0u64);
    // Until a pass succeeds with the space it was given, and a while after.
    while cleaned < 20 {
        let disk = SimStorage::new(slack);
        let log = open(&disk, config.clone());
        for i in 0..40u8 {
            let record = (Some(vec![i % 4]), Some(vec![i; 30]));
            let input = common::keyed_batch(
                &[record],
                T0 + i64::from(i),
                kafka_protocol::records::Compression::None,
            );
            log.append(&input, T0).unwrap();
        }
        log.flush().unwrap();
        let (before, want) = (read_all(&log), newest(&log));
        disk.set_capacity(Some(disk.used_bytes() + slack));
        match log.compact(T0 + 100) {
            Ok(report) => {
                assert!(report.skipped.is_none(), "slack {slack}: {report:?}");
                cleaned += 1;
            }
            Err(e) => {
                assert_eq!(os_error(&e), Some(28), "slack {slack}: {e}");
                assert_eq!(newest(&log), want, "slack {slack}");
                refused += 1;
            }
        }
        if let Some(reason) = log.offline_reason() {
            panic!("slack {slack}: a full disk during compaction took the log offline: {reason}");
        }
        disk.set_capacity(None);
        log.compact(T0 + 100).unwrap();
        assert!(read_all(&log).len() < before.len(), "slack {slack}");
        assert_eq!(newest(&log), want, "slack {slack}");
        drop(log);
        let after = open(&disk.power_loss(), config.clone());
        assert_eq!(newest(&after), want, "slack {slack}: after a power loss");
        slack += 1;
    }
    println!("{refused} passes refused with ENOSPC, {cleaned} cleaned; none took the log offline");
    assert!(refused > 50, "{refused}");
}
