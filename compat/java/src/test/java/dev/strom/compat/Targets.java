package dev.strom.compat;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The brokers under test (each scenario class asks {@link #forClass}).
 *
 * <ul>
 *   <li>{@code strom}: the broker at {@code STROM_BOOTSTRAP} (scripts/test.sh
 *       starts {@code strom serve} and exports it);
 *   <li>{@code kafka}: Apache Kafka, the broker at {@code COMPAT_KAFKA_BOOTSTRAP},
 *       or one started here from the Maven jars when {@code COMPAT_KAFKA=1}
 *       ({@link ReferenceKafka}, once per run).
 * </ul>
 *
 * {@code COMPAT_TARGETS=kafka} runs the scenarios against Kafka alone, to
 * check the tests themselves.
 */
public final class Targets {
  private Targets() {}

  private static ReferenceKafka started;
  private static String kafkaBootstrap;

  /**
   * The targets of one scenario class: Strom, and Kafka when enabled and
   * {@code COMPAT_KAFKA_CLASSES} (comma-separated simple class names; unset
   * = all) names the class. The short CI tier compares a subset.
   */
  public static Stream<Target> forClass(Class<?> scenarioClass) {
    String classes = System.getenv().getOrDefault("COMPAT_KAFKA_CLASSES", "");
    boolean compare = classes.isBlank()
        || java.util.Arrays.asList(classes.split("\\s*,\\s*")).contains(scenarioClass.getSimpleName());
    return all(compare);
  }

  public static Stream<Target> all() {
    return all(true);
  }

  private static Stream<Target> all(boolean withKafka) {
    List<Target> out = new ArrayList<>();
    String only = System.getenv().getOrDefault("COMPAT_TARGETS", "");
    if (only.isEmpty() || only.contains(Target.STROM)) out.add(strom());
    if (withKafka && kafkaEnabled() && (only.isEmpty() || only.contains(Target.KAFKA))) out.add(kafka());
    if (out.isEmpty()) throw new IllegalStateException("COMPAT_TARGETS=" + only + " names no target");
    return out.stream();
  }

  public static boolean kafkaEnabled() {
    return System.getenv("COMPAT_KAFKA_BOOTSTRAP") != null
        || "1".equals(System.getenv("COMPAT_KAFKA"))
        || System.getenv().getOrDefault("COMPAT_TARGETS", "").contains(Target.KAFKA);
  }

  public static Target strom() {
    String bootstrap = System.getenv("STROM_BOOTSTRAP");
    if (bootstrap == null || bootstrap.isBlank()) {
      throw new IllegalStateException("STROM_BOOTSTRAP is not set: run scripts/test.sh, or start "
          + "`strom serve` and export STROM_BOOTSTRAP=HOST:PORT");
    }
    return new Target(Target.STROM, bootstrap);
  }

  public static synchronized Target kafka() {
    if (kafkaBootstrap == null) {
      String given = System.getenv("COMPAT_KAFKA_BOOTSTRAP");
      if (given != null && !given.isBlank()) {
        kafkaBootstrap = given;
      } else {
        try {
          long t0 = System.nanoTime();
          started = ReferenceKafka.start(Harness.tempDir("reference-kafka-"));
          System.out.printf("[compat] Apache Kafka %s started at %s in %.1f s (%s)%n",
              org.apache.kafka.common.utils.AppInfoParser.getVersion(), started.bootstrap(),
              (System.nanoTime() - t0) / 1e9, started.dir());
          ReferenceKafka k = started;
          Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            k.close();
            if (System.getenv("COMPAT_KEEP_TMP") == null) ReferenceKafka.deleteTree(k.dir());
          }));
          kafkaBootstrap = started.bootstrap();
        } catch (Exception e) {
          throw new IllegalStateException("could not start the reference Apache Kafka", e);
        }
      }
    }
    return new Target(Target.KAFKA, kafkaBootstrap);
  }
}
