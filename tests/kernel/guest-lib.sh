# guest-lib.sh - sourced by the scripts that run INSIDE the VM.
# shellcheck shell=bash

# guest_prepare OUTDIR: mark the start, quiet the console, load the modules
# the kernel tests use (output in OUTDIR/modprobe.log).  Fails if one is missing.
guest_prepare() {
    local out=$1 m
    touch "$out/started"
    dmesg -n 1 || true
    {
        echo "kernel $(uname -r), guest uptime $(cut -d' ' -f1 /proc/uptime) s"
        modprobe bonding max_bonds=0 || return 1
        for m in netdevsim sch_ingress cls_matchall act_gact veth; do
            modprobe "$m" || return 1
        done
        mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug || return 1
        mkdir -p /run/netns
        echo "modules loaded, guest uptime $(cut -d' ' -f1 /proc/uptime) s"
    } > "$out/modprobe.log" 2>&1
}
