#!/usr/bin/env bash
# Builds the guest images the VMM boots, from Debian packages only:
#   guest/out/vmlinux-minimal           minimal microVM kernel (uncompressed ELF) from linux-source-6.1
#   guest/out/initramfs.cpio            busybox-static initramfs for it (uncompressed cpio)
#   guest/out/vmlinuz-debian            the installed Debian distro kernel (bzImage)
#   guest/out/vmlinux-debian            its uncompressed ELF (scripts/extract-vmlinux): the image offered
#   guest/out/initramfs-debian.cpio.gz  busybox initramfs that also loads the virtio modules it needs
#   guest/out/manifest.json             what the portal offers as images (paths, cmdlines, sha256)
#   guest/out/kernel-facts-*.txt        the options that ended up =y/=m (also rendered to guest/KERNEL-CONFIG.md)
# Idempotent: the kernel build tree lives in ${GUEST_CACHE:-$HOME/.cache/cloud-portal/guest} and is only
# rebuilt when guest/kernel/microvm.config or the linux-source-6.1 package version changes.
# Environment: GUEST_CACHE (cache dir), GUEST_JOBS (make -j, default 2), GUEST_SKIP_DEBIAN=1 (only minimal),
#              GUEST_NO_DOCS=1 (do not rewrite guest/KERNEL-CONFIG.md).
set -euo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT="$GUEST_DIR/out"
STAGE="$GUEST_DIR/cache"
CACHE="${GUEST_CACHE:-$HOME/.cache/cloud-portal/guest}"
JOBS="${GUEST_JOBS:-2}"
FRAGMENT="$GUEST_DIR/kernel/microvm.config"
OPTIONS_TSV="$GUEST_DIR/kernel/options.tsv"
SRC_PKG=linux-source-6.1
BANNER='cloud-portal guest: busybox init ready'
# Fixed timestamp for every initramfs entry (2024-01-01T00:00:00Z) so the archives are reproducible.
EPOCH=1704067200
# CPUID features the instruction emulator behind /dev/kvm on the development hosts cannot execute
# (see the shared FACTS.md; 141 = cx16 was added after the minimal kernel's SLUB died on `lock cmpxchg16b`),
# and no RCU stall reports (at emulated speed the grace-period kthread looks starved, and printing the
# stack dumps costs seconds). Hardware KVM needs none of this, so it is kept out of the default cmdline.
# The emulator also cannot execute `int3` and `fwait` (the VMM completes them) and leaves SYSCALL in ring 3
# (kernel/patches/0002); no command line option avoids those.
# No `noxsave` (it was here before issue 11): guest user code runs natively on that KVM and, on AMD hosts,
# sees the host's CPUID and XCR0 and uses AVX-512 (glibc's memcpy/strchr); a kernel without XSAVE does not
# switch those registers between processes, so they leaked into other processes' data (busybox segfaults
# in __ctype_init). The VMM completes the XSAVE instructions the emulator cannot execute (vmm/src/vstate/
# xsave.rs), so the kernel keeps XSAVE and saves every register user space can use.
# 297 = erms and 580 = fsrm are not a correctness matter but a speed one: with them the kernel copies and
# clears memory with `rep movsb`/`rep stosb`, which the emulator seems to step a byte at a time; without them it
# uses `rep movsq`/`rep stosq` (8 bytes a step). Measured on the minimal image (issue 13, VMM start to the
# busybox banner on an idle machine): 54-55 s with them, 45-46 s without; unpacking the 6 MB initramfs
# and clearing every new page are the main users (guest/README.md).
EMULATED_HOST_EXTRA='clearcpuid=129,137,145,147,148,150,151,153,158,288,291,295,296,298,306,307,308,311,312,317,514,515,520,534,59,197,141,297,580 rcupdate.rcu_cpu_stall_suppress=1'

log() { printf '[guest] %s\n' "$*" >&2; }
die() { printf '[guest] error: %s\n' "$*" >&2; exit 1; }

# --- packages -------------------------------------------------------------------------------------
ensure_packages() {
    local pkgs=("$SRC_PKG" linux-image-amd64 busybox-static flex bison libelf-dev libssl-dev bc cpio
        build-essential xz-utils gzip python3 patch dropbear-bin)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing missing packages: ${missing[*]}"
    local sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# --- minimal kernel -------------------------------------------------------------------------------
SRC_VER=""
SRC_TREE=""
BUILD_DIR=""

prepare_source() {
    SRC_VER=$(dpkg-query -W -f='${Version}' "$SRC_PKG")
    local tarball="/usr/src/$SRC_PKG.tar.xz"
    [[ -f $tarball ]] || die "$tarball not found"
    local dir="$CACHE/src/$SRC_VER"
    SRC_TREE="$dir/$SRC_PKG"
    if [[ ! -f $dir/.extracted ]]; then
        log "extracting $tarball ($SRC_VER)"
        rm -rf "$dir"
        mkdir -p "$dir"
        tar -C "$dir" -xf "$tarball"
        touch "$dir/.extracted"
        # Keep only the current source version.
        find "$CACHE/src" -mindepth 1 -maxdepth 1 -type d ! -name "$SRC_VER" -exec rm -rf {} +
    fi
    # Local fixes (guest/kernel/patches/*.patch, applied in name order). A tree patched with an older set
    # is replaced by a fresh extraction; the files that differed (what the old set had changed) are
    # touched so that make rebuilds them although the tarball brings back older mtimes, and the object
    # tree stays incremental.
    local want have="" p
    want=$(patches_hash)
    [[ -f $dir/.cp-patches ]] && have=$(cat "$dir/.cp-patches")
    if [[ $have != "$want" ]]; then
        if [[ -n $have ]]; then
            log "kernel patches changed: re-extracting the source (object tree kept)"
            rm -rf "$dir/fresh"
            mkdir -p "$dir/fresh"
            tar -C "$dir/fresh" -xf "$tarball"
            local changed
            changed=$(diff -rq "$SRC_TREE" "$dir/fresh/$SRC_PKG" 2>/dev/null |
                sed -n "s#^Files $SRC_TREE/\(.*\) and .* differ\$#\1#p" || true)
            rm -rf "$SRC_TREE"
            mv "$dir/fresh/$SRC_PKG" "$SRC_TREE"
            rm -rf "$dir/fresh"
            if [[ -n $changed ]]; then
                log "previously patched: $(echo $changed)"
                (cd "$SRC_TREE" && printf '%s\n' "$changed" | xargs -r touch -c)
            fi
        fi
        for p in "$GUEST_DIR"/kernel/patches/*.patch; do
            [[ -e $p ]] || continue
            log "applying $(basename "$p")"
            patch -d "$SRC_TREE" -p1 --forward --batch --quiet <"$p" || die "patch $p does not apply"
        done
        echo "$want" >"$dir/.cp-patches"
    fi
}

patches_hash() {
    local p
    {
        for p in "$GUEST_DIR"/kernel/patches/*.patch; do
            [[ -e $p ]] && { basename "$p"; cat "$p"; }
        done
        echo end
    } | sha256sum | cut -d' ' -f1
}

# Prints "MISMATCH ..." for every fragment line the final .config does not honour.
check_fragment() {
    local frag=$1 cfg=$2 line sym want have bad=0
    while IFS= read -r line; do
        if [[ $line =~ ^#\ (CONFIG_[A-Z0-9_]+)\ is\ not\ set$ ]]; then
            sym=${BASH_REMATCH[1]}; want=n
        elif [[ $line =~ ^(CONFIG_[A-Z0-9_]+)=(.*)$ ]]; then
            sym=${BASH_REMATCH[1]}; want=${BASH_REMATCH[2]}
        else
            continue
        fi
        have=$(grep -E "^$sym=" "$cfg" | head -n1 | cut -d= -f2- || true)
        [[ -z $have ]] && have=n
        if [[ $have != "$want" ]]; then
            echo "MISMATCH $sym wanted=$want got=$have"
            bad=1
        fi
    done <"$frag"
    return $bad
}

build_minimal_kernel() {
    prepare_source
    BUILD_DIR="$CACHE/build-minimal"
    local key
    key=$( { cat "$FRAGMENT"; echo "base=allnoconfig"; echo "src=$SRC_VER"; echo "patches=$(patches_hash)"; } |
        sha256sum | cut -d' ' -f1)
    if [[ -f $BUILD_DIR/vmlinux && -f $BUILD_DIR/.cp-key && $(cat "$BUILD_DIR/.cp-key") == "$key" ]]; then
        log "minimal kernel up to date (key ${key:0:12}, built in $(cat "$BUILD_DIR/.cp-build-seconds" 2>/dev/null || echo '?') s)"
        return 0
    fi
    # A different source version invalidates the object tree; a changed fragment is an incremental rebuild.
    if [[ -f $BUILD_DIR/.cp-src && $(cat "$BUILD_DIR/.cp-src") != "$SRC_VER" ]]; then
        log "source version changed: discarding $BUILD_DIR"
        rm -rf "$BUILD_DIR"
    fi
    mkdir -p "$BUILD_DIR"
    echo "$SRC_VER" >"$BUILD_DIR/.cp-src"
    rm -f "$BUILD_DIR/.cp-key"
    local logf="$CACHE/build-minimal.log"
    log "configuring minimal kernel (allnoconfig + $(basename "$FRAGMENT"))"
    make -s -C "$SRC_TREE" O="$BUILD_DIR" allnoconfig >"$logf" 2>&1
    "$SRC_TREE/scripts/kconfig/merge_config.sh" -m -O "$BUILD_DIR" "$BUILD_DIR/.config" "$FRAGMENT" >>"$logf" 2>&1
    make -s -C "$SRC_TREE" O="$BUILD_DIR" olddefconfig >>"$logf" 2>&1
    if ! check_fragment "$FRAGMENT" "$BUILD_DIR/.config" >"$CACHE/fragment-check.txt"; then
        cat "$CACHE/fragment-check.txt" >&2
        die "the final .config does not honour $FRAGMENT (dependencies missing?)"
    fi
    log "building vmlinux (make -j$JOBS, nice 10; log: $logf)"
    local start=$SECONDS
    if ! nice -n 10 make -C "$SRC_TREE" O="$BUILD_DIR" -j"$JOBS" KBUILD_BUILD_USER=cloud-portal \
        KBUILD_BUILD_HOST=guest-build vmlinux >>"$logf" 2>&1; then
        tail -n 40 "$logf" >&2
        die "kernel build failed"
    fi
    echo $((SECONDS - start)) >"$BUILD_DIR/.cp-build-seconds"
    echo "$key" >"$BUILD_DIR/.cp-key"
    log "vmlinux built in $((SECONDS - start)) s"
}

install_minimal_kernel() {
    mkdir -p "$OUT"
    cp "$BUILD_DIR/vmlinux" "$OUT/vmlinux-minimal.tmp"
    mv "$OUT/vmlinux-minimal.tmp" "$OUT/vmlinux-minimal"
    cp "$BUILD_DIR/System.map" "$OUT/System.map-minimal"
    cp "$BUILD_DIR/.config" "$OUT/config-minimal"
}

# --- initramfs --------------------------------------------------------------------------------------
GEN_INIT_CPIO=""

build_gen_init_cpio() {
    # The kernel's own cpio generator: writes device nodes and owners without root, with fixed mtimes.
    GEN_INIT_CPIO="$CACHE/tools/gen_init_cpio-$SRC_VER"
    if [[ ! -x $GEN_INIT_CPIO ]]; then
        mkdir -p "$CACHE/tools"
        cc -O2 -o "$GEN_INIT_CPIO" "$SRC_TREE/usr/gen_init_cpio.c"
    fi
}

write_init() {
    # $1: staging root, $2: extra shell lines run before the banner (module loading), may be empty.
    local root=$1 modules_block=$2
    sed -e "s|@BANNER@|$BANNER|g" "$GUEST_DIR/init" >"$root/init"
    chmod 0755 "$root/init"
    if [[ -n $modules_block ]]; then
        mkdir -p "$root/etc"
        printf '%s\n' "$modules_block" >"$root/etc/init-modules"
    fi
}

write_etc() {
    local root=$1
    mkdir -p "$root/etc"
    echo "cloud-portal" >"$root/etc/hostname"
    # root's password is locked ("*" in shadow): the console shells are started without a login, and over
    # SSH only keys work, even if dropbear were ever started without -s (an empty field would let anyone in).
    echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
    echo "root:*:19723:0:99999:7:::" >"$root/etc/shadow"
    chmod 0600 "$root/etc/shadow"
    echo "root:x:0:" >"$root/etc/group"
    echo "/bin/sh" >"$root/etc/shells"
    # glibc (dropbear): files only; "files" and "dns" are built into libc.so.6 since glibc 2.34.
    printf '%s\n' "passwd: files" "group: files" "shadow: files" "hosts: files dns" >"$root/etc/nsswitch.conf"
    printf '%s\n' "127.0.0.1 localhost" >"$root/etc/hosts"
    cat >"$root/etc/profile" <<'EOF'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=/root
PS1='\h:\w\$ '
EOF
    cat >"$root/etc/inittab" <<'EOF'
# busybox init (generated by guest/build.sh): a root shell on the serial console and on the framebuffer VT.
ttyS0::respawn:-/bin/sh
tty1::respawn:-/bin/sh
::ctrlaltdel:/sbin/poweroff
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
EOF
    cat >"$root/etc/fstab" <<'EOF'
proc /proc proc defaults 0 0
sysfs /sys sysfs defaults 0 0
EOF
}

# Writes a gen_init_cpio list for the staging tree (sorted, root-owned) plus the fixed nodes.
cpio_list() {
    local root=$1 path rel mode
    echo "dir /dev 0755 0 0"
    echo "nod /dev/console 0600 0 0 c 5 1"
    echo "nod /dev/null 0666 0 0 c 1 3"
    echo "nod /dev/ttyS0 0600 0 0 c 4 64"
    (cd "$root" && find . -mindepth 1 ! -path ./dev | LC_ALL=C sort) | while IFS= read -r path; do
        rel=${path#.}
        if [[ -L $root$rel ]]; then
            echo "slink $rel $(readlink "$root$rel") 0777 0 0"
        elif [[ -d $root$rel ]]; then
            mode=$(stat -c '%a' "$root$rel")
            echo "dir $rel $mode 0 0"
        else
            mode=$(stat -c '%a' "$root$rel")
            echo "file $rel $root$rel $mode 0 0"
        fi
    done
}

# $1 staging root, $2 output file, $3 "gzip" (default) or "none" (plain cpio)
pack_initramfs() {
    local root=$1 outfile=$2 compress=${3:-gzip}
    # gen_init_cpio takes regular files' mtimes from the files themselves: pin them too.
    find "$root" -exec touch -h -d "@$EPOCH" {} +
    cpio_list "$root" >"$root.list"
    "$GEN_INIT_CPIO" -t "$EPOCH" "$root.list" >"$root.cpio"
    if [[ $compress == none ]]; then
        mv "$root.cpio" "$outfile.tmp"
    else
        gzip -n -9 -c "$root.cpio" >"$outfile.tmp"
    fi
    mv "$outfile.tmp" "$outfile"
    rm -f "$root.cpio"
}

stage_busybox_root() {
    local root=$1 applet
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,mnt,run,tmp,root,var/log}
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"
    cp /bin/busybox "$root/bin/busybox"
    chmod 0755 "$root/bin/busybox"
    ln -s ../run "$root/var/run"
    # One relative symlink per applet, at the path busybox itself reports (bin/sh, sbin/init, ...).
    while IFS= read -r applet; do
        applet=${applet#/}
        [[ $applet == bin/busybox || -e $root/$applet || -L $root/$applet ]] && continue
        local dir up
        dir=$(dirname "$applet")
        up=$(echo "$dir" | sed -E 's#[^/]+#..#g')
        ln -s "$up/bin/busybox" "$root/$applet"
    done < <(/bin/busybox --list-full | LC_ALL=C sort)
    # The SSH server (Debian's dropbear-bin) and the shared libraries it loads.
    stage_elf "$root" /usr/sbin/dropbear /usr/bin/dropbearkey
    # (Debian's busybox looks for the DHCP client's script here, not in upstream's /usr/share/udhcpc)
    install -D -m 0755 "$GUEST_DIR/udhcpc.script" "$root/etc/udhcpc/default.script"
    write_etc "$root"
}

# Copies ELF programs into the staging root at their own paths, with every shared library and the ELF
# interpreter that ldd lists for them (as regular files at the paths ldd prints: /lib/x86_64-linux-gnu/...,
# /lib64/ld-linux-x86-64.so.2), so the dynamic loader finds them without an ld.so.cache.
stage_elf() {
    local root=$1 lib
    shift
    for lib in "$@"; do
        [[ -x $lib ]] || die "$lib not found (package missing?)"
        install -D -m 0755 "$lib" "$root$lib"
    done
    while IFS= read -r lib; do
        [[ -e $root$lib ]] && continue
        install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done < <(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | LC_ALL=C sort -u)
}

build_minimal_initramfs() {
    local root="$STAGE/initramfs-minimal"
    stage_busybox_root "$root"
    write_init "$root" ""
    # Uncompressed: inflating 2.5 MB took ~60 s of emulated CPU on kvm_pvm hosts; a plain cpio is only
    # copied (on hardware both are milliseconds; the file is 2.5 MB instead of 1 MB).
    pack_initramfs "$root" "$OUT/initramfs.cpio" none
    rm -f "$OUT/initramfs.cpio.gz"
}

# --- Debian kernel ------------------------------------------------------------------------------------
DEB_VER=""
DEB_MODULES=()

find_debian_kernel() {
    local v best=""
    for v in /boot/vmlinuz-*-amd64; do
        [[ -e $v ]] || continue
        v=${v#/boot/vmlinuz-}
        [[ -d /lib/modules/$v && -f /boot/config-$v ]] || continue
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done
    [[ -n $best ]] || die "no /boot/vmlinuz-*-amd64 with modules found (install linux-image-amd64)"
    DEB_VER=$best
}

# Module names the Debian initramfs loads, before dependency resolution.
DEB_WANTED=(virtio_mmio virtio_blk virtio_net virtio_input virtio-rng evdev button crc32c_generic ext4)

# Resolves module paths with modules.dep, dependencies first (depth-first post-order).
resolve_modules() {
    local moddir="/lib/modules/$DEB_VER"
    python3 - "$moddir" "${DEB_WANTED[@]}" <<'EOF'
import os, sys
moddir, wanted = sys.argv[1], sys.argv[2:]
deps, byname = {}, {}
with open(os.path.join(moddir, "modules.dep")) as f:
    for line in f:
        path, _, rest = line.partition(":")
        path = path.strip()
        deps[path] = rest.split()
        base = os.path.basename(path)
        for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
            if base.endswith(ext):
                base = base[: -len(ext)]
                break
        byname[base.replace("-", "_")] = path
order, seen = [], set()
def visit(p):
    if p in seen:
        return
    seen.add(p)
    for d in deps.get(p, []):
        visit(d)
    order.append(p)
for name in wanted:
    key = name.replace("-", "_")
    if key in byname:
        visit(byname[key])
    else:
        # built into the kernel (or absent): nothing to load
        print("#builtin-or-missing " + name)
for p in order:
    print(p)
EOF
}

build_debian_images() {
    find_debian_kernel
    local moddir="/lib/modules/$DEB_VER" root="$STAGE/initramfs-debian" line rel base dest block=""
    cp "/boot/vmlinuz-$DEB_VER" "$OUT/vmlinuz-debian.tmp"
    mv "$OUT/vmlinuz-debian.tmp" "$OUT/vmlinuz-debian"
    # The uncompressed ELF inside the bzImage: the VMM loads it directly, skipping the decompressor (which
    # alone ran for over 25 min on the emulated KVM here; on hardware it saves a few hundred ms).
    "$SRC_TREE/scripts/extract-vmlinux" "$OUT/vmlinuz-debian" >"$OUT/vmlinux-debian.tmp" ||
        die "extract-vmlinux failed on /boot/vmlinuz-$DEB_VER"
    mv "$OUT/vmlinux-debian.tmp" "$OUT/vmlinux-debian"
    cp "/boot/config-$DEB_VER" "$OUT/config-debian"
    stage_busybox_root "$root"
    mkdir -p "$root/lib/modules"
    DEB_MODULES=()
    while IFS= read -r line; do
        if [[ $line == \#builtin-or-missing* ]]; then
            log "debian: module ${line#* } not found as .ko (built in or absent)"
            continue
        fi
        rel=$line
        base=$(basename "$rel")
        dest="$root/lib/modules/${base%%.ko*}.ko"
        case $base in
            *.ko.xz) xz -dc "$moddir/$rel" >"$dest" ;;
            *.ko.zst) zstd -dcq "$moddir/$rel" >"$dest" ;;
            *.ko.gz) gzip -dc "$moddir/$rel" >"$dest" ;;
            *.ko) cp "$moddir/$rel" "$dest" ;;
        esac
        chmod 0644 "$dest"
        DEB_MODULES+=("${base%%.ko*}")
        block+="insmod /lib/modules/${base%%.ko*}.ko || echo \"init: insmod ${base%%.ko*} failed\""$'\n'
    done < <(resolve_modules)
    printf '%s\n' "${DEB_MODULES[@]}" >"$root/lib/modules/load-order"
    write_init "$root" "# Debian kernel: load the virtio/ext4 modules in dependency order (from modules.dep).
$block"
    pack_initramfs "$root" "$OUT/initramfs-debian.cpio.gz"
}

# --- manifest and facts -------------------------------------------------------------------------------
# loops_per_jiffy for a given HZ from the host TSC frequency (lets the guest skip delay calibration).
lpj_for_hz() {
    local hz=$1 mhz
    mhz=$(awk -F: '/^cpu MHz/ {gsub(/ /, "", $2); print $2; exit}' /proc/cpuinfo)
    [[ -n $mhz ]] || mhz=2000
    awk -v m="$mhz" -v hz="$hz" 'BEGIN { printf "%d", m * 1000000 / hz }'
}

config_value() {
    # $1 config file, $2 symbol without CONFIG_ -> y | m | n | value
    local v
    v=$(grep -E "^CONFIG_$2=" "$1" | head -n1 | cut -d= -f2- || true)
    echo "${v:-n}"
}

write_facts() {
    local name=$1 cfg=$2 file="$OUT/kernel-facts-$1.txt" group sym why
    {
        echo "# $name kernel: value of each option listed in guest/kernel/options.tsv"
        while IFS=$'\t' read -r group sym why; do
            [[ -z $group || $group == \#* ]] && continue
            printf 'CONFIG_%s=%s\n' "$sym" "$(config_value "$cfg" "$sym")"
        done <"$OPTIONS_TSV"
        echo "# all options =y: $(grep -c '=y$' "$cfg")"
        grep '=y$' "$cfg"
    } >"$file"
}

write_kernel_config_md() {
    [[ ${GUEST_NO_DOCS:-0} == 1 || ${GUEST_SKIP_DEBIAN:-0} == 1 ]] && return 0
    local md="$GUEST_DIR/KERNEL-CONFIG.md" tmp group sym why cur="" mini deb
    tmp=$(mktemp)
    local mini_cfg="$OUT/config-minimal" deb_cfg="$OUT/config-debian"
    local mini_ver deb_label="not built"
    mini_ver=$(cat "$BUILD_DIR/include/config/kernel.release" 2>/dev/null || echo "?")
    [[ -f $deb_cfg ]] && deb_label="$DEB_VER (/boot/config-$DEB_VER)"
    {
        echo "# Guest kernel configuration"
        echo
        echo "Generated by \`guest/build.sh\` from the final \`.config\` of the minimal kernel and from the Debian"
        echo "kernel's \`/boot/config-*\`; the reasons come from \`guest/kernel/options.tsv\`. Do not edit the tables by hand."
        echo
        echo "- **minimal**: Linux $mini_ver from \`$SRC_PKG\` $SRC_VER, \`make allnoconfig\` + \`guest/kernel/microvm.config\` +"
        echo "  \`make olddefconfig\`; $(grep -c '=y$' "$mini_cfg") options =y, no modules. Output \`guest/out/vmlinux-minimal\`."
        echo "- **debian**: $deb_label; \`guest/out/vmlinuz-debian\`. Modules (=m) are loaded by the initramfs /init"
        echo "  in this order: ${DEB_MODULES[*]:-none}."
        echo
        echo "Legend: **y** built in, **m** module, **n** absent."
        while IFS=$'\t' read -r group sym why; do
            [[ -z $group || $group == \#* ]] && continue
            if [[ $group != "$cur" ]]; then
                cur=$group
                echo
                echo "## $group"
                echo
                echo "| option | minimal | debian | why |"
                echo "|---|---|---|---|"
            fi
            mini=$(config_value "$mini_cfg" "$sym")
            deb="-"
            [[ -f $deb_cfg ]] && deb=$(config_value "$deb_cfg" "$sym")
            echo "| \`$sym\` | $mini | $deb | $why |"
        done <"$OPTIONS_TSV"
        echo
        echo "## What this means for the VMM"
        echo
        cat <<'EOF'
- Framebuffer: with `orig_video_isVGA = 0x23` (VIDEO_TYPE_VLFB) and a simplefb pixel format (32 bpp,
  red 8@16, green 8@8, blue 8@0, rsvd 0@0 → `x8r8g8b8`, or rsvd 8@24 → `a8r8g8b8`), the minimal kernel's sysfb
  registers a `simple-framebuffer` device and `simplefb` binds it; fbcon then draws tty1 on it. For VLFB,
  `lfb_size` is in 64 KiB units (sysfb shifts it left by 16) and must cover `lfb_height * lfb_linelength`
  (1024x768x32: 3 MiB → `lfb_size = 48`). The Debian kernel has SYSFB_SIMPLEFB off, so sysfb registers
  `vesa-framebuffer` and `vesafb` (FB_VESA=y) binds it; same screen_info works for both.
- virtio-mmio discovery: both images use `acpi` (manifest `virtio_mmio_discovery`): the VMM describes each
  transport in the DSDT (`Device` with `_HID "LNRO0005"` and a `_CRS` holding `Memory32Fixed(base, size)` +
  `Interrupt(edge, high, gsi)`), which virtio_mmio's ACPI match table binds. The minimal kernel also accepts
  `virtio_mmio.device=<size>@<base>:<irq>` (VIRTIO_MMIO_CMDLINE_DEVICES), the Debian kernel does not (the
  module ignores the parameter).
- Interrupts (confirmed under this VMM): with only the command-line devices every virtio driver's probe
  failed with -22 right after queue setup ("virtio_blk: probe of virtio0 failed with error -22"; the boot log
  shows "NR_IRQS: 4352, nr_irqs: 32, preallocated irqs: 0"). The FADT's HW_REDUCED_ACPI flag makes Linux
  use no legacy PIC (acpi_generic_reduced_hw_init sets null_legacy_pic), so no ISA IRQ is pre-mapped and
  request_irq() on a GSI that only the command line names fails. A `_CRS` `Interrupt` makes ACPI register
  the GSI (acpi_register_gsi → IOAPIC pin mapping) before the driver asks for it; with the DSDT devices the
  blk, rng, keyboard and tablet drivers all probe. This is why `acpi` is the discovery to use with ACPI on.
  The same holds for COM1: the 8250 driver's built-in "ttyS0 at 0x3f8, irq 4" got no working interrupt, so
  the polled kernel console printed but /init's first write to ttyS0 blocked forever. The DSDT therefore
  also describes `COM1` (`_HID PNP0501`, `IO(0x3f8, 8)`, `Interrupt(4)`); SERIAL_8250_PNP (=y in both
  kernels) takes the port over with the ACPI-registered GSI ("00:00: ttyS0 at I/O 0x3f8 (irq = 28)").
- Emulated KVM hosts only (kvm_pvm: every guest instruction emulated; hardware KVM never needs these):
  the emulator cannot execute `int3` in long mode (KVM_EXIT_INTERNAL_ERROR at the alternatives self-test,
  later at every text_poke_bp), so the VMM delivers #BP itself (RIP past the int3, exception 3 injected);
  and it executes SYSCALL from user mode without switching to ring 0 (RIP = MSR_LSTAR with CS still 0x33,
  so entry_SYSCALL_64 faults: "init[1]: segfault at ffffffff81400040 ... error 15"), which
  `guest/kernel/patches/0002-*` handles in the minimal kernel's page-fault handler by running the system
  call there. The Debian kernel has no such patch, so on these hosts it cannot run user space.
  User code runs natively there and, on AMD hosts, sees the host's CPUID and XCR0 (AVX, AVX-512); the
  kernel must keep XSAVE to switch those registers between processes (with `noxsave` they leaked and
  busybox processes died at start-up, issue 11). The emulator cannot execute XGETBV and the XSAVE/XRSTOR
  family either; the VMM completes them on KVM's copy of the vCPU's extended state.
- Power off: ACPI is built in both; `poweroff` writes SLP_TYP|SLP_EN to the FADT sleep control register
  (hardware-reduced) using the `\_S5` package from the DSDT, so the DSDT must contain `Name(_S5, Package(){5, 0})`
  or similar. Reboot with `reboot=k` uses the keyboard controller (port 0x64, 0xFE).
- The minimal kernel carries two local patches (`guest/kernel/patches/`): 0001, with ACPI but without PCI,
  Linux 6.1's ACPICA fails to load the tables ("AE_BAD_PARAMETER, During Region initialization", seen under
  this VMM), because the default PCI_Config region handler only exists with CONFIG_PCI; the patch skips it.
  0002, the emulated-host SYSCALL fix above (a no-op on hardware).
- Debian: PCI and i8042 are built in; add `pci=off i8042.noaux i8042.nomux i8042.dumbkbd` so boot does not
  probe hardware the VMM does not have.
- Network: each NIC is a virtio-mmio device found like the others (ACPI `LNRO0005`); the first is `eth0`.
  `ip=<addr>::<gw>:<mask>::eth0:off` on the command line configures it in the minimal kernel before /init
  (IP_PNP; Debian's kernel has no IP_PNP, its /init applies the same static form); without `ip=` the
  guest's /init runs busybox udhcpc in the background. Both images run dropbear on port 22 (keys only).
EOF
    } >"$tmp"
    if ! cmp -s "$tmp" "$md"; then
        mv "$tmp" "$md"
        log "wrote $md"
    else
        rm -f "$tmp"
    fi
}

json_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

write_manifest() {
    local mini_ver mini_cmd deb_cmd
    mini_ver=$(cat "$BUILD_DIR/include/config/kernel.release")
    local mini_hz deb_hz=250
    mini_hz=$(config_value "$OUT/config-minimal" HZ)
    [[ -f $OUT/config-debian ]] && deb_hz=$(config_value "$OUT/config-debian" HZ)
    mini_cmd="console=ttyS0 reboot=k panic=-1 quiet lpj=$(lpj_for_hz "$mini_hz")"
    deb_cmd="console=ttyS0 reboot=k panic=-1 quiet lpj=$(lpj_for_hz "$deb_hz") pci=off i8042.noaux i8042.nomux i8042.dumbkbd"
    {
        echo "{"
        echo "  \"generated_by\": \"guest/build.sh\","
        echo "  \"emulated_host_extra_cmdline\": $(json_str "$EMULATED_HOST_EXTRA"),"
        echo "  \"images\": ["
        echo "    {"
        echo "      \"name\": \"minimal\","
        echo "      \"os\": \"Busybox (minimal microVM kernel $mini_ver)\","
        echo "      \"kernel\": \"guest/out/vmlinux-minimal\","
        echo "      \"kernel_format\": \"elf\","
        echo "      \"initrd\": \"guest/out/initramfs.cpio\","
        echo "      \"cmdline\": $(json_str "$mini_cmd"),"
        echo "      \"virtio_mmio_discovery\": \"acpi\","
        echo "      \"kernel_version\": \"$mini_ver\","
        echo "      \"kernel_sha256\": \"$(sha256 "$OUT/vmlinux-minimal")\","
        echo "      \"initrd_sha256\": \"$(sha256 "$OUT/initramfs.cpio")\""
        if [[ -f $OUT/vmlinuz-debian && ${GUEST_SKIP_DEBIAN:-0} != 1 ]]; then
            echo "    },"
            echo "    {"
            echo "      \"name\": \"debian\","
            echo "      \"os\": \"Busybox on the Debian 12 kernel $DEB_VER\","
            echo "      \"kernel\": \"guest/out/vmlinux-debian\","
            echo "      \"kernel_format\": \"elf\","
            echo "      \"initrd\": \"guest/out/initramfs-debian.cpio.gz\","
            echo "      \"cmdline\": $(json_str "$deb_cmd"),"
            echo "      \"virtio_mmio_discovery\": \"acpi\","
            echo "      \"kernel_version\": \"$DEB_VER\","
            echo "      \"kernel_sha256\": \"$(sha256 "$OUT/vmlinux-debian")\","
            echo "      \"initrd_sha256\": \"$(sha256 "$OUT/initramfs-debian.cpio.gz")\""
        fi
        echo "    }"
        echo "  ]"
        echo "}"
    } >"$OUT/manifest.json.tmp"
    python3 -m json.tool "$OUT/manifest.json.tmp" >/dev/null || die "manifest.json is not valid JSON"
    mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
}

main() {
    ensure_packages
    mkdir -p "$CACHE" "$OUT" "$STAGE"
    exec 9>"$CACHE/.lock"
    flock 9
    build_minimal_kernel
    install_minimal_kernel
    build_gen_init_cpio
    build_minimal_initramfs
    write_facts minimal "$OUT/config-minimal"
    if [[ ${GUEST_SKIP_DEBIAN:-0} != 1 ]]; then
        build_debian_images
        write_facts debian "$OUT/config-debian"
    fi
    write_kernel_config_md
    write_manifest
    log "done: $(cd "$OUT" && ls -l vmlinux-minimal initramfs.cpio vmlinux-debian initramfs-debian.cpio.gz 2>/dev/null | awk '{printf "%s=%s ", $9, $5}')"
}

main "$@"; exit $?
