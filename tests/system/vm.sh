# The system test's VM (../shared/VM_NOTES.md): Debian 12 under qemu/TCG, an ext4 image made by
# mmdebstrap with no loop devices or mounts, cached under a hash of its recipe, booted with
# snapshot=on so the cache never changes. A 9p share carries the test in and the results out.
# shellcheck shell=bash

CPUCLASS_VM_CACHE=${CPUCLASS_VM_CACHE:-/var/cache/cpuclassd-test/vm}
CPUCLASS_VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# What the guest needs besides the package under test: the VM has no network, so the package's
# runtime dependencies are in the image already.
VM_PACKAGES=(
  systemd systemd-sysv dbus udev kmod procps util-linux iproute2 curl polkitd man-db
  linux-image-amd64 initramfs-tools
  libsystemd0 libyaml-cpp0.7 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libfmt9 libstdc++6
)
VM_SUITES=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)

vm_recipe_hash() {
  { printf '%s\n' "${VM_PACKAGES[@]}" "${VM_SUITES[@]}"; cat "$CPUCLASS_VM_DIR/vm.sh" "$CPUCLASS_VM_DIR"/guest/*; } |
    sha256sum | cut -c1-16
}

# vm_image: prints the directory holding rootfs.img, vmlinuz and initrd.img; builds it once.
vm_image() {
  local dir
  dir="$CPUCLASS_VM_CACHE/$(vm_recipe_hash)"
  mkdir -p "$CPUCLASS_VM_CACHE"
  (
    flock 9
    [ -f "$dir/ready" ] && exit 0
    # Images of older recipes are of no further use (each is a 4 GB sparse file).
    find "$CPUCLASS_VM_CACHE" -mindepth 1 -maxdepth 1 -type d ! -path "$dir" -exec rm -rf {} +
    rm -rf "$dir" && mkdir -p "$dir"
    local tree="$dir/tree" started=$SECONDS
    echo "vm: building the image (mmdebstrap, first run only)" >&2
    mmdebstrap --variant=apt --skip=cleanup/reproducible --include="$(IFS=,; echo "${VM_PACKAGES[*]}")" \
      --customize-hook="'$CPUCLASS_VM_DIR/guest/customize' \"\$1\"" \
      bookworm "$tree" "${VM_SUITES[@]}" >"$dir/mmdebstrap.log" 2>&1 || { tail -30 "$dir/mmdebstrap.log" >&2; exit 1; }
    cp "$tree"/boot/vmlinuz-* "$dir/vmlinuz" && cp "$tree"/boot/initrd.img-* "$dir/initrd.img"
    mke2fs -q -t ext4 -d "$tree" "$dir/rootfs.img" 4G >&2 || exit 1
    rm -rf "$tree"
    touch "$dir/ready"
    echo "vm: image ready in $((SECONDS - started)) s: $dir" >&2
  ) 9>"$CPUCLASS_VM_CACHE/.lock" || return 1
  echo "$dir"
}

# vm_run IMAGE_DIR SHARE_DIR TIMEOUT_SECONDS: boots, runs the guest test from the share, and
# returns when the guest powers off (or the timeout kills it). The console goes to SHARE/console.log.
vm_run() {
  local image=$1 share=$2 limit=$3
  local append="root=/dev/vda rw console=ttyS0,115200 panic=-1 loglevel=3 systemd.show_status=0"
  append+=" systemd.unified_cgroup_hierarchy=1 systemd.mask=serial-getty@ttyS0.service systemd.mask=getty@tty1.service"
  # KVM only with real vmx/svm and no PVM module (VM_NOTES): a stock kernel hangs under kvm_pvm.
  local accel=tcg,thread=multi
  if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && ! grep -q '^kvm_pvm ' /proc/modules; then accel=kvm; fi
  timeout --kill-after=10 "$limit" qemu-system-x86_64 -machine q35 -accel "$accel" -cpu max -smp 2 -m 2048 \
    -nodefaults -display none -no-reboot -kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "$append" \
    -drive "file=$image/rootfs.img,format=raw,if=virtio,snapshot=on" \
    -fsdev "local,id=share,path=$share,security_model=none" -device virtio-9p-pci,fsdev=share,mount_tag=share \
    -serial "file:$share/console.log" </dev/null
}
