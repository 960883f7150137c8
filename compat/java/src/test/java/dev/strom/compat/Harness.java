package dev.strom.compat;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/** What every scenario needs: names, temp dirs, ports, waiting, child JVMs. */
public final class Harness {
  private Harness() {}

  /** A topic or group name of its own for every scenario run. */
  public static String unique(String prefix) {
    return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  /** A free port on 127.0.0.1 (closed again: the child binds it next). */
  public static int freePort() {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static Path tempDir(String prefix) {
    try {
      Path base = Path.of(System.getProperty("compat.tmp", System.getProperty("java.io.tmpdir")));
      Files.createDirectories(base);
      return Files.createTempDirectory(base, prefix);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static void waitUntil(String what, Duration timeout, BooleanSupplier done) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!done.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + timeout.toSeconds() + " s waiting for " + what);
      }
      sleep(100);
    }
  }

  public static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new RuntimeException(e);
    }
  }

  /** The runtime classpath Maven resolved (dependency:build-classpath). */
  public static String classpath() {
    String file = System.getProperty("compat.classpath.file");
    if (file == null) {
      // Beside target/test-classes, wherever the JVM was started.
      try {
        Path classes = Path.of(Harness.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        file = classes.getParent().resolve("classpath.txt").toString();
      } catch (Exception e) {
        file = "target/classpath.txt";
      }
    }
    try {
      String deps = Files.readString(Path.of(file)).trim();
      Path testClasses = Path.of(file).toAbsolutePath().getParent().resolve("test-classes");
      return testClasses + java.io.File.pathSeparator + deps;
    } catch (IOException e) {
      throw new UncheckedIOException("no classpath file " + file + " (run through mvn)", e);
    }
  }

  /** The java of this JVM. */
  public static String javaBin() {
    return Path.of(System.getProperty("java.home"), "bin", "java").toString();
  }

  /** JVM flags for short-lived tool processes: quick start, little memory. */
  public static List<String> toolJvmFlags() {
    List<String> flags = new ArrayList<>();
    flags.add("-Xmx256m");
    flags.add("-XX:+UseSerialGC");
    flags.add("-XX:TieredStopAtLevel=1");
    flags.add("-Xshare:auto");
    flags.add("-Dlog4j2.configurationFile=" + resourcePath("log4j2-tools.xml"));
    return flags;
  }

  public static String resourcePath(String name) {
    var url = Harness.class.getClassLoader().getResource(name);
    if (url == null) throw new IllegalStateException("missing test resource " + name);
    return Path.of(java.net.URI.create(url.toString())).toString();
  }

  /** The outcome of a child process. */
  public record Result(int exitCode, String stdout, String stderr) {
    public Result ok() {
      if (exitCode != 0) {
        throw new AssertionError("exit code " + exitCode + "\n--- stdout\n" + cap(stdout) + "\n--- stderr\n" + cap(stderr));
      }
      return this;
    }

    private static String cap(String s) {
      return s.length() <= 4000 ? s : s.substring(0, 4000) + "\n[... " + (s.length() - 4000) + " more characters]";
    }

    public List<String> lines() {
      return stdout.lines().filter(l -> !l.isBlank()).toList();
    }
  }

  /** Runs {@code java -cp <maven classpath> mainClass args...} to completion. */
  public static Result runJava(String mainClass, List<String> args, String stdin, Duration timeout) {
    List<String> cmd = new ArrayList<>();
    cmd.add(javaBin());
    cmd.addAll(toolJvmFlags());
    cmd.add("-cp");
    cmd.add(classpath());
    cmd.add(mainClass);
    cmd.addAll(args);
    return run(cmd, stdin, timeout);
  }

  public static Result run(List<String> cmd, String stdin, Duration timeout) {
    try {
      Process p = new ProcessBuilder(cmd).start();
      CompletableFuture<String> out = drain(p.getInputStream());
      CompletableFuture<String> err = drain(p.getErrorStream());
      try (var in = p.getOutputStream()) {
        if (stdin != null) in.write(stdin.getBytes(StandardCharsets.UTF_8));
      }
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        throw new AssertionError("timed out after " + timeout.toSeconds() + " s: " + String.join(" ", cmd.subList(cmd.size() - Math.min(cmd.size(), 8), cmd.size()))
            + "\n--- stdout\n" + out.getNow("") + "\n--- stderr\n" + err.getNow(""));
      }
      return new Result(p.exitValue(), out.get(10, TimeUnit.SECONDS), err.get(10, TimeUnit.SECONDS));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (Exception e) {
      if (e instanceof RuntimeException r) throw r;
      throw new RuntimeException(e);
    }
  }

  // Not the common pool: on 2 cores it has one thread, and a child blocked
  // on a full stderr pipe while stdout is drained would never finish.
  private static final java.util.concurrent.ExecutorService DRAINERS =
      java.util.concurrent.Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "drain");
        t.setDaemon(true);
        return t;
      });

  static CompletableFuture<String> drain(InputStream in) {
    return CompletableFuture.supplyAsync(() -> {
      try (in) {
        return new String(in.readAllBytes(), StandardCharsets.UTF_8);
      } catch (IOException e) {
        return "";
      }
    }, DRAINERS);
  }
}
