//! Small offset checkpoint files in the partition directory.
//!
//! Format (text, like Kafka's checkpoint files): a version line `0` and the
//! offset, each followed by a newline. Written atomically: temp file, fsync,
//! rename, fsync the directory. An unreadable checkpoint is reported and
//! ignored (the caller falls back to the safe default).

use std::path::Path;

use crate::error::LogError;
use crate::storage::{self, Storage};

/// Everything below this offset was fsynced, log and indexes, as of writing.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// The log start offset (advanced by DeleteRecords and retention).
pub(crate) const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// The cleaner's first dirty offset: everything below it was compacted (and
/// is durable, the cleaner fsyncs what it writes).
pub(crate) const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";

const VERSION: &str = "0";

pub(crate) fn write(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    offset: i64,
) -> Result<(), LogError> {
    let path = dir.join(name);
    let contents = format!("{VERSION}\n{offset}\n");
    storage::write_atomically(storage, &path, contents.as_bytes())
        .map_err(|e| LogError::io("writing checkpoint", &path, e))
}

/// The checkpointed offset; `None` if the file is absent or unreadable.
pub(crate) fn read(storage: &dyn Storage, dir: &Path, name: &str) -> Result<Option<i64>, LogError> {
    let path = dir.join(name);
    let Some(bytes) = storage
        .read_file(&path)
        .map_err(|e| LogError::io("reading checkpoint", &path, e))?
    else {
        return Ok(None);
    };
    match parse(&bytes) {
        Some(offset) => Ok(Some(offset)),
        None => {
            tracing::warn!(path = %path.display(), "ignoring malformed checkpoint file");
            Ok(None)
        }
    }
}

fn parse(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split('\n');
    if lines.next()? != VERSION {
        return None;
    }
    let offset: i64 = lines.next()?.trim().parse().ok()?;
    if offset < 0 || lines.any(|l| !l.is_empty()) {
        return None;
    }
    Some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StdStorage;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&StdStorage, dir.path(), "cp").unwrap(), None);
        write(&StdStorage, dir.path(), "cp", 42).unwrap();
        assert_eq!(read(&StdStorage, dir.path(), "cp").unwrap(), Some(42));
        std::fs::write(dir.path().join("cp"), b"0\nforty-two\n").unwrap();
        assert_eq!(read(&StdStorage, dir.path(), "cp").unwrap(), None);
        assert_eq!(parse(b"1\n5\n"), None);
        assert_eq!(parse(b"0\n-5\n"), None);
        assert_eq!(parse(b"0\n5"), Some(5));
    }
}
