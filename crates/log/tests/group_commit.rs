//! Group commit: concurrent `append` + `flush_up_to` callers share fsyncs.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use strom_log::storage::Storage;
use strom_log::{LogConfig, PartitionLog};

const T0: i64 = 1_700_000_000_000;

/// `threads` threads each append and then wait for durability `rounds` times.
/// Returns (flush calls, log fsyncs counted by the log).
fn run(log: &Arc<PartitionLog>, threads: usize, rounds: usize) -> usize {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = Arc::clone(log);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for r in 0..rounds {
                    let info = log.append(&batch(1 + (t + r) % 3, 50, T0), T0).unwrap();
                    log.flush_up_to(info.last_offset + 1).unwrap();
                    assert!(log.durable_offset() > info.last_offset);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    threads * rounds
}

#[test]
fn concurrent_flushes_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    // A slow disk makes callers pile up behind an in-flight fsync.
    let storage = TestStorage::slow_sync(Duration::from_millis(5));
    let syncs = Arc::clone(&storage.syncs);
    let log = Arc::new(
        PartitionLog::open_with_storage(
            dir.path(),
            small_config(),
            false,
            storage as Arc<dyn Storage>,
        )
        .unwrap(),
    );
    let syncs_at_open = syncs.load(Ordering::Relaxed);
    let callers = run(&log, 16, 5);
    let log_fsyncs = log.fsync_count() as usize;
    let all_syncs = (syncs.load(Ordering::Relaxed) - syncs_at_open) as usize;
    println!("{callers} flush calls, {log_fsyncs} log fsyncs, {all_syncs} fsyncs in total");
    assert!(log_fsyncs > 0);
    // Segments roll here (4 KiB), so a round may fsync two log files and
    // write a checkpoint; sharing must still beat one fsync per caller.
    assert!(
        log_fsyncs < callers,
        "{log_fsyncs} log fsyncs for {callers} callers"
    );
    assert!(
        all_syncs < callers,
        "{all_syncs} fsyncs for {callers} callers"
    );
    assert_eq!(log.durable_offset(), log.log_end_offset());
}

#[test]
fn concurrent_flushes_share_fsyncs_on_the_real_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = Arc::new(PartitionLog::open(dir.path(), config, false).unwrap());
    let callers = run(&log, 8, 10);
    let fsyncs = log.fsync_count() as usize;
    println!("{callers} flush calls, {fsyncs} fsyncs");
    assert!(fsyncs < callers, "{fsyncs} fsyncs for {callers} callers");
}

#[test]
fn flush_is_a_no_op_when_everything_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), false).unwrap();
    log.flush().unwrap();
    assert_eq!(log.fsync_count(), 0, "nothing to sync in an empty log");
    log.append(&batch(2, 10, T0), T0).unwrap();
    assert_eq!(log.durable_offset(), 0);
    log.flush_up_to(1).unwrap();
    assert_eq!(log.durable_offset(), 2, "a round syncs everything appended");
    assert_eq!(log.fsync_count(), 1);
    log.flush_up_to(2).unwrap();
    log.flush_up_to(100).unwrap();
    log.flush().unwrap();
    assert_eq!(log.fsync_count(), 1);
    assert!(log.ms_since_last_flush() < 10_000);
}
