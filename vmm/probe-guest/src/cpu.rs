//! CPU setup: the `_start` entry, the probe's own identity page tables and an IDT that reports faults.
//!
//! The VMM enters in long mode with the first 1 GiB identity mapped. The probe also needs the MMIO hole
//! (virtio-mmio at 0xd000_0000, framebuffer at 0xe000_0000), so it installs its own tables and maps each
//! further GiB on demand with 2 MiB pages.

use crate::{apic, arena, power, serial};
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicUsize, Ordering};

// Entry: marker 1 first, zero .bss, switch to our stack, `probe_main(boot_params)` with RSI passed on.
global_asm!(
    r#"
    .section .text._start, "ax"
    .global _start
_start:
    movw ${marker_port}, %dx
    movb $1, %al
    outb %al, %dx
    cld
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    shrq $3, %rcx
    xorl %eax, %eax
    rep stosq
    leaq __stack_top(%rip), %rsp
    movq %rsi, %rdi
    xorl %ebp, %ebp
    call probe_main
1:  cli
    hlt
    jmp 1b

    .section .text.probe_isr, "ax"
    .balign 16
    .global probe_isr_stubs
probe_isr_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp probe_isr_common
    .set vec, vec + 1
    .endr

    .balign 16
    .global probe_bp_isr
probe_bp_isr:
    pushq %rax
    movq 8(%rsp), %rax
    movq %rax, PROBE_BP_RIP(%rip)
    lock incq PROBE_BP_COUNT(%rip)
    popq %rax
    iretq

probe_isr_common:
    cmpq $0, PROBE_RECOVER_RIP(%rip)
    jne 3f
    movq (%rsp), %rdi
    movq 8(%rsp), %rsi
    movq 16(%rsp), %rdx
    andq $-16, %rsp
    call probe_fault
2:  cli
    hlt
    jmp 2b
    /* Recovery armed (PROBE_RECOVER_RIP): record the exception, resume at that address, disarm. */
3:  pushq %rax
    movq 8(%rsp), %rax
    movq %rax, PROBE_TRAP_VECTOR(%rip)
    movq 16(%rsp), %rax
    movq %rax, PROBE_TRAP_ERROR(%rip)
    movq %cr2, %rax
    movq %rax, PROBE_TRAP_CR2(%rip)
    movq PROBE_RECOVER_RIP(%rip), %rax
    movq %rax, 24(%rsp)
    movq $0, PROBE_RECOVER_RIP(%rip)
    popq %rax
    addq $16, %rsp
    iretq
    "#,
    marker_port = const vmm_api::layout::BOOT_MARKER_PORT,
    options(att_syntax)
);

extern "C" {
    static probe_isr_stubs: u8;
    static probe_bp_isr: u8;
}

/// Return address the #BP handler found on its stack, and how many #BP it took (written by `probe_bp_isr`).
#[no_mangle]
static mut PROBE_BP_RIP: u64 = 0;
#[no_mangle]
static mut PROBE_BP_COUNT: u64 = 0;
const BREAKPOINT_VECTOR: usize = 3;

/// Where an exception resumes instead of ending the probe (0: not armed; asm blocks arm it by storing
/// the address after their faulting instruction), and what the exception was.
#[no_mangle]
static mut PROBE_RECOVER_RIP: u64 = 0;
#[no_mangle]
static mut PROBE_TRAP_VECTOR: u64 = 0;
#[no_mangle]
static mut PROBE_TRAP_ERROR: u64 = 0;
#[no_mangle]
static mut PROBE_TRAP_CR2: u64 = 0;
/// `PROBE_TRAP_VECTOR` while no exception happened.
pub const NO_TRAP: u64 = u64::MAX;

/// An exception caught while recovery was armed: vector, error code (0 if none), CR2 at the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trap {
    pub vector: u64,
    pub error: u64,
    pub cr2: u64,
}

/// Forgets any exception recorded before: call before an asm block that arms recovery by storing its
/// resume address in `PROBE_RECOVER_RIP` (see xstate.rs), then `take_trap` after it.
pub fn reset_trap() {
    // SAFETY: plain store to the handler's static; the probe is single-threaded.
    unsafe { core::ptr::addr_of_mut!(PROBE_TRAP_VECTOR).write_volatile(NO_TRAP) };
}

/// Disarms recovery and returns the exception caught since `reset_trap`, if any.
pub fn take_trap() -> Option<Trap> {
    // SAFETY: plain loads/stores of the handler's statics; the probe is single-threaded.
    unsafe {
        core::ptr::addr_of_mut!(PROBE_RECOVER_RIP).write_volatile(0);
        let vector = core::ptr::addr_of!(PROBE_TRAP_VECTOR).read_volatile();
        (vector != NO_TRAP).then(|| Trap {
            vector,
            error: core::ptr::addr_of!(PROBE_TRAP_ERROR).read_volatile(),
            cr2: core::ptr::addr_of!(PROBE_TRAP_CR2).read_volatile(),
        })
    }
}

const STUB_SIZE: u64 = 16;
const EXCEPTIONS: usize = 32;
const IDT_ENTRIES: usize = 256;
const PAGE_PRESENT_WRITABLE: u64 = 0x3;
const PAGE_HUGE: u64 = 0x80;
const GIB: u64 = 1 << 30;
const ENTRIES: usize = 512;

/// Physical address of our PDPT (PML4[0] points at it), 0 before `init`.
static PDPT: AtomicUsize = AtomicUsize::new(0);

/// Builds the IDT and the page tables (first GiB mapped) and loads both.
pub fn init() {
    init_idt();
    init_paging();
}

fn init_idt() {
    let Some(idt) = arena::alloc(IDT_ENTRIES * 16, 16) else {
        return;
    };
    let cs: u16;
    // SAFETY: reads the code segment selector; no memory access.
    unsafe { asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    let gates = idt as *mut u64;
    let set_gate = |vector: usize, handler: u64| {
        // 64-bit interrupt gate, present, DPL 0, IST 0.
        let low =
            (handler & 0xffff) | ((cs as u64) << 16) | (0x8e_u64 << 40) | (((handler >> 16) & 0xffff) << 48);
        // SAFETY: `idt` has room for IDT_ENTRIES 16-byte gates and vector < IDT_ENTRIES.
        unsafe {
            gates.add(vector * 2).write(low);
            gates.add(vector * 2 + 1).write(handler >> 32);
        }
    };
    let stubs = core::ptr::addr_of!(probe_isr_stubs) as u64;
    for v in 0..EXCEPTIONS {
        set_gate(v, stubs + v as u64 * STUB_SIZE);
    }
    // #BP returns (a trap: execution goes on after the int3), for the `int3` command.
    set_gate(BREAKPOINT_VECTOR, core::ptr::addr_of!(probe_bp_isr) as u64);
    // Other vectors stay not-present: an unexpected interrupt raises #NP, which reports the vector.
    set_gate(
        apic::TIMER_VECTOR as usize,
        core::ptr::addr_of!(apic::probe_timer_isr) as u64,
    );
    set_gate(
        crate::ioapic::DEVICE_VECTOR as usize,
        core::ptr::addr_of!(crate::ioapic::probe_device_isr) as u64,
    );
    set_gate(
        apic::SPURIOUS_VECTOR as usize,
        core::ptr::addr_of!(apic::probe_spurious_isr) as u64,
    );
    let mut idtr = [0u8; 10];
    idtr[..2].copy_from_slice(&((IDT_ENTRIES * 16 - 1) as u16).to_le_bytes());
    idtr[2..].copy_from_slice(&(idt as u64).to_le_bytes());
    // SAFETY: the IDT is fully initialised and lives in the arena forever.
    unsafe { asm!("lidt [{}]", in(reg) idtr.as_ptr(), options(readonly, nostack, preserves_flags)) };
}

fn init_paging() {
    let (Some(pml4), Some(pdpt)) = (arena::alloc(4096, 4096), arena::alloc(4096, 4096)) else {
        return;
    };
    // SAFETY: both pages were just allocated (zeroed) from the arena.
    unsafe { (pml4 as *mut u64).write(pdpt as u64 | PAGE_PRESENT_WRITABLE) };
    PDPT.store(pdpt as usize, Ordering::Relaxed);
    if !map_gib(0) {
        return;
    }
    // SAFETY: the new tables identity map the first GiB exactly like the VMM's did, and everything the
    // probe touches so far (image, stack, arena, zero page, cmdline) lies there.
    unsafe { asm!("mov cr3, {}", in(reg) pml4 as u64, options(nostack, preserves_flags)) };
}

fn map_gib(gib: u64) -> bool {
    let pdpt = PDPT.load(Ordering::Relaxed) as *mut u64;
    if pdpt.is_null() || gib as usize >= ENTRIES {
        return false;
    }
    // SAFETY: the PDPT is a live 512-entry table from the arena.
    let entry = unsafe { pdpt.add(gib as usize).read_volatile() };
    if entry & 1 != 0 {
        return true;
    }
    let Some(pd) = arena::alloc(4096, 4096) else {
        return false;
    };
    let pd = pd as *mut u64;
    for i in 0..ENTRIES as u64 {
        let phys = gib * GIB + i * (2 << 20);
        // SAFETY: `pd` is a fresh 4 KiB page: 512 entries.
        unsafe { pd.add(i as usize).write(phys | PAGE_HUGE | PAGE_PRESENT_WRITABLE) };
    }
    // SAFETY: as above; the new entry only adds mappings.
    unsafe {
        pdpt.add(gib as usize)
            .write_volatile(pd as u64 | PAGE_PRESENT_WRITABLE)
    };
    true
}

/// Identity maps `[addr, addr + len)` (rounded out to GiBs). False if it cannot be mapped.
pub fn map_range(addr: u64, len: u64) -> bool {
    let Some(last) = addr.checked_add(len.max(1) - 1) else {
        return false;
    };
    for gib in addr / GIB..=last / GIB {
        if !map_gib(gib) {
            return false;
        }
    }
    // Entries were only added (never changed), so no TLB entry can be stale: no flush needed.
    true
}

/// Called by the exception stubs: report and power off.
#[no_mangle]
extern "C" fn probe_fault(vector: u64, error: u64, rip: u64) -> ! {
    serial::puts("\r\nPROBE-PANIC exception ");
    serial::put_dec(vector);
    serial::puts(" error ");
    serial::put_hex(error);
    serial::puts(" rip ");
    serial::put_hex(rip);
    if vector == 14 {
        let cr2: u64;
        // SAFETY: reading CR2 has no side effects.
        unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
        serial::puts(" cr2 ");
        serial::put_hex(cr2);
    }
    serial::puts("\r\n");
    power::poweroff();
    power::halt_forever()
}

/// `ud2`: the exception handler reports `PROBE-PANIC exception 6` and powers off.
pub fn raise_invalid_opcode() {
    // SAFETY: deliberately faults; the handler never returns here.
    unsafe { asm!("ud2", options(nomem, nostack)) }
}

/// Executes one `int3`; returns (address after it, RIP the #BP handler saw, #BP count during the call).
pub fn breakpoint() -> (u64, u64, u64) {
    let after: u64;
    // SAFETY: plain reads/writes of the handler's statics; no other code touches them concurrently.
    let before = unsafe {
        core::ptr::addr_of_mut!(PROBE_BP_RIP).write_volatile(0);
        core::ptr::addr_of!(PROBE_BP_COUNT).read_volatile()
    };
    // SAFETY: the IDT's vector 3 is `probe_bp_isr`, which records the trap and returns with iretq.
    unsafe {
        asm!("lea {0}, [rip + 2f]", "int3", "2:", out(reg) after, options(nostack));
    }
    // SAFETY: as above.
    let (seen, count) = unsafe {
        (
            core::ptr::addr_of!(PROBE_BP_RIP).read_volatile(),
            core::ptr::addr_of!(PROBE_BP_COUNT).read_volatile(),
        )
    };
    (after, seen, count - before)
}

/// Loads an empty IDT and raises an exception: #UD → #GP → #DF → shutdown (the VMM sees a triple fault).
pub fn triple_fault() -> ! {
    let idtr = [0u8; 10];
    // SAFETY: deliberately destroys exception handling; nothing runs after the ud2.
    unsafe { asm!("lidt [{}]", "ud2", in(reg) idtr.as_ptr(), options(noreturn)) }
}
