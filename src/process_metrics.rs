//! Metrics about the process itself, read on each scrape: the `process_*` series Prometheus's Go
//! client exports (CPU, memory, file descriptors, start time; Linux `/proc`), and the allocator's own
//! accounting as `vigil_allocator_*` (what the heap holds, what jemalloc keeps mapped for it), so an
//! operator can tell live data from allocator retention.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug, Default)]
pub struct ProcessCollector;

/// Ticks per second of `/proc/<pid>/stat` times.
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 { n as f64 } else { 100.0 }
}

struct ProcStat {
    cpu_seconds: f64,
    start_ticks: f64,
    vsize: f64,
    rss_pages: f64,
    threads: f64,
}

fn proc_stat() -> Option<ProcStat> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field n of proc(5) is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    Some(ProcStat {
        cpu_seconds: (num(14)? + num(15)?) / clk_tck(),
        threads: num(20)?,
        start_ticks: num(22)?,
        vsize: num(23)?,
        rss_pages: num(24)?,
    })
}

fn boot_time() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Soft limit of a `/proc/self/limits` row; -1 when unlimited (as the Go client reports it).
fn limit(row: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with(row))?;
    let soft = line[row.len()..].split_whitespace().next()?;
    Some(if soft == "unlimited" {
        -1.0
    } else {
        soft.parse().ok()?
    })
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as f64 } else { 4096.0 }
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

/// jemalloc's statistics, refreshed (`epoch`) before they are read.
fn allocator() -> Option<[(&'static str, &'static str, usize); 6]> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some([
        (
            "vigil_allocator_allocated_bytes",
            "Bytes in live heap allocations.",
            stats::allocated::read().ok()?,
        ),
        (
            "vigil_allocator_active_bytes",
            "Bytes in the allocator's active pages (live allocations and the free space of their pages).",
            stats::active::read().ok()?,
        ),
        (
            "vigil_allocator_resident_bytes",
            "Bytes of the allocator's pages resident in memory (active, dirty not yet returned, metadata).",
            stats::resident::read().ok()?,
        ),
        (
            "vigil_allocator_mapped_bytes",
            "Bytes in the allocator's mapped extents.",
            stats::mapped::read().ok()?,
        ),
        (
            "vigil_allocator_retained_bytes",
            "Bytes of address space the allocator keeps for reuse without memory behind it.",
            stats::retained::read().ok()?,
        ),
        (
            "vigil_allocator_metadata_bytes",
            "Bytes of the allocator's own metadata.",
            stats::metadata::read().ok()?,
        ),
    ])
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        if let Some(st) = proc_stat() {
            let c = ConstCounter::new(st.cpu_seconds);
            let m = enc.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                c.metric_type(),
            )?;
            c.encode(m)?;
            gauge(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                st.rss_pages * page_size(),
            )?;
            gauge(
                &mut enc,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                st.vsize,
            )?;
            gauge(
                &mut enc,
                "vigil_process_threads",
                "Threads of the process.",
                st.threads,
            )?;
            if let Some(bt) = boot_time() {
                gauge(
                    &mut enc,
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    bt + st.start_ticks / clk_tck(),
                )?;
            }
        }
        if let Some(n) = open_fds() {
            gauge(
                &mut enc,
                "process_open_fds",
                "Number of open file descriptors.",
                n,
            )?;
        }
        if let Some(n) = limit("Max open files") {
            gauge(
                &mut enc,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                n,
            )?;
        }
        if let Some(n) = limit("Max address space") {
            gauge(
                &mut enc,
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                n,
            )?;
        }
        if let Some(stats) = allocator() {
            for (name, help, v) in stats {
                gauge(&mut enc, name, help, v as f64)?;
            }
        }
        Ok(())
    }
}

/// jemalloc's full statistics as text (`malloc_stats_print`), for `/debug/allocator`.
pub fn stats_text() -> String {
    extern "C" fn write(out: *mut std::ffi::c_void, s: *const std::ffi::c_char) {
        // SAFETY: `out` is the `&mut String` passed below, alive for the whole call, and jemalloc
        // calls back from the calling thread only; `s` is a NUL-terminated string it owns.
        let (out, s) = unsafe { (&mut *(out as *mut String), std::ffi::CStr::from_ptr(s)) };
        out.push_str(&s.to_string_lossy());
    }
    let mut out = String::new();
    // SAFETY: the callback matches jemalloc's `write_cb` signature, its opaque argument is `out`,
    // and the options string is NUL-terminated (empty: everything).
    unsafe {
        tikv_jemalloc_sys::malloc_stats_print(
            Some(write),
            (&mut out as *mut String).cast(),
            c"".as_ptr(),
        )
    };
    out
}
