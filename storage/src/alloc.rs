//! Marks the allocations that live as long as a head series (its labels, its `MemSeries`, its
//! postings and table entries) so that the binary's global allocator can place them apart from
//! the short-lived allocations of request decoding and queries.
//!
//! Mixed in the same pages, the short-lived allocations free most of a page while one long-lived
//! neighbour keeps it resident: that is where most of the head's fragmentation came from (see
//! docs/ARCHITECTURE.md, "Memory settings"). This crate only sets a thread-local flag; the server's
//! allocator (`src/alloc.rs`) reads it with [`in_long_lived_scope`] and allocates from a dedicated
//! jemalloc arena while it is set. Under any other allocator (tests, examples) the flag changes
//! nothing.

use std::cell::Cell;

thread_local! {
    // `const` initialisation and no destructor: safe to read from inside a global allocator.
    static LONG_LIVED: Cell<bool> = const { Cell::new(false) };
}

/// True while the current thread runs inside [`long_lived`].
#[inline]
pub fn in_long_lived_scope() -> bool {
    LONG_LIVED.with(Cell::get)
}

/// Runs `f` with the current thread's allocations marked long-lived (nested calls are fine).
pub(crate) fn long_lived<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            LONG_LIVED.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(LONG_LIVED.with(|c| c.replace(true)));
    f()
}

/// The next capacity, in bytes, for a buffer of `bytes` that grows one element at a time: jemalloc's
/// size classes (16 bytes apart up to 64, then four per doubling) instead of doubling, for the
/// buffers the head keeps one or several of per series.
pub(crate) fn next_size_class(bytes: usize) -> usize {
    if bytes < 32 {
        32
    } else if bytes < 64 {
        bytes / 16 * 16 + 16
    } else {
        let step = (bytes + 1).next_power_of_two() / 8;
        bytes / step * step + step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_reset_even_on_panic() {
        assert!(!in_long_lived_scope());
        long_lived(|| {
            assert!(in_long_lived_scope());
            long_lived(|| assert!(in_long_lived_scope()));
            assert!(
                in_long_lived_scope(),
                "an inner scope must not end the outer one"
            );
        });
        assert!(!in_long_lived_scope());
        let r = std::panic::catch_unwind(|| long_lived(|| panic!("inside")));
        assert!(r.is_err());
        assert!(
            !in_long_lived_scope(),
            "a panic inside a scope must not leave the flag set"
        );
        // Another thread has its own flag.
        long_lived(|| {
            std::thread::spawn(|| assert!(!in_long_lived_scope()))
                .join()
                .unwrap()
        });
    }
}
