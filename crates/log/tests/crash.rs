//! Seeded crash runs: random appends, flushes, DeleteRecords and retention on
//! a storage that can lose everything not fsynced; after the "power loss"
//! the recovered log must hold every acknowledged (flushed) record, in order,
//! and nothing else than appended records.

mod common;

use std::sync::Arc;

use common::crash::CrashStorage;
use common::*;
use rand::{Rng, SeedableRng};
use strom_log::batch;
use strom_log::storage::Storage;
use strom_log::{LogConfig, PartitionLog};

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
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("topic-0");
    let storage = CrashStorage::new(seed);
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
    for _ in 0..rng.gen_range(5..60) {
        match rng.gen_range(0..100) {
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

    let crashed = scratch.path().join("crashed");
    storage.crash_into(&dir, &crashed);
    let log = PartitionLog::open(&crashed, config(), false)
        .unwrap_or_else(|e| panic!("seed {seed}: reopening failed: {e}"));
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(
        end >= acknowledged && end <= end_before_crash,
        "seed {seed}: log end {end}, acknowledged {acknowledged}, before crash {end_before_crash}"
    );
    assert!(start >= acknowledged_start.min(end), "seed {seed}: log start {start} went back below {acknowledged_start}");
    let expected: Vec<u8> = appended
        .iter()
        .filter(|b| {
            let h = batch::BatchHeader::parse(b).unwrap();
            h.last_offset() >= start && h.next_offset() <= end
        })
        .flatten()
        .copied()
        .collect();
    assert_eq!(
        read_all(&log),
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
