package dev.strom.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Produced;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Kafka Streams (the real kafka-streams artifact): word count with
 * processing.guarantee=exactly_once_v2. The application reads lines,
 * repartitions by word (an internal repartition topic), counts in a
 * RocksDB store backed by a compacted changelog topic and writes every
 * update transactionally. With the record cache off every input word yields
 * one update, so each word's updates must be exactly 1, 2, ..., n: a
 * duplicate or a lost update shows.
 */
class StreamsTest {
  static Stream<Target> targets() {
    return Targets.forClass(StreamsTest.class);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void wordCountExactlyOnce(Target t) throws Exception {
    var obs = t.observe("streams.word-count-eos");
    String app = Harness.unique("wordcount");
    String input = app + "-lines";
    String output = app + "-counts";
    int lines = "1".equals(System.getenv("STROM_FULL")) ? 20_000 : 2_000;
    String[] vocabulary = {"kafka", "strom", "stream", "exactly", "once", "räksmörgås", "日本", "count", "word", "log"};
    Random rnd = new Random(42);
    Map<String, Long> expected = new TreeMap<>();
    List<String> text = new ArrayList<>();
    for (int i = 0; i < lines; i++) {
      StringBuilder sb = new StringBuilder();
      int words = 1 + rnd.nextInt(8);
      for (int w = 0; w < words; w++) {
        String word = vocabulary[rnd.nextInt(vocabulary.length)];
        // Mixed case and spacing: the topology lower-cases and splits on whitespace.
        sb.append(w == 0 ? "" : rnd.nextBoolean() ? " " : "  ").append(rnd.nextInt(4) == 0 ? word.toUpperCase() : word);
        expected.merge(word, 1L, Long::sum);
      }
      text.add(sb.toString());
    }
    long totalWords = expected.values().stream().mapToLong(Long::longValue).sum();

    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, input, 2, Map.of());
      Clients.createTopic(admin, output, 2, Map.of());
      try (KafkaProducer<String, String> p = Clients.producer(t, Map.of())) {
        for (int i = 0; i < text.size(); i++) p.send(new ProducerRecord<>(input, i % 2, null, text.get(i)));
        p.flush();
      }

      StreamsBuilder builder = new StreamsBuilder();
      builder.<String, String>stream(input)
          .flatMapValues(line -> Arrays.asList(line.toLowerCase(java.util.Locale.ROOT).split("\\s+")))
          .groupBy((k, word) -> word)
          .count()
          .toStream()
          .to(output, Produced.with(Serdes.String(), Serdes.Long()));
      Properties props = new Properties();
      props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
      props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, t.bootstrap());
      props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
      props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
      props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
      props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
      props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
      props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
      props.put(StreamsConfig.STATE_DIR_CONFIG, Harness.tempDir("streams-state-").toString());
      props.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 300);
      props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);

      List<ConsumerRecord<String, Long>> updates = new ArrayList<>();
      try (KafkaStreams streams = new KafkaStreams(builder.build(), props);
          KafkaConsumer<String, Long> c = new KafkaConsumer<>(t.props(Map.of(
              "isolation.level", "read_committed", "auto.offset.reset", "earliest", "enable.auto.commit", false,
              "key.deserializer", StringDeserializer.class.getName(),
              "value.deserializer", LongDeserializer.class.getName())))) {
        streams.setUncaughtExceptionHandler(e -> {
          e.printStackTrace();
          return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        long t0 = System.nanoTime();
        streams.start();
        c.assign(Clients.partitions(output, 2));
        Harness.waitUntil("every word counted (" + totalWords + " updates)", Duration.ofSeconds(120), () -> {
          assertTrue(streams.state() != KafkaStreams.State.ERROR && streams.state() != KafkaStreams.State.NOT_RUNNING,
              "the Streams app died: " + streams.state());
          c.poll(Duration.ofMillis(200)).forEach(updates::add);
          return updates.size() >= totalWords;
        });
        System.out.printf("[compat] %s: Kafka Streams word count, %d lines, %d words, in %.1f s%n",
            t, lines, totalWords, (System.nanoTime() - t0) / 1e9);
        c.poll(Duration.ofMillis(1000)).forEach(updates::add);
      }
      assertEquals(totalWords, obs.put("updates", (long) updates.size()), "one update per input word, none twice");
      Map<String, List<Long>> perWord = new HashMap<>();
      for (var u : updates) perWord.computeIfAbsent(u.key(), k -> new ArrayList<>()).add(u.value());
      Map<String, Long> finalCounts = new TreeMap<>();
      perWord.forEach((w, counts) -> {
        for (int i = 0; i < counts.size(); i++) {
          assertEquals(i + 1, counts.get(i), "updates of '" + w + "' must run 1..n: " + counts.subList(0, Math.min(counts.size(), i + 3)));
        }
        finalCounts.put(w, counts.get(counts.size() - 1));
      });
      assertEquals(expected, obs.put("final-counts", finalCounts));

      // The application's group committed exactly the end of its input.
      Map<Integer, Long> committed = new TreeMap<>();
      admin.listConsumerGroupOffsets(app).partitionsToOffsetAndMetadata().get()
          .forEach((tp, om) -> { if (tp.topic().equals(input)) committed.put(tp.partition(), om.offset()); });
      Map<Integer, Long> inputEnd = new TreeMap<>();
      for (TopicPartition tp : Clients.partitions(input, 2)) {
        inputEnd.put(tp.partition(), admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all().get().get(tp).offset());
      }
      assertEquals(inputEnd, obs.put("committed-input-offsets", committed));
      // Streams created its internal topics: a repartition and a compacted changelog topic.
      var internal = admin.listTopics().names().get().stream().filter(n -> n.startsWith(app + "-")).sorted().toList();
      obs.put("internal-topics", internal.stream().map(n -> n.substring(app.length())).toList());
      String changelog = internal.stream().filter(n -> n.endsWith("-changelog")).findFirst().orElseThrow();
      var cfg = AdminTest.describe(admin, new org.apache.kafka.common.config.ConfigResource(
          org.apache.kafka.common.config.ConfigResource.Type.TOPIC, changelog));
      assertEquals("compact", obs.put("changelog.cleanup.policy", cfg.get("cleanup.policy").value()));
    }
  }
}
