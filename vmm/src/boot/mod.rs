//! Everything the guest finds in memory and registers at its first instruction.

pub mod acpi;
pub mod cpuid;
pub mod loader;
pub mod params;
pub mod regs;
