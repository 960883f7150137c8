package dev.strom.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Java consumer in a group, over both group protocols: classic
 * (JoinGroup/SyncGroup, client-side assignor) and KIP-848
 * (group.protocol=consumer, ConsumerGroupHeartbeat, server-side assignor).
 */
class ConsumerTest {
  static final int PARTITIONS = 4;

  static Stream<Arguments> targetsAndProtocols() {
    return Targets.forClass(ConsumerTest.class).flatMap(t -> Stream.of(Arguments.of(t, "classic"), Arguments.of(t, "consumer")));
  }

  @ParameterizedTest(name = "{0} group.protocol={1}")
  @MethodSource("targetsAndProtocols")
  void groupSplitsTakesOverAndResumes(Target t, String protocol) throws Exception {
    var obs = t.observe("consumer.group." + protocol);
    String topic = Harness.unique("java-group");
    String group = Harness.unique("java-group-id");
    Map<String, Object> conf = new HashMap<>(Map.of("group.id", group, "group.protocol", protocol));
    if (protocol.equals("classic")) {
      conf.put("heartbeat.interval.ms", 300);
      conf.put("session.timeout.ms", 10_000);
    }
    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, topic, PARTITIONS, Map.of());
      produce(t, topic, "first", 50);

      KafkaConsumer<String, String> c1 = Clients.consumer(t, conf);
      KafkaConsumer<String, String> c2 = Clients.consumer(t, conf);
      try {
        // Commit what was read before giving a partition up, as applications
        // do, so that a record is read by exactly one member.
        c1.subscribe(List.of(topic), commitOnRevoke(c1));
        c2.subscribe(List.of(topic), commitOnRevoke(c2));
        Map<String, Integer> seen = new HashMap<>();
        Harness.waitUntil("two members splitting " + PARTITIONS + " partitions and 200 records", Duration.ofSeconds(60), () -> {
          c1.poll(Duration.ofMillis(100)).forEach(r -> seen.merge(r.value(), 1, Integer::sum));
          c2.poll(Duration.ofMillis(100)).forEach(r -> seen.merge(r.value(), 1, Integer::sum));
          Set<TopicPartition> a1 = c1.assignment();
          Set<TopicPartition> a2 = c2.assignment();
          // Never one partition owned by both members at once.
          Set<TopicPartition> both = new HashSet<>(a1);
          both.retainAll(a2);
          assertTrue(both.isEmpty(), "owned by both members: " + both);
          return a1.size() == PARTITIONS / 2 && a2.size() == PARTITIONS / 2 && seen.size() == 200;
        });
        // Let both members finish reconciling (KIP-848 consumers run their
        // rebalance callbacks inside poll; closing one with a callback still
        // pending fails its close, on Kafka and Strom alike).
        Harness.waitUntil("the group stable, every member at its target assignment", Duration.ofSeconds(30), () -> {
          c1.poll(Duration.ofMillis(100)).forEach(r -> seen.merge(r.value(), 1, Integer::sum));
          c2.poll(Duration.ofMillis(100)).forEach(r -> seen.merge(r.value(), 1, Integer::sum));
          try {
            ConsumerGroupDescription g = describe(admin, group);
            return g.groupState() == org.apache.kafka.common.GroupState.STABLE
                && g.members().stream().allMatch(m -> m.targetAssignment().isEmpty()
                    || m.targetAssignment().get().topicPartitions().equals(m.assignment().topicPartitions()));
          } catch (Exception e) {
            return false;
          }
        });
        assertTrue(seen.values().stream().allMatch(n -> n == 1), "every record exactly once");
        obs.put("split.sizes", new TreeSet<>(List.of(c1.assignment().size(), c2.assignment().size())));
        c1.commitSync();
        c2.commitSync();

        ConsumerGroupDescription d = describe(admin, group);
        obs.put("stable.state", d.groupState());
        obs.put("stable.type", d.type());
        obs.put("stable.assignor", d.partitionAssignor());
        obs.put("stable.members", d.members().size());
        int assigned = d.members().stream().mapToInt(m -> m.assignment().topicPartitions().size()).sum();
        assertEquals(PARTITIONS, obs.put("stable.assigned-partitions", assigned));
        obs.put("stable.member-client-ids-set", d.members().stream().allMatch(m -> !m.clientId().isEmpty()));
        obs.put("committed", committed(admin, group));

        // One member leaves: the other takes over its partitions from the
        // committed offsets and reads only what is produced since.
        c2.close();
        produce(t, topic, "second", 5);
        Set<String> after = new TreeSet<>();
        Harness.waitUntil("the remaining member owning every partition and 20 new records", Duration.ofSeconds(60), () -> {
          c1.poll(Duration.ofMillis(100)).forEach(r -> assertTrue(after.add(r.value()), "duplicate " + r.value()));
          return c1.assignment().size() == PARTITIONS && after.size() == 20;
        });
        assertTrue(after.stream().allMatch(v -> v.startsWith("second")), "only new records: " + after);
        c1.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(55, "c1-meta")));
        c1.commitSync();
        d = describe(admin, group);
        obs.put("one-member.state", d.groupState());
        obs.put("one-member.members", d.members().size());
      } finally {
        c1.close();
      }

      ConsumerGroupDescription empty = describe(admin, group);
      obs.put("empty.state", empty.groupState());
      obs.put("empty.members", empty.members().size());
      obs.put("committed.final", committed(admin, group));

      // With every member gone, a new member resumes at the committed offsets.
      produce(t, topic, "third", 2);
      try (KafkaConsumer<String, String> c3 = Clients.consumer(t, conf)) {
        c3.subscribe(List.of(topic));
        List<String> got = new ArrayList<>();
        Harness.waitUntil("8 new records for a new member", Duration.ofSeconds(60), () -> {
          c3.poll(Duration.ofMillis(100)).forEach(r -> got.add(r.value()));
          return got.size() >= 8;
        });
        c3.poll(Duration.ofMillis(300)).forEach(r -> got.add(r.value()));
        assertEquals(8, got.size(), "exactly the records after the committed offsets: " + got);
        assertTrue(got.stream().allMatch(v -> v.startsWith("third")));
        obs.put("resumed.position.p0", c3.position(new TopicPartition(topic, 0)));
      }
    }
  }

  static ConsumerRebalanceListener commitOnRevoke(KafkaConsumer<String, String> c) {
    return new ConsumerRebalanceListener() {
      @Override
      public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
        Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
        for (TopicPartition tp : partitions) positions.put(tp, new OffsetAndMetadata(c.position(tp)));
        try {
          c.commitSync(positions, Duration.ofSeconds(10));
        } catch (RuntimeException e) {
          // While closing, the member may already have left the group (a
          // KIP-848 consumer's close): it committed explicitly before.
          System.out.println("[compat] commit on revocation failed: " + e);
        }
      }

      @Override
      public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}
    };
  }

  static void produce(Target t, String topic, String prefix, int perPartition) throws Exception {
    try (KafkaProducer<String, String> p = Clients.producer(t, Map.of())) {
      for (int i = 0; i < perPartition; i++) {
        for (int part = 0; part < PARTITIONS; part++) {
          p.send(new ProducerRecord<>(topic, part, "k", prefix + "-" + part + "-" + i));
        }
      }
      p.flush();
    }
  }

  static ConsumerGroupDescription describe(Admin admin, String group) throws Exception {
    return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
  }

  static Map<Integer, String> committed(Admin admin, String group) throws Exception {
    Map<Integer, String> out = new TreeMap<>();
    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
        .forEach((tp, om) -> out.put(tp.partition(), om.offset() + (om.metadata().isEmpty() ? "" : "/" + om.metadata())));
    return out;
  }

  static List<String> assignments(ConsumerGroupDescription d) {
    List<String> out = new ArrayList<>();
    for (MemberDescription m : d.members()) out.add(String.valueOf(m.assignment().topicPartitions().size()));
    return out;
  }
}
