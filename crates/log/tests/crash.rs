//! Seeded crash runs: random appends, flushes, DeleteRecords, retention and
//! compaction on a storage that can lose everything not fsynced; after the
//! "power loss" the recovered log must hold every acknowledged (flushed)
//! record, in order, and nothing else than appended records (for a compacted
//! log: the newest value of every key). And a crash at every step of a
//! compaction's segment swap recovers either the old or the new log.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use kafka_protocol::records::Compression;
use rand::{Rng, SeedableRng};
use strom_log::batch;
use strom_log::sim::SimStorage;
use strom_log::storage::Storage;
use strom_log::{CleanupPolicy, LogConfig, PartitionLog};

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1200,
        index_interval_bytes: 150,
        retention_bytes: Some(3000),
        ..small_config()
    }
}

fn run(seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = std::path::PathBuf::from("/data/topic-0");
    let storage = SimStorage::new(seed);
    let log = PartitionLog::open_with_storage(
        &dir,
        config(),
        false,
        Arc::clone(&storage) as Arc<dyn Storage>,
    )
    .unwrap();

    let mut appended: Vec<Vec<u8>> = Vec::new();
    let mut acknowledged = 0i64;
    let mut acknowledged_start = 0i64;
    let mut ops = Vec::new();
    for _ in 0..rng.gen_range(5..60) {
        let op = rng.gen_range(0..100);
        ops.push((op, log.log_end_offset()));
        match op {
            0..=69 => {
                let input = batch(rng.gen_range(1..4), rng.gen_range(0..200), T0);
                let info = log.append(&input, T0).unwrap();
                let mut stored = input;
                batch::set_base_offset(&mut stored, info.base_offset);
                appended.push(stored);
            }
            70..=89 => {
                let upto = rng.gen_range(0..=log.log_end_offset());
                log.flush_up_to(upto).unwrap();
                acknowledged = acknowledged.max(upto);
            }
            90..=93 => {
                let offset = rng.gen_range(0..=log.log_end_offset());
                acknowledged_start = log.delete_records_before(offset).unwrap();
            }
            94..=97 => {
                log.apply_retention(T0).unwrap();
                acknowledged_start = log.log_start_offset();
            }
            _ => {
                log.close().unwrap();
                acknowledged = log.log_end_offset();
            }
        }
    }
    let end_before_crash = log.log_end_offset();
    drop(log);

    let crashed = storage.power_loss();
    let log = PartitionLog::open_with_storage(&dir, config(), false, crashed.clone())
        .unwrap_or_else(|e| panic!("seed {seed}: reopening failed: {e}"));
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(
        end >= acknowledged && end <= end_before_crash,
        "seed {seed}: log end {end}, acknowledged {acknowledged}, before crash {end_before_crash}"
    );
    assert!(
        start >= acknowledged_start.min(end),
        "seed {seed}: log start {start} went back below {acknowledged_start}"
    );
    let expected: Vec<u8> = appended
        .iter()
        .filter(|b| {
            let h = batch::BatchHeader::parse(b).unwrap();
            h.last_offset() >= start && h.next_offset() <= end
        })
        .flatten()
        .copied()
        .collect();
    let got = read_all(&log);
    if got != expected {
        let show = |bytes: &[u8]| -> Vec<(i64, i64, usize)> {
            batch::batches(bytes)
                .map(|b| {
                    let b = b.unwrap();
                    (b.header.base_offset, b.header.last_offset(), b.bytes.len())
                })
                .collect()
        };
        eprintln!("got      {:?}", show(&got));
        eprintln!("expected {:?}", show(&expected));
        eprintln!("segments {:?}", log.segment_base_offsets());
        eprintln!("report {:?}", log.recovery_report());
        for name in crashed.list(&dir).unwrap() {
            let len = crashed.read_file(&dir.join(&name)).unwrap().unwrap().len();
            eprintln!("  {name} {len}");
        }
        eprintln!("ops {ops:?}");
    }
    assert_eq!(
        got,
        expected,
        "seed {seed}: log start {start} (acknowledged {acknowledged_start}), end {end} (acknowledged {acknowledged})"
    );
    let info = log.append(&batch(1, 1, T0), T0).unwrap();
    assert_eq!(info.base_offset, end, "seed {seed}");
}

#[test]
fn acknowledged_records_survive_a_power_loss() {
    let base: u64 = std::env::var("STROM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("base seed {base} (rerun with STROM_TEST_SEED={base})");
    for i in 0..150 {
        run(base.wrapping_add(i));
    }
}

fn compacted_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1200,
        index_interval_bytes: 150,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 0,
        ..small_config()
    }
}

type Rows = Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn rows(log: &PartitionLog) -> Rows {
    let rows: Rows = log_records(log)
        .into_iter()
        .map(|r| {
            (
                r.offset,
                r.key.map(|k| k.to_vec()),
                r.value.map(|v| v.to_vec()),
            )
        })
        .collect();
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    rows
}

fn run_compacted(seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = std::path::PathBuf::from("/data/topic-0");
    let storage = SimStorage::new(seed);
    let log = PartitionLog::open_with_storage(
        &dir,
        compacted_config(),
        false,
        Arc::clone(&storage) as Arc<dyn Storage>,
    )
    .unwrap();
    // offset -> (key, value)
    let mut appended: BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)> = BTreeMap::new();
    let mut acknowledged = 0i64;
    let mut clock = T0;
    for _ in 0..rng.gen_range(5..80) {
        match rng.gen_range(0..100) {
            0..=64 => {
                let base = log.log_end_offset();
                let records: Vec<KeyValue> = (0..rng.gen_range(1..4))
                    .map(|i| {
                        let key = vec![rng.gen_range(0..6u8)];
                        let value = (!rng.gen_bool(0.15)).then(|| {
                            let mut v = format!("{}:", base + i).into_bytes();
                            v.resize(v.len() + rng.gen_range(0..150), b'.');
                            v
                        });
                        (Some(key), value)
                    })
                    .collect();
                let info = log
                    .append(&keyed_batch(&records, clock, Compression::None), clock)
                    .unwrap();
                for (i, (key, value)) in records.into_iter().enumerate() {
                    appended.insert(info.base_offset + i as i64, (key.unwrap(), value));
                }
            }
            65..=79 => {
                let upto = rng.gen_range(0..=log.log_end_offset());
                log.flush_up_to(upto).unwrap();
                acknowledged = acknowledged.max(upto);
            }
            80..=94 => {
                clock += rng.gen_range(0..1_000);
                log.compact(clock).unwrap();
            }
            _ => {
                log.close().unwrap();
                acknowledged = log.log_end_offset();
            }
        }
    }
    let end_before_crash = log.log_end_offset();
    drop(log);

    let crashed = storage.power_loss();
    let log = PartitionLog::open_with_storage(&dir, compacted_config(), false, crashed)
        .unwrap_or_else(|e| panic!("seed {seed}: reopening failed: {e}"));
    let end = log.log_end_offset();
    assert!(
        end >= acknowledged && end <= end_before_crash,
        "seed {seed}: log end {end}, acknowledged {acknowledged}, before crash {end_before_crash}"
    );
    let got = rows(&log);
    for (offset, key, value) in &got {
        let (k, v) = &appended[offset];
        assert!(*offset < end, "seed {seed}");
        assert_eq!(
            (key.as_ref(), value),
            (Some(k), v),
            "seed {seed}: offset {offset}"
        );
    }
    let mut newest: BTreeMap<&[u8], i64> = BTreeMap::new();
    for (offset, (key, _)) in appended.range(..end) {
        newest.insert(key, *offset);
    }
    for offset in newest.values() {
        if appended[offset].1.is_some() {
            assert!(
                got.iter().any(|r| r.0 == *offset),
                "seed {seed}: the newest value at {offset} was lost; got {:?}",
                got.iter().map(|r| r.0).collect::<Vec<_>>()
            );
        }
    }
    let info = log.append(&batch(1, 1, T0), T0).unwrap();
    assert_eq!(info.base_offset, end, "seed {seed}");
}

#[test]
fn the_newest_values_of_a_compacted_log_survive_a_power_loss() {
    let base: u64 = std::env::var("STROM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("base seed {base} (rerun with STROM_TEST_SEED={base})");
    for i in 0..150 {
        run_compacted(base.wrapping_add(i));
    }
}

/// A log of many segments with many updates per key, closed (all durable).
fn build_for_swap(dir: &std::path::Path, storage: &Arc<SimStorage>) -> PartitionLog {
    let config = LogConfig {
        delete_retention_ms: 60_000,
        ..compacted_config()
    };
    let log = PartitionLog::open_with_storage(
        dir,
        config,
        false,
        Arc::clone(storage) as Arc<dyn Storage>,
    )
    .unwrap();
    for i in 0..120u32 {
        let records: Vec<KeyValue> = (0..3)
            .map(|j| {
                let key = format!("k{}", (i * 3 + j) % 11).into_bytes();
                let value = ((i + j) % 13 != 0).then(|| format!("v{i}-{j}").into_bytes());
                (Some(key), value)
            })
            .collect();
        log.append(&keyed_batch(&records, T0, Compression::None), T0)
            .unwrap();
    }
    log.close().unwrap();
    log
}

#[test]
fn a_crash_at_any_step_of_a_segment_swap_recovers_the_old_or_the_new_log() {
    let now = T0 + 1_000;
    let config = LogConfig {
        delete_retention_ms: 60_000,
        ..compacted_config()
    };
    let (old, new) = {
        let storage = SimStorage::new(0);
        let log = build_for_swap(std::path::Path::new("/data/t-0"), &storage);
        let old = rows(&log);
        assert!(log.compact(now).unwrap().cleaned());
        (old, rows(&log))
    };
    assert_ne!(old, new);
    let (mut saw_old, mut saw_new) = (0, 0);
    for changes in 0.. {
        let dir = std::path::PathBuf::from("/data/t-0");
        let storage = SimStorage::new(changes);
        let log = build_for_swap(&dir, &storage);
        storage.crash_after(changes);
        let result = log.compact(now);
        assert_eq!(
            result.is_err(),
            storage.crashed(),
            "after {changes} changes: {result:?}"
        );
        drop(log);
        let crashed = storage.power_loss();
        let log = PartitionLog::open_with_storage(&dir, config.clone(), false, crashed.clone())
            .unwrap_or_else(|e| panic!("after {changes} changes: reopening failed: {e}"));
        let got = rows(&log);
        if got == old {
            saw_old += 1;
        } else if got == new {
            saw_new += 1;
        } else {
            panic!("after {changes} changes: neither the old nor the new log: {got:?}");
        }
        for name in crashed.list(&dir).unwrap() {
            assert!(
                !name.ends_with(".cleaned") && !name.contains("swap"),
                "after {changes} changes: {name} left over"
            );
        }
        // Cleaning the recovered log (again) ends in the same place.
        log.compact(now).unwrap();
        assert_eq!(rows(&log), new, "after {changes} changes");
        if result.is_ok() {
            break;
        }
    }
    println!("{saw_old} crashes recovered the old log, {saw_new} the new one");
    assert!(saw_old > 0 && saw_new > 0);
}

/// Closing a log that has not changed since its last close, or since a
/// clean open, writes nothing (a broker with many idle partitions stops
/// fast); any change makes the next close write again, and what a skipped
/// close leaves is still a complete, clean log.
#[test]
fn closing_an_unchanged_log_writes_nothing() {
    let disk = SimStorage::new(7);
    let dir = std::path::PathBuf::from("/data/idle-0");
    let config = LogConfig {
        segment_bytes: 2000,
        ..small_config()
    };
    let open = |disk: &Arc<SimStorage>, clean: bool| {
        PartitionLog::open_with_storage(
            &dir,
            config.clone(),
            clean,
            Arc::clone(disk) as Arc<dyn Storage>,
        )
        .unwrap()
    };
    let log = open(&disk, false);
    for i in 0..30 {
        log.append(&batch(2, 50, T0 + i), T0).unwrap();
    }
    let changes = |f: &dyn Fn()| {
        let before = disk.changes();
        f();
        disk.changes() - before
    };
    assert!(
        changes(&|| log.close().unwrap()) > 0,
        "the first close writes"
    );
    assert_eq!(changes(&|| log.close().unwrap()), 0, "an unchanged log");
    log.append(&batch(1, 50, T0), T0).unwrap();
    assert!(changes(&|| log.close().unwrap()) > 0, "after an append");
    assert_eq!(changes(&|| log.close().unwrap()), 0);
    log.delete_records_before(5).unwrap();
    assert!(changes(&|| log.close().unwrap()) > 0, "after DeleteRecords");
    let records = read_all(&log);
    drop(log);

    // A clean open: its files are as the close left them.
    let log = open(&disk, true);
    assert_eq!(changes(&|| log.close().unwrap()), 0, "after a clean open");
    drop(log);
    let log = open(&disk, true);
    assert_eq!(read_all(&log), records);
    assert!(
        log.recovery_report().is_none(),
        "{:?}",
        log.recovery_report()
    );
    // An open after a crash recovers: its close writes.
    drop(log);
    let crashed = disk.power_loss();
    let log = open(&crashed, false);
    assert_eq!(read_all(&log), records);
    let before = crashed.changes();
    log.close().unwrap();
    assert!(crashed.changes() > before, "a close after recovery writes");
}
