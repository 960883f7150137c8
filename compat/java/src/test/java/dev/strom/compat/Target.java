package dev.strom.compat;

import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

/** A broker the scenarios run against: Strom, or the reference Apache Kafka. */
public record Target(String name, String bootstrap) {
  public static final String STROM = "strom";
  public static final String KAFKA = "kafka";

  public boolean isStrom() {
    return STROM.equals(name);
  }

  /** Observations of one scenario on this target, for the differential report. */
  public Observations.Scenario observe(String scenario) {
    return Observations.scenario(scenario, name);
  }

  public Properties props(Map<String, Object> extra) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.putAll(extra);
    return p;
  }

  public Admin admin() {
    return Admin.create(props(Map.of(
        AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000,
        AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000)));
  }

  @Override
  public String toString() {
    return name;
  }
}
