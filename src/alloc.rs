//! The binary's global allocator: mimalloc for small blocks, the system allocator for large
//! ones (glibc is told to map each of them from the OS by itself, and unmap it when freed).
//!
//! Small blocks are most of the allocations (the AWS SDK allocates heavily per request) and
//! mimalloc is fast at them; glibc's malloc cost about a fifth of the CPU per message. Large
//! blocks are message bodies, their sealed copies and receive answers, which come and go in
//! bursts: mimalloc packs blocks of 84–512 KiB eight or so to a 4 MiB page and keeps the
//! page while any of them lives. Mapped one by one, a freed body's memory goes back to the
//! OS at once: draining 600 × 256 KiB rejects peaked at 94 MB instead of 112–115 MB, and the
//! peak follows the byte budget (BENCHMARKS.md).

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks of at least this many bytes go to the system allocator: glibc's own threshold for
/// mapping a block by itself, fixed there by [`Split::tune`] (it otherwise rises to the
/// largest block freed, up to 32 MiB, and large bodies would pack into its heap again).
pub const LARGE_BLOCK_BYTES: usize = 128 * 1024;

/// mimalloc below [`LARGE_BLOCK_BYTES`], the system allocator from there on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Split;

fn is_large(size: usize) -> bool {
    size >= LARGE_BLOCK_BYTES
}

impl Split {
    /// Sets both allocators up; call first in `main`, before any thread.
    ///
    /// mimalloc asks for transparent huge pages on its arenas, and a 2 MiB page stays
    /// resident while any 4 KiB of it is in use: 20k small messages peaked at 38–39 MB
    /// instead of 25–27, 256 KiB rejects ~10 MB higher. The arena is reserved before
    /// `main`, too early for mimalloc's option, but the kernel's per-process switch is
    /// checked at each page fault, so it holds for all that follows (`MIMALLOC_ALLOW_THP`
    /// set by the user wins).
    pub fn tune(&self) {
        #[cfg(target_os = "linux")]
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            // SAFETY: takes integers, touches no memory of ours. A kernel without the
            // switch refuses it, and the process keeps its huge pages.
            unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: sets one of glibc's parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES as libc::c_int);
        }
    }
}

// SAFETY: each block is freed or resized by the allocator that made it: `dealloc` and
// `realloc` receive the layout the block was made with, and its size picks the same one.
// A resize that crosses the threshold moves the block to the other allocator.
unsafe impl GlobalAlloc for Split {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            unsafe { System.alloc(layout) }
        } else {
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout.size()) {
            unsafe { System.dealloc(ptr, layout) }
        } else {
            unsafe { MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (is_large(layout.size()), is_large(new_size)) {
            (false, false) => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
            (true, true) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: the caller guarantees new_size, rounded up to the alignment, fits
                // an isize, which is all from_size_align_unchecked asks.
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are valid for the smaller size and do not overlap.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates `from` bytes filled with a pattern, resizes to `to`, and checks the bytes
    /// kept survived, through every pair of allocators.
    fn resize_keeps_contents(from: usize, to: usize) {
        let a = Split;
        let layout = Layout::from_size_align(from, 8).expect("layout");
        // SAFETY: a non-zero layout; the block is written within its size, then freed with
        // the layout it has at that moment.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            for i in 0..from {
                *p.add(i) = (i % 251) as u8;
            }
            let q = a.realloc(p, layout, to);
            assert!(!q.is_null());
            for i in 0..from.min(to) {
                assert_eq!(*q.add(i), (i % 251) as u8, "byte {i} of {from} → {to}");
            }
            a.dealloc(q, Layout::from_size_align(to, 8).expect("layout"));
        }
    }

    #[test]
    fn resizing_within_and_across_the_threshold_keeps_the_bytes() {
        let t = LARGE_BLOCK_BYTES;
        for (from, to) in [
            (100, 200),
            (t - 1, t),
            (t, t - 1),
            (1000, 4 * t),
            (4 * t, 1000),
            (t, 8 * t),
            (8 * t, t),
        ] {
            resize_keeps_contents(from, to);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides() {
        let a = Split;
        for size in [64, LARGE_BLOCK_BYTES + 64] {
            let layout = Layout::from_size_align(size, 16).expect("layout");
            // SAFETY: a non-zero layout, read within its size, freed with it.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!((0..size).all(|i| *p.add(i) == 0));
                a.dealloc(p, layout);
            }
        }
    }
}
