//! KVM objects: the VM (memory slots, irqchip, PIT) and the vCPUs with their run loops.

mod guest_walk;
mod unemulated;
pub mod vcpu;
pub mod vm;
mod xsave;
