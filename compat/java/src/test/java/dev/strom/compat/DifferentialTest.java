package dev.strom.compat;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/**
 * The differential report: every observation a scenario made on Strom next
 * to the same observation on Apache Kafka. Runs after all scenarios
 * (junit-platform.properties orders classes; this one is last). A
 * difference fails the test unless deliberate-differences.txt lists it with
 * its reason (each one is documented in docs/compatibility.md).
 */
@Order(Integer.MAX_VALUE)
class DifferentialTest {
  record Deliberate(Pattern key, String reason) {}

  static List<Deliberate> deliberate() throws IOException {
    List<Deliberate> out = new ArrayList<>();
    for (String line : Files.readAllLines(Path.of(Harness.resourcePath("deliberate-differences.txt")))) {
      line = line.strip();
      if (line.isEmpty() || line.startsWith("#")) continue;
      int bar = line.indexOf('|');
      String glob = (bar < 0 ? line : line.substring(0, bar)).strip();
      String reason = bar < 0 ? "" : line.substring(bar + 1).strip();
      out.add(new Deliberate(Pattern.compile(glob.replace(".", "\\.").replace("*", ".*")), reason));
    }
    return out;
  }

  @Test
  void strom_and_kafka_observe_the_same() throws IOException {
    var all = Observations.all();
    Path dir = Path.of("target", "compat");
    Files.createDirectories(dir);
    // Everything observed, per target, for a look by hand.
    for (String target : List.of(Target.STROM, Target.KAFKA)) {
      StringBuilder sb = new StringBuilder();
      all.forEach((scenario, byTarget) -> {
        Map<String, String> values = byTarget.get(target);
        if (values != null) values.forEach((k, v) -> sb.append(scenario).append('/').append(k).append(" = ").append(v).append('\n'));
      });
      Files.writeString(dir.resolve("observations-" + target + ".txt"), sb.toString());
    }
    Assumptions.assumeTrue(Targets.kafkaEnabled(), "no reference Kafka in this run (COMPAT_KAFKA=1 starts one)");

    List<Deliberate> allowed = deliberate();
    List<String> unexplained = new ArrayList<>();
    StringBuilder report = new StringBuilder();
    int compared = 0;
    int same = 0;
    int explained = 0;
    for (var e : all.entrySet()) {
      Map<String, String> strom = e.getValue().get(Target.STROM);
      Map<String, String> kafka = e.getValue().get(Target.KAFKA);
      if (strom == null || kafka == null) continue;
      Set<String> keys = new LinkedHashSet<>(kafka.keySet());
      keys.addAll(strom.keySet());
      for (String k : keys) {
        String key = e.getKey() + "/" + k;
        String s = strom.getOrDefault(k, "<not observed>");
        String kv = kafka.getOrDefault(k, "<not observed>");
        compared++;
        if (s.equals(kv)) {
          same++;
          continue;
        }
        String reason = null;
        for (Deliberate d : allowed) {
          if (d.key().matcher(key).matches()) {
            reason = d.reason();
            break;
          }
        }
        report.append(reason == null ? "DIFF " : "deliberate ").append(key).append('\n')
            .append("    strom: ").append(s).append('\n')
            .append("    kafka: ").append(kv).append('\n');
        if (reason != null) {
          explained++;
          report.append("    why:   ").append(reason).append('\n');
        } else {
          unexplained.add(key);
        }
      }
    }
    String head = String.format("differential report: %d observations compared, %d equal, %d deliberate differences, %d unexplained%n",
        compared, same, explained, unexplained.size());
    Files.writeString(dir.resolve("differences.txt"), head + report);
    System.out.println("\n[compat] " + head + report);
    if (!unexplained.isEmpty()) {
      fail(unexplained.size() + " differences between Strom and Apache Kafka (report above and in target/compat/differences.txt): " + unexplained);
    }
  }
}
