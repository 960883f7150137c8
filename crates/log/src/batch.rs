//! Kafka record batch (magic v2) headers: parsing, framing, validation and the
//! few in-place rewrites the log does (base offset, log-append time).
//!
//! Layout of a v2 batch (all big-endian):
//!
//! ```text
//! 0  baseOffset           i64   \ "log overhead": not covered by the CRC
//! 8  batchLength          i32   / (bytes after this field)
//! 12 partitionLeaderEpoch i32   not covered by the CRC either
//! 16 magic                i8    = 2
//! 17 crc                  u32   CRC-32C of bytes 21..end
//! 21 attributes           i16   bits 0-2 compression, 3 timestamp type,
//!                               4 transactional, 5 control
//! 23 lastOffsetDelta      i32
//! 27 baseTimestamp        i64
//! 35 maxTimestamp         i64
//! 43 producerId           i64
//! 51 producerEpoch        i16
//! 53 baseSequence         i32
//! 57 recordCount          i32
//! 61 records...
//! ```

use crate::error::LogError;
use crate::TimestampType;

/// Size of the v2 batch header, up to and including `recordCount`.
pub const HEADER_LEN: usize = 61;
/// `baseOffset` + `batchLength`: the bytes before the length-counted part.
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format this log stores.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_POS: usize = 0;
const LENGTH_POS: usize = 8;
const MAGIC_POS: usize = 16;
const CRC_POS: usize = 17;
/// The CRC covers everything from the attributes to the end of the batch.
const CRC_START: usize = 21;
const ATTRIBUTES_POS: usize = 21;
const BASE_TIMESTAMP_POS: usize = 27;
const MAX_TIMESTAMP_POS: usize = 35;

/// Attribute bits.
const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
/// Set by the cleaner (KIP-534): the base timestamp holds the delete horizon,
/// the time after which the batch's tombstones may be removed.
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;
/// Codecs Kafka defines: none, gzip, snappy, lz4, zstd.
const MAX_COMPRESSION_CODEC: i16 = 4;

/// The fixed-size header of a v2 record batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf`.
    ///
    /// Checks only what is needed to trust the layout: at least
    /// [`HEADER_LEN`] bytes, magic 2 and a batch length that covers the
    /// header. It checks neither the CRC nor that the whole batch is present
    /// (see [`validate`] and [`batches`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, LogError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(LogError::corrupt(
                0,
                format!(
                    "{} bytes are too few for a batch's offset and length",
                    buf.len()
                ),
            ));
        }
        let batch_length = read_i32(buf, LENGTH_POS);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(LogError::corrupt(
                0,
                format!("batch length {batch_length} is smaller than the v2 header"),
            ));
        }
        if buf.len() <= MAGIC_POS {
            return Err(LogError::corrupt(
                0,
                "batch truncated before its magic byte",
            ));
        }
        let magic = buf[MAGIC_POS] as i8;
        if magic != MAGIC_V2 {
            return Err(LogError::corrupt(
                0,
                format!("unsupported magic {magic} (only record batch v2 is stored)"),
            ));
        }
        if buf.len() < HEADER_LEN {
            return Err(LogError::corrupt(
                0,
                format!("{} bytes are too few for a v2 batch header", buf.len()),
            ));
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET_POS),
            batch_length,
            partition_leader_epoch: read_i32(buf, 12),
            magic,
            crc: read_u32(buf, CRC_POS),
            attributes: read_i16(buf, ATTRIBUTES_POS),
            last_offset_delta: read_i32(buf, 23),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_POS),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_POS),
            producer_id: read_i64(buf, 43),
            producer_epoch: read_i16(buf, 51),
            base_sequence: read_i32(buf, 53),
            record_count: read_i32(buf, 57),
        })
    }

    /// Bytes the whole batch occupies, log overhead included.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        // Saturating: a batch from the wire may claim any base offset (the
        // log rewrites it), and must not overflow on the way.
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// The delete horizon set by the cleaner (KIP-534), if any: the batch's
    /// tombstones may be removed from then on.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }
}

/// One batch found by [`batches`]: its header, its bytes and where it starts.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub header: BatchHeader,
    /// The whole batch, log overhead included.
    pub bytes: &'a [u8],
    /// Byte position of the batch within the scanned buffer.
    pub position: usize,
}

/// Iterates over the batches concatenated in `buf`, checking framing only
/// (length and magic, via [`BatchHeader::parse`]); call [`validate`] on each
/// batch for the CRC. After the first error the iterator ends.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        position: 0,
        failed: false,
    }
}

/// See [`batches`].
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

impl BatchIter<'_> {
    /// Byte position of the next batch (after iteration: how far the buffer
    /// was consumed by whole batches).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<Batch<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        let result = BatchHeader::parse(rest)
            .map_err(|e| at_position(e, self.position as u64))
            .and_then(|header| {
                let size = header.total_size();
                if size > rest.len() {
                    Err(LogError::corrupt(
                        self.position as u64,
                        format!(
                            "batch of {size} bytes is truncated: only {} bytes remain",
                            rest.len()
                        ),
                    ))
                } else {
                    Ok(Batch {
                        header,
                        bytes: &rest[..size],
                        position: self.position,
                    })
                }
            });
        match &result {
            Ok(batch) => self.position += batch.bytes.len(),
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

/// Validates one whole batch (exactly the bytes of one batch): framing, magic,
/// CRC-32C, `recordCount == lastOffsetDelta + 1` and a known compression codec.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, LogError> {
    let header = validate_stored(batch)?;
    if i64::from(header.record_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(LogError::InvalidRecords(format!(
            "record count {} does not match last offset delta {}",
            header.record_count, header.last_offset_delta
        )));
    }
    Ok(header)
}

/// [`validate`] for a batch read back from a segment: a batch the cleaner
/// rewrote keeps its offset range (base offset and last offset delta, as
/// Kafka does) but may hold fewer records than offsets.
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, LogError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_size() != batch.len() {
        return Err(LogError::corrupt(
            0,
            format!(
                "batch length field says {} bytes but {} were given",
                header.total_size(),
                batch.len()
            ),
        ));
    }
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(LogError::corrupt(
            0,
            format!(
                "CRC mismatch: stored {:#010x}, computed {actual:#010x}",
                header.crc
            ),
        ));
    }
    if header.record_count <= 0 {
        return Err(LogError::InvalidRecords(format!(
            "batch has record count {}",
            header.record_count
        )));
    }
    if header.last_offset_delta < 0
        || i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1
    {
        return Err(LogError::InvalidRecords(format!(
            "record count {} does not fit last offset delta {}",
            header.record_count, header.last_offset_delta
        )));
    }
    if header.attributes & COMPRESSION_MASK > MAX_COMPRESSION_CODEC {
        return Err(LogError::InvalidRecords(format!(
            "unknown compression codec {}",
            header.attributes & COMPRESSION_MASK
        )));
    }
    Ok(header)
}

/// CRC-32C of a whole batch's checksummed part (attributes to end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Overwrites the base offset (outside the CRC, so nothing else changes).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Overwrites the partition leader epoch (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as log-append time: sets attribute bit 3, base and max
/// timestamp to `now_ms`, and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = read_i16(batch, ATTRIBUTES_POS) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[BASE_TIMESTAMP_POS..BASE_TIMESTAMP_POS + 8].copy_from_slice(&now_ms.to_be_bytes());
    batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites the position of a [`LogError::CorruptBatch`] found in a sub-slice.
pub(crate) fn at_position(error: LogError, base: u64) -> LogError {
    match error {
        LogError::CorruptBatch { position, reason } => LogError::CorruptBatch {
            position: base + position,
            reason,
        },
        other => other,
    }
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built batch with `records` zero-length record bytes.
    fn batch(record_count: i32, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(payload);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(record_count - 1).to_be_bytes());
        b[27..35].copy_from_slice(&1000i64.to_be_bytes());
        b[35..43].copy_from_slice(&2000i64.to_be_bytes());
        b[57..61].copy_from_slice(&record_count.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn parse_and_validate_round_trip() {
        let b = batch(3, b"abc");
        let h = validate(&b).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 2000);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    }

    #[test]
    fn every_single_bit_flip_after_the_crc_field_is_detected() {
        let b = batch(1, b"payload");
        for byte in CRC_START..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[byte] ^= 1 << bit;
                assert!(validate(&c).is_err(), "flip at {byte}:{bit} went unnoticed");
            }
        }
    }

    #[test]
    fn wrong_magic_and_bad_lengths_are_corrupt() {
        let mut b = batch(1, b"x");
        b[16] = 1;
        assert!(matches!(validate(&b), Err(LogError::CorruptBatch { .. })));
        let b = batch(1, b"x");
        assert!(matches!(
            validate(&b[..b.len() - 1]),
            Err(LogError::CorruptBatch { .. })
        ));
        let mut b = batch(1, b"x");
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(validate(&b), Err(LogError::CorruptBatch { .. })));
    }

    #[test]
    fn record_count_must_match_offset_delta() {
        let mut b = batch(2, b"");
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate(&b), Err(LogError::InvalidRecords(_))));
    }

    #[test]
    fn iterator_reports_truncation_position() {
        let mut buf = batch(1, b"one");
        let first = buf.len();
        let second = batch(2, b"two");
        buf.extend_from_slice(&second[..second.len() - 2]);
        let mut it = batches(&buf);
        assert!(it.next().unwrap().is_ok());
        match it.next().unwrap() {
            Err(LogError::CorruptBatch { position, .. }) => assert_eq!(position, first as u64),
            other => panic!("expected corrupt batch, got {other:?}"),
        }
        assert!(it.next().is_none());
        assert_eq!(it.position(), first);
    }

    proptest::proptest! {
        /// The decoders never panic, whatever the bytes.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..200)) {
            for found in batches(&bytes).flatten() {
                let _ = validate(found.bytes);
            }
            let _ = BatchHeader::parse(&bytes);
            let _ = validate(&bytes);
        }

        /// Valid batches with a few bytes changed: anything but the base
        /// offset and the leader epoch (outside the CRC) is caught.
        #[test]
        fn damaged_batches_are_rejected(
            payload in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..64),
            damage in proptest::collection::btree_map(0usize..200, 1u8..=255, 1..4),
        ) {
            let good = batch(1, &payload);
            let mut bad = good.clone();
            for (&at, &xor) in &damage {
                let at = at % bad.len();
                bad[at] ^= xor;
            }
            let checked = (8..12).chain(16..good.len()).any(|i| bad[i] != good[i]);
            let result = validate(&bad);
            if checked {
                proptest::prop_assert!(result.is_err(), "damage {:?} went unnoticed", damage);
            }
        }
    }

    #[test]
    fn log_append_time_rewrite_keeps_crc_valid() {
        let mut b = batch(1, b"x");
        set_base_offset(&mut b, 42);
        set_log_append_time(&mut b, 777);
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.base_timestamp, 777);
        assert_eq!(h.max_timestamp, 777);
    }
}
