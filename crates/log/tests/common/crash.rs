//! A crash-simulating [`Storage`]: it runs on real files but remembers what
//! was fsynced, so that [`CrashStorage::crash_into`] can materialise what a
//! power loss could leave behind: directory entries as of the last directory
//! fsync, file contents as of their last fsync plus a random (torn) prefix of
//! what was appended since. [`CrashStorage::crash_after`] makes the process
//! "die" after a number of further changes: from then on every change fails
//! and reaches nothing, so a crash can be placed at any step of a protocol.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strom_log::storage::{OpenMode, StdStorage, Storage, StorageFile};

type Inode = u64;

#[derive(Debug, Default)]
struct Contents {
    current: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    next_inode: Inode,
    inodes: HashMap<Inode, Contents>,
    /// The visible namespace: path → inode.
    names: HashMap<PathBuf, Inode>,
    /// The namespace as of the last fsync of each path's directory.
    durable_names: HashMap<PathBuf, Inode>,
    /// Changes (writes, fsyncs, creations, renames, removals) still allowed.
    budget: Option<u64>,
    /// A change was refused: the simulated crash happened.
    refused: bool,
}

impl State {
    /// Spends one change of the budget; fails once it is used up.
    fn change(&mut self) -> io::Result<()> {
        match &mut self.budget {
            Some(0) => {
                self.refused = true;
                Err(io::Error::other("simulated crash: the process is gone"))
            }
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
pub struct CrashStorage {
    state: Arc<Mutex<State>>,
    rng: Mutex<StdRng>,
}

#[derive(Debug)]
struct CrashFile {
    inner: Arc<dyn StorageFile>,
    inode: Inode,
    state: Arc<Mutex<State>>,
}

impl CrashStorage {
    pub fn new(seed: u64) -> Arc<CrashStorage> {
        Arc::new(CrashStorage {
            state: Arc::default(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        })
    }

    /// Lets `changes` more changes through; every later one fails.
    pub fn crash_after(&self, changes: u64) {
        self.state.lock().budget = Some(changes);
    }

    /// Whether a change failed because of [`CrashStorage::crash_after`].
    pub fn crashed(&self) -> bool {
        self.state.lock().refused
    }

    /// Writes what survives a crash of `dir` into `target` (a new directory).
    pub fn crash_into(&self, dir: &Path, target: &Path) {
        let state = self.state.lock();
        let mut rng = self.rng.lock();
        std::fs::create_dir_all(target).unwrap();
        let mut entries: Vec<(&PathBuf, &Inode)> = state
            .durable_names
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .collect();
        entries.sort();
        for (path, inode) in entries {
            let contents = &state.inodes[inode];
            let mut data = contents.synced.clone();
            // Appends since the last fsync may have partly reached the disk.
            if contents.current.starts_with(&contents.synced) {
                let unsynced = &contents.current[contents.synced.len()..];
                // None, all, or a torn prefix, equally likely: whole
                // appends getting lost or kept is what exposes ordering
                // mistakes between files.
                let torn = match rng.gen_range(0..3) {
                    0 => 0,
                    1 => unsynced.len(),
                    _ => rng.gen_range(0..=unsynced.len()),
                };
                data.extend_from_slice(&unsynced[..torn]);
            }
            std::fs::write(target.join(path.file_name().unwrap()), data).unwrap();
        }
    }
}

impl Storage for CrashStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        if mode != OpenMode::Existing {
            self.state.lock().change()?;
        }
        let inner = StdStorage.open(path, mode)?;
        let mut state = self.state.lock();
        let existing = state.names.get(path).copied();
        let inode = match existing {
            Some(inode) => inode,
            None => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(inode, Contents::default());
                state.names.insert(path.to_path_buf(), inode);
                inode
            }
        };
        if mode == OpenMode::Truncate {
            state.inodes.get_mut(&inode).unwrap().current.clear();
        }
        Ok(Arc::new(CrashFile {
            inner,
            inode,
            state: Arc::clone(&self.state),
        }))
    }
    fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        StdStorage.read_file(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        StdStorage.exists(path)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.state.lock().change()?;
        StdStorage.remove(path)?;
        self.state.lock().names.remove(path);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.state.lock().change()?;
        StdStorage.rename(from, to)?;
        let mut state = self.state.lock();
        if let Some(inode) = state.names.remove(from) {
            state.names.insert(to.to_path_buf(), inode);
        }
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdStorage.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdStorage.create_dir_all(dir)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdStorage.remove_dir_all(dir)?;
        let mut state = self.state.lock();
        state.names.retain(|p, _| !p.starts_with(dir));
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // No real fsync: the model decides what survives.
        let mut state = self.state.lock();
        state.change()?;
        let State {
            names,
            durable_names,
            ..
        } = &mut *state;
        durable_names.retain(|p, _| p.parent() != Some(dir));
        for (path, inode) in names.iter() {
            if path.parent() == Some(dir) {
                durable_names.insert(path.clone(), *inode);
            }
        }
        Ok(())
    }
}

impl StorageFile for CrashFile {
    fn append(&self, data: &[u8]) -> io::Result<()> {
        self.state.lock().change()?;
        self.inner.append(data)?;
        let mut state = self.state.lock();
        state
            .inodes
            .get_mut(&self.inode)
            .unwrap()
            .current
            .extend_from_slice(data);
        Ok(())
    }
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.inner.read_at(buf, position)
    }
    fn sync(&self) -> io::Result<()> {
        // No real fsync: the model decides what survives.
        let mut state = self.state.lock();
        state.change()?;
        let contents = state.inodes.get_mut(&self.inode).unwrap();
        contents.synced = contents.current.clone();
        Ok(())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.state.lock().change()?;
        self.inner.truncate(len)?;
        let mut state = self.state.lock();
        state
            .inodes
            .get_mut(&self.inode)
            .unwrap()
            .current
            .truncate(len as usize);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn modified_ms(&self) -> io::Result<Option<i64>> {
        self.inner.modified_ms()
    }
}
