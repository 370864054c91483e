//! Each kind's filter, installed in a forked child (a filter cannot be removed, so never in the test
//! process): forbidden calls die by SIGSYS, allowed ones go through; with the VMM's handler the child
//! exits with `EXIT_SECCOMP` and leaves the record. The child only makes raw system calls between `fork`
//! and `_exit` (no allocation: other test threads may hold the allocator's lock).

use std::ffi::CStr;

use seccompiler::BpfProgram;

use super::*;

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exited(i32),
    Signal(i32),
}

/// Runs `call` in a child under `program` (and the SIGSYS handler with `record` if given).
fn in_child(program: &BpfProgram, record: Option<std::fs::File>, call: fn()) -> End {
    // SAFETY: the child runs only async-signal-safe code (prctl, seccomp, raw system calls, _exit) and
    // never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        if let Some(record) = record {
            if sigsys::install(record).is_err() {
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(101) };
            }
        }
        if seccompiler::apply_filter(program).is_err() {
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(100) };
        }
        call();
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    if libc::WIFSIGNALED(status) {
        End::Signal(libc::WTERMSIG(status))
    } else {
        End::Exited(libc::WEXITSTATUS(status))
    }
}

const PATH: &CStr = c"/etc/hostname";

// Forbidden everywhere.
fn execve() {
    let path = c"/nonexistent";
    // SAFETY: a valid C string and NULL argument/environment vectors (Linux accepts them).
    unsafe { libc::syscall(libc::SYS_execve, path.as_ptr(), 0usize, 0usize) };
}
fn open_rw() {
    // SAFETY: a valid C string; the result is ignored (the call is what is tested).
    unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, PATH.as_ptr(), libc::O_RDWR) };
}
fn socket_inet() {
    // SAFETY: plain integer arguments.
    unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
}
fn ptrace() {
    // SAFETY: plain integer arguments.
    unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) };
}
fn mmap_exec() {
    // SAFETY: an anonymous mapping request; the result is ignored.
    unsafe {
        libc::syscall(
            libc::SYS_mmap,
            0usize,
            4096usize,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
}
fn fcntl_setown() {
    // SAFETY: plain integer arguments on a descriptor that does not exist.
    unsafe { libc::syscall(libc::SYS_fcntl, -1, libc::F_SETOWN, 0) };
}
fn kvm_create_vm() {
    // SAFETY: plain integer arguments on a descriptor that does not exist.
    unsafe { libc::syscall(libc::SYS_ioctl, -1, ioctls::KVM_CREATE_VM, 0) };
}
fn open_read() {
    // SAFETY: a valid C string; the result is ignored.
    unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            PATH.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
}

// Allowed everywhere.
fn write_and_gettid() {
    // SAFETY: writes nothing to a descriptor that does not exist; gettid has no arguments.
    unsafe {
        libc::syscall(libc::SYS_write, -1, 0usize, 0usize);
        libc::syscall(libc::SYS_gettid);
    }
}

fn kill_program(kind: ThreadKind) -> BpfProgram {
    program(kind, SeccompMode::Kill).unwrap().unwrap()
}

#[test]
fn every_kind_refuses_exec_sockets_ptrace_and_executable_memory_and_allows_the_basics() {
    for kind in ThreadKind::ALL {
        let p = kill_program(kind);
        for (what, call) in [
            ("execve", execve as fn()),
            ("openat O_RDWR", open_rw),
            ("socket(AF_INET)", socket_inet),
            ("ptrace", ptrace),
            ("mmap PROT_EXEC", mmap_exec),
            ("fcntl F_SETOWN", fcntl_setown),
        ] {
            assert_eq!(
                in_child(&p, None, call),
                End::Signal(libc::SIGSYS),
                "{what} in a {} thread",
                kind.name()
            );
        }
        assert_eq!(
            in_child(&p, None, write_and_gettid),
            End::Exited(0),
            "{}",
            kind.name()
        );
    }
}

#[test]
fn only_the_control_thread_reads_files_and_only_main_builds_vms() {
    for kind in ThreadKind::ALL {
        let p = kill_program(kind);
        let reads = in_child(&p, None, open_read);
        let creates_vms = in_child(&p, None, kvm_create_vm);
        let (may_read, may_create) = match kind {
            ThreadKind::Control | ThreadKind::Spawner => (true, false),
            ThreadKind::Main => (false, true),
            _ => (false, false),
        };
        let expect = |allowed: bool| {
            if allowed {
                End::Exited(0)
            } else {
                End::Signal(libc::SIGSYS)
            }
        };
        assert_eq!(
            reads,
            expect(may_read),
            "openat O_RDONLY in a {} thread",
            kind.name()
        );
        assert_eq!(
            creates_vms,
            expect(may_create),
            "KVM_CREATE_VM in a {} thread",
            kind.name()
        );
    }
}

#[test]
fn kind_specific_calls_pass_where_they_belong() {
    fn kvm_run() {
        // SAFETY: plain integer arguments on a descriptor that does not exist.
        unsafe { libc::syscall(libc::SYS_ioctl, -1, ioctls::KVM_RUN, 0) };
    }
    fn epoll_wait() {
        // SAFETY: a descriptor that does not exist, no events buffer, no wait.
        unsafe { libc::syscall(libc::SYS_epoll_wait, -1, 0usize, 0, 0) };
    }
    fn accept() {
        // SAFETY: a descriptor that does not exist, no address buffers.
        unsafe { libc::syscall(libc::SYS_accept4, -1, 0usize, 0usize, 0) };
    }
    assert_eq!(
        in_child(&kill_program(ThreadKind::Vcpu), None, kvm_run),
        End::Exited(0)
    );
    assert_eq!(
        in_child(&kill_program(ThreadKind::Net), None, kvm_run),
        End::Signal(libc::SIGSYS)
    );
    assert_eq!(
        in_child(&kill_program(ThreadKind::Net), None, epoll_wait),
        End::Exited(0)
    );
    assert_eq!(
        in_child(&kill_program(ThreadKind::Vcpu), None, accept),
        End::Signal(libc::SIGSYS)
    );
    for kind in [ThreadKind::Control, ThreadKind::Serial, ThreadKind::Vnc] {
        assert_eq!(
            in_child(&kill_program(kind), None, accept),
            End::Exited(0),
            "{}",
            kind.name()
        );
    }
}

#[test]
fn the_handler_records_the_call_and_exits_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record");
    std::fs::write(&path, "run_id=r1\n").unwrap();
    let record = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    let end = in_child(&kill_program(ThreadKind::Vcpu), Some(record), execve);
    assert_eq!(end, End::Exited(vmm_api::exit_codes::EXIT_SECCOMP));
    let text = std::fs::read_to_string(&path).unwrap();
    let v = vmm_api::seccomp::Violation::parse(&text, "r1").unwrap();
    // A forked child has no thread kind recorded: it reports itself as the main thread.
    assert_eq!(
        v.reason(),
        "seccomp violation: syscall 59 (execve) in a main thread"
    );
}

#[test]
fn log_mode_lets_refused_calls_through() {
    let p = program(ThreadKind::Vcpu, SeccompMode::Log).unwrap().unwrap();
    assert_eq!(in_child(&p, None, socket_inet), End::Exited(0));
    assert!(program(ThreadKind::Vcpu, SeccompMode::Off).unwrap().is_none());
}

#[test]
fn the_spawner_allows_everything_the_threads_it_starts_need() {
    let spawner = rules::rules(ThreadKind::Spawner).unwrap();
    for kind in ThreadKind::SPAWNED {
        for (call, conditions) in rules::rules(kind).unwrap() {
            let have = spawner
                .get(&call)
                .unwrap_or_else(|| panic!("spawner lacks syscall {call} of {}", kind.name()));
            assert!(
                have.is_empty() || conditions.iter().all(|c| have.contains(c)),
                "spawner narrows syscall {call} of {}",
                kind.name()
            );
        }
    }
}
