package dev.strom.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.TopicPartition;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Kafka Connect standalone (the real connect-runtime, in a JVM of its own
 * as connect-standalone.sh runs it): FileStreamSource reads a file into a
 * topic, FileStreamSink writes the topic into another file, which must be
 * byte for byte the input.
 */
class ConnectTest {
  static Stream<Target> targets() {
    return Targets.forClass(ConnectTest.class);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("targets")
  void fileSourceToTopicToFileSink(Target t) throws Exception {
    var obs = t.observe("connect.file-source-sink");
    String topic = Harness.unique("connect-file");
    Path dir = Harness.tempDir("connect-");
    Path in = dir.resolve("in.txt");
    Path out = dir.resolve("out.txt");
    int lineCount = "1".equals(System.getenv("STROM_FULL")) ? 50_000 : 5_000;
    Random rnd = new Random(7);
    StringBuilder sb = new StringBuilder();
    String[] pieces = {"plain ascii", "tab\tinside", "ünïcödé", "emoji 🚀", "日本語のテキスト", "quote \" and \\ backslash", "{\"json\": [1, 2, 3]}", ""};
    for (int i = 0; i < lineCount; i++) {
      sb.append(i).append(' ').append(pieces[i % pieces.length]);
      if (i % 97 == 0) sb.append(" ").append("x".repeat(5000 + rnd.nextInt(5000))); // long lines
      sb.append('\n');
    }
    byte[] input = sb.toString().getBytes(StandardCharsets.UTF_8);
    Files.write(in, input);
    Files.createFile(out);

    try (Admin admin = t.admin()) {
      // One partition: the sink writes in topic order, so order is the file's.
      Clients.createTopic(admin, topic, 1, Map.of());
      int restPort = Harness.freePort();
      Path worker = write(dir, "worker.properties",
          "bootstrap.servers=" + t.bootstrap(),
          "key.converter=org.apache.kafka.connect.storage.StringConverter",
          "value.converter=org.apache.kafka.connect.storage.StringConverter",
          "offset.storage.file.filename=" + dir.resolve("connect.offsets"),
          "offset.flush.interval.ms=500",
          "listeners=http://127.0.0.1:" + restPort,
          "plugin.discovery=only_scan");
      Path source = write(dir, "source.properties",
          "name=file-source", "connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector",
          "tasks.max=1", "file=" + in, "topic=" + topic);
      Path sink = write(dir, "sink.properties",
          "name=file-sink", "connector.class=org.apache.kafka.connect.file.FileStreamSinkConnector",
          "tasks.max=1", "file=" + out, "topics=" + topic,
          "consumer.override.auto.offset.reset=earliest");
      List<String> cmd = new ArrayList<>(List.of(Harness.javaBin(), "-Xmx512m",
          "-Dlog4j2.configurationFile=" + Harness.resourcePath("log4j2-tools.xml"),
          "-cp", Harness.classpath(), "org.apache.kafka.connect.cli.ConnectStandalone",
          worker.toString(), source.toString(), sink.toString()));
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("connect.log").toFile()).start();
      long t0 = System.nanoTime();
      try {
        Harness.waitUntil("the sink file to match the source (" + input.length + " bytes)", Duration.ofSeconds(120), () -> {
          assertTrue(p.isAlive(), "Connect exited: " + tail(dir.resolve("connect.log")));
          try {
            return Files.size(out) >= input.length;
          } catch (Exception e) {
            return false;
          }
        });
        System.out.printf("[compat] %s: Connect file source -> topic -> file sink, %d lines (%d bytes) in %.1f s%n",
            t, lineCount, input.length, (System.nanoTime() - t0) / 1e9);
        Harness.sleep(1000); // nothing more may arrive
        assertArrayEquals(input, Files.readAllBytes(out), "the sink file is the source file, byte for byte");
        obs.put("bytes-equal", true);

        TopicPartition tp = new TopicPartition(topic, 0);
        long end = admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all().get().get(tp).offset();
        assertEquals(lineCount, obs.put("records-in-topic", end), "one record per line, none twice");
        // The sink's consumer group (connect-<name>) commits what it wrote.
        Harness.waitUntil("the sink's committed offset", Duration.ofSeconds(30), () -> {
          try {
            var om = admin.listConsumerGroupOffsets("connect-file-sink").partitionsToOffsetAndMetadata().get().get(tp);
            return om != null && om.offset() == lineCount;
          } catch (Exception e) {
            return false;
          }
        });
        obs.put("sink-committed", lineCount);
        var state = admin.describeConsumerGroups(List.of("connect-file-sink")).all().get().get("connect-file-sink");
        obs.put("sink-group.state", state.groupState());
        // The REST API reports both connectors running.
        HttpClient http = HttpClient.newHttpClient();
        for (String name : List.of("file-source", "file-sink")) {
          var resp = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + restPort + "/connectors/" + name + "/status")).build(),
              HttpResponse.BodyHandlers.ofString());
          assertEquals(200, resp.statusCode(), resp.body());
          assertTrue(resp.body().contains("\"state\":\"RUNNING\""), resp.body());
          obs.put("rest." + name + ".running", true);
        }
      } finally {
        p.destroy();
        if (!p.waitFor(30, TimeUnit.SECONDS)) p.destroyForcibly();
      }
    }
    // The standalone worker uses the sink's group; a second run would resume there.
    try (Admin admin = t.admin()) {
      admin.deleteConsumerGroups(List.of("connect-file-sink")).all().get();
    }
    if (System.getenv("COMPAT_KEEP_TMP") == null) ReferenceKafka.deleteTree(dir);
  }

  static Path write(Path dir, String name, String... lines) throws Exception {
    Path p = dir.resolve(name);
    Files.writeString(p, String.join("\n", lines) + "\n");
    return p;
  }

  static String tail(Path log) {
    try {
      List<String> l = Files.readAllLines(log);
      return String.join("\n", l.subList(Math.max(0, l.size() - 40), l.size()));
    } catch (Exception e) {
      return "(no log)";
    }
  }
}
