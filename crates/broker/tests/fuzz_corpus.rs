//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/*`) and the
//! regression inputs of fixed crashes (`fuzz/regressions/TARGET/*`) through
//! the fuzz target bodies, on stable Rust: no panic, and memory committed
//! within `strom_broker::fuzzing::commit_bound` (checked by the targets).
//!
//! The tests take turns (`SERIAL`): the allocation counters are process-wide.
//! `cargo test -p strom-broker --test fuzz_corpus -- --ignored` rewrites the
//! seed inputs (`seed-*`) the corpus started from.

use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const TARGETS: [(&str, Target); 4] = [
    ("framing", strom_broker::fuzzing::frames),
    ("request", strom_broker::fuzzing::request),
    ("record_batch", strom_log::fuzzing::record_batch),
    ("recovery", strom_log::fuzzing::recovery),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn replays_the_committed_fuzz_corpus() {
    let _serial = serial();
    let started = std::time::Instant::now();
    let mut total = 0;
    for (name, target) in TARGETS {
        let mut count = 0;
        for kind in ["corpus", "regressions"] {
            for path in inputs(&fuzz_dir().join(kind).join(name)) {
                let data = std::fs::read(&path).unwrap();
                let result = std::panic::catch_unwind(|| target(&data));
                assert!(result.is_ok(), "{name}: {} fails", path.display());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for {name}");
        println!("{name}: {count} inputs");
        total += count;
    }
    println!("{total} inputs in {:.1} s", started.elapsed().as_secs_f64());
}

/// Regressions found by fuzzing, kept here too so that they are readable.
#[test]
fn a_huge_header_count_in_a_record_commits_no_memory() {
    let _serial = serial();
    // One record claiming 2^30 headers: kafka-protocol's decoder reserves a
    // hash map for them (touching its control bytes); Strom's must not.
    let mut record = vec![0x14u8, 0]; // length 10 (zigzag), attributes
    record.extend([0, 0]); // timestamp delta, offset delta
    record.extend([1, 1]); // key null, value null
    record.extend([0x80, 0x80, 0x80, 0x80, 0x08]); // varint 2^30 headers (zigzag)
    let batch = batch_with_records(&record, 1, 0);
    let before = strom_broker::alloc::stats();
    assert!(strom_log::records::check_keys(&batch).is_err());
    assert!(strom_log::records::offsets_and_timestamps(&batch).is_err());
    let after = strom_broker::alloc::stats();
    assert!(after.peak_committed.saturating_sub(before.committed) < 1 << 20);
}

#[test]
fn a_decompression_bomb_is_refused_without_inflating_it() {
    let _serial = serial();
    use std::io::Write;
    // 100 MiB of zeros compress to ~100 KiB of gzip.
    let mut gz = flate2_writer();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        gz.write_all(&zeros).unwrap();
    }
    let compressed = gz.finish().unwrap();
    let batch = batch_with_records(&compressed, 1, 1);
    let before = strom_broker::alloc::stats();
    let e = strom_log::records::check_keys(&batch).unwrap_err();
    assert!(e.contains("decompress to more than"), "{e}");
    let after = strom_broker::alloc::stats();
    let committed = after.peak_committed.saturating_sub(before.committed);
    assert!(
        committed < 2 * strom_log::records::MAX_DECOMPRESSED_BYTES,
        "{committed} bytes committed"
    );
}

fn flate2_writer() -> kafka_gzip::GzWriter {
    kafka_gzip::GzWriter::new()
}

/// gzip through kafka-protocol's compressor (the broker has no direct
/// flate2 dependency).
mod kafka_gzip {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::compression::{Compressor, Gzip};

    pub struct GzWriter(Vec<u8>);

    impl GzWriter {
        pub fn new() -> Self {
            GzWriter(Vec::new())
        }
        pub fn finish(self) -> std::io::Result<Vec<u8>> {
            let mut out = BytesMut::new();
            Gzip::compress(&mut out, |b: &mut BytesMut| {
                b.put_slice(&self.0);
                Ok(())
            })
            .map_err(std::io::Error::other)?;
            Ok(out.to_vec())
        }
    }

    impl std::io::Write for GzWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

/// A v2 batch around a records section (already compressed if `codec` > 0).
fn batch_with_records(section: &[u8], records: i32, codec: i16) -> Vec<u8> {
    use strom_log::batch::{compute_crc, HEADER_LEN};
    let mut b = vec![0u8; HEADER_LEN];
    b.extend_from_slice(section);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[21..23].copy_from_slice(&codec.to_be_bytes());
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus"]
fn write_seed_corpus() {
    use strom_broker::handlers::SUPPORTED;
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    // request: every API and version, an empty body after a header.
    for (key, min, max) in SUPPORTED {
        for version in *min..=*max {
            let flexible = key.request_header_version(version) >= 2;
            let mut rest = vec![0, 0, 0, 7, 0xff, 0xff]; // correlation id, null client id
            if flexible {
                rest.push(0); // no tagged fields
            }
            rest.extend([0u8; 24]);
            let input = strom_broker::fuzzing::request_input(*key, version, &rest);
            write("request", &format!("{key:?}-v{version}"), &input);
        }
    }
    // framing: a few frames, then a partial one.
    let mut stream = vec![3, 1, 7, 64, 255, 2, 9, 100, 13];
    for size in [0u32, 8, 300, 5000] {
        stream.extend(size.to_be_bytes());
        stream.extend((0..size).map(|i| i as u8));
    }
    stream.extend(9000u32.to_be_bytes());
    stream.extend([1, 2, 3]);
    write("framing", "frames", &stream);
    // record_batch: one batch per codec, and the regressions' shapes.
    let record = [0x0cu8, 0, 0, 0, 1, 1, 0];
    write("record_batch", "plain", &batch_with_records(&record, 1, 0));
    let mut two = batch_with_records(&record, 1, 0);
    two.extend(batch_with_records(&record, 1, 0));
    write("record_batch", "two", &two);
    let mut gz = flate2_writer();
    std::io::Write::write_all(&mut gz, &record).unwrap();
    write(
        "record_batch",
        "gzip",
        &batch_with_records(&gz.finish().unwrap(), 1, 1),
    );
    // recovery: a small log with rolls, closed (clean) and not.
    let disk = strom_log::sim::SimStorage::new(1);
    let dir = Path::new("/seed/t-0");
    let config = strom_log::LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 64,
        segment_ms: None,
        retention_ms: None,
        ..Default::default()
    };
    let log = strom_log::PartitionLog::open_with_storage(dir, config, false, disk.clone()).unwrap();
    for i in 0..12 {
        let mut b = batch_with_records(&record, 1, 0);
        strom_log::batch::set_base_offset(&mut b, 0);
        log.append(&b, 1_700_000_000_000 + i).unwrap();
        if i % 5 == 4 {
            log.flush().unwrap();
        }
    }
    let unclean = strom_log::fuzzing::recovery_input(&*disk, dir, false);
    write("recovery", "unclean", &unclean);
    log.close().unwrap();
    let clean = strom_log::fuzzing::recovery_input(&*disk, dir, true);
    write("recovery", "clean", &clean);
}
