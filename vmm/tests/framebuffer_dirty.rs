//! In-process test of the framebuffer memslot: a hand-assembled guest writes one pixel, and
//! `dirty_rows` (KVM_GET_DIRTY_LOG) reports exactly that row once, while `snapshot` shows the pixel.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::Kvm;
use vm_memory::{Bytes, GuestAddress};
use vmm::boot::regs;
use vmm::devices::power::{PowerDevice, POWER_RANGE_LEN};
use vmm::devices::Bus;
use vmm::framebuffer::Framebuffer;
use vmm::layout;
use vmm::memory;
use vmm::state::{Shared, VmEvent};
use vmm::vstate::vcpu::{Vcpu, VcpuContext};
use vmm::vstate::vm::Vm;

#[test]
fn guest_pixel_write_marks_its_row_dirty_once() {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("SKIP: guest_pixel_write_marks_its_row_dirty_once: /dev/kvm is absent");
        return;
    }
    let (width, height, row, col) = (1024u32, 64u32, 10u64, 5u64);
    let kvm = Kvm::new().unwrap();
    let mut vm = Vm::create(&kvm).unwrap();
    let mem = memory::create(64 << 20).unwrap();
    vm.register_memory(&mem).unwrap();
    let fb = Framebuffer::new(&mut vm, layout::FRAMEBUFFER_START, width, height).unwrap();
    assert!(
        fb.dirty_rows().unwrap().iter().all(|d| !d),
        "fresh framebuffer is clean"
    );

    let pixel_addr = layout::FRAMEBUFFER_START + row * u64::from(width) * 4 + col * 4;
    let mut code = vec![0x48, 0xb8]; // mov rax, imm64
    code.extend_from_slice(&pixel_addr.to_le_bytes());
    code.extend_from_slice(&[0xc7, 0x00, 0x00, 0x00, 0xff, 0x00]); // mov dword [rax], 0x00ff0000 (red)
    code.extend_from_slice(&[0x66, 0xba, 0x00, 0x06, 0xb0, 0x34, 0xee, 0xf4, 0xeb, 0xfd]); // poweroff; hlt
    mem.write_slice(&code, GuestAddress(layout::HIMEM_START)).unwrap();
    // `boot::regs` and the vCPU context take untracked memory.
    // SAFETY: `untracked` and its clone in `ctx` are dropped at the end of this test, before `mem`
    // (declared earlier), which owns the mappings.
    let untracked = unsafe { memory::untracked_view(&mem) }.unwrap();
    regs::write_boot_tables(&untracked).unwrap();

    let shared = Arc::new(Shared::new("fb-test", Instant::now()));
    shared.begin_boot(false);
    let mut pio = Bus::new("pio");
    pio.insert(
        u64::from(layout::POWER_PORT),
        POWER_RANGE_LEN,
        Arc::new(Mutex::new(PowerDevice::new(shared.clone()))),
    )
    .unwrap();
    let supported = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap();
    let vcpu = Vcpu::new(&vm.fd, 0, 1, &supported, &[], layout::HIMEM_START).unwrap();
    let ctx = VcpuContext {
        pio: Arc::new(pio),
        mmio: Arc::new(Bus::new("mmio")),
        shared: shared.clone(),
        mem: untracked.clone(),
    };
    vcpu.run(&ctx); // returns once the guest powers off
    assert_eq!(shared.wait_event(), VmEvent::Poweroff);

    let dirty: Vec<usize> = fb
        .dirty_rows()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, d)| **d)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(dirty, vec![row as usize]);
    assert!(
        fb.dirty_rows().unwrap().iter().all(|d| !d),
        "the log is reset by each read"
    );
    let pixels = fb.snapshot().unwrap();
    let off = (row * u64::from(width) * 4 + col * 4) as usize;
    assert_eq!(&pixels[off..off + 4], &[0x00, 0x00, 0xff, 0x00]); // B, G, R, X
}
