//! Transaction markers: the control batches a transaction coordinator
//! writes to end a transaction in a partition (Kafka's `EndTransactionMarker`).
//!
//! A marker is a v2 batch with the transactional and control attributes,
//! no sequence, and one record whose key is `version: i16 = 0, type: i16`
//! (0 = abort, 1 = commit) and whose value is `version: i16 = 0,
//! coordinator_epoch: i32`.

use crate::batch::{self, BatchHeader, HEADER_LEN};

const TRANSACTIONAL_AND_CONTROL: i16 = 0x10 | 0x20;
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

fn put_varint(out: &mut Vec<u8>, value: i64) {
    // Kafka's varints are zig-zag encoded.
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// A whole marker batch (base offset 0; the log assigns the real one).
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let key = [
        0i16.to_be_bytes(),
        if commit { COMMIT } else { ABORT }.to_be_bytes(),
    ]
    .concat();
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut body = vec![0u8]; // record attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, key.len() as i64);
    body.extend_from_slice(&key);
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(&value);
    put_varint(&mut body, 0); // headers
    let mut record = Vec::new();
    put_varint(&mut record, body.len() as i64);
    record.extend_from_slice(&body);

    let mut b = Vec::with_capacity(HEADER_LEN + record.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((HEADER_LEN - 12 + record.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&TRANSACTIONAL_AND_CONTROL.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // record count
    b.extend_from_slice(&record);
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// For a control batch: `Some(true)` for a commit marker, `Some(false)` for
/// an abort; None if it is not a (readable, uncompressed) marker.
pub fn marker_type(header: &BatchHeader, bytes: &[u8]) -> Option<bool> {
    if !header.is_control() || header.compression() != 0 {
        return None;
    }
    let mut pos = HEADER_LEN;
    let _length = get_varint(bytes, &mut pos)?;
    pos += 1; // attributes
    get_varint(bytes, &mut pos)?; // timestamp delta
    get_varint(bytes, &mut pos)?; // offset delta
    let key_len = get_varint(bytes, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = bytes.get(pos..pos + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        COMMIT => Some(true),
        ABORT => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_valid_batches_and_read_back() {
        for commit in [true, false] {
            let bytes = marker_batch(42, 3, commit, 7, 1_700_000_000_000);
            let header = batch::validate(&bytes).expect("a valid v2 batch");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (42, 3, -1)
            );
            assert_eq!(header.record_count, 1);
            assert_eq!(marker_type(&header, &bytes), Some(commit));
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN / 2,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut pos = 0;
            assert_eq!(get_varint(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
    }
}
