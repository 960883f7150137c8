package dev.strom.compat;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What clients observed, per scenario and target: offsets, high watermarks,
 * error codes, config values and sources, group states, ListOffsets answers.
 * Values are normalised (no random ids, hosts or times) so that Strom's and
 * Kafka's can be compared one to one by {@link DifferentialTest}.
 */
public final class Observations {
  private Observations() {}

  /** scenario -> target -> key -> value, in recording order. */
  private static final Map<String, Map<String, Map<String, String>>> ALL = new ConcurrentHashMap<>();

  public static Scenario scenario(String scenario, String target) {
    Map<String, String> values = new LinkedHashMap<>();
    ALL.computeIfAbsent(scenario, s -> new ConcurrentHashMap<>()).put(target, values);
    return new Scenario(values);
  }

  public static Map<String, Map<String, Map<String, String>>> all() {
    return new TreeMap<>(ALL);
  }

  /** One scenario's observations on one target. */
  public static final class Scenario {
    private final Map<String, String> values;

    Scenario(Map<String, String> values) {
      this.values = values;
    }

    /** Records an observation and returns the value, to assert on it too. */
    public synchronized <T> T put(String key, T value) {
      values.put(key, normalise(String.valueOf(value)));
      return value;
    }

    /** The simple name of what a call threw (the client's error code), or "ok". */
    public String error(String key, ThrowingRunnable call) {
      String outcome;
      long t0 = System.nanoTime();
      try {
        call.run();
        outcome = "ok";
      } catch (Throwable t) {
        Throwable cause = t;
        while ((cause instanceof java.util.concurrent.ExecutionException
                || cause instanceof java.util.concurrent.CompletionException)
            && cause.getCause() != null) {
          cause = cause.getCause();
        }
        outcome = cause.getClass().getSimpleName();
      }
      long ms = (System.nanoTime() - t0) / 1_000_000;
      if (ms > 3000) System.out.printf("[compat] slow: %s took %d ms (%s)%n", key, ms, outcome);
      return put(key, outcome);
    }
  }

  /** Harness.unique names end in 8 random hex digits: "java-txn-50a5d611" becomes "java-txn-*". */
  private static final java.util.regex.Pattern UNIQUE = java.util.regex.Pattern.compile("-[0-9a-f]{8}\\b");

  static String normalise(String value) {
    return UNIQUE.matcher(value).replaceAll("-*");
  }

  @FunctionalInterface
  public interface ThrowingRunnable {
    void run() throws Exception;
  }
}
