//! Memory: a process-wide allocator setting for model inference, and the memory budget that
//! images are admitted under ([`MemoryBudget`]).
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

/// A memory budget shared by the images of a batch: before an image is decoded, the memory it
/// will need (estimated from its header and the method) is reserved here. An image that needs
/// more than the whole budget is refused with a message; one that fits the budget but not what
/// other images hold now waits for them. One image can thus never take the process (and every
/// image after it) down by exhausting memory.
#[derive(Debug)]
pub struct MemoryBudget {
    total: u64,
    /// Where the total comes from, for messages (e.g. `--max-memory 4G`).
    source: String,
    used: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
}

/// Memory reserved from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

impl Reservation<'_> {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl MemoryBudget {
    /// A budget of `total` bytes; `source` says where the number comes from.
    pub fn new(total: u64, source: impl Into<String>) -> Self {
        MemoryBudget {
            total,
            source: source.into(),
            used: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// The default budget of this machine: three quarters of the smallest of the physical
    /// memory, the cgroup's memory limit and what the address-space limit (`ulimit -v`) leaves
    /// this process.
    pub fn of_machine() -> Self {
        let (total, source) = machine_limit();
        MemoryBudget::new(total / 4 * 3, format!("3/4 of {source}"))
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reserves `bytes`, waiting while other reservations leave too little.
    ///
    /// # Errors
    /// A message naming the need and the budget when `bytes` exceeds the whole budget.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation<'_>, String> {
        if bytes > self.total {
            return Err(format!(
                "needs about {} of memory, more than the budget of {} ({}); give --max-memory, or --tile (classical and SAM)",
                human(bytes),
                human(self.total),
                self.source
            ));
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used + bytes > self.total {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        Ok(Reservation {
            budget: self,
            bytes,
        })
    }
}

/// `bytes` in binary units (KiB, MiB, GiB) with one decimal.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// Parses a size: bytes, or a number with K, M, G or T (binary: 1K = 1024 bytes; `KiB`, `MB`,
/// `GB`... are read the same way), e.g. `4G`, `1.5GiB`, `800M`.
///
/// # Errors
/// A message for anything else.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: give a size such as 4G, 800M or a number of bytes"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (K, M, G or T)")),
    };
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// The smallest of the machine's memory limits, and what it is.
fn machine_limit() -> (u64, String) {
    let mut limits: Vec<(u64, String)> = Vec::new();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(kb) = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        limits.push((
            kb * 1024,
            format!("the machine's {} of memory", human(kb * 1024)),
        ));
    }
    for f in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Some(b) = std::fs::read_to_string(f)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            limits.push((b, format!("the cgroup's memory limit of {}", human(b))));
        }
    }
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // Safety: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0
            && r.rlim_cur != libc::RLIM_INFINITY
        {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let vm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmSize:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024;
            // rlim_t is u64 on Linux, not on every unix.
            #[allow(clippy::unnecessary_cast)]
            let cur = r.rlim_cur as u64;
            let left = cur.saturating_sub(vm);
            limits.push((
                left,
                format!(
                    "the {} of address space left under the limit of {} (ulimit -v)",
                    human(left),
                    human(cur)
                ),
            ));
        }
    }
    limits.into_iter().min_by_key(|(b, _)| *b).unwrap_or((
        8 << 30,
        "an assumed 8 GiB (no memory limit could be read)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("800M").unwrap(), 800 << 20);
        assert_eq!(parse_size("12345").unwrap(), 12345);
        assert!(parse_size("4X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn a_need_above_the_budget_is_refused_and_one_that_fits_waits_for_room() {
        let b = std::sync::Arc::new(MemoryBudget::new(100, "a test budget"));
        let e = b.reserve(101).unwrap_err();
        assert!(
            e.contains("more than the budget") && e.contains("a test budget"),
            "{e}"
        );
        let first = b.reserve(70).unwrap();
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let r = b2.reserve(50).unwrap();
            (t0.elapsed(), r.bytes())
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(first);
        let (waited, bytes) = waiter.join().unwrap();
        assert_eq!(bytes, 50);
        assert!(
            waited >= std::time::Duration::from_millis(150),
            "{waited:?}"
        );
        assert_eq!(*b.used.lock().unwrap(), 0);
    }

    #[test]
    fn the_machine_budget_is_below_the_machine() {
        let b = MemoryBudget::of_machine();
        assert!(b.total() > 0 && b.source().starts_with("3/4 of"), "{b:?}");
    }

    #[test]
    fn the_setting_is_accepted_where_it_exists() {
        let ok = super::keep_freed_memory();
        assert_eq!(ok, cfg!(all(target_os = "linux", target_env = "gnu")));
        // Allocation still works afterwards, large and small.
        let v = vec![1u8; 100 << 20];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 100 << 20);
    }
}
