//! Handing freed memory back to the system when the node needs it, for the binaries, whose
//! allocator is jemalloc. A flush frees a whole frozen head (hundreds of megabytes of small
//! allocations) at once; left to jemalloc's decay, those pages stayed resident for about a
//! second, 350 to 600 MB of the benchmark's RSS at any moment. Purged pages are faulted in
//! again by the next allocations (page faults were 16% of the server's CPU in a profile at 3M
//! spans), so they are purged only when the node is near its bound. The store calls this after
//! each flush and compaction (`StoreConfig::release_memory`).
#![allow(unsafe_code)]

/// Purges every jemalloc arena's unused dirty pages (`arena.<MALLCTL_ARENAS_ALL>.purge`) when
/// jemalloc keeps more than `keep_resident` bytes resident. Harmless where jemalloc is linked
/// but not the global allocator: it purges nothing.
pub fn release_freed_pages(keep_resident: u64) {
    if resident_bytes().is_some_and(|resident| resident <= keep_resident) {
        return;
    }
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

/// What jemalloc keeps resident now (what it handed out, its metadata, and freed pages not
/// yet returned), or `None` if its statistics cannot be read.
fn resident_bytes() -> Option<u64> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    stats::resident::read().ok().map(|bytes| bytes as u64)
}
