//! All file I/O of the log goes through [`Storage`] and [`StorageFile`], so a
//! test can plug in a backend that injects faults (slow or failing fsyncs, a
//! crash that drops unsynced bytes). [`StdStorage`] is the real one.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// How [`Storage::open`] opens a file. Files are always readable and writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// Create the file if it is absent; keep its contents otherwise.
    Create,
    /// Create the file, or empty it if it exists.
    Truncate,
}

/// A directory-level file system.
pub trait Storage: Send + Sync + Debug {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// Reads a whole (small) file; `Ok(None)` if it does not exist.
    fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Removes a file; removing an absent file is not an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Names of the plain files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file. Writes only ever append; reads are positional so they can
/// run concurrently with an append or an fsync.
pub trait StorageFile: Send + Sync + Debug {
    /// Appends `data` at the end of the file.
    fn append(&self, data: &[u8]) -> io::Result<()>;
    /// Fills `buf` from `position`; reading past the end is an error.
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<()>;
    /// fdatasync: makes the written bytes durable.
    fn sync(&self) -> io::Result<()>;
    fn truncate(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Last modification time in milliseconds since the epoch, if known.
    fn modified_ms(&self) -> io::Result<Option<i64>>;
    /// The real file behind this one, if there is one: lets the broker send
    /// a range of it to a socket without copying (sendfile). A backend that
    /// injects faults or simulates crashes returns `None`, so every read
    /// goes through [`StorageFile::read_at`].
    fn std_file(&self) -> Option<&File> {
        None
    }
}

/// [`Storage`] on the real file system (`std::fs`).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdStorage;

#[derive(Debug)]
struct StdFile {
    file: File,
    /// Where the next append goes. Appends are serialised by the log, so this
    /// only has to be correct, not contention-free.
    end: AtomicU64,
}

impl Storage for StdStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::Create => {
                options.create(true);
            }
            OpenMode::Truncate => {
                options.create(true).truncate(true);
            }
        }
        let file = options.open(path)?;
        let end = file.metadata()?.len();
        Ok(Arc::new(StdFile {
            file,
            end: AtomicU64::new(end),
        }))
    }

    fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl StorageFile for StdFile {
    fn append(&self, data: &[u8]) -> io::Result<()> {
        let end = self.end.load(Ordering::Acquire);
        self.file.write_all_at(data, end)?;
        self.end.store(end + data.len() as u64, Ordering::Release);
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, position)
    }

    fn std_file(&self) -> Option<&File> {
        Some(&self.file)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.end.store(len, Ordering::Release);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.end.load(Ordering::Acquire))
    }

    fn modified_ms(&self) -> io::Result<Option<i64>> {
        let modified = self.file.metadata()?.modified()?;
        Ok(modified
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64))
    }
}

/// Writes a small file atomically: temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomically(storage: &dyn Storage, path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomically_staged(storage, path, data).map_err(|e| match e {
        AtomicWriteError::Unwritten(e) | AtomicWriteError::Unknown(e) => e,
    })
}

/// How [`write_atomically_staged`] failed.
#[derive(Debug)]
pub(crate) enum AtomicWriteError {
    /// Before the rename: `path` is as it was (the temp file is removed).
    Unwritten(io::Error),
    /// At the rename or after it: `path` may hold the new contents, now or
    /// after a crash.
    Unknown(io::Error),
}

/// [`write_atomically`], telling a failure that certainly left `path` as it
/// was from one that may not have.
pub(crate) fn write_atomically_staged(
    storage: &dyn Storage,
    path: &Path,
    data: &[u8],
) -> Result<(), AtomicWriteError> {
    let tmp = temp_path(path);
    let staged = storage.open(&tmp, OpenMode::Truncate).and_then(|file| {
        file.append(data)?;
        file.sync()
    });
    if let Err(e) = staged {
        if let Err(removing) = storage.remove(&tmp) {
            tracing::warn!(path = %tmp.display(), error = %removing, "could not remove");
        }
        return Err(AtomicWriteError::Unwritten(e));
    }
    storage
        .rename(&tmp, path)
        .map_err(AtomicWriteError::Unknown)?;
    storage
        .sync_dir(path.parent().unwrap_or_else(|| Path::new(".")))
        .map_err(AtomicWriteError::Unknown)
}

/// Replaces a file's contents in place (no fsync; the caller decides when).
pub(crate) fn overwrite(
    storage: &dyn Storage,
    path: &Path,
    data: &[u8],
) -> io::Result<Arc<dyn StorageFile>> {
    let file = storage.open(path, OpenMode::Truncate)?;
    if !data.is_empty() {
        file.append(data)?;
    }
    Ok(file)
}

pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = StdStorage.open(&path, OpenMode::Create).unwrap();
        f.append(b"hello ").unwrap();
        f.append(b"world").unwrap();
        assert_eq!(f.len().unwrap(), 11);
        let mut buf = [0u8; 5];
        f.read_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"world");
        f.truncate(5).unwrap();
        f.append(b"!").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello!");
        assert!(f.read_at(&mut buf, 4).is_err());
        let again = StdStorage.open(&path, OpenMode::Existing).unwrap();
        assert_eq!(again.len().unwrap(), 6);
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        write_atomically(&StdStorage, &path, b"1").unwrap();
        write_atomically(&StdStorage, &path, b"2").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2");
        assert_eq!(StdStorage.list(dir.path()).unwrap(), vec!["checkpoint"]);
    }
}
