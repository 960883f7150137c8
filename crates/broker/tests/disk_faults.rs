//! A full disk and I/O errors under a real broker and a real client
//! (rdkafka): produce gets KAFKA_STORAGE_ERROR and no acknowledgement for
//! what was not written, the broker stays up and serves reads, writes
//! resume once the disk works again, and after a power loss every
//! acknowledged record is there, intact.
//!
//! Faults are injected through the partitions' storage (`SimStorage`); the
//! last test fills a real, size-limited tmpfs (it needs root; with
//! `STROM_FULL=1` a failed mount fails the test, otherwise it is skipped).

mod common;

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_log::sim::{IoFaults, SimStorage};
use strom_testkit::TestBroker;

/// acks=all, no retries and no idempotence: the broker's error reaches us.
fn plain_producer(bootstrap: &str) -> FutureProducer {
    producer(
        bootstrap,
        &[
            ("enable.idempotence", "false"),
            ("retries", "0"),
            ("message.timeout.ms", "10000"),
        ],
    )
}

fn try_send(producer: &FutureProducer, topic: &str, value: &[u8]) -> Result<i64, KafkaError> {
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(0).payload(value);
    rt().block_on(producer.send(record, TIMEOUT))
        .map(|d| d.offset)
        .map_err(|(e, _)| e)
}

fn is_storage_error(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError)
    )
}

fn value(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("record-{i}:").into_bytes();
    v.resize(len, b'x');
    v
}

/// Every record of partition 0 from the beginning: (offset, value).
fn read_all(bootstrap: &str, topic: &str, n: usize) -> Vec<(i64, Vec<u8>)> {
    let consumer = consumer_from(bootstrap, topic, &[0], Offset::Beginning);
    let got: Vec<(i64, Vec<u8>)> = consume(&consumer, n)
        .iter()
        .map(|m| (m.offset(), m.payload().unwrap_or_default().to_vec()))
        .collect();
    let (_, high) = consumer.fetch_watermarks(topic, 0, TIMEOUT).unwrap();
    assert_eq!(high as usize, n, "high watermark");
    got
}

fn sim_broker(disk: &Arc<SimStorage>, data_dir: &Path) -> TestBroker {
    let disk = Arc::clone(disk);
    let data_dir = data_dir.to_path_buf();
    TestBroker::start_with(move |c| {
        c.data_dir = data_dir;
        c.partition_storage = Some(disk);
        c.log_offline_retry = Duration::from_millis(100);
    })
}

/// A power loss now, then a broker started on what survived: the
/// partitions' simulated disk after the loss, and the metadata log (fsynced
/// on the real disk) as it was, without the clean-shutdown marker.
fn restart_after_power_loss(broker: TestBroker, disk: &SimStorage, data_dir: &Path) -> TestBroker {
    let survivor = disk.power_loss();
    let aside = data_dir.with_extension("aside");
    copy_dir(data_dir, &aside);
    drop(broker);
    std::fs::remove_dir_all(data_dir).unwrap();
    copy_dir(&aside, data_dir);
    sim_broker(&survivor, data_dir)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != strom_log::CLEAN_SHUTDOWN_MARKER {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_full_disk_refuses_produce_serves_reads_and_resumes() {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let disk = SimStorage::new(7);
    let broker = sim_broker(&disk, &data_dir);
    let topic = "full-disk";
    create_topic(&broker.bootstrap(), topic, 1, &[("flush.messages", "1")]);
    let producer = plain_producer(&broker.bootstrap());
    let mut expected = Vec::new();
    for i in 0..20 {
        let v = value(i, 200);
        assert_eq!(try_send(&producer, topic, &v).unwrap(), i as i64);
        expected.push((i as i64, v));
    }

    disk.set_capacity(Some(disk.used_bytes() + 100));
    let mut refused = 0;
    for i in 20..30 {
        let e = try_send(&producer, topic, &value(i, 300)).expect_err("no space, no ack");
        assert!(is_storage_error(&e), "got {e:?}");
        refused += 1;
    }
    // The broker is up and serves what it has.
    assert_eq!(read_all(&broker.bootstrap(), topic, 20), expected);

    disk.set_capacity(None);
    for i in 30..40 {
        let v = value(i, 300);
        let offset = try_send(&producer, topic, &v).unwrap();
        assert_eq!(offset, expected.len() as i64, "offsets go on without a gap");
        expected.push((offset, v));
    }
    assert_eq!(read_all(&broker.bootstrap(), topic, 30), expected);

    let again = restart_after_power_loss(broker, &disk, &data_dir);
    assert_eq!(read_all(&again.bootstrap(), topic, 30), expected);
    println!("{refused} produce requests refused with KAFKA_STORAGE_ERROR while full, 0 acknowledged records lost");
}

#[test]
fn a_failed_fsync_takes_the_partition_offline_until_the_disk_works() {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let disk = SimStorage::new(8);
    let broker = sim_broker(&disk, &data_dir);
    let topic = "eio";
    create_topic(&broker.bootstrap(), topic, 1, &[("flush.messages", "1")]);
    let producer = plain_producer(&broker.bootstrap());
    let mut expected = Vec::new();
    for i in 0..5 {
        let v = value(i, 100);
        try_send(&producer, topic, &v).unwrap();
        expected.push((i as i64, v));
    }

    disk.set_faults(IoFaults {
        syncs: true,
        ..IoFaults::default()
    });
    let e = try_send(&producer, topic, &value(5, 100)).expect_err("not durable, no ack");
    assert!(is_storage_error(&e), "got {e:?}");
    disk.set_faults(IoFaults::default());
    // Reads go on (the unsynced record may be visible until the reopen).
    let consumer = consumer_from(&broker.bootstrap(), topic, &[0], Offset::Beginning);
    let first: Vec<Vec<u8>> = consume(&consumer, 5)
        .iter()
        .map(|m| m.payload().unwrap().to_vec())
        .collect();
    assert_eq!(
        first,
        expected.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()
    );

    // The broker reopens the partition (log.offline.retry.ms = 100) and
    // writes resume where the durable log ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    let offset = loop {
        match try_send(&producer, topic, &value(6, 100)) {
            Ok(offset) => break offset,
            Err(e) if is_storage_error(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("still failing: {e:?}"),
        }
    };
    assert_eq!(offset, 5, "the record whose fsync failed was cut");
    expected.push((5, value(6, 100)));
    assert_eq!(read_all(&broker.bootstrap(), topic, 6), expected);

    let again = restart_after_power_loss(broker, &disk, &data_dir);
    assert_eq!(read_all(&again.bootstrap(), topic, 6), expected);
}

/// A real filesystem that fills up: tmpfs with a size limit.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_real_filesystem_fills_up_and_recovers() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&scratch.path().join("small"), "6m") else {
        assert!(
            std::env::var("STROM_FULL").is_err(),
            "STROM_FULL=1 needs a tmpfs mount (root)"
        );
        println!("skipped: cannot mount a tmpfs here (not root?)");
        return;
    };
    let data_dir = fs.0.join("data");
    let ballast = fs.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let broker = {
        let data_dir = data_dir.clone();
        TestBroker::start_with(move |c| c.data_dir = data_dir)
    };
    let topic = "tmpfs";
    create_topic(&broker.bootstrap(), topic, 1, &[("flush.messages", "1")]);
    let producer = plain_producer(&broker.bootstrap());
    let mut expected = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        let v = value(i, 64 * 1024);
        match try_send(&producer, topic, &v) {
            Ok(offset) => expected.push((offset, v)),
            Err(e) if is_storage_error(&e) => {
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert!(refused > 0, "the filesystem never filled up");
    let acked = expected.len();
    assert_eq!(read_all(&broker.bootstrap(), topic, acked), expected);

    std::fs::remove_file(&ballast).unwrap();
    for i in 0..5 {
        let v = value(1000 + i, 64 * 1024);
        let offset = try_send(&producer, topic, &v).expect("space is back");
        assert_eq!(offset, expected.len() as i64);
        expected.push((offset, v));
    }
    broker.restart();
    assert_eq!(
        read_all(&broker.bootstrap(), topic, expected.len()),
        expected
    );
    println!(
        "tmpfs of 6 MiB: {acked} records of 64 KiB acknowledged before it filled, {refused} refused with KAFKA_STORAGE_ERROR, 5 more after freeing 1 MiB, all intact after a restart"
    );
    drop(broker);
}
