//! Transactions in one partition: the last stable offset, markers, and the
//! aborted transactions read_committed consumers skip — also after reopening.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_log::{LogConfig, LogError, PartitionLog};

fn batch(pid: i64, epoch: i16, seq: i32, transactional: bool) -> BytesMut {
    let record = Record {
        transactional,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: seq,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(format!("{pid}-{seq}"))),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf
}

fn aborted(log: &PartitionLog) -> Vec<(i64, i64, i64)> {
    log.aborted_transactions(0, i64::MAX)
        .iter()
        .map(|a| (a.producer_id, a.first_offset, a.last_offset))
        .collect()
}

#[test]
fn last_stable_offset_markers_and_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = PartitionLog::open(&path, LogConfig::default(), true).unwrap();
    assert_eq!(log.append(&batch(1, 0, 0, true), 1).unwrap().base_offset, 0);
    assert_eq!(log.append(&batch(1, 0, 1, true), 1).unwrap().base_offset, 1);
    assert_eq!(
        log.append(&batch(-1, -1, -1, false), 1)
            .unwrap()
            .base_offset,
        2
    );
    assert_eq!(
        log.last_stable_offset(),
        0,
        "producer 1's transaction is open from offset 0"
    );
    let marker = log.append_marker(1, 0, true, 0, 2).unwrap();
    assert_eq!(marker.base_offset, 3);
    assert_eq!(log.last_stable_offset(), 4, "everything decided");
    assert!(aborted(&log).is_empty());

    log.append(&batch(1, 0, 2, true), 3).unwrap(); // 4
    log.append(&batch(2, 0, 0, true), 3).unwrap(); // 5
    assert_eq!(log.last_stable_offset(), 4);
    assert_eq!(log.append_marker(1, 0, false, 0, 4).unwrap().base_offset, 6);
    assert_eq!(log.last_stable_offset(), 5, "producer 2 is still open");
    assert_eq!(aborted(&log), vec![(1, 4, 6)]);
    assert_eq!(
        log.aborted_transactions(0, 4),
        vec![],
        "ranges below the aborted one see none"
    );
    assert_eq!(
        log.aborted_transactions(6, 7).len(),
        1,
        "a range reaching the marker sees it"
    );
    log.append_marker(2, 0, true, 0, 5).unwrap(); // 7
    assert_eq!(log.last_stable_offset(), 8);

    // The marker is a control batch a Kafka client decodes as such.
    let read = log.read(3, 1 << 20, Some(4)).unwrap();
    let mut bytes = read.records.clone();
    let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
    assert!(set.records[0].control);
    assert_eq!(
        set.records[0].key.as_deref(),
        Some(&[0u8, 0, 0, 1][..]),
        "commit marker key"
    );

    // Fenced markers and client-written control batches are refused.
    log.append(&batch(3, 5, 0, true), 6).unwrap(); // 8
    assert!(matches!(
        log.append_marker(3, 4, true, 0, 7),
        Err(LogError::ProducerSequence(_))
    ));
    let mut control = BytesMut::from(&strom_log::control::marker_batch(9, 0, true, 0, 1)[..]);
    assert!(matches!(
        log.append(&control, 7),
        Err(LogError::InvalidRecords(_))
    ));
    control.clear();
    assert_eq!(log.last_stable_offset(), 8);

    // Clean reopen (snapshot) and reopen without a snapshot (rebuilt from the log).
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(&path, LogConfig::default(), true).unwrap();
    assert_eq!(log.last_stable_offset(), 8);
    assert_eq!(aborted(&log), vec![(1, 4, 6)]);
    drop(log);
    std::fs::remove_file(path.join("producer-state-snapshot")).unwrap();
    let log = PartitionLog::open(&path, LogConfig::default(), false).unwrap();
    assert_eq!(log.last_stable_offset(), 8);
    assert_eq!(aborted(&log), vec![(1, 4, 6)]);
    assert_eq!(log.append_marker(3, 5, false, 0, 9).unwrap().base_offset, 9);
    assert_eq!(log.last_stable_offset(), 10);
    assert_eq!(aborted(&log), vec![(1, 4, 6), (3, 8, 9)]);
}
