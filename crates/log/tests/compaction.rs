//! Log compaction: the latest record per key survives at its offset,
//! tombstones go only after `delete.retention.ms`, the dirty ratio and the
//! compaction lags are respected, readers see a consistent log during a
//! clean, and a model-based property test ties it together.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use strom_log::batch::{self, BatchHeader};
use strom_log::{CleanerOptions, CleanupPolicy, CompactionSkipped, LogConfig, PartitionLog};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: HOUR as u64,
        ..small_config()
    }
}

fn open(dir: &std::path::Path, config: LogConfig, clean: bool) -> PartitionLog {
    PartitionLog::open_with_storage(dir, config, clean, TestStorage::no_sync()).unwrap()
}

fn kv(key: &str, value: Option<&str>) -> KeyValue {
    (
        Some(key.as_bytes().to_vec()),
        value.map(|v| v.as_bytes().to_vec()),
    )
}

/// Appends one single-record batch; returns its offset.
fn put(log: &PartitionLog, key: &str, value: Option<&str>, timestamp: i64) -> i64 {
    let batch = keyed_batch(&[kv(key, value)], timestamp, Compression::None);
    log.append(&batch, timestamp).unwrap().base_offset
}

type Row = (i64, Option<String>, Option<String>);

fn text(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// (offset, key, value) of every record, checking offsets strictly increase.
fn contents(log: &PartitionLog) -> Vec<Row> {
    let rows: Vec<Row> = log_records(log)
        .iter()
        .map(|r| (r.offset, text(&r.key), text(&r.value)))
        .collect();
    assert!(
        rows.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets not increasing"
    );
    rows
}

fn keys_are_unique_below(rows: &[Row], end: i64) -> bool {
    let mut seen = HashSet::new();
    rows.iter()
        .filter(|r| r.0 < end)
        .all(|r| seen.insert(r.1.clone()))
}

#[test]
fn the_latest_value_per_key_survives_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let mut latest = BTreeMap::new();
    for round in 0..30 {
        for k in 0..10 {
            let (key, value) = (format!("k{k}"), format!("v{round}-{k}"));
            let offset = put(&log, &key, Some(&value), T0);
            latest.insert(key, (offset, value));
        }
    }
    let (segments, end) = (log.segment_count(), log.log_end_offset());
    assert!(segments > 10, "{segments} segments");

    let report = log.compact(T0).unwrap();
    assert!(report.cleaned(), "{report:?}");
    assert_eq!(report.dirty_ratio, 1.0);
    let (first, cleaned_end) = report.cleaned_range.unwrap();
    assert_eq!(first, 0);
    assert!(report.segments_after < segments);
    assert!(report.bytes_after < report.bytes_before);
    assert!(report.superseded_removed > 200);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), 0);

    let rows = contents(&log);
    for (key, (offset, value)) in &latest {
        assert!(
            rows.contains(&(*offset, Some(key.clone()), Some(value.clone()))),
            "{key} lost"
        );
    }
    assert!(keys_are_unique_below(&rows, cleaned_end));
    // Segment files on disk match the log, and the scan of them is valid.
    assert_eq!(segment_bases(dir.path()), log.segment_base_offsets());
    assert!(!scan_dir(dir.path()).is_empty());
    // Offsets of the gaps read as the next record.
    let read = log.read(1, 1, None).unwrap();
    assert!(BatchHeader::parse(&read.records).unwrap().last_offset() >= 1);

    // Nothing more to do until new data arrives.
    assert_eq!(
        log.compact(T0).unwrap().skipped,
        Some(CompactionSkipped::NothingToClean)
    );

    // The same after a clean and after an unclean restart.
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), config(), true);
    assert_eq!(contents(&log), rows);
    drop(log);
    let log = open(dir.path(), config(), false);
    assert_eq!(contents(&log), rows);
    assert_eq!(
        log.append(
            &keyed_batch(&[kv("x", Some("y"))], T0, Compression::None),
            T0
        )
        .unwrap()
        .base_offset,
        end
    );
}

/// Appends single-record batches of distinct filler keys until `n` more
/// segments were rolled.
fn roll(log: &PartitionLog, n: usize, timestamp: i64) {
    let target = log.segment_count() + n;
    let mut i = 0;
    while log.segment_count() < target {
        put(
            log,
            &format!("filler-{}-{i}", log.log_end_offset()),
            Some("x"),
            timestamp,
        );
        i += 1;
    }
}

#[test]
fn tombstones_go_only_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let value_at = put(&log, "a", Some("1"), T0);
    put(&log, "b", Some("1"), T0);
    let tombstone_at = put(&log, "a", None, T0);
    roll(&log, 2, T0);

    let first_clean = T0 + 1_000;
    assert!(log.compact(first_clean).unwrap().cleaned());
    let rows = contents(&log);
    assert!(
        !rows.iter().any(|r| r.0 == value_at),
        "superseded value stays"
    );
    assert!(rows.contains(&(tombstone_at, Some("a".into()), None)));
    let horizon = log
        .locate(tombstone_at)
        .unwrap()
        .unwrap()
        .header
        .delete_horizon_ms();
    assert_eq!(horizon, Some(first_clean + HOUR));

    // Later cleans before the horizon keep it.
    roll(&log, 2, T0);
    assert!(log.compact(first_clean + HOUR - 1).unwrap().cleaned());
    assert!(contents(&log).contains(&(tombstone_at, Some("a".into()), None)));
    // A clean at the horizon removes it.
    roll(&log, 2, T0);
    let report = log.compact(first_clean + HOUR).unwrap();
    assert_eq!(report.tombstones_removed, 1, "{report:?}");
    let rows = contents(&log);
    assert!(!rows.iter().any(|r| r.1.as_deref() == Some("a")));
    assert!(rows.iter().any(|r| r.1.as_deref() == Some("b")));
}

#[test]
fn emptied_leading_segments_go_but_the_log_start_offset_stays() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 0,
        ..config()
    };
    let log = open(dir.path(), config.clone(), true);
    for i in 0..40 {
        put(&log, "gone", Some(&format!("{i}")), T0);
    }
    put(&log, "gone", None, T0);
    roll(&log, 1, T0);
    // The first clean keeps the tombstone (and sets its horizon), the next
    // one removes it: nothing is left of the first segments.
    assert!(log.compact(T0).unwrap().cleaned());
    roll(&log, 1, T0);
    let report = log.compact(T0 + 1).unwrap();
    assert_eq!(report.tombstones_removed, 1, "{report:?}");
    let first_base = log.segment_base_offsets()[0];
    assert!(first_base > 0, "segments {:?}", log.segment_base_offsets());
    assert_eq!(log.log_start_offset(), 0);
    let rows = contents(&log);
    assert!(rows[0].0 > 40 && rows[0].1.as_deref().unwrap().starts_with("filler"));
    assert_eq!(
        BatchHeader::parse(&log.read(0, 1, None).unwrap().records)
            .unwrap()
            .base_offset,
        rows[0].0
    );
    drop(log);
    let log = open(dir.path(), config, false);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(contents(&log), rows);
}

#[test]
fn the_dirty_ratio_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            min_cleanable_dirty_ratio: 0.5,
            ..config()
        },
        true,
    );
    roll(&log, 8, T0);
    let report = log.compact(T0).unwrap();
    assert!(report.cleaned() && report.dirty_ratio == 1.0, "{report:?}");

    // A little dirt: well below half.
    roll(&log, 2, T0);
    let report = log.compact(T0).unwrap();
    assert_eq!(report.skipped, Some(CompactionSkipped::BelowDirtyRatio));
    assert!(
        report.dirty_ratio > 0.0 && report.dirty_ratio < 0.5,
        "{report:?}"
    );

    // As much dirt as clean data: cleaned.
    roll(&log, 8, T0);
    let report = log.compact(T0).unwrap();
    assert!(report.cleaned() && report.dirty_ratio >= 0.5, "{report:?}");
    assert!(!report.forced_by_max_lag);
}

#[test]
fn records_younger_than_the_min_compaction_lag_are_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            min_compaction_lag_ms: HOUR as u64,
            ..config()
        },
        true,
    );
    for k in 0..40 {
        put(&log, &format!("k{}", k % 5), Some("old"), T0);
    }
    roll(&log, 1, T0);
    let recent = T0 + 2 * HOUR;
    let recent_from = log.log_end_offset();
    for k in 0..40 {
        put(&log, &format!("k{}", k % 5), Some("new"), recent);
    }
    roll(&log, 2, recent);
    let before = contents(&log);

    assert_eq!(
        log.compact(T0 + HOUR - 1).unwrap().skipped,
        Some(CompactionSkipped::NothingToClean)
    );
    assert_eq!(contents(&log), before);

    let report = log.compact(recent).unwrap();
    assert!(report.cleaned(), "{report:?}");
    let (_, end) = report.cleaned_range.unwrap();
    assert!(end <= recent_from, "cleaned into the recent records: {end}");
    let after = contents(&log);
    let recent_rows: Vec<&Row> = before.iter().filter(|r| r.0 >= end).collect();
    assert_eq!(
        after.iter().filter(|r| r.0 >= end).collect::<Vec<_>>(),
        recent_rows
    );
    // Each key's last old value survives: its newer versions were too young.
    assert_eq!(
        after
            .iter()
            .filter(|r| r.2.as_deref() == Some("old") && r.1.as_deref().unwrap().starts_with('k'))
            .count(),
        5
    );
}

#[test]
fn a_small_offset_map_cleans_the_dirty_range_in_steps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    for i in 0..300 {
        put(&log, &format!("k{}", i % 9), Some(&i.to_string()), T0);
    }
    let active_base = *log.segment_base_offsets().last().unwrap();
    let tiny = CleanerOptions {
        offset_map_bytes: 1,
    };
    let mut ends = Vec::new();
    loop {
        let report = log.compact_with(T0, &tiny).unwrap();
        if !report.cleaned() {
            break;
        }
        ends.push(report.cleaned_range.unwrap().1);
    }
    assert!(ends.len() > 3, "{ends:?}");
    assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
    assert_eq!(*ends.last().unwrap(), active_base);
    let stepwise = contents(&log);
    assert!(keys_are_unique_below(&stepwise, active_base));
    for k in 0..9 {
        let newest = (0..300).filter(|i| i % 9 == k).max().unwrap();
        assert!(stepwise.contains(&(newest, Some(format!("k{k}")), Some(newest.to_string()))));
    }
}

#[test]
fn the_max_compaction_lag_forces_a_clean() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            min_cleanable_dirty_ratio: 0.9,
            max_compaction_lag_ms: Some(10_000),
            ..config()
        },
        true,
    );
    roll(&log, 8, T0);
    assert!(log.compact(T0).unwrap().cleaned());
    roll(&log, 1, T0 + 1_000);
    let report = log.compact(T0 + 5_000).unwrap();
    assert_eq!(report.skipped, Some(CompactionSkipped::BelowDirtyRatio));
    let report = log.compact(T0 + 11_001).unwrap();
    assert!(report.cleaned() && report.forced_by_max_lag, "{report:?}");
}

#[test]
fn retention_deletes_only_with_the_delete_policy() {
    for (policy, deletes) in [
        (CleanupPolicy::COMPACT, false),
        (CleanupPolicy::COMPACT_DELETE, true),
        (CleanupPolicy::DELETE, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(
            dir.path(),
            LogConfig {
                cleanup_policy: policy,
                retention_ms: Some(1_000),
                retention_bytes: Some(1),
                ..config()
            },
            true,
        );
        roll(&log, 5, T0);
        let deleted = log.apply_retention(T0 + HOUR).unwrap();
        assert_eq!(deleted > 0, deletes, "{policy:?}");
        assert_eq!(log.log_start_offset() > 0, deletes, "{policy:?}");
        let cleaned =
            log.compact(T0 + HOUR).unwrap().skipped != Some(CompactionSkipped::NotCompacted);
        assert_eq!(cleaned, policy.compact);
    }
    // DeleteRecords still works on a compacted log.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    roll(&log, 3, T0);
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    assert!(log.compact(T0).unwrap().cleaned());
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(contents(&log)[0].0, 5);
}

#[test]
fn compression_and_batch_fields_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    for (i, compression) in COMPRESSIONS.iter().enumerate() {
        let records = [
            kv("a", Some(&format!("a{i}"))),
            kv(&format!("only-{i}"), Some("x")),
            kv("b", None),
            (None, Some(b"keyless".to_vec())),
        ];
        log.append(&keyed_batch(&records, T0 + i as i64, *compression), T0)
            .unwrap();
    }
    roll(&log, 1, T0);
    let before = log.read(0, usize::MAX, Some(20)).unwrap().records;
    let report = log.compact(T0).unwrap();
    assert_eq!(report.keyless_removed, 5);
    let after = log.read(0, usize::MAX, Some(20)).unwrap().records;
    let headers =
        |b: &Bytes| -> Vec<BatchHeader> { batch::batches(b).map(|b| b.unwrap().header).collect() };
    let (old, new) = (headers(&before), headers(&after));
    assert_eq!(old.len(), new.len());
    for (o, n) in old.iter().zip(&new) {
        assert_eq!(
            (
                o.base_offset,
                o.last_offset(),
                o.compression(),
                o.base_sequence
            ),
            (
                n.base_offset,
                n.last_offset(),
                n.compression(),
                n.base_sequence
            )
        );
        assert!(n.record_count < o.record_count);
    }
    let rows = contents(&log);
    let mine: Vec<&Row> = rows.iter().filter(|r| r.0 < 20).collect();
    let expect: Vec<Row> = (0..5)
        .map(|i| (4 * i + 1, Some(format!("only-{i}")), Some("x".to_string())))
        .chain([
            (16, Some("a".into()), Some("a4".into())),
            (18, Some("b".into()), None),
        ])
        .collect();
    let mut mine: Vec<Row> = mine.into_iter().cloned().collect();
    mine.sort();
    let mut expect = expect;
    expect.sort();
    assert_eq!(mine, expect);
}

/// A transactional batch with the given keyed records.
fn transactional_batch(keys: &[&str]) -> Vec<u8> {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 77,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: T0,
            key: Some(Bytes::copy_from_slice(k.as_bytes())),
            value: Some(Bytes::from_static(b"t")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.to_vec()
}

#[test]
fn transactional_batches_are_left_alone_for_now() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let txn = transactional_batch(&["t", "t", "u"]);
    log.append(&txn, T0).unwrap();
    put(&log, "t", Some("plain"), T0);
    roll(&log, 1, T0);
    let stored_txn = log.read(0, 1, None).unwrap().records;
    assert!(log.compact(T0).unwrap().cleaned());
    assert_eq!(log.read(0, 1, None).unwrap().records, stored_txn);
    assert_eq!(
        contents(&log)
            .iter()
            .filter(|r| r.1.as_deref() == Some("t"))
            .count(),
        3
    );
}

#[test]
fn a_lost_recovery_point_or_index_does_not_cut_a_compacted_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    for i in 0..400 {
        put(&log, &format!("k{}", i % 7), Some(&format!("{i}")), T0);
    }
    assert!(log.compact(T0).unwrap().cleaned());
    let rows = contents(&log);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    drop(log);
    std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    for base in &bases {
        std::fs::remove_file(dir.path().join(format!("{base:020}.index"))).unwrap();
    }
    let log = open(dir.path(), config(), false);
    assert_eq!(contents(&log), rows);
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(log.recovery_report().unwrap().truncated_bytes, 0);
}

#[test]
fn readers_see_a_consistent_log_during_compaction() {
    // Record at offset o: key o % 17, value o, so a reader can check every
    // record it sees without sharing state with the writer.
    fn record_at(o: i64) -> KeyValue {
        kv(&format!("k{}", o % 17), Some(&o.to_string()))
    }
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), config(), true));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                let mut offset = log.log_start_offset();
                let end = log.log_end_offset();
                let mut last = -1;
                let mut seen = HashSet::new();
                while offset < end {
                    let read = log.read(offset, 300, None).unwrap();
                    if read.records.is_empty() {
                        break;
                    }
                    for record in decode(&read.records) {
                        assert!(
                            record.offset > last,
                            "offset {} after {last}",
                            record.offset
                        );
                        last = record.offset;
                        seen.insert(record.offset);
                        let (key, value) = record_at(record.offset);
                        assert_eq!(record.key.as_deref(), key.as_deref());
                        assert_eq!(record.value.as_deref(), value.as_deref());
                    }
                    let next = batch::batches(&read.records)
                        .map(|b| b.unwrap().header.next_offset())
                        .last()
                        .unwrap();
                    offset = next.max(last + 1);
                }
                // A record with no newer one of its key is never removed.
                let end_after = log.log_end_offset();
                for o in (end - 17).max(0)..end {
                    if o + 17 >= end_after {
                        assert!(seen.contains(&o), "record {o} missing (log end {end})");
                    }
                }
                reads += 1;
            }
            reads
        })
    };
    let mut cleans = 0;
    for round in 0..40 {
        for _ in 0..60 {
            let o = log.log_end_offset();
            let batch = keyed_batch(&[record_at(o)], T0, Compression::None);
            log.append(&batch, T0).unwrap();
        }
        if log.compact(T0 + round).unwrap().cleaned() {
            cleans += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(cleans > 10, "{cleans} cleans");
    println!("{reads} full reads during {cleans} cleans");
    let rows = contents(&log);
    assert!(keys_are_unique_below(
        &rows,
        log.segment_base_offsets()[log.segment_count() - 1]
    ));
}

// --- A model-based property test ------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// One batch: (key, tombstone?) per record.
    Append(Vec<(u8, bool)>),
    /// Advance the clock, then compact.
    Compact(i64),
    Tick(i64),
    /// Reopen, after a clean close or not.
    Reopen(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((0u8..10, prop::bool::weighted(0.2)), 1..4).prop_map(Op::Append),
        3 => (0i64..3_000).prop_map(Op::Compact),
        1 => (0i64..3_000).prop_map(Op::Tick),
        1 => any::<bool>().prop_map(Op::Reopen),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct Appended {
    key: u8,
    value: Option<String>,
    timestamp: i64,
}

fn rows_of(log: &PartitionLog) -> BTreeMap<i64, (Option<Bytes>, Option<Bytes>, i64)> {
    let mut out = BTreeMap::new();
    let mut last = -1;
    for r in log_records(log) {
        assert!(r.offset > last);
        last = r.offset;
        out.insert(r.offset, (r.key, r.value, r.timestamp));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Against a model of appended records: every record read is the one
    /// appended at its offset, offsets increase, the newest record per key
    /// is never lost (unless a tombstone past its delete horizon), a record
    /// goes only when a newer one of its key was in the cleaned range or it
    /// is a tombstone cleaned `delete.retention.ms` after its first clean,
    /// never when younger than `min.compaction.lag.ms`, and a clean leaves
    /// one record per key in the range it cleaned.
    #[test]
    fn compaction_matches_a_model(
        ops in prop::collection::vec(op(), 1..160),
        segment_bytes in 250u64..1500,
        delete_retention in prop_oneof![Just(0u64), Just(1_000), Just(5_000)],
        ratio in prop_oneof![Just(0.0), Just(0.3), Just(0.7)],
        min_lag in prop_oneof![Just(0u64), Just(2_000)],
        compression in 0usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes: 100,
            delete_retention_ms: delete_retention,
            min_cleanable_dirty_ratio: ratio,
            min_compaction_lag_ms: min_lag,
            ..config()
        };
        let mut log = open(dir.path(), config.clone(), true);
        let mut appended: BTreeMap<i64, Appended> = BTreeMap::new();
        let mut first_clean: HashMap<i64, i64> = HashMap::new();
        let mut clock = T0;
        for op in ops {
            let before = rows_of(&log);
            let mut report = None;
            match op.clone() {
                Op::Append(records) => {
                    let base = log.log_end_offset();
                    let kvs: Vec<KeyValue> = records
                        .iter()
                        .enumerate()
                        .map(|(i, &(k, tombstone))| {
                            let value = (!tombstone).then(|| format!("{}", base + i as i64));
                            (Some(vec![k]), value.map(String::into_bytes))
                        })
                        .collect();
                    let info = log
                        .append(&keyed_batch(&kvs, clock, COMPRESSIONS[compression]), clock)
                        .unwrap();
                    prop_assert_eq!(info.base_offset, base);
                    for (i, &(key, tombstone)) in records.iter().enumerate() {
                        let offset = base + i as i64;
                        let value = (!tombstone).then(|| offset.to_string());
                        appended.insert(offset, Appended { key, value, timestamp: clock });
                    }
                }
                Op::Tick(ms) => clock += ms,
                Op::Compact(ms) => {
                    clock += ms;
                    report = Some(log.compact(clock).unwrap());
                }
                Op::Reopen(clean) => {
                    if clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = open(dir.path(), config.clone(), clean);
                }
            }
            let after = rows_of(&log);

            // Every record is the one appended at its offset.
            for (offset, (key, value, timestamp)) in &after {
                let a = &appended[offset];
                prop_assert_eq!(key.as_deref(), Some(&[a.key][..]));
                prop_assert_eq!(value.as_deref(), a.value.as_deref().map(str::as_bytes));
                prop_assert_eq!(*timestamp, a.timestamp);
            }
            // The newest value of each key is there.
            let mut newest: HashMap<u8, i64> = HashMap::new();
            for (offset, a) in &appended {
                newest.insert(a.key, *offset);
            }
            for offset in newest.values() {
                if appended[offset].value.is_some() {
                    prop_assert!(after.contains_key(offset), "newest value at {} lost", offset);
                }
            }
            // Only compaction removes anything.
            let removed: Vec<i64> = before.keys().filter(|o| !after.contains_key(o)).copied().collect();
            match &report {
                None => prop_assert!(removed.is_empty(), "{:?} lost by {:?}", removed, op),
                Some(report) => {
                    if !report.cleaned() {
                        prop_assert!(removed.is_empty());
                        if report.skipped == Some(CompactionSkipped::BelowDirtyRatio) {
                            prop_assert!(report.dirty_ratio < ratio);
                        }
                        continue;
                    }
                    prop_assert!(report.dirty_ratio >= ratio || report.forced_by_max_lag);
                    let (_, end) = report.cleaned_range.unwrap();
                    for offset in &removed {
                        let r = &appended[offset];
                        prop_assert!(r.timestamp <= clock - min_lag as i64,
                            "record at {} removed inside the min lag", offset);
                        let superseded = appended
                            .range(offset + 1..end)
                            .any(|(_, a)| a.key == r.key);
                        let expired_tombstone = r.value.is_none()
                            && first_clean
                                .get(offset)
                                .is_some_and(|&t| clock >= t + delete_retention as i64);
                        prop_assert!(superseded || expired_tombstone,
                            "record at {} removed without cause (clean up to {})", offset, end);
                    }
                    for offset in appended.range(..end).map(|(o, _)| *o) {
                        first_clean.entry(offset).or_insert(clock);
                    }
                    let mut keys = HashSet::new();
                    for (_, (key, _, _)) in after.range(..end) {
                        prop_assert!(keys.insert(key.clone()), "key {:?} twice below {}", key, end);
                    }
                }
            }
        }
    }
}
