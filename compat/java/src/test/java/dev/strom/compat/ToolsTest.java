package dev.strom.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.TopicPartition;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Kafka's own command-line tools, each run as its own JVM from the
 * kafka-tools / kafka_2.13 jars, as kafka-topics.sh and friends run them;
 * their output is asserted and compared between Strom and Kafka.
 */
class ToolsTest {
  static Stream<Target> targets() {
    return Targets.forClass(ToolsTest.class);
  }

  static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
  static final String CONFIGS = "kafka.admin.ConfigCommand";
  static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
  static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
  static final String GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
  static final String PERF = "org.apache.kafka.tools.ProducerPerformance";

  static Harness.Result tool(Target t, String main, String stdin, String... args) {
    List<String> all = new ArrayList<>(List.of("--bootstrap-server", t.bootstrap()));
    if (main.equals(PERF)) all.clear();
    all.addAll(List.of(args));
    return Harness.runJava(main, all, stdin, Duration.ofSeconds(120));
  }

  /** What differs by nature between two runs: ids, hosts, the random name suffixes. */
  static String normalise(String out) {
    return Observations.normalise(out)
        .replaceAll("TopicId: [A-Za-z0-9_-]{22}", "TopicId: <id>")
        .replaceAll("(console-consumer|consumer|perf-producer)-[0-9a-zA-Z_-]+-[0-9a-f-]{36}", "<member-id>")
        .replaceAll("/127\\.0\\.0\\.1", "<host>")
        .replaceAll("[ \\t]+", " ")
        .strip();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void topicsAndConfigs(Target t) throws Exception {
    var obs = t.observe("tools.topics-configs");
    String topic = Harness.unique("tool-topic");
    var r = tool(t, TOPICS, null, "--create", "--topic", topic, "--partitions", "3", "--replication-factor", "1",
        "--config", "retention.ms=123456").ok();
    assertEquals("Created topic " + topic + ".", r.stdout().strip());
    obs.put("create", normalise(r.stdout()));
    Harness.waitUntil("the topic in --list", Duration.ofSeconds(30),
        () -> tool(t, TOPICS, null, "--list").ok().lines().contains(topic));

    r = tool(t, TOPICS, null, "--describe", "--topic", topic).ok();
    List<String> lines = r.lines();
    assertEquals(4, lines.size(), r.stdout());
    assertTrue(lines.get(0).contains("PartitionCount: 3") && lines.get(0).contains("retention.ms=123456"), lines.get(0));
    for (int p = 0; p < 3; p++) {
      assertTrue(lines.get(p + 1).matches(".*Partition: " + p + "\\s+Leader: 1\\s+Replicas: 1\\s+Isr: 1.*"), lines.get(p + 1));
    }
    obs.put("describe", normalise(r.stdout()));

    r = tool(t, TOPICS, null, "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1");
    obs.put("create-again.exit", r.exitCode());
    obs.put("create-again.error", normalise(r.stdout() + r.stderr()).lines().filter(l -> l.startsWith("Error")).findFirst().orElse(""));
    assertTrue(r.exitCode() != 0 && (r.stdout() + r.stderr()).contains("already exists"), r.stdout() + r.stderr());

    tool(t, TOPICS, null, "--alter", "--topic", topic, "--partitions", "5").ok();
    Harness.waitUntil("5 partitions", Duration.ofSeconds(30), () ->
        tool(t, TOPICS, null, "--describe", "--topic", topic).ok().stdout().contains("PartitionCount: 5"));
    r = tool(t, TOPICS, null, "--alter", "--topic", topic, "--partitions", "2");
    obs.put("decrease.exit", r.exitCode());
    obs.put("decrease.error", normalise(r.stdout() + r.stderr()).lines().filter(l -> l.startsWith("Error")).findFirst().orElse(""));

    // kafka-configs: describe, add, delete; the output names each source.
    String[] entity = {"--entity-type", "topics", "--entity-name", topic};
    r = tool(t, CONFIGS, null, cat(entity, "--describe")).ok();
    assertTrue(r.stdout().contains("retention.ms=123456"), r.stdout());
    obs.put("configs.describe", normalise(r.stdout()));
    r = tool(t, CONFIGS, null, cat(entity, "--alter", "--add-config", "max.message.bytes=2048,cleanup.policy=[compact,delete]")).ok();
    obs.put("configs.add", normalise(r.stdout()));
    r = tool(t, CONFIGS, null, cat(entity, "--alter", "--delete-config", "retention.ms")).ok();
    obs.put("configs.delete", normalise(r.stdout()));
    r = tool(t, CONFIGS, null, cat(entity, "--describe")).ok();
    assertTrue(r.stdout().contains("max.message.bytes=2048") && !r.stdout().contains("retention.ms="), r.stdout());
    obs.put("configs.describe-after", normalise(r.stdout()));
    r = tool(t, CONFIGS, null, cat(entity, "--alter", "--add-config", "retention.ms=soon"));
    obs.put("configs.bad-value.exit", r.exitCode());
    r = tool(t, CONFIGS, null, "--entity-type", "brokers", "--entity-name", "1", "--describe").ok();
    obs.put("configs.broker", normalise(r.stdout()));
    r = tool(t, CONFIGS, null, "--entity-type", "brokers", "--entity-default", "--alter", "--add-config", "log.retention.ms=86400000").ok();
    obs.put("configs.broker-default.add", normalise(r.stdout()));
    r = tool(t, CONFIGS, null, "--entity-type", "brokers", "--entity-default", "--describe").ok();
    assertTrue(r.stdout().contains("log.retention.ms=86400000"), r.stdout());
    obs.put("configs.broker-default.describe", normalise(r.stdout()));
    tool(t, CONFIGS, null, "--entity-type", "brokers", "--entity-default", "--alter", "--delete-config", "log.retention.ms").ok();

    r = tool(t, TOPICS, null, "--delete", "--topic", topic).ok();
    Harness.waitUntil("the topic gone from --list", Duration.ofSeconds(30),
        () -> !tool(t, TOPICS, null, "--list").ok().lines().contains(topic));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void consoleAndConsumerGroups(Target t) throws Exception {
    var obs = t.observe("tools.console-groups");
    String topic = Harness.unique("tool-console");
    String group = Harness.unique("tool-group");
    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, topic, 1, Map.of());
    }
    StringBuilder in = new StringBuilder();
    for (int i = 0; i < 10; i++) in.append("key").append(i).append(":välue ").append(i).append(" ✓\n");
    tool(t, CONSOLE_PRODUCER, in.toString(), "--topic", topic,
        "--property", "parse.key=true", "--property", "key.separator=:",
        "--producer-property", "acks=all").ok();

    var r = tool(t, CONSOLE_CONSUMER, null, "--topic", topic, "--from-beginning", "--max-messages", "6",
        "--group", group, "--timeout-ms", "30000",
        "--property", "print.key=true", "--property", "print.offset=true",
        "--property", "key.separator=|").ok();
    List<String> got = r.lines();
    List<String> want = new ArrayList<>();
    for (int i = 0; i < 6; i++) want.add("Offset:" + i + "|key" + i + "|välue " + i + " ✓");
    assertEquals(want, got, "console consumer output");
    obs.put("consumed", String.join("\n", got));
    assertTrue(r.stderr().contains("Processed a total of 6 messages"), r.stderr());

    // The console consumer committed its position on exit: 6 of 10, lag 4.
    r = tool(t, GROUPS, null, "--describe", "--group", group).ok();
    String groupOut = r.stdout();
    String row = r.lines().stream().filter(l -> l.contains(topic)).findFirst().orElseThrow(() -> new AssertionError(groupOut));
    assertTrue(row.matches(".*\\s0\\s+6\\s+10\\s+4\\s.*"), row);
    obs.put("describe", normalise(r.stdout()));
    r = tool(t, GROUPS, null, "--describe", "--group", group, "--state").ok();
    assertTrue(r.stdout().contains("Empty"), r.stdout());
    obs.put("describe.state", normalise(r.stdout()).replaceAll("\\S+:\\d+ \\(\\d+\\)", "<coordinator>"));
    r = tool(t, GROUPS, null, "--list").ok();
    assertTrue(r.lines().contains(group), r.stdout());

    r = tool(t, GROUPS, null, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--dry-run").ok();
    obs.put("reset.dry-run", normalise(r.stdout()));
    assertEquals(6L, committed(t, group, topic), "--dry-run changes nothing");
    r = tool(t, GROUPS, null, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute").ok();
    obs.put("reset.to-earliest", normalise(r.stdout()));
    assertEquals(0L, committed(t, group, topic));
    r = tool(t, GROUPS, null, "--reset-offsets", "--group", group, "--topic", topic, "--to-offset", "8", "--execute").ok();
    assertEquals(8L, committed(t, group, topic));
    r = tool(t, GROUPS, null, "--reset-offsets", "--group", group, "--topic", topic + ":0", "--shift-by", "-3", "--execute").ok();
    obs.put("reset.shift-by", normalise(r.stdout()));
    assertEquals(5L, committed(t, group, topic));
    r = tool(t, GROUPS, null, "--reset-offsets", "--group", group, "--topic", topic, "--to-latest", "--execute").ok();
    assertEquals(10L, committed(t, group, topic));
    r = tool(t, GROUPS, null, "--reset-offsets", "--group", group, "--topic", topic, "--to-offset", "99", "--execute").ok();
    obs.put("reset.beyond-end", normalise(r.stdout()));
    obs.put("reset.beyond-end.committed", committed(t, group, topic));

    // The consumer resumes from the reset position.
    tool(t, GROUPS, null, "--reset-offsets", "--group", group, "--topic", topic, "--to-offset", "7", "--execute").ok();
    r = tool(t, CONSOLE_CONSUMER, null, "--topic", topic, "--group", group, "--max-messages", "3", "--timeout-ms", "30000",
        "--property", "print.offset=true", "--property", "key.separator=|").ok();
    assertEquals(List.of("Offset:7|välue 7 ✓", "Offset:8|välue 8 ✓", "Offset:9|välue 9 ✓"), r.lines());

    r = tool(t, GROUPS, null, "--delete", "--group", group).ok();
    obs.put("delete", normalise(r.stdout()));
    r = tool(t, GROUPS, null, "--describe", "--group", group);
    obs.put("describe.deleted", normalise(r.stdout() + r.stderr()).lines().filter(l -> l.startsWith("Error") || l.contains("does not exist")).findFirst().orElse(""));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void producerPerfTest(Target t) throws Exception {
    var obs = t.observe("tools.producer-perf-test");
    String topic = Harness.unique("tool-perf");
    int n = "1".equals(System.getenv("STROM_FULL")) ? 1_000_000 : 50_000;
    try (Admin admin = t.admin()) {
      Clients.createTopic(admin, topic, 3, Map.of());
      var r = tool(t, PERF, null, "--topic", topic, "--num-records", String.valueOf(n), "--record-size", "100",
          "--throughput", "-1", "--producer-props", "bootstrap.servers=" + t.bootstrap(), "acks=all", "linger.ms=5");
      // kafka-producer-perf-test takes its bootstrap from --producer-props.
      r.ok();
      Matcher m = Pattern.compile("^(\\d+) records sent, ([0-9.]+) records/sec \\(([0-9.]+) MB/sec\\), ([0-9.]+) ms avg latency, ([0-9.]+) ms max latency, (\\d+) ms 50th, (\\d+) ms 95th, (\\d+) ms 99th",
          Pattern.MULTILINE).matcher(r.stdout());
      assertTrue(m.find(), r.stdout());
      assertEquals(n, Integer.parseInt(m.group(1)));
      System.out.printf("[compat] %s: kafka-producer-perf-test %d x 100 B acks=all: %s records/s, p50 %s ms, p99 %s ms%n",
          t, n, m.group(2), m.group(6), m.group(8));
      long total = 0;
      for (TopicPartition tp : Clients.partitions(topic, 3)) {
        total += admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all().get().get(tp).offset();
      }
      assertEquals(n, obs.put("records-in-topic", total));
    }
  }

  static long committed(Target t, String group, String topic) throws Exception {
    try (Admin admin = t.admin()) {
      var om = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().get(new TopicPartition(topic, 0));
      return om == null ? -1 : om.offset();
    }
  }

  static String[] cat(String[] a, String... b) {
    String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
