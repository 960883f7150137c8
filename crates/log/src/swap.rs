//! Swapping cleaned segments in, crash-safely.
//!
//! The cleaner replaces groups of consecutive old segments, each covering
//! offsets `[base, end)`, by one cleaned segment named `base` (or by nothing
//! when no record of the group survives). The protocol:
//!
//! 1. Write each cleaned segment as `<base>.log.cleaned` with its
//!    `.index.cleaned` and `.timeindex.cleaned`, fsync them, fsync the
//!    directory. A crash here leaves only `.cleaned` leftovers, which the
//!    next open deletes: the old segments stay.
//! 2. **Commit**: atomically write the swap manifest, listing every group
//!    as `base end kept`.
//! 3. Per group: delete the old segments' files with a base offset in
//!    `[base, end)`, then rename the `.cleaned` files to their final names,
//!    the `.log` last. fsync the directory, remove the manifest.
//!
//! On open, a manifest means the swap committed: step 3 is redone for every
//! group that is not finished yet (a kept group is finished once its
//! `.log.cleaned` is gone, since that is renamed last; deleting the old
//! segments of a dropped group is idempotent), so the log comes back either
//! wholly old (no manifest) or wholly new. Readers never see a cleaned file
//! before it is complete: the in-memory segment list switches only after the
//! swap, and a reader still holding an old segment keeps reading its
//! (unlinked) file.

use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::segment::{self, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::storage::{self, AtomicWriteError, Storage};

/// The commit record of a swap in progress.
pub(crate) const MANIFEST_FILE: &str = "cleaner-swap-manifest";
const CLEANED_SUFFIX: &str = ".cleaned";
const MANIFEST_VERSION: &str = "0";

/// One group of old segments, `[base, end)`, and whether a cleaned segment
/// named `base` replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SwapEntry {
    pub base: i64,
    pub end: i64,
    pub kept: bool,
}

/// Where the cleaned file of a segment's `suffix` file (`.log`, `.index`,
/// `.timeindex`) is written.
pub(crate) fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!(
        "{}{CLEANED_SUFFIX}",
        segment::file_name(base, suffix)
    ))
}

/// Removes a group's cleaned files (after a failed or abandoned clean).
pub(crate) fn remove_cleaned(storage: &dyn Storage, dir: &Path, base: i64) {
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
        let path = cleaned_path(dir, base, suffix);
        if let Err(e) = storage.remove(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove cleaned file");
        }
    }
}

/// Why [`commit`] failed.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// The manifest is certainly not in place: the swap did not happen, and
    /// the old segments stand (the cleaned files can simply be removed).
    NotCommitted(LogError),
    /// The manifest may be in place, or may reach the disk later: only
    /// reopening the log (which completes a committed swap) can tell.
    Unknown(LogError),
}

/// Step 2: makes the swap of `entries` durable (it will complete even after
/// a crash). A failure before the manifest is in place is told apart from
/// one after: a full disk must not take the log offline.
pub(crate) fn commit(
    storage: &dyn Storage,
    dir: &Path,
    entries: &[SwapEntry],
) -> Result<(), CommitError> {
    let mut text = format!("{MANIFEST_VERSION}\n");
    for e in entries {
        text.push_str(&format!("{} {} {}\n", e.base, e.end, u8::from(e.kept)));
    }
    let path = dir.join(MANIFEST_FILE);
    match storage::write_atomically_staged(storage, &path, text.as_bytes()) {
        Ok(()) => Ok(()),
        Err(AtomicWriteError::Unwritten(e)) => {
            Err(CommitError::NotCommitted(LogError::io("writing", &path, e)))
        }
        Err(AtomicWriteError::Unknown(e)) => {
            let error = LogError::io("writing", &path, e);
            // No manifest under its name (the rename failed, leaving both
            // names as they were): nothing committed. Compaction removes
            // any earlier manifest before a pass.
            match storage.exists(&path) {
                Ok(false) => Err(CommitError::NotCommitted(error)),
                _ => Err(CommitError::Unknown(error)),
            }
        }
    }
}

/// Step 3 for every entry, then the manifest goes.
pub(crate) fn complete(
    storage: &dyn Storage,
    dir: &Path,
    entries: &[SwapEntry],
) -> Result<(), LogError> {
    replace_files(storage, dir, entries)?;
    remove_manifest(storage, dir)
}

/// Step 3's deletions and renames (not yet durable).
pub(crate) fn replace_files(
    storage: &dyn Storage,
    dir: &Path,
    entries: &[SwapEntry],
) -> Result<(), LogError> {
    let names = storage
        .list(dir)
        .map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries {
        apply(storage, dir, entry, &names)?;
    }
    Ok(())
}

/// Makes step 3 durable, then drops the manifest. A manifest left behind is
/// harmless: redoing a finished swap changes nothing.
pub(crate) fn remove_manifest(storage: &dyn Storage, dir: &Path) -> Result<(), LogError> {
    storage
        .sync_dir(dir)
        .map_err(|e| LogError::io("fsyncing directory", dir, e))?;
    let manifest = dir.join(MANIFEST_FILE);
    storage
        .remove(&manifest)
        .map_err(|e| LogError::io("removing", &manifest, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| LogError::io("fsyncing directory", dir, e))
}

fn apply(
    storage: &dyn Storage,
    dir: &Path,
    entry: &SwapEntry,
    names: &[String],
) -> Result<(), LogError> {
    let listed = |path: &Path| {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        names.iter().any(|n| n == name)
    };
    if entry.kept && !listed(&cleaned_path(dir, entry.base, LOG_SUFFIX)) {
        // Finished before: `<base>.log` is already the cleaned segment.
        return Ok(());
    }
    let mut old: Vec<i64> = names
        .iter()
        .filter_map(|n| segment::parse_log_file_name(n))
        .filter(|b| (entry.base..entry.end).contains(b))
        .collect();
    old.sort_unstable();
    for base in old {
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            // An index of the group's own name whose cleaned file is gone was
            // renamed into place already: it is the new one.
            if entry.kept
                && base == entry.base
                && suffix != LOG_SUFFIX
                && !listed(&cleaned_path(dir, base, suffix))
            {
                continue;
            }
            let path = dir.join(segment::file_name(base, suffix));
            storage
                .remove(&path)
                .map_err(|e| LogError::io("deleting replaced segment file", &path, e))?;
        }
    }
    if entry.kept {
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            let from = cleaned_path(dir, entry.base, suffix);
            let to = dir.join(segment::file_name(entry.base, suffix));
            let exists = storage
                .exists(&from)
                .map_err(|e| LogError::io("checking", &from, e))?;
            if exists {
                storage
                    .rename(&from, &to)
                    .map_err(|e| LogError::io("renaming", &from, e))?;
            }
        }
    }
    Ok(())
}

/// At open: finishes a swap that a crash interrupted after its commit.
/// Returns whether there was one.
pub(crate) fn finish_interrupted(storage: &dyn Storage, dir: &Path) -> Result<bool, LogError> {
    let path = dir.join(MANIFEST_FILE);
    let Some(bytes) = storage
        .read_file(&path)
        .map_err(|e| LogError::io("reading", &path, e))?
    else {
        return Ok(false);
    };
    // The manifest is written atomically, so a bad one is damage from
    // outside; guessing could lose records, so refuse to open instead.
    let entries = parse(&bytes).ok_or_else(|| LogError::Io {
        context: format!("reading {}", path.display()),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "malformed cleaner swap manifest",
        ),
    })?;
    tracing::warn!(
        dir = %dir.display(),
        groups = entries.len(),
        "completing a segment swap interrupted by a crash"
    );
    complete(storage, dir, &entries)?;
    Ok(true)
}

fn parse(bytes: &[u8]) -> Option<Vec<SwapEntry>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != MANIFEST_VERSION {
        return None;
    }
    lines
        .map(|line| {
            let mut fields = line.split(' ');
            let base = fields.next()?.parse().ok()?;
            let end = fields.next()?.parse().ok()?;
            let kept = match fields.next()? {
                "0" => false,
                "1" => true,
                _ => return None,
            };
            (fields.next().is_none() && base < end).then_some(SwapEntry { base, end, kept })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StdStorage;

    #[test]
    fn manifest_round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let entries = [
            SwapEntry {
                base: 0,
                end: 10,
                kept: true,
            },
            SwapEntry {
                base: 10,
                end: 25,
                kept: false,
            },
        ];
        commit(&StdStorage, dir.path(), &entries).unwrap();
        let bytes = std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
        assert_eq!(parse(&bytes).unwrap(), entries);
        assert_eq!(parse(b"0\n5 3 1\n"), None);
        assert_eq!(parse(b"0\n1 3 2\n"), None);
        assert_eq!(parse(b"1\n"), None);
        assert_eq!(parse(b"0\n"), Some(vec![]));
    }

    #[test]
    fn completing_twice_changes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (base, content) in [(0, "old0"), (5, "old5"), (10, "next")] {
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                std::fs::write(d.join(segment::file_name(base, suffix)), content).unwrap();
            }
        }
        std::fs::write(cleaned_path(d, 0, LOG_SUFFIX), "new").unwrap();
        std::fs::write(cleaned_path(d, 0, TIME_INDEX_SUFFIX), "new-time").unwrap();
        // As if the crash came after the offset index was renamed into place.
        std::fs::write(d.join(segment::file_name(0, INDEX_SUFFIX)), "new-index").unwrap();
        let entries = [SwapEntry {
            base: 0,
            end: 10,
            kept: true,
        }];
        commit(&StdStorage, d, &entries).unwrap();
        assert!(finish_interrupted(&StdStorage, d).unwrap());
        let mut names = StdStorage.list(d).unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "00000000000000000000.index",
                "00000000000000000000.log",
                "00000000000000000000.timeindex",
                "00000000000000000010.index",
                "00000000000000000010.log",
                "00000000000000000010.timeindex",
            ]
        );
        assert_eq!(
            std::fs::read(d.join(segment::file_name(0, LOG_SUFFIX))).unwrap(),
            b"new"
        );
        let read = |suffix| std::fs::read(d.join(segment::file_name(0, suffix))).unwrap();
        assert_eq!(read(INDEX_SUFFIX), b"new-index");
        assert_eq!(read(TIME_INDEX_SUFFIX), b"new-time");
        // A leftover manifest after the swap finished must not delete the
        // new segment.
        commit(&StdStorage, d, &entries).unwrap();
        assert!(finish_interrupted(&StdStorage, d).unwrap());
        assert_eq!(
            std::fs::read(d.join(segment::file_name(0, LOG_SUFFIX))).unwrap(),
            b"new"
        );
        assert!(!finish_interrupted(&StdStorage, d).unwrap());
    }
}
