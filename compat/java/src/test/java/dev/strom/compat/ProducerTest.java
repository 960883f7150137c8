package dev.strom.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The Java producer: idempotent and transactional, as Kafka's own apps use it. */
class ProducerTest {
  static Stream<Target> targets() {
    return Targets.forClass(ProducerTest.class);
  }

  static final int PER_PARTITION = 100;

  static Stream<Arguments> targetsAndCodecs() {
    return targets().flatMap(t -> Stream.of("none", "gzip", "snappy", "lz4", "zstd").map(c -> Arguments.of(t, c)));
  }

  @ParameterizedTest(name = "{0} compression.type={1}")
  @MethodSource("targetsAndCodecs")
  void idempotentProducer(Target t, String codec) throws Exception {
    var obs = t.observe("producer.idempotent." + codec);
    String topic = Harness.unique("java-idem");
    // Recent timestamps: records far in the past would fall to retention
    // (7 days) in the middle of the test, on Kafka and Strom alike.
    long base = System.currentTimeMillis() - 60_000;
    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, topic, 3, Map.of());
      List<Future<RecordMetadata>> sent = new ArrayList<>();
      try (KafkaProducer<String, String> p = Clients.producer(t, Map.of(
          "enable.idempotence", true, "max.in.flight.requests.per.connection", 5, "linger.ms", 0,
          "compression.type", codec))) {
        for (int i = 0; i < 3 * PER_PARTITION; i++) {
          sent.add(p.send(new ProducerRecord<>(topic, i % 3, base + i, "k" + i, "v" + i)));
        }
        p.flush();
      }
      // Every send acknowledged at the next offset of its partition, in send order.
      Map<Integer, List<Long>> offsets = new TreeMap<>();
      for (int i = 0; i < sent.size(); i++) {
        RecordMetadata md = sent.get(i).get(30, TimeUnit.SECONDS);
        assertEquals(i % 3, md.partition());
        assertEquals(base + i, md.timestamp(), "CreateTime kept");
        offsets.computeIfAbsent(md.partition(), k -> new ArrayList<>()).add(md.offset());
      }
      for (var e : offsets.entrySet()) {
        assertEquals("0.." + (PER_PARTITION - 1), obs.put("acked.p" + e.getKey(), Clients.ranges(e.getValue())));
      }
      var tps = Clients.partitions(topic, 3);
      var read = Clients.readAll(t, tps, 3 * PER_PARTITION, Map.of("isolation.level", "read_committed"));
      Map<Integer, List<String>> values = new TreeMap<>();
      for (ConsumerRecord<String, String> r : read) {
        values.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r.value());
        assertEquals("k" + r.value().substring(1), r.key());
      }
      for (int part = 0; part < 3; part++) {
        List<String> want = new ArrayList<>();
        for (int i = part; i < 3 * PER_PARTITION; i += 3) want.add("v" + i);
        assertEquals(want, values.get(part), "partition " + part + " in send order, once each");
      }
      var latest = admin.listOffsets(Map.of(tps.get(0), OffsetSpec.latest())).all().get();
      assertEquals(PER_PARTITION, obs.put("hw.p0", latest.get(tps.get(0)).offset()));
      var maxTs = admin.listOffsets(Map.of(tps.get(1), OffsetSpec.maxTimestamp())).all().get().get(tps.get(1));
      obs.put("max-timestamp.p1", maxTs.offset() + "@base+" + (maxTs.timestamp() - base));
      // DescribeProducers: one idempotent producer, its last sequence.
      var producers = admin.describeProducers(List.of(tps.get(2))).partitionResult(tps.get(2)).get().activeProducers();
      assertEquals(1, obs.put("producers.p2", producers.size()));
      ProducerState ps = producers.get(0);
      assertEquals(PER_PARTITION - 1, obs.put("producers.p2.last-sequence", ps.lastSequence()));
      obs.put("producers.p2.epoch", ps.producerEpoch());
      obs.put("producers.p2.txn-start", ps.currentTransactionStartOffset());
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void transactionalProducer(Target t) throws Exception {
    var obs = t.observe("producer.transactional");
    String topic = Harness.unique("java-txn");
    String source = Harness.unique("java-txn-src");
    String group = Harness.unique("java-txn-group");
    String txnId = Harness.unique("java-txn-id");
    var tps = Clients.partitions(topic, 2);
    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, topic, 2, Map.of());
      Clients.createTopic(admin, source, 1, Map.of());
      Map<String, List<Long>> acked = new TreeMap<>();
      KafkaProducer<String, String> p = Clients.producer(t, Map.of("transactional.id", txnId, "transaction.timeout.ms", 60_000));
      try {
        p.initTransactions();
        // 1: 10 records per partition, committed.
        txn(p, topic, "c1", 10, acked, "txn1");
        p.commitTransaction();
        // 2: 5 per partition, aborted.
        txn(p, topic, "a2", 5, acked, "txn2");
        p.abortTransaction();
        // 3: 3 per partition and the source offset 42, committed.
        txn(p, topic, "c3", 3, acked, "txn3");
        p.sendOffsetsToTransaction(Map.of(new TopicPartition(source, 0), new OffsetAndMetadata(42, "meta")),
            new ConsumerGroupMetadata(group));
        p.commitTransaction();
        acked.forEach((k, v) -> obs.put("acked." + k, Clients.ranges(v)));
        // A control record (commit or abort marker) follows every transaction.
        assertEquals("0..9", Clients.ranges(acked.get("txn1.p0")));
        assertEquals("11..15", Clients.ranges(acked.get("txn2.p0")));
        assertEquals("17..19", Clients.ranges(acked.get("txn3.p1")));

        for (String iso : List.of("read_committed", "read_uncommitted")) {
          int expect = "read_committed".equals(iso) ? 26 : 36;
          var read = Clients.readAll(t, tps, expect, Map.of("isolation.level", iso));
          for (int part = 0; part < 2; part++) {
            final int pp = part;
            List<Long> offs = read.stream().filter(r -> r.partition() == pp).map(ConsumerRecord::offset).toList();
            List<String> vals = read.stream().filter(r -> r.partition() == pp).map(ConsumerRecord::value).toList();
            obs.put(iso + ".p" + part + ".offsets", Clients.ranges(offs));
            List<String> want = new ArrayList<>();
            for (String prefix : iso.equals("read_committed") ? List.of("c1:10", "c3:3") : List.of("c1:10", "a2:5", "c3:3")) {
              String[] pn = prefix.split(":");
              for (int i = 0; i < Integer.parseInt(pn[1]); i++) want.add(pn[0] + "-p" + part + "-" + i);
            }
            assertEquals(want, vals, iso + " partition " + part);
          }
        }
        var committed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        OffsetAndMetadata om = committed.get(new TopicPartition(source, 0));
        assertEquals("42/meta", obs.put("txn-offset-commit", om.offset() + "/" + om.metadata()));

        // 4: left open. The high watermark moves, the last stable offset stays.
        p.beginTransaction();
        p.send(new ProducerRecord<>(topic, 0, "k", "open")).get(30, TimeUnit.SECONDS);
        var hw = admin.listOffsets(Map.of(tps.get(0), OffsetSpec.latest())).all().get().get(tps.get(0)).offset();
        var lso = admin.listOffsets(Map.of(tps.get(0), OffsetSpec.latest()),
            new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get().get(tps.get(0)).offset();
        assertEquals(22L, obs.put("open.hw.p0", hw));
        assertEquals(21L, obs.put("open.lso.p0", lso));
        try (KafkaConsumer<String, String> c = Clients.consumer(t, Map.of("isolation.level", "read_committed"))) {
          Map<Integer, Long> ends = new TreeMap<>();
          c.endOffsets(tps).forEach((tp, end) -> ends.put(tp.partition(), end));
          obs.put("open.consumer-end-offsets", ends);
        }
        TransactionDescription td = admin.describeTransactions(List.of(txnId)).description(txnId).get();
        obs.put("open.describe.state", td.state());
        obs.put("open.describe.partitions", td.topicPartitions().stream().map(TopicPartition::partition).sorted().toList());
        obs.put("open.describe.timeout-ms", td.transactionTimeoutMs());
        boolean listed = admin.listTransactions().all().get().stream().anyMatch(l -> l.transactionalId().equals(txnId));
        assertTrue(obs.put("open.listed", listed));
        var producers = admin.describeProducers(List.of(tps.get(0))).partitionResult(tps.get(0)).get().activeProducers();
        obs.put("open.producer.txn-start", producers.get(0).currentTransactionStartOffset());

        // A second producer with the same transactional.id fences the first
        // and aborts its open transaction.
        try (KafkaProducer<String, String> p2 = Clients.producer(t, Map.of("transactional.id", txnId))) {
          p2.initTransactions();
          obs.error("fenced.commit", p::commitTransaction);
          var after = admin.listOffsets(Map.of(tps.get(0), OffsetSpec.latest()),
              new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get().get(tps.get(0)).offset();
          assertEquals(23L, obs.put("fenced.lso.p0", after), "the open transaction aborted: record + marker");
          td = admin.describeTransactions(List.of(txnId)).description(txnId).get();
          obs.put("fenced.describe.state", td.state());
          obs.put("fenced.describe.epoch-bumped", td.producerEpoch() > 0);
        }
      } finally {
        p.close(java.time.Duration.ofSeconds(5));
      }
      // No record of an aborted transaction is ever visible to read_committed.
      var read = Clients.readAll(t, tps, 26, Map.of("isolation.level", "read_committed"));
      assertTrue(read.stream().noneMatch(r -> r.value().startsWith("a2") || r.value().equals("open")));
    }
  }

  private static void txn(KafkaProducer<String, String> p, String topic, String prefix, int n,
      Map<String, List<Long>> acked, String name) throws Exception {
    p.beginTransaction();
    List<Future<RecordMetadata>> fs = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      for (int part = 0; part < 2; part++) {
        fs.add(p.send(new ProducerRecord<>(topic, part, "k" + i, prefix + "-p" + part + "-" + i)));
      }
    }
    p.flush();
    for (Future<RecordMetadata> f : fs) {
      RecordMetadata md = f.get(30, TimeUnit.SECONDS);
      acked.computeIfAbsent(name + ".p" + md.partition(), k -> new ArrayList<>()).add(md.offset());
    }
  }
}
