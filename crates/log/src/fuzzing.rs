//! Bodies of the log's fuzz targets (`fuzz/` runs them under cargo-fuzz;
//! `crates/broker/tests/fuzz_corpus.rs` replays the committed corpus with
//! plain `cargo test`). Each takes arbitrary bytes and panics only on a bug.
//!
//! - [`record_batch`]: batch framing and validation ([`crate::batch`]) and
//!   record-level decoding ([`crate::records`]), as produce, ListOffsets and
//!   the cleaner use them, on bytes from a client or from disk;
//! - [`recovery`]: opening a partition directory whose files (segments,
//!   indexes, checkpoints, producer-state snapshot, cleaner files) are made
//!   of the input, after a clean or an unclean shutdown, then reading it
//!   all and appending.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader};
use crate::sim::SimStorage;
use crate::storage::{OpenMode, Storage};
use crate::{LogConfig, PartitionLog};

/// Record batches from a client or a disk: whatever parses, validates or
/// decodes must be self-consistent; nothing may panic.
pub fn record_batch(data: &[u8]) {
    let mut end = 0;
    for found in batch::batches(data) {
        let Ok(found) = found else { break };
        assert_eq!(found.position, end, "batches are contiguous");
        end = found.position + found.bytes.len();
        assert_eq!(found.bytes.len(), found.header.total_size());
        let validated = batch::validate(found.bytes);
        if let Ok(header) = &validated {
            assert!(header.record_count >= 0 && header.last_offset() >= header.base_offset);
            assert_eq!(batch::compute_crc(found.bytes), header.crc);
        }
        let _ = batch::validate_stored(found.bytes);
        let _ = crate::producer_state::last_sequence(&found.header);
        if let Ok(check) = crate::records::check_keys(found.bytes) {
            assert!(check.keyless <= check.records);
            assert_eq!(check.records, found.header.record_count.max(0) as usize);
        }
        if let Ok(records) = crate::records::offsets_and_timestamps(found.bytes) {
            assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
        }
        let _ = crate::control::marker_type(&found.header, found.bytes);
    }
    let _ = BatchHeader::parse(data);
}

const DIR: &str = "/fuzz/t-0";

/// The files a [`recovery`] input describes, by name.
pub fn recovery_files(data: &[u8]) -> (bool, Vec<(String, Vec<u8>)>) {
    // data[0]: bit 0 = clean shutdown. Then entries: kind (1 byte), base
    // offset (1 byte, for segment files), length (2 bytes), bytes.
    let Some((&flags, mut rest)) = data.split_first() else {
        return (false, Vec::new());
    };
    let mut files = Vec::new();
    while rest.len() >= 4 {
        let (kind, base) = (rest[0], i64::from(rest[1]) * 16);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let bytes = rest[4..4 + len].to_vec();
        rest = &rest[4 + len..];
        let name = match kind % 10 {
            0 => format!("{base:020}.log"),
            1 => format!("{base:020}.index"),
            2 => format!("{base:020}.timeindex"),
            3 => "recovery-point-offset-checkpoint".into(),
            4 => "log-start-offset-checkpoint".into(),
            5 => "cleaner-offset-checkpoint".into(),
            6 => "producer-state-snapshot".into(),
            7 => "cleaner-swap-manifest".into(),
            8 => format!("{base:020}.log.cleaned"),
            _ => format!("{base:020}.index.cleaned"),
        };
        files.push((name, bytes));
    }
    (flags & 1 == 1, files)
}

/// The [`recovery`] input that recreates the files of `dir` in `storage`.
pub fn recovery_input(storage: &dyn Storage, dir: &Path, clean: bool) -> Vec<u8> {
    let mut out = vec![u8::from(clean)];
    let mut names = storage.list(dir).unwrap_or_default();
    names.sort();
    for name in names {
        let bytes = storage
            .read_file(&dir.join(&name))
            .ok()
            .flatten()
            .unwrap_or_default();
        let base = name
            .split('.')
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        let kind = if name.ends_with(".log") {
            0
        } else if name.ends_with(".index") {
            1
        } else if name.ends_with(".timeindex") {
            2
        } else {
            match name.as_str() {
                "recovery-point-offset-checkpoint" => 3,
                "log-start-offset-checkpoint" => 4,
                "cleaner-offset-checkpoint" => 5,
                "producer-state-snapshot" => 6,
                "cleaner-swap-manifest" => 7,
                _ => continue,
            }
        };
        if base % 16 != 0 || base / 16 > 255 || bytes.len() > usize::from(u16::MAX) {
            continue;
        }
        out.push(kind);
        out.push((base / 16) as u8);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        segment_ms: None,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Recovery on a partition directory made of the input: it either fails
/// cleanly or yields a log that serves only valid batches at increasing
/// offsets, takes an append at its end, and recovers again to the same end.
pub fn recovery(data: &[u8]) {
    let (clean, files) = recovery_files(data);
    let storage = SimStorage::new(0);
    let dir = PathBuf::from(DIR);
    storage.create_dir_all(&dir).expect("a directory");
    for (name, bytes) in files {
        let file = storage
            .open(&dir.join(name), OpenMode::Truncate)
            .expect("a file");
        file.append(&bytes).expect("a write");
        file.sync().expect("an fsync");
    }
    storage.sync_dir(&dir).expect("an fsync");
    let shared = Arc::clone(&storage) as Arc<dyn Storage>;
    let Ok(log) = PartitionLog::open_with_storage(&dir, small_config(), clean, shared) else {
        return;
    };
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(start <= end, "log start {start} beyond log end {end}");
    let mut offset = start;
    while offset < end {
        let Ok(read) = log.read(offset, 4096, None) else {
            // A clean start trusts sealed segments and their indexes; what
            // it cannot read it reports as an error.
            assert!(clean, "an unclean recovery served an unreadable log");
            return;
        };
        if read.records.is_empty() {
            break;
        }
        let mut next = offset;
        for found in batch::batches(&read.records) {
            let found = found.expect("a served batch parses");
            if !clean {
                batch::validate_stored(found.bytes).expect("a served batch is valid");
            }
            if found.header.next_offset() <= next {
                // A clean start trusts what lies below the last index entry
                // (as Kafka does): a batch corrupted on disk since can only
                // be caught by an unclean start, which validates.
                assert!(clean, "an unclean recovery served offsets going backwards");
                return;
            }
            next = found.header.next_offset();
        }
        offset = next;
    }
    if !clean {
        let mut appended = one_record_batch();
        let info = log.append(&appended, 0).expect("an append after recovery");
        assert_eq!(info.base_offset, end);
        batch::set_base_offset(&mut appended, end);
        log.flush().expect("a flush");
        drop(log);
        let shared = Arc::clone(&storage) as Arc<dyn Storage>;
        let again = PartitionLog::open_with_storage(&dir, small_config(), false, shared)
            .expect("a second recovery");
        assert_eq!(
            again.log_end_offset(),
            end + 1,
            "recovery is not idempotent"
        );
    }
}

/// A minimal valid v2 batch with one empty record (base offset 0).
fn one_record_batch() -> Vec<u8> {
    let record = [0x0cu8, 0, 0, 0, 1, 1, 0];
    let mut b = vec![0u8; batch::HEADER_LEN];
    b.extend_from_slice(&record);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}
