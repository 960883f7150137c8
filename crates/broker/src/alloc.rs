//! The process allocator, hardened against hostile length prefixes.
//!
//! Kafka's wire format prefixes every array with a 32-bit element count, and
//! the generated decoders reserve `count` elements before reading them. A
//! few bytes claiming two billion elements would make the system allocator
//! fail and abort the process (the class of bug behind CVE-2022-34917). Here
//! every allocation of [`LARGE_ALLOCATION`] (1 MiB) or more is served by an
//! anonymous `MAP_NORESERVE` mapping instead: it costs address space, not
//! memory, until touched. The decoder then fails on the first missing
//! element, the connection is closed, and the mapping is released.
//!
//! Why 1 MiB and not more: under Linux's default overcommit heuristic a
//! single ordinary allocation larger than RAM + swap fails, so on a small
//! edge box even a 500 MB reservation would abort the broker; with strict
//! overcommit every reservation counts against the commit limit. Below the
//! threshold a hostile count reserves at most 1 MiB per array being
//! decoded. And the broker's own large buffers (frames, their copies for an
//! append, fetch responses) go back to the kernel the moment they are
//! freed, instead of lingering in glibc's arenas (which raise their mmap
//! threshold up to 32 MiB once large blocks are freed): under load the RSS
//! follows the memory actually in use. The price is an `mmap`/`munmap` pair
//! per large buffer, small next to filling a megabyte.
//!
//! The allocator also counts the bytes of allocations of 4 KiB and more
//! ([`stats`]): committed (below the threshold) with their peak, and
//! reserved (mapped). The fuzz targets and their corpus replay use this to
//! check that no input makes the decoders commit more than a bound.
//!
//! This is the only module allowed `unsafe` code: implementing
//! [`GlobalAlloc`] is unsafe by definition.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Allocations at or above this size go to `mmap(MAP_NORESERVE)`.
pub const LARGE_ALLOCATION: usize = 1 << 20;
const PAGE: usize = 4096;
/// Allocations from this size on are counted.
const COUNTED: usize = 4096;

static COMMITTED: AtomicUsize = AtomicUsize::new(0);
static PEAK_COMMITTED: AtomicUsize = AtomicUsize::new(0);
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// Bytes in live allocations of 4 KiB and more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocStats {
    /// From the system allocator (below [`LARGE_ALLOCATION`]).
    pub committed: usize,
    /// The highest `committed` since the last [`reset_peak`].
    pub peak_committed: usize,
    /// Mapped with `MAP_NORESERVE`: address space, memory only once touched.
    pub reserved: usize,
}

/// The allocator's counters (see the module documentation).
pub fn stats() -> AllocStats {
    AllocStats {
        committed: COMMITTED.load(Ordering::Relaxed),
        peak_committed: PEAK_COMMITTED.load(Ordering::Relaxed),
        reserved: RESERVED.load(Ordering::Relaxed),
    }
}

/// Starts a new peak from the bytes committed now.
pub fn reset_peak() {
    PEAK_COMMITTED.store(COMMITTED.load(Ordering::Relaxed), Ordering::Relaxed);
}

fn counted(size: usize, large: bool) {
    if large {
        RESERVED.fetch_add(size, Ordering::Relaxed);
    } else if size >= COUNTED {
        let now = COMMITTED.fetch_add(size, Ordering::Relaxed) + size;
        PEAK_COMMITTED.fetch_max(now, Ordering::Relaxed);
    }
}

fn released(size: usize, large: bool) {
    if large {
        RESERVED.fetch_sub(size, Ordering::Relaxed);
    } else if size >= COUNTED {
        COMMITTED.fetch_sub(size, Ordering::Relaxed);
    }
}

pub struct GuardedAllocator;

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE_ALLOCATION && layout.align() <= PAGE
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED and turned into null.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        ptr.cast()
    }
}

unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let large = is_large(&layout);
        let ptr = if large {
            // SAFETY: size is non-zero (>= LARGE_ALLOCATION).
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        };
        if !ptr.is_null() {
            counted(layout.size(), large);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let large = is_large(&layout);
        let ptr = if large {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        };
        if !ptr.is_null() {
            counted(layout.size(), large);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let large = is_large(&layout);
        if large {
            // SAFETY: `ptr` came from `map` with this exact size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
        released(layout.size(), large);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `layout.align()` is valid with `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_large(&layout) && !is_large(&new_layout) {
            // SAFETY: both sides are System allocations.
            let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
            if !new_ptr.is_null() {
                released(layout.size(), false);
                counted(new_size, false);
            }
            return new_ptr;
        }
        // SAFETY: new_layout is valid and non-zero sized (one side is large).
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both regions are valid for the copied length and distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_huge_reservation_does_not_abort() {
        // 64 GiB of virtual space: more than this machine's memory.
        let v: Vec<u64> = Vec::with_capacity(8 << 30);
        assert!(v.capacity() >= 8 << 30);
        assert!(super::stats().reserved >= 64 << 30);
    }

    #[test]
    fn large_buffers_grow_and_shrink_across_the_threshold() {
        let mut v: Vec<u8> = Vec::new();
        for i in 0..(40usize << 20) {
            v.push(i as u8);
        }
        assert!(v.iter().enumerate().all(|(i, b)| *b == i as u8));
        v.truncate(1000);
        v.shrink_to_fit();
        assert_eq!(v.len(), 1000);
        assert!(v.iter().enumerate().all(|(i, b)| *b == i as u8));
    }
}
