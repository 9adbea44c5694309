//! Handing freed memory back to the system at once, for the binaries, whose allocator is
//! jemalloc. A flush frees a whole frozen head (hundreds of megabytes of small allocations) at
//! once; left to jemalloc's decay, those pages stayed resident for about a second, 350 to
//! 600 MB of the benchmark's RSS at any moment. The store calls this after each flush and
//! compaction (`StoreConfig::release_memory`).
#![allow(unsafe_code)]

/// Purges every jemalloc arena's unused dirty pages (`arena.<MALLCTL_ARENAS_ALL>.purge`).
/// Harmless where jemalloc is linked but not the global allocator: it purges nothing.
pub fn release_freed_pages() {
    // SAFETY: `arena.4096.purge` is a void control: jemalloc reads and writes nothing through
    // the pointers, which are all null as it requires, and the name is NUL-terminated.
    let result = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if result != 0 {
        tracing::debug!(result, "jemalloc did not purge its arenas");
    }
}
