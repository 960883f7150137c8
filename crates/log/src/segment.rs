//! One segment: a `.log` file of batches starting at `base_offset`, with its
//! offset and time indexes in memory and in `.index` / `.timeindex` files.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::error::LogError;
use crate::index::SegmentIndexer;
use crate::storage::{self, OpenMode, Storage, StorageFile};

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// Read size when scanning a segment for recovery.
const SCAN_CHUNK: usize = 1 << 20;

/// Kafka's file name for a segment: the base offset as 20 zero-padded digits.
pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The base offset named by a `.log` file name, if it is one.
pub(crate) fn parse_log_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(LOG_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file handle and paths of a segment, shared with flushers and readers
/// that work outside the log's state lock.
#[derive(Debug)]
pub(crate) struct SegmentFiles {
    pub log: Arc<dyn StorageFile>,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub time_index_path: PathBuf,
    /// Set once the segment is sealed (no longer active) and its log and index
    /// files have been fsynced: recovery never needs to look at it again.
    pub durable_sealed: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    pub files: Arc<SegmentFiles>,
    /// Bytes of whole batches; readers never look beyond.
    pub size: u64,
    /// The offset after the segment's last record (`base_offset` if empty).
    pub next_offset: i64,
    pub indexer: SegmentIndexer,
    /// What `segment.ms` is measured from: the first append's time, or the
    /// first batch's max timestamp for a segment loaded from disk.
    pub roll_base_ms: Option<i64>,
    /// No longer the active segment; its index files are complete.
    pub sealed: bool,
}

/// What [`Segment::scan`] demands of consecutive batches' offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OffsetOrder {
    /// Each batch starts where the previous one ended: a segment written by
    /// appends only, whose unsynced tail may have been damaged.
    Contiguous,
    /// Each batch starts after the previous one ended: a durably sealed
    /// segment, which the cleaner may have rewritten with gaps.
    Increasing,
}

/// How far a scan of a segment got.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// End of the last valid batch.
    pub valid_end: u64,
    /// The offset after the last valid batch.
    pub next_offset: i64,
    /// Position and reason of the first invalid batch, if any.
    pub invalid: Option<(u64, String)>,
}

impl Segment {
    pub(crate) fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(file_name(base_offset, LOG_SUFFIX)),
            dir.join(file_name(base_offset, INDEX_SUFFIX)),
            dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
        )
    }

    /// Creates a new, empty segment (replacing any file of the same name).
    pub fn create(
        storage: &dyn Storage,
        dir: &Path,
        base_offset: i64,
    ) -> Result<Segment, LogError> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        let log = storage
            .open(&log_path, OpenMode::Truncate)
            .map_err(|e| LogError::io("creating segment", &log_path, e))?;
        for path in [&index_path, &time_index_path] {
            storage
                .remove(path)
                .map_err(|e| LogError::io("removing stale index", path, e))?;
        }
        Ok(Segment {
            base_offset,
            files: Arc::new(SegmentFiles {
                log,
                log_path,
                index_path,
                time_index_path,
                durable_sealed: AtomicBool::new(false),
            }),
            size: 0,
            next_offset: base_offset,
            indexer: SegmentIndexer::new(base_offset),
            roll_base_ms: None,
            sealed: false,
        })
    }

    /// Opens an existing segment's log file. Indexes start empty; the loader
    /// fills them from the index files or by scanning.
    pub fn open(storage: &dyn Storage, dir: &Path, base_offset: i64) -> Result<Segment, LogError> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        let log = storage
            .open(&log_path, OpenMode::Existing)
            .map_err(|e| LogError::io("opening segment", &log_path, e))?;
        let size = log
            .len()
            .map_err(|e| LogError::io("measuring segment", &log_path, e))?;
        Ok(Segment {
            base_offset,
            files: Arc::new(SegmentFiles {
                log,
                log_path,
                index_path,
                time_index_path,
                durable_sealed: AtomicBool::new(false),
            }),
            size,
            next_offset: base_offset,
            indexer: SegmentIndexer::new(base_offset),
            roll_base_ms: None,
            sealed: false,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Largest timestamp for time-based retention: the max batch timestamp,
    /// or the file's modification time when no batch carries a timestamp
    /// (Kafka does the same).
    pub fn largest_timestamp(&self) -> Result<i64, LogError> {
        if self.indexer.max_timestamp >= 0 {
            return Ok(self.indexer.max_timestamp);
        }
        let modified =
            self.files.log.modified_ms().map_err(|e| {
                LogError::io("reading modification time of", &self.files.log_path, e)
            })?;
        Ok(modified.unwrap_or(i64::MAX))
    }

    /// Writes both index files from memory (no fsync).
    pub fn write_index_files(
        &self,
        storage: &dyn Storage,
    ) -> Result<[Arc<dyn StorageFile>; 2], LogError> {
        let offset_file = storage::overwrite(
            storage,
            &self.files.index_path,
            &self.indexer.offset_index.to_bytes(),
        )
        .map_err(|e| LogError::io("writing", &self.files.index_path, e))?;
        let time_file = storage::overwrite(
            storage,
            &self.files.time_index_path,
            &self.indexer.time_index.to_bytes(),
        )
        .map_err(|e| LogError::io("writing", &self.files.time_index_path, e))?;
        Ok([offset_file, time_file])
    }

    /// Deletes the segment's files (a reader holding the log handle keeps
    /// reading the unlinked file).
    pub fn delete_files(&self, storage: &dyn Storage) -> Result<(), LogError> {
        // Indexes first: a leftover .log without indexes is rebuilt on open,
        // a leftover index without its .log is just removed.
        for path in [
            &self.files.index_path,
            &self.files.time_index_path,
            &self.files.log_path,
        ] {
            storage
                .remove(path)
                .map_err(|e| LogError::io("deleting segment file", path, e))?;
        }
        Ok(())
    }

    /// Scans batches from `position` to the end of the file, validating each
    /// one (framing, magic, CRC, counts, offsets continuing from
    /// `expected_offset` as `order` demands) and handing valid ones to
    /// `on_batch`. Stops at the first invalid or torn batch.
    pub fn scan(
        &self,
        position: u64,
        expected_offset: i64,
        order: OffsetOrder,
        mut on_batch: impl FnMut(&BatchHeader, u64),
    ) -> Result<ScanOutcome, LogError> {
        let file = &self.files.log;
        let file_len = file
            .len()
            .map_err(|e| LogError::io("measuring segment", &self.files.log_path, e))?;
        let mut outcome = ScanOutcome {
            valid_end: position,
            next_offset: expected_offset,
            invalid: None,
        };
        let mut buf = Vec::new();
        let mut chunk_len = SCAN_CHUNK;
        while outcome.valid_end < file_len {
            let chunk_start = outcome.valid_end;
            let want = (file_len - chunk_start).min(chunk_len as u64) as usize;
            buf.resize(want, 0);
            file.read_at(&mut buf, chunk_start)
                .map_err(|e| LogError::io("reading segment", &self.files.log_path, e))?;
            let more_in_file = chunk_start + (want as u64) < file_len;
            let mut used = 0usize;
            while used < buf.len() {
                let rest = &buf[used..];
                let batch_position = chunk_start + used as u64;
                let header = match BatchHeader::parse(rest) {
                    Ok(header) => header,
                    // Cut off by the end of the chunk, not of the file.
                    Err(_) if rest.len() < HEADER_LEN && more_in_file => break,
                    Err(e) => {
                        outcome.invalid = Some((batch_position, e.to_string()));
                        return Ok(outcome);
                    }
                };
                let size = header.total_size();
                if size > rest.len() {
                    if batch_position + size as u64 <= file_len {
                        if used == 0 {
                            chunk_len = size;
                        }
                        break;
                    }
                    outcome.invalid = Some((
                        batch_position,
                        format!(
                            "batch of {size} bytes is torn: the file ends {} bytes after its start",
                            file_len - batch_position
                        ),
                    ));
                    return Ok(outcome);
                }
                if let Err(e) = batch::validate_stored(&rest[..size]) {
                    outcome.invalid = Some((batch_position, e.to_string()));
                    return Ok(outcome);
                }
                let in_order = match order {
                    OffsetOrder::Contiguous => header.base_offset == outcome.next_offset,
                    OffsetOrder::Increasing => header.base_offset >= outcome.next_offset,
                };
                if !in_order {
                    outcome.invalid = Some((
                        batch_position,
                        format!(
                            "batch base offset {} does not continue from offset {}",
                            header.base_offset, outcome.next_offset
                        ),
                    ));
                    return Ok(outcome);
                }
                if header.last_offset().saturating_sub(self.base_offset) > i64::from(i32::MAX) {
                    outcome.invalid = Some((
                        batch_position,
                        format!(
                            "batch ends at offset {}, too far beyond the segment base {}",
                            header.last_offset(),
                            self.base_offset
                        ),
                    ));
                    return Ok(outcome);
                }
                on_batch(&header, batch_position);
                used += size;
                outcome.valid_end = batch_position + size as u64;
                outcome.next_offset = header.next_offset();
            }
        }
        Ok(outcome)
    }

    /// Reads the header of the batch at `position`.
    pub fn read_header(&self, position: u64) -> Result<BatchHeader, LogError> {
        read_header(&*self.files.log, &self.files.log_path, position)
    }
}

pub(crate) fn read_header(
    file: &dyn StorageFile,
    path: &Path,
    position: u64,
) -> Result<BatchHeader, LogError> {
    let mut buf = [0u8; HEADER_LEN];
    file.read_at(&mut buf, position)
        .map_err(|e| LogError::io("reading batch header in", path, e))?;
    BatchHeader::parse(&buf).map_err(|e| batch::at_position(e, position))
}

/// Finds the first batch at or after `position` (and before `end`) whose last
/// offset is `>= offset`, reading only headers.
pub(crate) fn find_batch(
    file: &dyn StorageFile,
    path: &Path,
    mut position: u64,
    end: u64,
    offset: i64,
) -> Result<Option<(u64, BatchHeader)>, LogError> {
    while position + (LOG_OVERHEAD as u64) <= end {
        let header = read_header(file, path, position)?;
        if header.last_offset() >= offset {
            return Ok(Some((position, header)));
        }
        position += header.total_size() as u64;
    }
    Ok(None)
}

/// Finds the first batch at or after `position` (and before `end`) whose max
/// timestamp is `>= timestamp` and whose last offset is `>= min_offset`.
pub(crate) fn find_batch_by_timestamp(
    file: &dyn StorageFile,
    path: &Path,
    mut position: u64,
    end: u64,
    timestamp: i64,
    min_offset: i64,
) -> Result<Option<(u64, BatchHeader)>, LogError> {
    while position + (LOG_OVERHEAD as u64) <= end {
        let header = read_header(file, path, position)?;
        if header.max_timestamp >= timestamp && header.last_offset() >= min_offset {
            return Ok(Some((position, header)));
        }
        position += header.total_size() as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(0, LOG_SUFFIX), "00000000000000000000.log");
        assert_eq!(file_name(1234, INDEX_SUFFIX), "00000000000000001234.index");
        assert_eq!(parse_log_file_name("00000000000000001234.log"), Some(1234));
        assert_eq!(parse_log_file_name("00000000000000001234.index"), None);
        assert_eq!(parse_log_file_name("1234.log"), None);
        assert_eq!(parse_log_file_name("0000000000000000123x.log"), None);
    }
}
