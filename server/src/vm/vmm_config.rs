//! Building one VMM's configuration from the VM row and its image: the kernel command line (with the
//! emulated-host extras and the matching CPUID mask), the disks, the framebuffer and the run directory.
//! A value that does not fit the VMM's types fails loudly instead of falling back to a default.

use std::path::PathBuf;

use vmm_api::config::{DiskConfig, FramebufferConfig, VirtioDiscovery, VmConfig};
use vmm_api::run_dir::RunDir;

use crate::db::{images::ImageRow, vms::VmRow};

#[derive(Debug, thiserror::Error)]
pub enum VmmConfigError {
    #[error("The VM's {field} ({value}) does not fit the VMM")]
    OutOfRange { field: &'static str, value: i64 },
}

/// The guest's framebuffer: what the console shows.
const SCREEN: FramebufferConfig = FramebufferConfig {
    width: 1024,
    height: 768,
};

/// Adds the cards to the config, numbering their TAPs from `vmm_api::config::MIN_TAP_FD` in card order;
/// returns the descriptors with the numbers the VMM must see them at. The first card's address goes on
/// the kernel command line (`ip=`, as Firecracker does): a guest is on the network as its kernel starts,
/// without waiting for DHCP at emulated speed (the DHCP server has the same static lease for images that
/// ask).
pub fn add_nics(config: &mut VmConfig, nics: Vec<crate::net::OpenNic>) -> Vec<(i32, std::os::fd::OwnedFd)> {
    if let Some(first) = nics.first() {
        if !config.cmdline.split_whitespace().any(|a| a.starts_with("ip=")) {
            config.cmdline.push_str(&format!(
                " ip={}::{}:{}::eth0:off",
                first.ip, first.gateway, first.netmask
            ));
        }
    }
    nics.into_iter()
        .zip(vmm_api::config::MIN_TAP_FD..)
        .map(|(nic, fd)| {
            config.nics.push(vmm_api::config::NicConfig {
                mac: nic.mac,
                mtu: nic.mtu,
                tap_fd: fd,
            });
            (fd, nic.tap)
        })
        .collect()
}

/// The VMM config for `vm` booting `image`, its files in `dir` (`root_disk` and `config_disk` inside it).
pub fn build(
    vm: &VmRow,
    image: &ImageRow,
    dir: &RunDir,
    root_disk: PathBuf,
    config_disk: PathBuf,
    kvm_emulated: bool,
) -> Result<VmConfig, VmmConfigError> {
    let vcpus = u8::try_from(vm.vcpus).map_err(|_| VmmConfigError::OutOfRange {
        field: "vCPU count",
        value: vm.vcpus,
    })?;
    let memory_mib = u64::try_from(vm.memory_mib).map_err(|_| VmmConfigError::OutOfRange {
        field: "memory size",
        value: vm.memory_mib,
    })?;
    let mut cmdline = image.cmdline.clone();
    let mut cpuid_mask = Vec::new();
    if kvm_emulated && !image.emulated_cmdline.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(&image.emulated_cmdline);
        // Hide the same features in CPUID too, so nothing reads them before the kernel parses its
        // command line (see FACTS.md: the emulator cannot run them).
        cpuid_mask = clearcpuid_numbers(&image.emulated_cmdline);
    }
    let virtio_discovery = match image.virtio_discovery.as_str() {
        "acpi" => VirtioDiscovery::Acpi,
        "both" => VirtioDiscovery::Both,
        _ => VirtioDiscovery::Cmdline,
    };
    Ok(VmConfig {
        vm_id: vm.id.clone(),
        vcpus,
        memory_mib,
        kernel: PathBuf::from(&image.kernel_path),
        initrd: image.initrd_path.as_ref().map(PathBuf::from),
        cmdline,
        serial_console: false,
        disks: vec![
            DiskConfig {
                path: root_disk,
                read_only: false,
                serial: "root".into(),
            },
            DiskConfig {
                path: config_disk,
                read_only: true,
                serial: "config".into(),
            },
        ],
        framebuffer: Some(SCREEN),
        nics: Vec::new(),
        run_dir: dir.path().to_path_buf(),
        console_log: None,
        cpuid_mask,
        rng: true,
        virtio_discovery,
        jail: None,
        // The host sets the configured mode (`Settings::vmm_seccomp`); filters on unless told otherwise.
        seccomp: vmm_api::seccomp::SeccompMode::default(),
    })
}

/// The feature numbers of every `clearcpuid=` word of a command line.
fn clearcpuid_numbers(cmdline: &str) -> Vec<u32> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("clearcpuid="))
        .flat_map(|list| list.split(',').filter_map(|n| n.parse::<u32>().ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(vcpus: i64, memory_mib: i64) -> VmRow {
        VmRow {
            id: "vm-1".into(),
            tenant_id: "t".into(),
            created_by: "u".into(),
            name: "web".into(),
            image_id: "i".into(),
            image_name: "linux".into(),
            flavor_id: "f".into(),
            flavor_name: "t1.micro".into(),
            vcpus,
            memory_mib,
            disk_gib: 1,
            state: "starting".into(),
            state_reason: String::new(),
            ssh_key: String::new(),
            user_data: String::new(),
            pid: None,
            pid_start_ticks: None,
            vmm_run_id: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            guest_ready_at: None,
            guest_ready_after_ms: None,
            guest_ready_rule: String::new(),
            boot_line: String::new(),
            sandbox_uid: None,
        }
    }

    fn image(emulated: &str) -> ImageRow {
        ImageRow {
            id: "i".into(),
            name: "linux".into(),
            os: "Linux".into(),
            kernel_path: "/images/vmlinux".into(),
            initrd_path: None,
            root_disk_path: None,
            cmdline: "console=ttyS0".into(),
            emulated_cmdline: emulated.into(),
            virtio_discovery: "acpi".into(),
            owner_tenant_id: None,
            is_test: false,
            uploaded: false,
            size_bytes: 0,
            created_at: 0,
        }
    }

    #[test]
    fn emulated_hosts_get_the_extra_cmdline_and_the_same_cpuid_mask() {
        let dir = RunDir::new("/run/vms/vm-1");
        let img = image("noxsave clearcpuid=129,288 quiet");
        let on_hw = build(&vm(2, 256), &img, &dir, "/d".into(), "/c".into(), false).unwrap();
        assert_eq!(on_hw.cmdline, "console=ttyS0");
        assert!(on_hw.cpuid_mask.is_empty());
        let emulated = build(&vm(2, 256), &img, &dir, "/d".into(), "/c".into(), true).unwrap();
        assert_eq!(emulated.cmdline, "console=ttyS0 noxsave clearcpuid=129,288 quiet");
        assert_eq!(emulated.cpuid_mask, vec![129, 288]);
        assert_eq!((emulated.vcpus, emulated.memory_mib), (2, 256));
        assert_eq!(emulated.virtio_discovery, VirtioDiscovery::Acpi);
        assert_eq!(emulated.run_dir, PathBuf::from("/run/vms/vm-1"));
        assert!(emulated.disks[1].read_only && !emulated.disks[0].read_only);
    }

    #[test]
    fn values_that_do_not_fit_fail_instead_of_falling_back() {
        let dir = RunDir::new("/x");
        let err = build(&vm(300, 256), &image(""), &dir, "/d".into(), "/c".into(), false).unwrap_err();
        assert_eq!(err.to_string(), "The VM's vCPU count (300) does not fit the VMM");
        assert!(build(&vm(1, -1), &image(""), &dir, "/d".into(), "/c".into(), false).is_err());
    }
}
