package dev.strom.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Java-client building blocks the scenarios share. */
public final class Clients {
  private Clients() {}

  public static final Duration TIMEOUT = Duration.ofSeconds(30);

  public static void createTopic(Admin admin, String name, int partitions, Map<String, String> configs) throws Exception {
    admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs)))
        .all().get(30, TimeUnit.SECONDS);
    // Kafka propagates new topics to its metadata cache asynchronously.
    Harness.waitUntil("topic " + name + " in metadata", TIMEOUT, () -> {
      try {
        return admin.describeTopics(List.of(name)).allTopicNames().get(5, TimeUnit.SECONDS)
            .get(name).partitions().size() == partitions;
      } catch (Exception e) {
        return false;
      }
    });
  }

  public static KafkaProducer<String, String> producer(Target t, Map<String, Object> extra) {
    Map<String, Object> conf = new HashMap<>(Map.of(
        "acks", "all",
        "linger.ms", 5,
        "delivery.timeout.ms", 30_000,
        "request.timeout.ms", 15_000,
        "key.serializer", StringSerializer.class.getName(),
        "value.serializer", StringSerializer.class.getName()));
    conf.putAll(extra);
    return new KafkaProducer<>(t.props(conf));
  }

  public static KafkaConsumer<String, String> consumer(Target t, Map<String, Object> extra) {
    Map<String, Object> conf = new HashMap<>(Map.of(
        "enable.auto.commit", false,
        "auto.offset.reset", "earliest",
        "request.timeout.ms", 15_000,
        "key.deserializer", StringDeserializer.class.getName(),
        "value.deserializer", StringDeserializer.class.getName()));
    conf.putAll(extra);
    return new KafkaConsumer<>(t.props(conf));
  }

  /** Reads the partitions from their beginning until {@code expect} records arrived, then checks nothing more comes. */
  public static List<ConsumerRecord<String, String>> readAll(
      Target t, Collection<TopicPartition> tps, int expect, Map<String, Object> extra) {
    try (KafkaConsumer<String, String> c = consumer(t, extra)) {
      c.assign(tps);
      c.seekToBeginning(tps);
      List<ConsumerRecord<String, String>> out = new ArrayList<>();
      long deadline = System.nanoTime() + TIMEOUT.toNanos();
      while (out.size() < expect) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError("read " + out.size() + " of " + expect + " records from " + tps);
        }
        c.poll(Duration.ofMillis(200)).forEach(out::add);
      }
      var extraRecords = c.poll(Duration.ofMillis(300));
      if (!extraRecords.isEmpty()) {
        throw new AssertionError(extraRecords.count() + " records more than the " + expect + " expected");
      }
      return out;
    }
  }

  public static List<TopicPartition> partitions(String topic, int n) {
    List<TopicPartition> out = new ArrayList<>();
    for (int p = 0; p < n; p++) out.add(new TopicPartition(topic, p));
    return out;
  }

  /** Offsets as a compact text: "0..9,17..19". */
  public static String ranges(List<Long> offsets) {
    StringBuilder sb = new StringBuilder();
    int i = 0;
    while (i < offsets.size()) {
      int j = i;
      while (j + 1 < offsets.size() && offsets.get(j + 1) == offsets.get(j) + 1) j++;
      if (sb.length() > 0) sb.append(',');
      sb.append(offsets.get(i));
      if (j > i) sb.append("..").append(offsets.get(j));
      i = j + 1;
    }
    return sb.toString();
  }
}
