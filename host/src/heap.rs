//! The process heap: keeps memory that hostile or unusual requests made the allocator take from
//! growing the resident set for good.
//!
//! glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), so
//! that after a few large request bodies every later large buffer comes from an arena, where
//! freed space fragments and is seldom returned: resident memory climbs round after round of
//! malformed or oversized requests (`bench soak` shows it). A fixed threshold keeps large blocks
//! in mappings of their own, handed back to the kernel when freed.

/// Blocks of this size and larger are mapped on their own (glibc's own starting threshold).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes the allocator's mmap threshold (glibc); nothing elsewhere. Call first thing in `main`.
pub fn bound_heap_growth() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before other threads exist.
    // (It fails only for a threshold above glibc's 32 MiB maximum.)
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
