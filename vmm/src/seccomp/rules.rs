//! The allow-list of each thread kind, in Rust (seccompiler's builder, no JSON): what the thread's own
//! code does, plus what every thread of the process does (the allocator, tracing's writes to stderr, the
//! end of a thread). Argument conditions where they are cheap and narrow a call a lot: ioctl requests,
//! `fcntl` commands, `openat` flags, no executable `mmap`/`mprotect`, `prctl` options.
//!
//! Threads are started by the spawner thread (`threads`), so a thread runs under the spawner's filter and
//! its own, and the kernel answers with the stricter of the two: the spawner's list is the union of every
//! kind's, plus what starting a thread and installing its filter takes.

use std::collections::BTreeMap;

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::ioctls::*;
use super::SeccompError;
use crate::threads::ThreadKind;

/// Syscall number → the rules of which one must match (empty: allowed whatever the arguments).
pub type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// An allow-list under construction.
#[derive(Default)]
struct List(Rules);

impl List {
    /// Allows these calls whatever their arguments.
    fn allow(mut self, calls: &[i64]) -> Self {
        for c in calls {
            self.0.insert(*c, Vec::new());
        }
        self
    }

    /// Allows `call` when argument `arg` (32 bits compared) is one of `values`.
    fn allow_arg(self, call: i64, arg: u8, values: &[u64]) -> Result<Self, SeccompError> {
        self.allow_when(call, arg, values.iter().map(|v| (SeccompCmpOp::Eq, *v)).collect())
    }

    /// Allows `call` when argument `arg` matches one of the (operator, value) tests.
    fn allow_when(
        mut self,
        call: i64,
        arg: u8,
        tests: Vec<(SeccompCmpOp, u64)>,
    ) -> Result<Self, SeccompError> {
        let entry = self.0.entry(call).or_default();
        for (op, value) in tests {
            let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
                .map_err(SeccompError::Build)?;
            entry.push(SeccompRule::new(vec![cond]).map_err(SeccompError::Build)?);
        }
        Ok(self)
    }

    fn ioctls(self, requests: &[u64]) -> Result<Self, SeccompError> {
        self.allow_arg(libc::SYS_ioctl, 1, requests)
    }
}

const PROT_EXEC: u64 = libc::PROT_EXEC as u64;

/// What every thread does: allocate and free (no executable memory), wait on and wake futexes, write a
/// log line to stderr, read the time and random bytes, close what it drops, and end.
fn common() -> Result<List, SeccompError> {
    List::default()
        .allow(&[
            libc::SYS_brk,
            libc::SYS_munmap,
            libc::SYS_mremap,
            libc::SYS_futex,
            libc::SYS_sched_yield,
            libc::SYS_rt_sigprocmask,
            libc::SYS_sigaltstack,
            libc::SYS_write,
            libc::SYS_close,
            libc::SYS_clock_gettime,
            libc::SYS_getrandom,
            libc::SYS_gettid,
            libc::SYS_exit,
            libc::SYS_exit_group,
        ])
        .allow_when(libc::SYS_mmap, 2, vec![(SeccompCmpOp::MaskedEq(PROT_EXEC), 0)])?
        .allow_when(
            libc::SYS_mprotect,
            2,
            vec![(SeccompCmpOp::MaskedEq(PROT_EXEC), 0)],
        )?
        .allow_arg(libc::SYS_madvise, 2, &[libc::MADV_DONTNEED as u64])?
        // Debug builds of std check that a descriptor is open before closing it.
        .allow_arg(libc::SYS_fcntl, 1, &[libc::F_GETFD as u64])
}

/// `fcntl` as std and vmm-sys-util use it: descriptor flags, status flags, `try_clone`.
fn fcntl(l: List) -> Result<List, SeccompError> {
    l.allow_arg(
        libc::SYS_fcntl,
        1,
        &[
            libc::F_SETFD as u64,
            libc::F_GETFL as u64,
            libc::F_SETFL as u64,
            libc::F_DUPFD_CLOEXEC as u64,
        ],
    )
}

/// A unix-socket server: accept, read and write connections, no new sockets.
fn socket_server(l: List) -> Result<List, SeccompError> {
    fcntl(l.allow(&[
        libc::SYS_accept4,
        libc::SYS_read,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_writev,
        libc::SYS_poll,
        libc::SYS_shutdown,
        libc::SYS_setsockopt,
    ]))
}

/// `File::open` (read only) and `File::create`, the only two ways the control thread opens files
/// (`/proc/self/*` for `status`, the `screendump` file); which paths is the jail's business (Landlock).
const OPEN_READ: u64 = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
const OPEN_CREATE: u64 = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC) as u64;

/// The allow-list of one thread kind.
pub fn rules(kind: ThreadKind) -> Result<Rules, SeccompError> {
    let base = common()?;
    let list = match kind {
        ThreadKind::Vcpu => fcntl(base.allow(&[
            libc::SYS_rt_sigreturn, // the kick signal's handler returns
            libc::SYS_read,         // eventfds
            libc::SYS_pread64,      // virtio-blk
            libc::SYS_pwrite64,
            libc::SYS_fdatasync,
            libc::SYS_getrusage, // its CPU time, recorded as it ends
            // A network card's activation (a guest register write) sets up the card's event loop.
            libc::SYS_eventfd2,
            libc::SYS_epoll_create1,
            libc::SYS_epoll_ctl,
        ]))?
        .ioctls(&[
            KVM_RUN,
            KVM_GET_REGS,
            KVM_SET_REGS,
            KVM_GET_SREGS,
            KVM_SET_SREGS,
            KVM_GET_FPU,
            KVM_SET_FPU,
            KVM_GET_MSRS,
            KVM_SET_MSRS,
            KVM_GET_VCPU_EVENTS,
            KVM_SET_VCPU_EVENTS,
            KVM_TRANSLATE,
            KVM_GET_XSAVE,
            KVM_GET_XSAVE2,
            KVM_SET_XSAVE,
            KVM_GET_XCRS,
            KVM_SET_XCRS,
            TUNSETOFFLOAD,
        ])?,
        ThreadKind::Signals => base.allow(&[libc::SYS_rt_sigtimedwait]),
        // `pthread_kill` is `getpid` + `tgkill`, with every signal blocked in between: both must pass.
        ThreadKind::Sampler => base.allow(&[libc::SYS_clock_nanosleep, libc::SYS_getpid, libc::SYS_tgkill]),
        ThreadKind::Control => socket_server(base.allow(&[
            libc::SYS_statx, // `read_to_string` sizes its buffer
            libc::SYS_fstat,
            libc::SYS_lseek,
            libc::SYS_mincore,   // guest pages resident, for `status`
            libc::SYS_getrusage, // process CPU time
            libc::SYS_getpid,
            libc::SYS_tgkill,          // `pause` kicks the vCPUs
            libc::SYS_clock_nanosleep, // and polls until they are parked
        ]))?
        .allow_arg(libc::SYS_openat, 2, &[OPEN_READ, OPEN_CREATE])?,
        ThreadKind::Serial => socket_server(base)?,
        // (`clock_nanosleep`: the listener backs off after a failed accept.)
        ThreadKind::Vnc => {
            socket_server(base.allow(&[libc::SYS_clock_nanosleep]))?.ioctls(&[FIONBIO, KVM_GET_DIRTY_LOG])?
        }
        ThreadKind::Net => base.allow(&[
            libc::SYS_epoll_wait,
            libc::SYS_epoll_pwait,
            libc::SYS_epoll_ctl,
            libc::SYS_read,
            libc::SYS_readv,
            libc::SYS_writev,
        ]),
        // After setup: builds each boot's machine from descriptors opened at start (guest RAM, KVM VM and
        // vCPUs, devices, kernel read with pread), waits for the run to end, removes the sockets and
        // records the exit status.
        ThreadKind::Main => fcntl(base.allow(&[
            libc::SYS_rt_sigreturn,
            libc::SYS_read,
            libc::SYS_pread64,
            libc::SYS_lseek,
            libc::SYS_fstat,
            libc::SYS_statx,
            libc::SYS_eventfd2,
            libc::SYS_clock_nanosleep,
            libc::SYS_getpid, // with tgkill: kicking the vCPUs (`pthread_kill`)
            libc::SYS_tgkill,
            libc::SYS_rename,
            libc::SYS_unlink,
            libc::SYS_shutdown, // ending the VNC and serial clients still connected when the VM ends
        ]))?
        .allow_arg(libc::SYS_openat, 2, &[OPEN_CREATE])?
        .ioctls(&[
            KVM_CHECK_EXTENSION,
            KVM_CREATE_VM,
            KVM_GET_VCPU_MMAP_SIZE,
            KVM_GET_SUPPORTED_CPUID,
            KVM_CREATE_VCPU,
            KVM_SET_USER_MEMORY_REGION,
            KVM_SET_TSS_ADDR,
            KVM_CREATE_IRQCHIP,
            KVM_CREATE_PIT2,
            KVM_IRQFD,
            KVM_IOEVENTFD,
            KVM_ENABLE_CAP,
            KVM_SET_CPUID2,
            KVM_SET_MSRS,
            KVM_SET_REGS,
            KVM_GET_SREGS,
            KVM_SET_SREGS,
            KVM_SET_FPU,
            KVM_GET_LAPIC,
            KVM_SET_LAPIC,
            KVM_SET_MP_STATE,
            KVM_SET_XSAVE,
            KVM_GET_XSAVE,
            KVM_GET_XSAVE2,
            TUNGETIFF,
            TUNSETVNETHDRSZ,
            TUNSETOFFLOAD,
        ])?,
        ThreadKind::Spawner => {
            let mut union = base
                .allow(&[
                    libc::SYS_clone3,
                    libc::SYS_clone,
                    libc::SYS_set_robust_list,
                    libc::SYS_rseq,
                    libc::SYS_sched_getaffinity,
                ])
                .allow_arg(
                    libc::SYS_prctl,
                    0,
                    &[libc::PR_SET_NAME as u64, libc::PR_SET_NO_NEW_PRIVS as u64],
                )?
                .allow_arg(libc::SYS_seccomp, 0, &[libc::SECCOMP_SET_MODE_FILTER as u64])?
                .0;
            for other in ThreadKind::SPAWNED {
                merge(&mut union, rules(other)?);
            }
            return Ok(union);
        }
    };
    Ok(list.0)
}

/// Adds `more` to `into`: a call allowed whatever its arguments in either stays so; otherwise the rules
/// of both apply (any one matching allows the call).
fn merge(into: &mut Rules, more: Rules) {
    for (call, rules) in more {
        match into.get_mut(&call) {
            None => {
                into.insert(call, rules);
            }
            Some(have) if have.is_empty() => {}
            Some(_) if rules.is_empty() => {
                into.insert(call, rules);
            }
            Some(have) => {
                for r in rules {
                    if !have.contains(&r) {
                        have.push(r);
                    }
                }
            }
        }
    }
}
