package dev.strom.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.ListConsumerGroupsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The Java admin client: topics, configs, partitions, groups, offsets, records deletion. */
class AdminTest {
  static Stream<Target> targets() {
    return Targets.forClass(AdminTest.class);
  }

  /** Topic configs whose value, source and flags are compared with Kafka's. */
  static final List<String> TOPIC_CONFIGS = List.of(
      "cleanup.policy", "compression.type", "delete.retention.ms", "file.delete.delay.ms",
      "flush.messages", "flush.ms", "max.compaction.lag.ms", "max.message.bytes",
      "message.timestamp.type", "message.timestamp.before.max.ms", "message.timestamp.after.max.ms",
      "min.cleanable.dirty.ratio", "min.compaction.lag.ms", "min.insync.replicas",
      "retention.bytes", "retention.ms", "segment.bytes", "segment.index.bytes", "segment.ms",
      "segment.jitter.ms", "unclean.leader.election.enable", "index.interval.bytes",
      "preallocate", "local.retention.ms", "local.retention.bytes", "remote.storage.enable");

  /** Broker configs compared with Kafka's defaults. */
  static final List<String> BROKER_CONFIGS = List.of(
      "auto.create.topics.enable", "num.partitions", "default.replication.factor",
      "log.retention.hours", "log.retention.ms", "log.retention.bytes", "log.segment.bytes",
      "log.cleanup.policy", "message.max.bytes", "min.insync.replicas",
      "group.initial.rebalance.delay.ms", "group.min.session.timeout.ms", "group.max.session.timeout.ms",
      "offsets.retention.minutes", "transaction.max.timeout.ms", "delete.topic.enable",
      "compression.type", "log.message.timestamp.type", "socket.request.max.bytes",
      "offsets.topic.num.partitions", "transaction.state.log.num.partitions", "broker.id", "node.id");

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void topicsAndPartitions(Target t) throws Exception {
    var obs = t.observe("admin.topics");
    String topic = Harness.unique("java-admin");
    try (Admin admin = t.admin()) {
      admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)), new CreateTopicsOptions().validateOnly(true)).all().get();
      assertEquals(false, obs.put("validate-only.created", admin.listTopics().names().get().contains(topic)));
      var created = admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1).configs(Map.of("retention.ms", "3600000"))));
      created.all().get();
      obs.put("create.num-partitions", created.numPartitions(topic).get());
      obs.put("create.replication-factor", created.replicationFactor(topic).get());
      obs.put("create.retention.ms", created.config(topic).get().get("retention.ms").value());
      obs.put("create.topic-id-set", created.topicId(topic).get() != null);
      Clients.createTopic(admin, Harness.unique("java-admin-wait"), 1, Map.of()); // metadata settles
      obs.error("create.again", () -> admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get());
      obs.error("create.rf3", () -> admin.createTopics(List.of(new NewTopic(Harness.unique("java-rf3"), 1, (short) 3))).all().get());
      obs.error("create.zero-partitions", () -> admin.createTopics(List.of(new NewTopic(Harness.unique("java-p0"), 0, (short) 1))).all().get());
      obs.error("create.bad-name", () -> admin.createTopics(List.of(new NewTopic("bad name!", 1, (short) 1))).all().get());
      obs.error("create.bad-config", () -> admin.createTopics(List.of(new NewTopic(Harness.unique("java-badcfg"), 1, (short) 1)
          .configs(Map.of("retention.ms", "soon")))).all().get());
      obs.error("create.unknown-config", () -> admin.createTopics(List.of(new NewTopic(Harness.unique("java-unkcfg"), 1, (short) 1)
          .configs(Map.of("no.such.config", "1")))).all().get());

      assertTrue(admin.listTopics().names().get().contains(topic));
      TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
      obs.put("describe.partitions", d.partitions().size());
      obs.put("describe.internal", d.isInternal());
      obs.put("describe.p0", "leader=" + d.partitions().get(0).leader().id() + " replicas=" + d.partitions().get(0).replicas().size()
          + " isr=" + d.partitions().get(0).isr().size());
      obs.error("describe.unknown", () -> admin.describeTopics(List.of(Harness.unique("java-none"))).allTopicNames().get());

      admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get();
      Harness.waitUntil("5 partitions", Duration.ofSeconds(30), () -> partitions(admin, topic) == 5);
      obs.put("partitions.after-increase", partitions(admin, topic));
      obs.error("partitions.decrease", () -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all().get());
      obs.error("partitions.same", () -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get());
      obs.error("partitions.unknown-topic", () -> admin.createPartitions(Map.of(Harness.unique("java-none"), NewPartitions.increaseTo(5))).all().get());

      admin.deleteTopics(List.of(topic)).all().get();
      Harness.waitUntil("the topic gone", Duration.ofSeconds(30), () -> {
        try {
          return !admin.listTopics().names().get().contains(topic);
        } catch (Exception e) {
          return false;
        }
      });
      obs.error("delete.again", () -> admin.deleteTopics(List.of(topic)).all().get());
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void configs(Target t) throws Exception {
    var obs = t.observe("admin.configs");
    String topic = Harness.unique("java-configs");
    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, topic, 1, Map.of("retention.ms", "3600000", "cleanup.policy", "compact"));
      ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      record(obs, "topic.created", describe(admin, res), TOPIC_CONFIGS);

      alter(admin, res, List.of(
          new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
          new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.APPEND),
          new AlterConfigOp(new ConfigEntry("max.message.bytes", "2048"), AlterConfigOp.OpType.SET)));
      Config c = describe(admin, res);
      assertEquals("7200000", c.get("retention.ms").value());
      record(obs, "topic.altered", c, List.of("retention.ms", "cleanup.policy", "max.message.bytes"));
      alter(admin, res, List.of(
          new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT),
          new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE)));
      record(obs, "topic.deleted", describe(admin, res), List.of("retention.ms", "cleanup.policy"));
      obs.error("alter.bad-value", () -> alter(admin, res, List.of(
          new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET))));
      obs.error("alter.unknown-name", () -> alter(admin, res, List.of(
          new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET))));
      obs.error("alter.unknown-topic", () -> alter(admin, new ConfigResource(ConfigResource.Type.TOPIC, Harness.unique("java-none")),
          List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "1"), AlterConfigOp.OpType.SET))));
      obs.error("describe.unknown-topic", () -> describe(admin, new ConfigResource(ConfigResource.Type.TOPIC, Harness.unique("java-none"))));

      ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, "1");
      record(obs, "broker", describe(admin, broker), BROKER_CONFIGS);
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void offsetsAndRecordDeletion(Target t) throws Exception {
    var obs = t.observe("admin.offsets");
    String topic = Harness.unique("java-offsets");
    var tps = Clients.partitions(topic, 2);
    TopicPartition p0 = tps.get(0);
    // Recent timestamps (old ones would fall to retention mid-test); the
    // observations name them relative to base.
    long base = System.currentTimeMillis() - 60_000;
    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, topic, 2, Map.of());
      try (KafkaProducer<String, String> p = Clients.producer(t, Map.of())) {
        for (int i = 0; i < 30; i++) p.send(new ProducerRecord<>(topic, 0, base + 10 * i, "k" + i, "v" + i));
        p.send(new ProducerRecord<>(topic, 0, base + 5, "late", "late"));   // offset 30, older timestamp
        p.flush();
      }
      obs.put("earliest", offset(admin, p0, OffsetSpec.earliest(), base));
      obs.put("latest", offset(admin, p0, OffsetSpec.latest(), base));
      obs.put("max-timestamp", offset(admin, p0, OffsetSpec.maxTimestamp(), base));
      obs.put("earliest-local", offset(admin, p0, OffsetSpec.earliestLocal(), base));
      obs.put("by-time.before", offset(admin, p0, OffsetSpec.forTimestamp(base - 1000), base));
      obs.put("by-time.exact", offset(admin, p0, OffsetSpec.forTimestamp(base + 50), base));
      obs.put("by-time.between", offset(admin, p0, OffsetSpec.forTimestamp(base + 51), base));
      obs.put("by-time.after", offset(admin, p0, OffsetSpec.forTimestamp(base + 10_000), base));
      obs.put("empty-partition.latest", offset(admin, tps.get(1), OffsetSpec.latest(), base));
      obs.put("empty-partition.max-timestamp", offset(admin, tps.get(1), OffsetSpec.maxTimestamp(), base));

      var deleted = admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(10))).lowWatermarks().get(p0).get();
      assertEquals(10, obs.put("delete-records.low-watermark", deleted.lowWatermark()));
      obs.put("after-delete.earliest", offset(admin, p0, OffsetSpec.earliest(), base));
      obs.put("after-delete.by-time.before", offset(admin, p0, OffsetSpec.forTimestamp(base - 1000), base));
      obs.error("delete-records.beyond-hw", () -> admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(99))).all().get());
      var all = admin.deleteRecords(Map.of(tps.get(1), RecordsToDelete.beforeOffset(-1))).lowWatermarks().get(tps.get(1)).get();
      obs.put("delete-records.minus-one.empty", all.lowWatermark());
      try (KafkaConsumer<String, String> c = Clients.consumer(t, Map.of("auto.offset.reset", "none"))) {
        c.assign(List.of(p0));
        c.seek(p0, 5);
        obs.error("fetch.below-log-start", () -> {
          long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
          while (System.nanoTime() < deadline) {
            if (!c.poll(Duration.ofMillis(200)).isEmpty()) return;
          }
        });
        c.seek(p0, 10);
        var rs = c.poll(Duration.ofSeconds(5));
        obs.put("fetch.from-log-start.first", rs.isEmpty() ? "none" : rs.iterator().next().offset());
      }
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void groups(Target t) throws Exception {
    var obs = t.observe("admin.groups");
    String topic = Harness.unique("java-admin-groups");
    String group = Harness.unique("java-admin-group");
    TopicPartition p0 = new TopicPartition(topic, 0);
    TopicPartition p1 = new TopicPartition(topic, 1);
    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, topic, 2, Map.of());
      try (KafkaProducer<String, String> p = Clients.producer(t, Map.of())) {
        for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(topic, i % 2, "k", "v" + i));
        p.flush();
      }
      obs.error("describe.unknown", () -> admin.describeConsumerGroups(List.of(Harness.unique("java-nogroup"))).all().get());
      obs.put("list-offsets.unknown", admin.listConsumerGroupOffsets(Harness.unique("java-nogroup")).partitionsToOffsetAndMetadata().get());
      // A group that only commits (manual assignment, no membership).
      try (KafkaConsumer<String, String> c = Clients.consumer(t, Map.of("group.id", group))) {
        c.assign(List.of(p0, p1));
        c.commitSync(Map.of(p0, new OffsetAndMetadata(3, "three"), p1, new OffsetAndMetadata(4)));
      }
      var listed = admin.listConsumerGroups(new ListConsumerGroupsOptions().inGroupStates(java.util.Set.of(GroupState.EMPTY))).all().get()
          .stream().filter(g -> g.groupId().equals(group)).toList();
      assertEquals(1, obs.put("list.empty-filter.count", listed.size()));
      obs.put("list.state", listed.get(0).groupState().orElse(null));
      obs.put("list.type", listed.get(0).type().orElse(null));
      var d = ConsumerTest.describe(admin, group);
      obs.put("describe.state", d.groupState());
      obs.put("describe.type", d.type());
      obs.put("describe.members", d.members().size());
      obs.put("describe.assignor", d.partitionAssignor());
      obs.put("describe.coordinator", d.coordinator().id());
      obs.put("offsets", ConsumerTest.committed(admin, group));

      admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(7))).all().get();
      obs.put("offsets.altered", ConsumerTest.committed(admin, group));
      obs.error("alter-offsets.beyond-hw", () -> admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(999))).all().get());
      obs.put("offsets.after-beyond-hw", ConsumerTest.committed(admin, group));
      admin.deleteConsumerGroupOffsets(group, java.util.Set.of(p1)).all().get();
      obs.put("offsets.p1-deleted", ConsumerTest.committed(admin, group));

      // While a member is subscribed: the group cannot be deleted, nor its offsets.
      String live = Harness.unique("java-live-group");
      try (KafkaConsumer<String, String> c = Clients.consumer(t, Map.of("group.id", live))) {
        c.subscribe(List.of(topic));
        Harness.waitUntil("an assignment", Duration.ofSeconds(30), () -> {
          c.poll(Duration.ofMillis(100));
          return c.assignment().size() == 2;
        });
        c.commitSync();
        obs.error("delete.non-empty", () -> admin.deleteConsumerGroups(List.of(live)).all().get());
        obs.error("delete-offsets.subscribed", () -> admin.deleteConsumerGroupOffsets(live, java.util.Set.of(p0)).all().get());
        obs.error("alter-offsets.active", () -> admin.alterConsumerGroupOffsets(live, Map.of(p0, new OffsetAndMetadata(1))).all().get());
        var stable = ConsumerTest.describe(admin, live);
        obs.put("live.state", stable.groupState());
        obs.put("live.assignor", stable.partitionAssignor());
      }
      admin.deleteConsumerGroups(List.of(group)).all().get();
      obs.error("delete.again", () -> admin.deleteConsumerGroups(List.of(group)).all().get());
      obs.error("after-delete.describe", () -> ConsumerTest.describe(admin, group));
      obs.put("after-delete.offsets", ConsumerTest.committed(admin, group));
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void cluster(Target t) throws Exception {
    var obs = t.observe("admin.cluster");
    try (Admin admin = t.admin()) {
      var c = admin.describeCluster();
      assertEquals(1, obs.put("nodes", c.nodes().get().size()));
      obs.put("controller-is-the-node", c.controller().get().id() == c.nodes().get().iterator().next().id());
      obs.put("node-id", c.nodes().get().iterator().next().id());
      assertTrue(obs.put("cluster-id-set", c.clusterId().get() != null && !c.clusterId().get().isEmpty()));
      var features = admin.describeFeatures().featureMetadata().get();
      obs.put("finalized-features", new TreeMap<>(features.finalizedFeatures()).keySet());
    }
  }

  static int partitions(Admin admin, String topic) {
    try {
      return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
    } catch (Exception e) {
      return -1;
    }
  }

  static String offset(Admin admin, TopicPartition tp, OffsetSpec spec, long base) throws Exception {
    var r = admin.listOffsets(Map.of(tp, spec)).all().get(30, TimeUnit.SECONDS).get(tp);
    String ts = r.timestamp() < 0 ? String.valueOf(r.timestamp()) : "base+" + (r.timestamp() - base);
    return r.offset() + "@" + ts + (r.leaderEpoch().isPresent() ? "" : " (no epoch)");
  }

  static Config describe(Admin admin, ConfigResource res) throws Exception {
    return admin.describeConfigs(List.of(res), new org.apache.kafka.clients.admin.DescribeConfigsOptions().includeSynonyms(true))
        .all().get(30, TimeUnit.SECONDS).get(res);
  }

  static void alter(Admin admin, ConfigResource res, Collection<AlterConfigOp> ops) throws Exception {
    admin.incrementalAlterConfigs(Map.of(res, ops)).all().get(30, TimeUnit.SECONDS);
  }

  static void record(Observations.Scenario obs, String prefix, Config config, List<String> names) {
    for (String name : names) {
      ConfigEntry e = config.get(name);
      if (e == null) {
        obs.put(prefix + "." + name, "<absent>");
        continue;
      }
      obs.put(prefix + "." + name, e.value() + " source=" + e.source() + (e.isReadOnly() ? " read-only" : "")
          + (e.isSensitive() ? " sensitive" : "") + " type=" + e.type());
      obs.put(prefix + "." + name + ".synonyms", e.synonyms().stream().map(s -> s.source() + ":" + s.name() + "=" + s.value()).toList());
    }
  }
}
