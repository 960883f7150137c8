package dev.strom.compat;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.Uuid;

/**
 * A single-node Apache Kafka in KRaft mode (combined broker and controller)
 * from the Maven jars on the test classpath: `kafka-storage format`, then
 * `kafka.Kafka server.properties`, on free loopback ports with a temp dir of
 * its own. Started once per run; see {@link Targets}.
 *
 * <p>Also a program: {@code java -cp ... dev.strom.compat.ReferenceKafka DIR}
 * starts one, prints {@code listening on 127.0.0.1:PORT} and runs until
 * killed (scripts/test.sh uses it to run the other client suites against
 * Kafka in the full tier).
 */
public final class ReferenceKafka implements AutoCloseable {
  private final Process process;
  private final String bootstrap;
  private final Path dir;

  private ReferenceKafka(Process process, String bootstrap, Path dir) {
    this.process = process;
    this.bootstrap = bootstrap;
    this.dir = dir;
  }

  public String bootstrap() {
    return bootstrap;
  }

  public Path dir() {
    return dir;
  }

  public static ReferenceKafka start(Path dir) throws IOException, InterruptedException {
    Files.createDirectories(dir);
    int port = Harness.freePort();
    int controllerPort = Harness.freePort();
    while (controllerPort == port) controllerPort = Harness.freePort();
    String bootstrap = "127.0.0.1:" + port;
    Path props = dir.resolve("server.properties");
    // Kafka's defaults everywhere except what one node needs (replication
    // factors of the internal topics) and where it puts things.
    Files.writeString(props, String.join("\n",
        "process.roles=broker,controller",
        "node.id=1",
        "controller.quorum.voters=1@127.0.0.1:" + controllerPort,
        "listeners=PLAINTEXT://" + bootstrap + ",CONTROLLER://127.0.0.1:" + controllerPort,
        "advertised.listeners=PLAINTEXT://" + bootstrap,
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs=" + dir.resolve("data"),
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "") );
    Path log4j = dir.resolve("log4j2.xml");
    Files.writeString(log4j, """
        <?xml version="1.0" encoding="UTF-8"?>
        <Configuration status="WARN">
          <Appenders>
            <File name="file" fileName="%s"><PatternLayout pattern="[%%d] %%p %%m (%%c)%%n"/></File>
          </Appenders>
          <Loggers><Root level="INFO"><AppenderRef ref="file"/></Root></Loggers>
        </Configuration>
        """.formatted(dir.resolve("server.log")));

    String cp = Harness.classpath();
    Harness.runJava("kafka.tools.StorageTool",
        List.of("format", "-t", Uuid.randomUuid().toString(), "-c", props.toString(), "--ignore-formatted"),
        null, Duration.ofSeconds(120)).ok();

    List<String> cmd = new ArrayList<>();
    cmd.add(Harness.javaBin());
    cmd.addAll(List.of("-Xmx768m", "-Xms256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + log4j));
    cmd.addAll(List.of("-cp", cp, "kafka.Kafka", props.toString()));
    Process p = new ProcessBuilder(cmd)
        .redirectOutput(dir.resolve("stdout.log").toFile())
        .redirectError(dir.resolve("stderr.log").toFile())
        .start();
    ReferenceKafka kafka = new ReferenceKafka(p, bootstrap, dir);
    try {
      kafka.awaitReady(Duration.ofSeconds(120));
    } catch (RuntimeException | Error e) {
      kafka.close();
      throw e;
    }
    return kafka;
  }

  private void awaitReady(Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    Map<String, Object> conf = Map.of(
        AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
        AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 2000,
        AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 3000);
    while (true) {
      if (!process.isAlive()) {
        throw new IllegalStateException("Apache Kafka exited with " + process.exitValue() + "; see " + dir.resolve("server.log"));
      }
      try (Admin admin = Admin.create(conf)) {
        if (admin.describeCluster().nodes().get(3, TimeUnit.SECONDS).size() == 1) return;
      } catch (Exception e) {
        // not up yet
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("Apache Kafka not ready after " + timeout.toSeconds() + " s; see " + dir.resolve("server.log"));
      }
      Harness.sleep(200);
    }
  }

  @Override
  public void close() {
    if (process.isAlive()) {
      process.destroy();
      try {
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
          process.destroyForcibly();
          process.waitFor(10, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        process.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: ReferenceKafka DIR");
      System.exit(2);
    }
    ReferenceKafka kafka = start(Path.of(args[0]));
    Runtime.getRuntime().addShutdownHook(new Thread(kafka::close));
    System.out.println("listening on " + kafka.bootstrap());
    System.out.flush();
    kafka.process.waitFor();
    System.exit(kafka.process.exitValue());
  }

  static void deleteTree(Path dir) {
    try (var walk = Files.walk(dir)) {
      walk.sorted(java.util.Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
