//! Process statistics for `status`: resident memory and CPU time of the vCPU threads and the process.

/// VmRSS of this process in bytes (0 if unavailable).
pub fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_status_kib(&text, "VmRSS:") * 1024
}

fn parse_status_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime in clock ticks from a `/proc/.../stat` line.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Total CPU time of the given threads of this process, in milliseconds.
pub fn threads_cpu_ms(tids: &[i32]) -> u64 {
    let ticks: u64 = tids
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/self/task/{t}/stat")).ok())
        .filter_map(|s| stat_cpu_ticks(&s))
        .sum();
    ticks * 1000 / clock_ticks_per_sec()
}

/// User + system CPU time of the whole process, in milliseconds.
pub fn process_cpu_ms() -> u64 {
    rusage_ms(libc::RUSAGE_SELF)
}

/// User + system CPU time of the calling thread, in milliseconds (no file to open: a vCPU thread's
/// seccomp filter allows `getrusage`, not `openat`).
pub fn this_thread_cpu_ms() -> u64 {
    rusage_ms(libc::RUSAGE_THREAD)
}

fn rusage_ms(who: libc::c_int) -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the valid pointer we pass.
    let rc = unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: getrusage succeeded, so the struct is initialised.
    let ru = unsafe { ru.assume_init() };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

/// Bytes of `[addr, addr + len)` (page aligned) that are resident, via mincore(2).
pub fn resident_bytes(addr: *mut u8, len: usize) -> u64 {
    let page = 4096usize;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: `addr..addr+len` is a mapping owned by the caller; mincore only reads page tables and
    // writes one byte per page into `vec`, which has exactly that many bytes.
    let rc = unsafe { libc::mincore(addr.cast(), len, vec.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    vec.iter().filter(|b| **b & 1 != 0).count() as u64 * page as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_status_kib("Name:\tx\nVmRSS:\t  1234 kB\n", "VmRSS:"), 1234);
        let stat = "42 (vcpu 0) S 1 2 3 4 5 6 7 8 9 10 11 22 0 0 20 0";
        assert_eq!(stat_cpu_ticks(stat), Some(33));
        assert!(rss_bytes() > 0);
        assert!(process_cpu_ms() < 1_000_000);
    }
}
