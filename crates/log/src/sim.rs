//! [`SimStorage`]: an in-memory [`Storage`] for fault tests — power loss,
//! process death at any step, a full disk and I/O errors — used by this
//! crate's crash tests, the broker's disk-fault tests and the fuzz targets.
//! Nothing in the broker uses it unless a test installs it.
//!
//! The model, per file (inode): the bytes written so far and the bytes as of
//! its last fsync; per directory: its entries as of its last fsync. A power
//! loss ([`SimStorage::power_loss`]) keeps, for every entry that was durable
//! in its directory, the synced bytes plus some of what was written since:
//! nothing, everything, a torn prefix, or a prefix with holes of zeros (the
//! file size reached the disk, some sectors did not). A file truncated or
//! rewritten since its last fsync comes back either as it was synced or as a
//! torn version of its new contents (never losing what lay below the
//! truncation and was synced before it). Directories themselves are created and
//! removed durably at once (partition directories are fsynced by their
//! callers anyway).
//!
//! ```
//! use std::sync::Arc;
//! use strom_log::sim::SimStorage;
//! use strom_log::storage::{OpenMode, Storage};
//! # fn main() -> std::io::Result<()> {
//! let disk = SimStorage::new(7);
//! let dir = std::path::Path::new("/p");
//! disk.create_dir_all(dir)?;
//! let f = disk.open(&dir.join("a"), OpenMode::Create)?;
//! f.append(b"synced")?;
//! f.sync()?;
//! disk.sync_dir(dir)?;
//! f.append(b" and not")?;
//! let after = disk.power_loss();
//! let bytes = after.read_file(&dir.join("a"))?.unwrap();
//! assert!(bytes.starts_with(b"synced") && bytes.len() <= 14);
//! # Ok(()) }
//! ```
//!
//! Faults: [`SimStorage::crash_after`] lets a number of further changes
//! through and fails every later one (the process died mid-protocol);
//! [`SimStorage::set_capacity`] makes appends beyond a byte budget write a
//! short prefix and fail with ENOSPC; [`SimStorage::set_faults`] makes
//! writes, fsyncs or reads fail with EIO.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::storage::{OpenMode, Storage, StorageFile};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
/// Granularity of holes in a torn write.
const SECTOR: usize = 512;

/// Which operations fail with EIO (see [`SimStorage::set_faults`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoFaults {
    /// Appends, truncations, creations, renames and removals.
    pub writes: bool,
    /// fsyncs of files and directories.
    pub syncs: bool,
    /// Reads.
    pub reads: bool,
}

type Inode = u64;

#[derive(Debug, Default, Clone)]
struct Contents {
    current: Vec<u8>,
    synced: Vec<u8>,
    /// The shortest length the file was truncated to since its last fsync.
    truncated_to: Option<usize>,
    modified_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    next_inode: Inode,
    inodes: BTreeMap<Inode, Contents>,
    /// The visible namespace: path → inode.
    names: BTreeMap<PathBuf, Inode>,
    /// The namespace as of the last fsync of each path's directory.
    durable_names: BTreeMap<PathBuf, Inode>,
    dirs: BTreeSet<PathBuf>,
    /// Changes still allowed before the simulated process death.
    budget: Option<u64>,
    /// A change was refused: the simulated crash happened.
    refused: bool,
    capacity: Option<u64>,
    faults: IoFaults,
    changes: u64,
    rng: u64,
}

impl State {
    /// Spends one change of the budget; fails once it is used up.
    fn change(&mut self) -> io::Result<()> {
        self.changes += 1;
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

    fn write(&mut self) -> io::Result<()> {
        self.change()?;
        if self.faults.writes {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.change()?;
        if self.faults.syncs {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }

    fn read(&self) -> io::Result<()> {
        if self.faults.reads {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }

    /// Bytes held by files that still have a name.
    fn used(&self) -> u64 {
        let live: BTreeSet<Inode> = self.names.values().copied().collect();
        live.iter()
            .map(|i| self.inodes[i].current.len() as u64)
            .sum()
    }

    /// SplitMix64: no dependency, and reproducible from the seed.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    fn upto(&mut self, max: usize) -> usize {
        (self.next_random() % (max as u64 + 1)) as usize
    }

    /// What of `contents` survives a power loss.
    fn survivor(&mut self, contents: &Contents) -> Vec<u8> {
        let Contents {
            current,
            synced,
            truncated_to,
            ..
        } = contents;
        let kept = match truncated_to {
            // Truncated (or rewritten) since the last fsync: either that
            // never reached the disk, or it did, and so may part of what
            // was appended after it.
            Some(_) if self.next_random() % 2 == 0 => return synced.clone(),
            Some(len) => *len,
            None => synced.len(),
        };
        debug_assert!(current.len() >= kept);
        let unsynced = &current[kept..];
        let mut data = current[..kept].to_vec();
        match self.next_random() % 4 {
            0 => {}
            1 => data.extend_from_slice(unsynced),
            2 => {
                let len = self.upto(unsynced.len());
                data.extend_from_slice(&unsynced[..len]);
            }
            _ => {
                // The size reached the disk; each sector may or may not have.
                let len = self.upto(unsynced.len());
                for chunk in unsynced[..len].chunks(SECTOR) {
                    if self.next_random() % 2 == 0 {
                        data.extend_from_slice(chunk);
                    } else {
                        data.resize(data.len() + chunk.len(), 0);
                    }
                }
            }
        }
        data
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

/// The in-memory, fault-injecting storage. See the module documentation.
#[derive(Debug)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct SimFile {
    inode: Inode,
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty disk; `seed` decides what a power loss tears.
    pub fn new(seed: u64) -> Arc<SimStorage> {
        Arc::new(SimStorage {
            state: Arc::new(Mutex::new(State {
                rng: seed,
                ..State::default()
            })),
        })
    }

    /// What the disk holds after a power loss now: a new storage (open
    /// files are not carried over; this one is left as it was).
    pub fn power_loss(&self) -> Arc<SimStorage> {
        let mut state = self.state.lock();
        let seed = state.next_random();
        let durable: Vec<(PathBuf, Inode)> = state
            .durable_names
            .iter()
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        let mut after = State {
            rng: seed,
            dirs: state.dirs.clone(),
            ..State::default()
        };
        let mut surviving: BTreeMap<Inode, Inode> = BTreeMap::new();
        for (path, inode) in durable {
            let new_inode = match surviving.get(&inode) {
                Some(i) => *i,
                None => {
                    let contents = state.inodes[&inode].clone();
                    let data = state.survivor(&contents);
                    let new_inode = after.next_inode;
                    after.next_inode += 1;
                    after.inodes.insert(
                        new_inode,
                        Contents {
                            synced: data.clone(),
                            current: data,
                            truncated_to: None,
                            modified_ms: contents.modified_ms,
                        },
                    );
                    surviving.insert(inode, new_inode);
                    new_inode
                }
            };
            after.names.insert(path.clone(), new_inode);
            after.durable_names.insert(path, new_inode);
        }
        Arc::new(SimStorage {
            state: Arc::new(Mutex::new(after)),
        })
    }

    /// Lets `changes` more changes through; every later one fails, as if
    /// the process had died there.
    pub fn crash_after(&self, changes: u64) {
        self.state.lock().budget = Some(changes);
    }

    /// Whether a change failed because of [`SimStorage::crash_after`].
    pub fn crashed(&self) -> bool {
        self.state.lock().refused
    }

    /// Changes (writes, fsyncs, creations, renames, removals) so far.
    pub fn changes(&self) -> u64 {
        self.state.lock().changes
    }

    /// A disk of `bytes` (`None`: unlimited). An append that does not fit
    /// writes what fits and fails with ENOSPC, as a real short write does.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    /// Bytes held by files that have a name.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used()
    }

    /// Makes the chosen operations fail with EIO from now on.
    pub fn set_faults(&self, faults: IoFaults) {
        self.state.lock().faults = faults;
    }

    /// One line per file of `dir`: name, inode, bytes written and synced,
    /// and whether its directory entry is durable (for debugging a test).
    pub fn describe(&self, dir: &Path) -> Vec<String> {
        let state = self.state.lock();
        state
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, i)| {
                let c = &state.inodes[i];
                format!(
                    "{} inode {i}: {} bytes, {} synced{}, entry {}",
                    p.file_name().unwrap_or_default().to_string_lossy(),
                    c.current.len(),
                    c.synced.len(),
                    if c.truncated_to.is_some() {
                        " (truncated since)"
                    } else {
                        ""
                    },
                    match state.durable_names.get(p) {
                        Some(d) if d == i => "durable".to_string(),
                        Some(d) => format!("durable as inode {d}"),
                        None => "not durable".to_string(),
                    }
                )
            })
            .collect()
    }

    /// Copies every file of `dir` into `target` on the real file system
    /// (for inspecting a failure).
    pub fn dump(&self, dir: &Path, target: &Path) -> io::Result<()> {
        let state = self.state.lock();
        std::fs::create_dir_all(target)?;
        for (path, inode) in &state.names {
            if path.parent() == Some(dir) {
                let name = path.file_name().unwrap_or_default();
                std::fs::write(target.join(name), &state.inodes[inode].current)?;
            }
        }
        Ok(())
    }
}

impl Storage for SimStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state.lock();
        let existing = state.names.get(path).copied();
        let inode = match (existing, mode) {
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (Some(inode), OpenMode::Existing) => inode,
            (Some(inode), OpenMode::Create) => {
                state.write()?;
                inode
            }
            (Some(inode), OpenMode::Truncate) => {
                state.write()?;
                let contents = state.inodes.get_mut(&inode).expect("named inode");
                contents.current.clear();
                contents.truncated_to = Some(0);
                contents.modified_ms = now_ms();
                inode
            }
            (None, _) => {
                state.write()?;
                let parent = path.parent().unwrap_or(Path::new(""));
                if !state.dirs.contains(parent) {
                    return Err(not_found(parent));
                }
                let inode = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(
                    inode,
                    Contents {
                        modified_ms: now_ms(),
                        ..Contents::default()
                    },
                );
                state.names.insert(path.to_path_buf(), inode);
                inode
            }
        };
        Ok(Arc::new(SimFile {
            inode,
            state: Arc::clone(&self.state),
        }))
    }

    fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let state = self.state.lock();
        state.read()?;
        Ok(state
            .names
            .get(path)
            .map(|inode| state.inodes[inode].current.clone()))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.state.lock();
        Ok(state.names.contains_key(path) || state.dirs.contains(path))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.write()?;
        state.names.remove(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.write()?;
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        state.read()?;
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        for ancestor in dir.ancestors() {
            if !state.dirs.insert(ancestor.to_path_buf()) {
                break;
            }
        }
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.write()?;
        state.names.retain(|p, _| !p.starts_with(dir));
        state.durable_names.retain(|p, _| !p.starts_with(dir));
        state.dirs.retain(|p| !p.starts_with(dir));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.sync()?;
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

impl StorageFile for SimFile {
    fn append(&self, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        state.write()?;
        let room = match state.capacity {
            Some(capacity) => capacity.saturating_sub(state.used()) as usize,
            None => usize::MAX,
        };
        let contents = state.inodes.get_mut(&self.inode).expect("open inode");
        contents.modified_ms = now_ms();
        if data.len() > room {
            contents.current.extend_from_slice(&data[..room]);
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        contents.current.extend_from_slice(data);
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        let state = self.state.lock();
        state.read()?;
        let current = &state.inodes[&self.inode].current;
        let start = usize::try_from(position).unwrap_or(usize::MAX);
        match start
            .checked_add(buf.len())
            .and_then(|end| current.get(start..end))
        {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "reading {} bytes at {position} of a {}-byte file",
                    buf.len(),
                    current.len()
                ),
            )),
        }
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        state.sync()?;
        let contents = state.inodes.get_mut(&self.inode).expect("open inode");
        contents.synced = contents.current.clone();
        contents.truncated_to = None;
        Ok(())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        state.write()?;
        let contents = state.inodes.get_mut(&self.inode).expect("open inode");
        let len = len as usize;
        contents.current.resize(len, 0);
        if len < contents.synced.len() {
            contents.truncated_to = Some(contents.truncated_to.map_or(len, |t| t.min(len)));
        }
        contents.modified_ms = now_ms();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().inodes[&self.inode].current.len() as u64)
    }

    fn modified_ms(&self) -> io::Result<Option<i64>> {
        Ok(Some(self.state.lock().inodes[&self.inode].modified_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Arc<SimStorage>, PathBuf) {
        let disk = SimStorage::new(1);
        let dir = PathBuf::from("/d");
        disk.create_dir_all(&dir).unwrap();
        (disk, dir)
    }

    #[test]
    fn unsynced_entries_and_bytes_can_vanish() {
        let (disk, dir) = setup();
        let f = disk.open(&dir.join("f"), OpenMode::Create).unwrap();
        f.append(b"abc").unwrap();
        f.sync().unwrap();
        // Never in a synced directory: gone after a power loss.
        assert_eq!(disk.power_loss().read_file(&dir.join("f")).unwrap(), None);
        disk.sync_dir(&dir).unwrap();
        f.append(&[7; 4000]).unwrap();
        let mut lengths = BTreeSet::new();
        for _ in 0..50 {
            let bytes = disk
                .power_loss()
                .read_file(&dir.join("f"))
                .unwrap()
                .unwrap();
            assert!(bytes.starts_with(b"abc"));
            assert!(bytes[3..].iter().all(|b| *b == 7 || *b == 0));
            lengths.insert(bytes.len());
        }
        assert!(lengths.contains(&3) && lengths.contains(&4003) && lengths.len() > 3);
    }

    #[test]
    fn rename_is_durable_only_after_a_directory_sync() {
        let (disk, dir) = setup();
        let f = disk.open(&dir.join("a.tmp"), OpenMode::Create).unwrap();
        f.append(b"x").unwrap();
        f.sync().unwrap();
        disk.sync_dir(&dir).unwrap();
        disk.rename(&dir.join("a.tmp"), &dir.join("a")).unwrap();
        let lost = disk.power_loss();
        assert!(lost.exists(&dir.join("a.tmp")).unwrap());
        assert!(!lost.exists(&dir.join("a")).unwrap());
        disk.sync_dir(&dir).unwrap();
        let kept = disk.power_loss();
        assert_eq!(kept.read_file(&dir.join("a")).unwrap().unwrap(), b"x");
    }

    #[test]
    fn a_full_disk_writes_a_short_prefix_and_says_enospc() {
        let (disk, dir) = setup();
        disk.set_capacity(Some(10));
        let f = disk.open(&dir.join("f"), OpenMode::Create).unwrap();
        f.append(b"12345678").unwrap();
        let e = f.append(b"abcd").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(ENOSPC));
        assert_eq!(f.len().unwrap(), 10);
        f.truncate(8).unwrap();
        disk.set_capacity(None);
        f.append(b"abcd").unwrap();
        assert_eq!(
            disk.read_file(&dir.join("f")).unwrap().unwrap(),
            b"12345678abcd"
        );
    }

    #[test]
    fn faults_and_the_crash_budget() {
        let (disk, dir) = setup();
        let f = disk.open(&dir.join("f"), OpenMode::Create).unwrap();
        disk.set_faults(IoFaults {
            syncs: true,
            ..IoFaults::default()
        });
        assert_eq!(f.sync().unwrap_err().raw_os_error(), Some(EIO));
        f.append(b"ok").unwrap();
        disk.set_faults(IoFaults::default());
        disk.crash_after(1);
        f.append(b"!").unwrap();
        assert!(f.append(b"?").is_err() && disk.crashed());
        assert_eq!(disk.read_file(&dir.join("f")).unwrap().unwrap(), b"ok!");
    }
}
