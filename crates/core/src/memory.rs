//! A process-wide allocator setting for model inference.
//!
//! candle allocates a new buffer for every intermediate tensor; MobileSAM's encoder alone makes
//! hundreds of 16–64 MB activations per image. glibc's malloc serves blocks above its mmap
//! threshold (128 KB, adapting up to 32 MB) with fresh `mmap`s and gives freed memory at the top
//! of the heap back to the system, so every such buffer comes back as new pages the kernel must
//! fault in and zero: measured 1.39 million minor page faults for one MobileSAM automatic-mask
//! image, about 5 s of a 2-core machine. [`keep_freed_memory`] makes malloc keep freed memory for
//! reuse instead (0.13 million faults, same peak memory).
//!
//! It changes the whole process, so libraries do not call it; programs do, once, at start (the
//! `mica` binary, the examples and benchmarks, the model tests).

/// Raises glibc's mmap and trim thresholds to their maximum so that freed blocks are reused
/// rather than returned to the system. Returns whether the setting took effect (always `false`
/// off Linux/glibc, where it does nothing).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Safety: mallopt only changes malloc's parameters under its own lock; it has no
        // memory-safety preconditions.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_setting_is_accepted_where_it_exists() {
        let ok = super::keep_freed_memory();
        assert_eq!(ok, cfg!(all(target_os = "linux", target_env = "gnu")));
        // Allocation still works afterwards, large and small.
        let v = vec![1u8; 100 << 20];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 100 << 20);
    }
}
