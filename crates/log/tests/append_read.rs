//! Appending and reading: round trips, offsets, rolling, index and time
//! lookups against a linear scan, validation of appended batches.

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use strom_log::batch::{self, BatchHeader};
use strom_log::{LogConfig, LogError, PartitionLog, TimestampType};

const T0: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open_with_storage(dir, config, true, TestStorage::no_sync()).unwrap()
}

/// The bytes the log should store for `input` appended at `base_offset`.
fn stored(input: &[u8], base_offset: i64) -> Vec<u8> {
    let mut out = input.to_vec();
    batch::set_base_offset(&mut out, base_offset);
    out
}

/// Batch specs: (records, value length, compression index, timestamp jitter).
fn batch_specs(max: usize) -> impl Strategy<Value = Vec<(usize, usize, usize, i64)>> {
    prop::collection::vec((1usize..6, 0usize..400, 0usize..5, -30i64..30), 1..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Offsets are contiguous, bytes come back as stored, segments roll at
    /// `segment_bytes`, a read from any offset starts with the batch holding
    /// it, and the offset index finds the same position as a linear scan.
    #[test]
    fn append_read_round_trip(
        specs in batch_specs(40),
        segment_bytes in 200u64..3000,
        index_interval_bytes in 0u32..600,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, index_interval_bytes, ..small_config() };
        let log = open(dir.path(), config);
        let mut expected: Vec<Vec<u8>> = Vec::new();
        let mut next = 0i64;
        for (i, &(records, value_len, compression, jitter)) in specs.iter().enumerate() {
            let input = batch_with(records, value_len, T0 + jitter, COMPRESSIONS[compression]);
            let info = log.append(&input, T0 + i as i64).unwrap();
            prop_assert_eq!(info.base_offset, next);
            prop_assert_eq!(info.last_offset, next + records as i64 - 1);
            prop_assert_eq!(info.record_count, records as i64);
            prop_assert_eq!(info.log_append_time, -1);
            expected.push(stored(&input, next));
            next += records as i64;
        }
        prop_assert_eq!(log.log_end_offset(), next);
        prop_assert_eq!(read_all(&log), expected.concat());

        // On disk, by a linear scan: the same batches, segments rolled.
        let on_disk = scan_dir(dir.path());
        prop_assert_eq!(on_disk.len(), expected.len());
        for (found, want) in on_disk.iter().zip(&expected) {
            prop_assert_eq!(&found.bytes, want);
        }
        let bases = segment_bases(dir.path());
        prop_assert_eq!(log.segment_base_offsets(), bases.clone());
        for base in &bases {
            let in_segment: Vec<&OnDisk> =
                on_disk.iter().filter(|b| b.segment_base_offset == *base).collect();
            let size: usize = in_segment.iter().map(|b| b.bytes.len()).sum();
            prop_assert!(!in_segment.is_empty() || *base == next, "empty sealed segment {}", base);
            prop_assert!(size as u64 <= segment_bytes || in_segment.len() == 1,
                "segment {} holds {} bytes in {} batches", base, size, in_segment.len());
            prop_assert_eq!(in_segment.first().map(|b| b.header.base_offset), (*base != next).then_some(*base));
        }
        let total: usize = expected.iter().map(Vec::len).sum();
        prop_assert_eq!(log.size_bytes(), total as u64);

        // Every offset: read and the index agree with the linear scan.
        for offset in 0..next {
            let holder = on_disk
                .iter()
                .find(|b| b.header.base_offset <= offset && offset <= b.header.last_offset())
                .unwrap();
            let read = log.read(offset, 0, None).unwrap();
            prop_assert_eq!(&read.records[..], &holder.bytes[..]);
            let location = log.locate(offset).unwrap().unwrap();
            prop_assert_eq!(location.segment_base_offset, holder.segment_base_offset);
            prop_assert_eq!(location.position, holder.position);
        }
        prop_assert!(log.read(next, 1 << 20, None).unwrap().records.is_empty());
        prop_assert!(log.locate(next).unwrap().is_none());

        // Every record decodes, offsets contiguous.
        let records = decode(&read_all(&log));
        prop_assert_eq!(records.len() as i64, next);
        for (i, r) in records.iter().enumerate() {
            prop_assert_eq!(r.offset, i as i64);
        }
    }

    /// `read_slice` (what Fetch sends with sendfile) names exactly the
    /// batches a linear scan picks: from the one holding the offset, whole
    /// batches within the budget (the first always), below the upper bound,
    /// within one segment.
    #[test]
    fn read_slice_matches_linear_scan(
        specs in batch_specs(60),
        segment_bytes in 200u64..4000,
        index_interval_bytes in 0u32..900,
        reads in prop::collection::vec((0f64..1.0, 0usize..3000, prop::option::of(0f64..1.2)), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, index_interval_bytes, ..small_config() };
        let log = open(dir.path(), config);
        for (i, &(records, value_len, compression, jitter)) in specs.iter().enumerate() {
            let input = batch_with(records, value_len, T0 + jitter, COMPRESSIONS[compression]);
            log.append(&input, T0 + i as i64).unwrap();
        }
        let end = log.log_end_offset();
        let on_disk = scan_dir(dir.path());
        for (at, max_bytes, upper) in reads {
            let offset = (at * end as f64) as i64;
            let upper = upper.map(|u| (u * end as f64) as i64);
            let bound = upper.map_or(end, |u| u.min(end));
            let mut want: Vec<&OnDisk> = Vec::new();
            if let Some(first) = on_disk.iter().position(|b| b.header.last_offset() >= offset) {
                let segment = on_disk[first].segment_base_offset;
                let mut size = 0;
                for b in on_disk[first..].iter().take_while(|b| b.segment_base_offset == segment) {
                    if b.header.last_offset() >= bound || (!want.is_empty() && size + b.bytes.len() > max_bytes) {
                        break;
                    }
                    size += b.bytes.len();
                    want.push(b);
                }
            }
            let read = log.read_slice(offset, max_bytes, upper).unwrap();
            prop_assert_eq!((read.log_start_offset, read.log_end_offset), (0, end));
            match (read.slice, want.first(), want.last()) {
                (None, None, None) => {}
                (Some(slice), Some(first), Some(last)) => {
                    let bytes: Vec<u8> = want.iter().flat_map(|b| b.bytes.iter().copied()).collect();
                    prop_assert_eq!(&slice.read().unwrap()[..], &bytes[..]);
                    prop_assert_eq!(slice.position(), first.position);
                    prop_assert_eq!(slice.base_offset(), first.header.base_offset);
                    prop_assert_eq!(slice.next_offset(), last.header.next_offset());
                    // The test storage injects faults: no sendfile from it.
                    prop_assert!(slice.file().is_none());
                }
                (got, _, _) => prop_assert!(false, "read_slice({}, {}, {:?}) = {:?}, want {} batches",
                    offset, max_bytes, upper, got, want.len()),
            }
        }
    }

    /// `batch_for_timestamp` returns the first batch (in offset order) whose
    /// max timestamp reaches the target, before and after a reopen.
    #[test]
    fn time_lookups_match_linear_scan(
        specs in batch_specs(30),
        index_interval_bytes in 0u32..400,
        clean_reopen in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 1500, index_interval_bytes, ..small_config() };
        let log = open(dir.path(), config.clone());
        for &(records, value_len, compression, jitter) in &specs {
            let input = batch_with(records, value_len, T0 + jitter, COMPRESSIONS[compression]);
            log.append(&input, T0).unwrap();
        }
        let on_disk = scan_dir(dir.path());
        let max_ts = on_disk.iter().map(|b| b.header.max_timestamp).max().unwrap();
        let last_with_max = on_disk.iter().rev().find(|b| b.header.max_timestamp == max_ts).unwrap();
        prop_assert_eq!(log.max_timestamp(), Some((max_ts, last_with_max.header.last_offset())));

        let mut targets: Vec<i64> = on_disk
            .iter()
            .flat_map(|b| [b.header.max_timestamp - 1, b.header.max_timestamp, b.header.max_timestamp + 1])
            .collect();
        targets.extend([i64::MIN, 0, T0 - 10_000, T0 + 10_000]);
        let check = |log: &PartitionLog| -> Result<(), TestCaseError> {
            for &ts in &targets {
                let want = on_disk.iter().find(|b| b.header.max_timestamp >= ts).map(|b| b.bytes.clone());
                let got = log.batch_for_timestamp(ts).unwrap().map(|b| b.to_vec());
                prop_assert_eq!(got, want, "timestamp {}", ts);
            }
            Ok(())
        };
        check(&log)?;
        if clean_reopen {
            log.close().unwrap();
        }
        drop(log);
        let log = PartitionLog::open_with_storage(dir.path(), config, clean_reopen, TestStorage::no_sync()).unwrap();
        check(&log)?;
        let (ts, _) = log.max_timestamp().unwrap();
        prop_assert_eq!(ts, max_ts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Damaged producer input never panics the log and is rejected whole,
    /// unless the damage only touched fields outside the CRC that the log
    /// overwrites or passes through (base offset, leader epoch).
    #[test]
    fn damaged_appends_are_all_or_nothing(
        batch_count in 1usize..4,
        damage in prop::collection::btree_map(0usize..2000, 1u8..=255, 0..4),
        cut in prop::option::of(0usize..2000),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_config());
        log.append(&batch(1, 10, T0), T0).unwrap();
        let before = dir_snapshot(dir.path());
        let good: Vec<Vec<u8>> = (0..batch_count).map(|i| batch(1 + i, 20 * i, T0)).collect();
        let mut input = good.concat();
        for (&at, &xor) in &damage {
            let at = at % input.len();
            input[at] ^= xor;
        }
        if let Some(cut) = cut {
            input.truncate(cut % (input.len() + 1));
        }
        match log.append(&input, T0) {
            Ok(info) => {
                // Only harmless damage may pass: every batch still validates.
                for found in batch::batches(&input) {
                    prop_assert!(batch::validate(found.unwrap().bytes).is_ok());
                }
                prop_assert_eq!(info.base_offset, 1);
            }
            Err(e) => {
                prop_assert!(e.is_client_error(), "{e}");
                prop_assert_eq!(log.log_end_offset(), 1);
                prop_assert_eq!(dir_snapshot(dir.path()), before);
            }
        }
        prop_assert_eq!(log.append(&batch(1, 1, T0), T0).unwrap().base_offset, log.log_end_offset() - 1);
    }
}

fn dir_snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn corrupt_or_invalid_appends_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 2000,
            ..small_config()
        },
    );
    log.append(&batch(3, 10, T0), T0).unwrap();
    let good = batch(2, 10, T0);
    let before = dir_snapshot(dir.path());

    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 0x40;
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    let mut bad_length = good.clone();
    bad_length[8..12].copy_from_slice(&((good.len() - 12 + 5) as i32).to_be_bytes());
    let truncated = good[..good.len() - 1].to_vec();
    let header_only = good[..30].to_vec();
    let mut second_corrupt = good.clone();
    second_corrupt.extend_from_slice(&bad_crc);
    let mut count_mismatch = good.clone();
    count_mismatch[57..61].copy_from_slice(&7i32.to_be_bytes());
    let crc = batch::compute_crc(&count_mismatch);
    count_mismatch[17..21].copy_from_slice(&crc.to_be_bytes());
    let too_large = batch(1, 3000, T0);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad crc", bad_crc),
        ("bad magic", bad_magic),
        ("bad length", bad_length),
        ("truncated", truncated),
        ("header only", header_only),
        ("second batch corrupt", second_corrupt),
    ];
    for (name, input) in cases {
        let err = log.append(&input, T0).unwrap_err();
        assert!(
            matches!(err, LogError::CorruptBatch { .. }),
            "{name}: got {err:?}"
        );
    }
    assert!(matches!(
        log.append(&count_mismatch, T0),
        Err(LogError::InvalidRecords(_))
    ));
    assert!(matches!(
        log.append(&[], T0),
        Err(LogError::InvalidRecords(_))
    ));
    match log.append(&too_large, T0) {
        Err(LogError::RecordTooLarge { size, max }) => {
            assert_eq!((size, max), (too_large.len(), 2000))
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }

    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(dir_snapshot(dir.path()), before);
    // The log still works.
    assert_eq!(log.append(&good, T0).unwrap().base_offset, 3);
}

#[test]
fn log_append_time_rewrite_keeps_a_valid_crc() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config()
        },
    );
    let now = T0 + 12345;
    for compression in COMPRESSIONS {
        let info = log
            .append(&batch_with(3, 50, T0, compression), now)
            .unwrap();
        assert_eq!(info.log_append_time, now);
        let read = log.read(info.base_offset, 0, None).unwrap();
        let header = batch::validate(&read.records).unwrap();
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, now);
        assert_eq!(header.base_timestamp, now);
        let records = decode(&read.records);
        assert_eq!(records.len(), 3);
        for r in records {
            assert_eq!(
                r.timestamp_type,
                kafka_protocol::records::TimestampType::LogAppend
            );
        }
    }
    // The time index works with the rewritten timestamps.
    let found = log.batch_for_timestamp(now).unwrap().unwrap();
    assert_eq!(BatchHeader::parse(&found).unwrap().base_offset, 0);
    assert_eq!(log.max_timestamp(), Some((now, 14)));
}

#[test]
fn reads_respect_max_bytes_upper_bound_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 700,
            ..small_config()
        },
    );
    let mut sizes = Vec::new();
    for i in 0..10 {
        let b = batch(2, 100, T0 + i);
        sizes.push(b.len());
        log.append(&b, T0).unwrap();
    }
    assert!(log.segment_count() > 2);
    // KIP-74: the first batch comes whole even when max_bytes is smaller.
    let read = log.read(0, 1, None).unwrap();
    assert_eq!(read.records.len(), sizes[0]);
    assert_eq!((read.log_start_offset, read.log_end_offset), (0, 20));
    // Then only whole batches that fit; reads continue across segments.
    let read = log.read(0, sizes[0] + sizes[1] + 10, None).unwrap();
    assert_eq!(read.records.len(), sizes[0] + sizes[1]);
    let read = log.read(3, usize::MAX, None).unwrap();
    assert_eq!(read.records.len(), sizes[1..].iter().sum::<usize>());
    // Nothing at or beyond the upper bound, not even a straddling batch.
    let read = log.read(0, usize::MAX, Some(6)).unwrap();
    assert_eq!(read.records.len(), sizes[..3].iter().sum::<usize>());
    let read = log.read(0, usize::MAX, Some(5)).unwrap();
    assert_eq!(read.records.len(), sizes[..2].iter().sum::<usize>());
    assert!(log.read(4, usize::MAX, Some(4)).unwrap().records.is_empty());
    // Range.
    assert!(log.read(20, 100, None).unwrap().records.is_empty());
    assert!(matches!(
        log.read(21, 100, None),
        Err(LogError::OffsetOutOfRange {
            requested: 21,
            log_start: 0,
            log_end: 20
        })
    ));
    assert!(matches!(
        log.read(-1, 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn segment_ms_rolls_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: Some(1000),
            ..small_config()
        },
    );
    log.append(&batch(1, 10, T0), T0).unwrap();
    log.append(&batch(1, 10, T0), T0 + 1000).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 10, T0), T0 + 1001).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn concurrent_readers_see_whole_batches_while_appending() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(
        dir.path(),
        LogConfig {
            segment_bytes: 2000,
            ..small_config()
        },
    ));
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for i in 0..300 {
                log.append(&batch(1 + i % 3, 40, T0 + i as i64), T0)
                    .unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut reads = 0;
                while log.log_end_offset() < 600 && reads < 100_000 {
                    let end = log.log_end_offset();
                    let read = log.read(end / 2, 4096, None).unwrap();
                    let mut expected_next = None;
                    for found in batch::batches(&read.records) {
                        let header = batch::validate(found.unwrap().bytes).unwrap();
                        if let Some(next) = expected_next {
                            assert_eq!(header.base_offset, next);
                        }
                        expected_next = Some(header.next_offset());
                    }
                    reads += 1;
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
}

#[test]
fn read_slice_on_the_real_file_system_offers_the_file_for_sendfile() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), true).unwrap();
    let input = batch(3, 50, T0);
    log.append(&input, T0).unwrap();
    let slice = log.read_slice(1, 1 << 20, None).unwrap().slice.unwrap();
    let file = slice.file().expect("StdStorage has a real file");
    let mut sent = vec![0u8; slice.len() as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut sent, slice.position()).unwrap();
    assert_eq!(sent, stored(&input, 0));
    assert_eq!((slice.base_offset(), slice.next_offset()), (0, 3));
}
