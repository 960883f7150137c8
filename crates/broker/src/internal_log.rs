//! Keyed records in internal logs (`__cluster_metadata`, `__consumer_offsets`):
//! encoding a batch to append, and reading every record back at start-up.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_log::{LogError, PartitionLog};

/// A key and a value; a `None` value is a tombstone.
pub type KeyedRecord = (Vec<u8>, Option<Vec<u8>>);

/// One uncompressed v2 batch of keyed records.
pub fn encode_batch(records: &[KeyedRecord], now_ms: i64) -> Result<BytesMut, String> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms,
            key: Some(Bytes::copy_from_slice(key)),
            value: value.as_ref().map(|v| Bytes::copy_from_slice(v)),
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
    .map_err(|e| format!("encoding internal records: {e:#}"))?;
    Ok(buf)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("decoding records at offset {offset}: {message}")]
    Decode { offset: i64, message: String },
}

/// Calls `apply` with every record from the log start to the log end, in order.
pub fn for_each_record(log: &PartitionLog, mut apply: impl FnMut(Record)) -> Result<(), ReadError> {
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 1 << 20, None)?;
        if read.records.is_empty() {
            break;
        }
        let mut buf = read.records.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| ReadError::Decode {
            offset,
            message: format!("{e:#}"),
        })?;
        let before = offset;
        for record in sets.into_iter().flat_map(|s| s.records) {
            if record.offset < offset {
                continue;
            }
            offset = record.offset + 1;
            apply(record);
        }
        if offset == before {
            break;
        }
    }
    Ok(())
}
