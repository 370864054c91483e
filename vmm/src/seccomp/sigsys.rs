//! What happens when a filter refuses a call in `kill` mode: the kernel sends SIGSYS to the calling
//! thread (`SECCOMP_RET_TRAP`), and this handler records the call and the thread's kind in the run
//! directory (`vmm_api::seccomp::VIOLATION_FILE`, opened at start) and on stderr (the VMM's log), then
//! ends the whole process with `EXIT_SECCOMP`. Async-signal-safe: no allocation, no locks, only `write`
//! and `exit_group`, which every filter allows.

use std::ffi::c_void;
use std::fs::File;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use vmm_api::exit_codes::EXIT_SECCOMP;
use vmm_api::seccomp::syscall_name;

/// The violation record, open for appending (after its `run_id=` line); -1 before `install`.
static RECORD_FD: AtomicI32 = AtomicI32::new(-1);

/// Offset of `si_syscall` in an x86-64 `siginfo_t` for SIGSYS: the union starts at 16, and its
/// `_sigsys` member is `{ void *_call_addr; int _syscall; unsigned int _arch; }`.
const SI_SYSCALL_OFFSET: usize = 24;

/// A fixed buffer for one line, filled without allocating.
struct Line {
    buf: [u8; 192],
    len: usize,
}

impl Line {
    const fn new() -> Self {
        Self {
            buf: [0; 192],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    fn num(&mut self, mut v: i64) -> &mut Self {
        if v < 0 {
            self.push(b"-");
            v = -v;
        }
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    fn write_to(&self, fd: i32) {
        // SAFETY: writes `len` initialised bytes of our buffer; a bad descriptor only fails the call.
        unsafe { libc::write(fd, self.buf.as_ptr().cast(), self.len) };
    }
}

/// Formats the record line and the log line for a refused call.
fn lines(nr: i64, kind: &str) -> (Line, Line) {
    let mut record = Line::new();
    record
        .push(b"syscall=")
        .num(nr)
        .push(b" thread=")
        .push(kind.as_bytes())
        .push(b"\n");
    let mut log = Line::new();
    log.push(b"seccomp violation: syscall ").num(nr);
    if let Some(name) = syscall_name(nr) {
        log.push(b" (").push(name.as_bytes()).push(b")");
    }
    log.push(b" in a ")
        .push(kind.as_bytes())
        .push(b" thread; the VMM exits\n");
    (record, log)
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler; for SIGSYS from seccomp
    // the `_sigsys` member of its union is the one filled in, `si_syscall` at this offset.
    let nr = unsafe {
        info.cast::<u8>()
            .add(SI_SYSCALL_OFFSET)
            .cast::<i32>()
            .read_unaligned()
    };
    let kind = crate::threads::current_kind().map_or("main", |k| k.name());
    let (record, log) = lines(i64::from(nr), kind);
    record.write_to(RECORD_FD.load(Ordering::Relaxed));
    log.write_to(libc::STDERR_FILENO);
    // SAFETY: _exit ends the whole process (exit_group) without running any user-space code.
    unsafe { libc::_exit(EXIT_SECCOMP) };
}

/// Keeps `record` open for the handler and installs the handler for SIGSYS.
pub fn install(record: File) -> std::io::Result<()> {
    let old = RECORD_FD.swap(record.into_raw_fd(), Ordering::Relaxed);
    if old >= 0 {
        // SAFETY: `old` came from `into_raw_fd` in an earlier call and nothing else owns it.
        unsafe { libc::close(old) };
    }
    // SAFETY: sigaction is plain data; zeroed is a valid "no flags, empty mask" value we fill in below.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_sigsys as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `act.sa_mask` is a valid sigset_t to initialise; `act` is fully initialised for sigaction.
    let rc = unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_call_and_the_thread() {
        let (record, log) = lines(59, "vcpu");
        assert_eq!(&record.buf[..record.len], b"syscall=59 thread=vcpu\n");
        assert_eq!(
            &log.buf[..log.len],
            b"seccomp violation: syscall 59 (execve) in a vcpu thread; the VMM exits\n".as_slice()
        );
        let (record, _) = lines(-7, "x");
        assert_eq!(&record.buf[..record.len], b"syscall=-7 thread=x\n");
    }
}
