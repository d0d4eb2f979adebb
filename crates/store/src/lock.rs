//! One writer per store: a run holds an exclusive lock on `<store>.lock` while it runs.
//!
//! Two runs on one store would each see the same predictions missing and make (and pay for) them
//! twice. That happens on clusters: a requeued Slurm task can start while the old one is still being
//! killed, or two array tasks are given the same store by mistake. The second run waits a bounded
//! time for the first to end, then refuses, naming the holder (process, host, since when).
//!
//! The lock is the operating system's (`flock` via [`std::fs::File::try_lock`]): it is released
//! when the holding process ends in any way, `kill -9` included, so a stale lock file never blocks
//! anything. The file's text (holder's pid, host and start time) is only there to be shown.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Held while a run writes its store; released on drop (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

/// The lock file of a store: `results.sqlite` → `results.sqlite.lock`.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut s = store.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// Why a store could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds the store.
    #[error("the store {store} is in use by another mica run ({holder}); waited {waited_s} s. Two runs on one store would make the same predictions twice: wait for that run to end (or stop it), or give this one its own --store")]
    Busy {
        store: PathBuf,
        holder: String,
        waited_s: u64,
    },
    /// The lock file cannot be created or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RunLock {
    /// Locks `store` for a run, waiting up to `wait` for another run to end; `on_wait` is called
    /// once, with the holder's description, if it has to wait.
    ///
    /// # Errors
    /// [`LockError::Busy`] when another run still holds it after `wait`; [`LockError::Io`] when
    /// the lock file cannot be opened (a read-only folder) or the file system has no locks.
    pub fn acquire(
        store: &Path,
        wait: Duration,
        mut on_wait: impl FnMut(&str),
    ) -> Result<RunLock, LockError> {
        let path = lock_path(store);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let start = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = holder_of(&mut file);
                    if start.elapsed() >= wait {
                        return Err(LockError::Busy {
                            store: store.to_path_buf(),
                            holder,
                            waited_s: start.elapsed().as_secs(),
                        });
                    }
                    if !told {
                        on_wait(&holder);
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let text = format!(
            "pid {} on host {} since unix time {since}\n",
            std::process::id(),
            hostname()
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { file, path })
    }

    /// Whether some run holds `store` now (without waiting or creating anything); its description
    /// if so.
    pub fn holder(store: &Path) -> Option<String> {
        let mut file = File::open(lock_path(store)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                None
            }
            Err(std::fs::TryLockError::WouldBlock) => Some(holder_of(&mut file)),
            Err(std::fs::TryLockError::Error(_)) => None,
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

fn holder_of(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind();
    let _ = file.take(200).read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "holder unknown".into()
    } else {
        s.to_string()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_on_a_held_store_waits_then_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("r.sqlite");
        let first = RunLock::acquire(&store, Duration::ZERO, |_| {}).unwrap();
        assert_eq!(first.path(), dir.path().join("r.sqlite.lock"));
        let held = RunLock::holder(&store).unwrap();
        assert!(
            held.contains(&format!("pid {}", std::process::id())),
            "{held}"
        );
        let mut waited = Vec::new();
        let e = RunLock::acquire(&store, Duration::from_millis(300), |h| {
            waited.push(h.to_string())
        })
        .unwrap_err();
        assert_eq!(waited.len(), 1);
        let msg = e.to_string();
        assert!(
            msg.contains("in use by another mica run")
                && msg.contains("r.sqlite")
                && msg.contains("pid "),
            "{msg}"
        );
        drop(first);
        assert_eq!(RunLock::holder(&store), None);
        RunLock::acquire(&store, Duration::ZERO, |_| {}).unwrap();
    }

    #[test]
    fn a_run_waiting_for_the_store_gets_it_when_the_holder_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("r.sqlite");
        let first = RunLock::acquire(&store, Duration::ZERO, |_| {}).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            drop(first);
        });
        let mut told = 0;
        RunLock::acquire(&store, Duration::from_secs(20), |_| told += 1).unwrap();
        assert_eq!(told, 1);
        t.join().unwrap();
    }
}
