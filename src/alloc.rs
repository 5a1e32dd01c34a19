//! The server's global allocator: jemalloc, with the head's long-lived allocations in an arena of
//! their own.
//!
//! A series' labels, its `MemSeries` and its postings are allocated once and kept for hours, while
//! the remote-write request that created it allocates and frees thousands of short-lived objects of
//! the same sizes on the same thread. Sharing pages, the long-lived ones pin pages the short-lived
//! ones left mostly empty (measured at 100K series: 18 MB of 88 MB active was free space inside
//! pages). `vigil_storage::alloc` marks the head's long-lived allocations with a thread-local flag;
//! while it is set this allocator takes memory from a dedicated arena, bypassing the thread cache so
//! that no short-lived allocation is handed a slot there. Everything else, and every free, goes to
//! jemalloc as usual (jemalloc frees to the arena a pointer came from).

use std::alloc::{GlobalAlloc, Layout};
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU32, Ordering};

use tikv_jemalloc_sys as ffi;
use tikv_jemallocator::Jemalloc;

/// jemalloc's smallest alignment for any allocation on x86_64 and aarch64 (`alignof(max_align_t)`).
const MIN_ALIGN: usize = 16;
/// No arena created yet (or creating one failed): long-lived allocations go to the default arenas.
const NO_ARENA: u32 = u32::MAX;

static HEAD_ARENA: AtomicU32 = AtomicU32::new(NO_ARENA);

pub struct VigilAllocator;

/// Creates the head's arena. Called once at start-up, before the head exists; without it the
/// allocator behaves exactly as plain jemalloc.
pub fn init() {
    let mut idx: u32 = 0;
    let mut len = std::mem::size_of::<u32>();
    // SAFETY: "arenas.create" writes an unsigned arena index into a buffer of `len` bytes and reads
    // nothing (null new value).
    let rc = unsafe {
        ffi::mallctl(
            c"arenas.create".as_ptr(),
            (&mut idx as *mut u32).cast::<c_void>(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc == 0 {
        HEAD_ARENA.store(idx, Ordering::Relaxed);
    } else {
        tracing::warn!(
            errno = rc,
            "could not create the head's jemalloc arena; using the default arenas"
        );
    }
}

/// The arena index for this allocation's flags when the current thread is in a long-lived scope.
#[inline]
fn long_lived_arena() -> Option<u32> {
    let a = HEAD_ARENA.load(Ordering::Relaxed);
    (a != NO_ARENA && vigil_storage::alloc::in_long_lived_scope()).then_some(a)
}

#[inline]
fn flags(arena: u32, layout_align: usize, size: usize) -> c_int {
    let align = if layout_align <= MIN_ALIGN && layout_align <= size {
        0
    } else {
        ffi::MALLOCX_ALIGN(layout_align)
    };
    align | ffi::MALLOCX_ARENA(arena as usize) | ffi::MALLOCX_TCACHE_NONE
}

// SAFETY: every method forwards to jemalloc with the layout's size and alignment; jemalloc's
// mallocx/rallocx honour MALLOCX_ALIGN, and sdallocx (Jemalloc::dealloc) accepts pointers from any
// arena.
unsafe impl GlobalAlloc for VigilAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match long_lived_arena() {
            // SAFETY: layout.size() is non-zero (GlobalAlloc's contract).
            Some(a) => unsafe {
                ffi::mallocx(layout.size(), flags(a, layout.align(), layout.size())).cast()
            },
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { Jemalloc.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match long_lived_arena() {
            // SAFETY: as in alloc.
            Some(a) => unsafe {
                ffi::mallocx(
                    layout.size(),
                    flags(a, layout.align(), layout.size()) | ffi::MALLOCX_ZERO,
                )
                .cast()
            },
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { Jemalloc.alloc_zeroed(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees; jemalloc finds the pointer's arena itself.
        unsafe { Jemalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match long_lived_arena() {
            // SAFETY: ptr was allocated by this allocator with `layout`; new_size is non-zero.
            Some(a) => unsafe {
                ffi::rallocx(ptr.cast(), new_size, flags(a, layout.align(), new_size)).cast()
            },
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { Jemalloc.realloc(ptr, layout, new_size) },
        }
    }
}
