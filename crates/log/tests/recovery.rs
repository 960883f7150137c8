//! Recovery: torn tails at every byte, bit flips, garbled and missing index
//! files, recovery points.

mod common;

use std::path::Path;

use common::*;
use rand::{Rng, SeedableRng};
use strom_log::batch;
use strom_log::{LogConfig, PartitionLog};

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 100,
        ..small_config()
    }
}

fn open(dir: &Path, clean: bool) -> PartitionLog {
    PartitionLog::open_with_storage(dir, config(), clean, TestStorage::no_sync()).unwrap()
}

/// A log of a few segments, partly flushed (so a recovery point exists),
/// dropped without close: an unclean shutdown.
fn build_pristine(dir: &Path) -> Vec<OnDisk> {
    let log = open(dir, false);
    for i in 0..24 {
        let b = batch_with(
            1 + i % 4,
            20 + (i * 37) % 150,
            T0 + (i as i64 * 7) % 50,
            COMPRESSIONS[i % 5],
        );
        log.append(&b, T0).unwrap();
        if i == 9 {
            log.flush().unwrap();
        }
    }
    assert!(log.segment_count() >= 3);
    drop(log);
    scan_dir(dir)
}

fn fresh_copy(pristine: &Path, scratch: &Path) -> std::path::PathBuf {
    let work = scratch.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).unwrap();
    }
    copy_dir(pristine, &work);
    work
}

/// Asserts that `log` holds exactly `expected` and accepts appends after it.
fn assert_holds(log: &PartitionLog, expected: &[&OnDisk]) {
    let want: Vec<u8> = expected.iter().flat_map(|b| b.bytes.clone()).collect();
    assert_eq!(read_all(log), want);
    let end = expected.last().map_or(0, |b| b.header.next_offset());
    assert_eq!(log.log_end_offset(), end);
    let info = log.append(&batch(2, 5, T0), T0).unwrap();
    assert_eq!(info.base_offset, end);
    let read = log.read(end, 0, None).unwrap();
    assert_eq!(batch::validate(&read.records).unwrap().base_offset, end);
}

#[test]
fn truncation_at_every_byte_of_the_tail_recovers_the_longest_valid_prefix() {
    let pristine = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let batches = build_pristine(pristine.path());
    let active_base = *segment_bases(pristine.path()).last().unwrap();
    let active: Vec<&OnDisk> = batches
        .iter()
        .filter(|b| b.segment_base_offset == active_base)
        .collect();
    assert!(
        active.len() >= 3,
        "want at least three batches in the active segment"
    );
    let tail = &active[active.len() - 3..];
    let file_len = active
        .last()
        .map(|b| b.position + b.bytes.len() as u64)
        .unwrap();

    // Resetting only what an iteration can change keeps ~1000 reopens cheap:
    // recovery rewrites checkpoints and index files, the append after it may
    // roll a new segment, and the active segment is what gets cut.
    let work = fresh_copy(pristine.path(), scratch.path());
    let pristine_files: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(pristine.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    let active_log = std::fs::read(log_path(pristine.path(), active_base)).unwrap();
    println!("cutting at {} positions", file_len + 1 - tail[0].position);
    for cut in tail[0].position..=file_len {
        for entry in std::fs::read_dir(&work).unwrap() {
            let entry = entry.unwrap();
            if !pristine_files
                .iter()
                .any(|(name, _)| *name == entry.file_name())
            {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        for (name, bytes) in &pristine_files {
            let name = name.to_str().unwrap();
            if name.ends_with("checkpoint") || name.ends_with("index") {
                std::fs::write(work.join(name), bytes).unwrap();
            }
        }
        std::fs::write(log_path(&work, active_base), &active_log[..cut as usize]).unwrap();

        let log = open(&work, false);
        let expected: Vec<&OnDisk> = batches
            .iter()
            .filter(|b| {
                b.segment_base_offset < active_base || b.position + b.bytes.len() as u64 <= cut
            })
            .collect();
        let valid_end = expected
            .last()
            .filter(|b| b.segment_base_offset == active_base)
            .map_or(0, |b| b.position + b.bytes.len() as u64);
        let report = log.recovery_report().expect("unclean open reports");
        assert_eq!(report.truncated_bytes, cut - valid_end, "cut at {cut}");
        assert_eq!(
            report.log_end_offset,
            expected.last().unwrap().header.next_offset()
        );
        assert_holds(&log, &expected);
    }
}

#[test]
fn garbage_after_the_last_batch_is_truncated_even_after_a_clean_shutdown() {
    let pristine = tempfile::tempdir().unwrap();
    let batches = build_pristine(pristine.path());
    let active_base = *segment_bases(pristine.path()).last().unwrap();
    for (clean, garbage) in [
        (false, vec![0u8; 700]),
        (true, vec![0xab; 5]),
        (true, vec![0u8; 100]),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let work = fresh_copy(pristine.path(), scratch.path());
        if clean {
            open(&work, false).close().unwrap();
        }
        let mut data = std::fs::read(log_path(&work, active_base)).unwrap();
        data.extend_from_slice(&garbage);
        std::fs::write(log_path(&work, active_base), &data).unwrap();
        let log = open(&work, clean);
        let report = log.recovery_report().expect("a repair is reported");
        assert_eq!(report.truncated_bytes, garbage.len() as u64);
        assert_holds(&log, &batches.iter().collect::<Vec<_>>());
    }
}

#[test]
fn bit_flips_in_the_tail_never_surface_a_bad_batch() {
    let seed: u64 = std::env::var("STROM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with STROM_TEST_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let pristine = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let batches = build_pristine(pristine.path());
    let bases = segment_bases(pristine.path());
    // Flip only in the last two segments: both lie after the recovery point.
    let targets = &bases[bases.len() - 2..];

    for trial in 0..120 {
        let work = fresh_copy(pristine.path(), scratch.path());
        let base = targets[rng.gen_range(0..targets.len())];
        let path = log_path(&work, base);
        let mut data = std::fs::read(&path).unwrap();
        let flips = rng.gen_range(1..=3);
        let mut flipped_at = Vec::new();
        for _ in 0..flips {
            let at = rng.gen_range(0..data.len());
            data[at] ^= 1 << rng.gen_range(0..8);
            flipped_at.push(at);
        }
        std::fs::write(&path, &data).unwrap();

        let log = open(&work, false);
        let read = read_all(&log);
        // Every batch returned is valid, offsets contiguous, and the log is a
        // prefix of the original (leader epoch bytes are outside the CRC and
        // not checked by recovery, so a flip there survives).
        let mut count = 0;
        for (found, original) in batch::batches(&read).zip(&batches) {
            let found = found.unwrap();
            let header = batch::validate(found.bytes).unwrap_or_else(|e| {
                panic!("seed {seed} trial {trial}: flips at {flipped_at:?} in segment {base}: {e}")
            });
            assert_eq!(header.base_offset, original.header.base_offset);
            let mut masked = found.bytes.to_vec();
            masked[12..16].copy_from_slice(&original.bytes[12..16]);
            assert_eq!(masked, original.bytes, "seed {seed} trial {trial}");
            count += 1;
        }
        assert_eq!(count, batch::batches(&read).count());
        assert!(
            batches
                .iter()
                .filter(|b| b.segment_base_offset < targets[0])
                .count()
                <= count
        );
        let expected: Vec<&OnDisk> = batches.iter().take(count).collect();
        assert_eq!(
            log.log_end_offset(),
            expected.last().unwrap().header.next_offset()
        );
        let info = log.append(&batch(1, 5, T0), T0).unwrap();
        assert_eq!(info.base_offset, log.log_end_offset() - 1);
    }
}

/// Index files of every segment, by name.
fn index_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (name.ends_with(".index") || name.ends_with(".timeindex"))
                .then(|| (name, std::fs::read(e.path()).unwrap()))
        })
        .collect();
    files.sort();
    files
}

/// Lookups by offset and timestamp agree with a linear scan.
fn assert_lookups_match(log: &PartitionLog, batches: &[OnDisk]) {
    for b in batches {
        for offset in b.header.base_offset..=b.header.last_offset() {
            let location = log.locate(offset).unwrap().unwrap();
            assert_eq!(
                (location.segment_base_offset, location.position),
                (b.segment_base_offset, b.position),
                "offset {offset}"
            );
        }
        let ts = b.header.max_timestamp;
        for target in [ts - 1, ts, ts + 1] {
            let want = batches.iter().find(|x| x.header.max_timestamp >= target);
            let got = log.batch_for_timestamp(target).unwrap();
            assert_eq!(
                got.as_deref(),
                want.map(|x| &x.bytes[..]),
                "timestamp {target}"
            );
        }
    }
}

/// Garbles an index file's bytes; gets the file's entry size.
type Garble = fn(&mut Vec<u8>, usize, &mut rand::rngs::StdRng);

/// Pads to at least two entries, so the garbled file cannot pass as a
/// plausible one-entry index.
fn two_entries_at_least(b: &mut Vec<u8>, entry: usize) {
    if b.len() < 2 * entry {
        b.resize(2 * entry, 0);
    }
}

#[test]
fn rebuilt_indexes_equal_freshly_built_ones() {
    let pristine = tempfile::tempdir().unwrap();
    let batches = build_pristine(pristine.path());
    // Close cleanly so every index file is written.
    let log = open(pristine.path(), false);
    log.close().unwrap();
    drop(log);
    let expected = index_files(pristine.path());
    assert!(expected
        .iter()
        .any(|(n, b)| n.ends_with(".index") && b.len() >= 16));

    let garbles: Vec<(&str, Option<Garble>)> = vec![
        ("deleted", None),
        (
            "junk",
            Some(|b, entry, rng| {
                two_entries_at_least(b, entry);
                b.iter_mut().for_each(|x| *x = rng.gen());
            }),
        ),
        (
            "partial entry",
            Some(|b, _, _| b.truncate(b.len().saturating_sub(3).max(1))),
        ),
        (
            "reversed entries",
            Some(|b, entry, rng| {
                if b.len() < 2 * entry {
                    b.resize(2 * entry, 0);
                    b[..entry].iter_mut().for_each(|x| *x = rng.gen());
                }
                let mut entries: Vec<Vec<u8>> = b.chunks(entry).map(<[u8]>::to_vec).collect();
                entries.reverse();
                *b = entries.concat();
            }),
        ),
        (
            "zeroed",
            Some(|b, entry, _| {
                two_entries_at_least(b, entry);
                b.iter_mut().for_each(|x| *x = 0);
            }),
        ),
        (
            "pointing past the log",
            Some(|b, entry, _| {
                // A well-formed, monotonic entry beyond the segment's data.
                let mut extra = vec![0x7f, 0xff, 0xff, 0xf0, 0x7f, 0xff, 0xff, 0xf0];
                if entry == 12 {
                    extra = vec![
                        0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x7f, 0xff, 0xff, 0xf0,
                    ];
                }
                b.extend_from_slice(&extra);
            }),
        ),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for clean in [true, false] {
        for (name, garble) in &garbles {
            let scratch = tempfile::tempdir().unwrap();
            let work = fresh_copy(pristine.path(), scratch.path());
            for (file, bytes) in index_files(&work) {
                let path = work.join(&file);
                match garble {
                    None => std::fs::remove_file(&path).unwrap(),
                    Some(garble) => {
                        let mut bytes = bytes;
                        let entry = if file.ends_with(".timeindex") { 12 } else { 8 };
                        garble(&mut bytes, entry, &mut rng);
                        std::fs::write(&path, bytes).unwrap();
                    }
                }
            }
            let log = open(&work, clean);
            let report = log
                .recovery_report()
                .unwrap_or_else(|| panic!("{name}: no report"));
            let sealed = segment_bases(&work).len() - 1;
            // Unclean opens rescan (and so rebuild) from the recovery point
            // without counting those; clean opens must detect every file.
            if clean {
                assert!(report.indexes_rebuilt >= sealed, "{name}: {report:?}");
            }
            assert_lookups_match(&log, &batches);
            log.close().unwrap();
            drop(log);
            assert_eq!(index_files(&work), expected, "{name} (clean: {clean})");
        }
    }
}

#[test]
fn recovery_starts_at_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), false);
    for i in 0..30 {
        log.append(&batch(2, 60, T0 + i), T0).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments >= 4);
    log.flush().unwrap();
    log.append(&batch(2, 60, T0), T0).unwrap();
    drop(log);
    // Flushed sealed segments are not rescanned; the active one is.
    let log = open(dir.path(), false);
    assert_eq!(log.recovery_report().unwrap().segments_scanned, 1);
    drop(log);

    // Without a recovery point everything is scanned.
    std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    let log = open(dir.path(), false);
    assert_eq!(log.recovery_report().unwrap().segments_scanned, segments);
    assert_eq!(log.log_end_offset(), 62);
}

#[test]
fn a_corrupt_sealed_segment_after_the_recovery_point_drops_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), false);
    for i in 0..30 {
        log.append(&batch(2, 60, T0 + i), T0).unwrap();
    }
    drop(log);
    let batches = scan_dir(dir.path());
    let bases = segment_bases(dir.path());
    // Corrupt the second batch of the second segment.
    let victim = batches
        .iter()
        .filter(|b| b.segment_base_offset == bases[1])
        .nth(1)
        .unwrap();
    let path = log_path(dir.path(), bases[1]);
    let mut data = std::fs::read(&path).unwrap();
    data[victim.position as usize + 40] ^= 0x01;
    std::fs::write(&path, data).unwrap();

    let log = open(dir.path(), false);
    assert_eq!(log.segment_base_offsets(), &bases[..2]);
    assert_eq!(segment_bases(dir.path()), &bases[..2]);
    let expected: Vec<&OnDisk> = batches
        .iter()
        .take_while(|b| b.header.base_offset < victim.header.base_offset)
        .collect();
    assert_holds(&log, &expected);
}

#[test]
fn indexes_resumed_after_a_clean_open_equal_rebuilt_ones() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), false);
    for i in 0..6 {
        log.append(&batch(1 + i % 2, 30, T0 + (i as i64 * 13) % 40), T0)
            .unwrap();
    }
    log.close().unwrap();
    drop(log);
    let active = *segment_bases(dir.path()).last().unwrap();
    let index = std::fs::read(dir.path().join(format!("{active:020}.index"))).unwrap();
    assert!(
        index.len() >= 16,
        "the active segment should have index entries to resume from"
    );
    // Clean open: the active segment resumes from its last index entry.
    let log = open(dir.path(), true);
    assert!(log.recovery_report().is_none());
    for i in 0..30 {
        log.append(&batch(1 + i % 4, 50, T0 + (i as i64 * 17) % 60), T0)
            .unwrap();
    }
    log.close().unwrap();
    drop(log);
    let resumed = index_files(dir.path());

    for (file, _) in &resumed {
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    let log = open(dir.path(), false);
    assert_lookups_match(&log, &scan_dir(dir.path()));
    log.close().unwrap();
    drop(log);
    assert_eq!(index_files(dir.path()), resumed);
}

#[test]
fn a_later_segment_surviving_a_lost_tail_is_dropped() {
    // The page cache wrote a later segment but not the end of an earlier one:
    // the offsets would have a hole, so only the prefix before it is kept.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), false);
    for i in 0..30 {
        log.append(&batch(2, 60, T0 + i), T0).unwrap();
    }
    drop(log);
    let batches = scan_dir(dir.path());
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 3);
    let last_of_second = batches
        .iter()
        .rfind(|b| b.segment_base_offset == bases[1])
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(dir.path(), bases[1]))
        .unwrap();
    file.set_len(last_of_second.position).unwrap();
    drop(file);

    let log = open(dir.path(), false);
    assert_eq!(log.segment_base_offsets(), &bases[..2]);
    assert_eq!(segment_bases(dir.path()), &bases[..2]);
    let expected: Vec<&OnDisk> = batches
        .iter()
        .take_while(|b| b.header.base_offset < last_of_second.header.base_offset)
        .collect();
    assert_holds(&log, &expected);
}
