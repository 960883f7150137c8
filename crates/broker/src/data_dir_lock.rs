//! One broker per data dir: an exclusive `flock` on `DATA_DIR/.lock`, held
//! from start-up until the broker has stopped (Kafka locks each log dir the
//! same way, with the same file name). A second `strom serve` on the same
//! directory fails to start instead of recovering, appending to and
//! checkpointing the same files as the first.

use crate::error::BrokerError;
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Kafka's name for it.
pub const LOCK_FILE: &str = ".lock";

/// Holds the lock until dropped (the kernel also releases it if the
/// process dies, so a crash never leaves a stale lock behind).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the data dir's lock, or fails at once if another process (or
/// another broker in this process) holds it.
pub fn lock(data_dir: &Path) -> Result<DataDirLock, BrokerError> {
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| BrokerError::Io {
            context: format!("opening {}", path.display()),
            source,
        })?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(BrokerError::DataDirLocked {
            path: path.display().to_string(),
        }),
        Err(e) => Err(BrokerError::Io {
            context: format!("locking {}", path.display()),
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).expect("first lock");
        let err = lock(dir.path()).expect_err("second lock must fail");
        assert!(matches!(&err, BrokerError::DataDirLocked { .. }), "{err:?}");
        assert!(err.to_string().contains("another"), "{err}");
        drop(first);
        lock(dir.path()).expect("free again");
    }
}
