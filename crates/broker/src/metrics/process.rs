//! Process statistics for the `strom_process_*` metrics, read from `/proc/self`.

/// Process statistics from `/proc/self` (zero where unavailable).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
}

impl ProcessStats {
    pub fn read() -> ProcessStats {
        let mut stats = ProcessStats::default();
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            stats.rss_bytes = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024);
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            stats.cpu_seconds = parse_cpu_seconds(&stat).unwrap_or(0.0);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle being read is one of them.
            stats.open_fds = entries.count().saturating_sub(1) as u64;
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            stats.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        stats
    }
}

/// utime + stime (fields 14 and 15 of /proc/self/stat) in seconds. The
/// kernel reports them in USER_HZ ticks, which is 100 on every Linux
/// architecture Strom builds for (reading `sysconf(_SC_CLK_TCK)` would need
/// `unsafe`).
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: skip past
    // its closing parenthesis, then field 3 is the first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_from_proc_stat() {
        let stat =
            "1234 (strom (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.25));
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    #[test]
    fn process_stats_on_linux() {
        let stats = ProcessStats::read();
        if cfg!(target_os = "linux") {
            assert!(stats.rss_bytes > 0);
            assert!(stats.open_fds > 0);
            assert!(stats.max_fds >= stats.open_fds);
        }
    }
}
