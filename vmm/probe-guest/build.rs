//! Links the probe guest with `link.ld` (load address 0x100000) as a non-PIE static ELF.
//!
//! Done here rather than in `.cargo/config.toml` because cargo only reads that file relative to the
//! current directory, and the VMM's tests build this package with `--manifest-path` from the repo root.

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
