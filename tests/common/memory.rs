//! A child's memory, read from `/proc/<pid>/status`, for the benchmarks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`, `RssAnon`, ...); 0 once the
/// process is gone.
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Peaks of a running process, polled every 5 ms until dropped: `VmHWM` (all resident pages,
/// the binary's own included) and `RssAnon` (heap and stacks: what grows with the work), which
/// the kernel keeps no high-water mark of.
pub struct MemoryPeaks {
    hwm: Arc<AtomicU64>,
    anon: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl MemoryPeaks {
    pub fn start(pid: u32) -> MemoryPeaks {
        let (hwm, anon) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, a, s) = (hwm.clone(), anon.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                h.fetch_max(vm_kib(pid, "VmHWM"), Ordering::SeqCst);
                a.fetch_max(vm_kib(pid, "RssAnon"), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        MemoryPeaks { hwm, anon, stop }
    }

    pub fn hwm_kib(&self) -> u64 {
        self.hwm.load(Ordering::SeqCst)
    }

    pub fn anon_kib(&self) -> u64 {
        self.anon.load(Ordering::SeqCst)
    }
}

impl Drop for MemoryPeaks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
