//! The allocator of every binary built on this crate (the function, the CLI, the tests and
//! the benchmark, so that what is tested and measured is what ships): mimalloc, with two
//! of its options set before its first allocation.
//!
//! Why mimalloc: each log object allocates and frees many small blocks (the counters'
//! keys, samples, metric documents) around a few large buffers. On S3's small objects
//! glibc's malloc spent about a sixth of the handler's CPU on them, much of it merging
//! free chunks (`malloc_consolidate`, `unlink_chunk`). BENCHMARKS.md, "What changed,
//! round by round", has the measurements.
//!
//! Why the options: with mimalloc's defaults a 1 GiB object peaked at 113–128 MiB of
//! resident memory, against 77–83 MiB with glibc, too close to a 128 MB function. Freed
//! memory then stays committed for a second ([`PURGE_DELAY_MS`] shortens that) and arenas
//! are committed ahead of use ([`ARENA_EAGER_COMMIT`] turns that off); with both set the
//! same object peaks at 78–85 MiB.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys::{mi_option_set, mi_option_t};
use mimalloc::MiMalloc;

// The option numbers below are `mi_option_e` in mimalloc 3.3.2's `mimalloc.h`. The
// dependency is pinned to that release, and a test checks that it is the one linked.

/// `mi_option_arena_eager_commit`: whether arenas are committed when reserved.
const ARENA_EAGER_COMMIT: mi_option_t = 4;

/// `mi_option_purge_delay`: milliseconds before freed memory is returned to the OS.
const PURGE_DELAY: mi_option_t = 15;

/// How long freed memory stays committed: mimalloc 2's default. A few page faults per
/// log object re-commit it (BENCHMARKS.md).
pub const PURGE_DELAY_MS: i64 = 10;

/// mimalloc, configured by the first allocation of the process.
pub struct Allocator;

/// Set once the options are set; until then every allocation checks it.
static CONFIGURED: AtomicBool = AtomicBool::new(false);

#[inline]
fn configure_once() {
    if !CONFIGURED.load(Ordering::Relaxed) {
        configure();
    }
}

#[cold]
fn configure() {
    // SAFETY: setting an option is a plain store into mimalloc's option table, allowed at
    // any time and from any thread; two threads racing here store the same values.
    unsafe {
        mi_option_set(ARENA_EAGER_COMMIT, 0);
        mi_option_set(PURGE_DELAY, PURGE_DELAY_MS as _);
    }
    CONFIGURED.store(true, Ordering::Relaxed);
}

// SAFETY: every call is passed unchanged to `MiMalloc`, which upholds `GlobalAlloc`'s
// contract; `configure_once` does not allocate.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        configure_once();
        // SAFETY: the caller's guarantees for `layout` are passed on.
        unsafe { MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        configure_once();
        // SAFETY: as for `alloc`.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `MiMalloc`.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `MiMalloc`; the caller's guarantees are passed on.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use libmimalloc_sys::{mi_option_get, mi_version};

    use super::*;

    /// `MI_MALLOC_VERSION` of the release the option numbers come from.
    const MIMALLOC_VERSION: i32 = 30302;

    #[test]
    fn the_linked_mimalloc_is_the_one_the_option_numbers_come_from() {
        // SAFETY: reads a constant.
        assert_eq!(unsafe { mi_version() }, MIMALLOC_VERSION);
    }

    #[test]
    fn the_options_are_set_by_the_time_anything_was_allocated() {
        let allocated = Box::new([1u8; 64]);
        assert_eq!(allocated.iter().map(|&b| u32::from(b)).sum::<u32>(), 64);
        // SAFETY: reads mimalloc's option table.
        let (eager, delay) = unsafe {
            (
                mi_option_get(ARENA_EAGER_COMMIT),
                mi_option_get(PURGE_DELAY),
            )
        };
        assert_eq!((eager, delay), (0, PURGE_DELAY_MS as _));
    }
}
