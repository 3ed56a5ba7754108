#!/bin/sh
# Makes the base image of docker/Dockerfile from Debian packages, because no registry
# image can be pulled where the image is built: debootstrap a minimal Debian (the release
# given by the image tag, bookworm by default) with Python 3, venv, CA certificates
# and PostgreSQL, then `docker import` it. Nothing is done when the image already exists.
#
# Usage: docker/base-image.sh [IMAGE]      (default cattc-base:bookworm; needs root)
#   DEBIAN_MIRROR   the Debian mirror to debootstrap from (default http://deb.debian.org/debian)
set -eu

image="${1:-cattc-base:bookworm}"
suite="${image##*:}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3,python3-venv,ca-certificates,postgresql"

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image exists"
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
    echo "installing Debian's debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT INT TERM
echo "debootstrap $suite ($packages) into $root"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    rm -f "$root.log"
    exit 1
}
rm -f "$root.log"
# What a container image does not need: package lists, caches, documentation.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/locale/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --message "debootstrap --variant=minbase $suite with $packages" - "$image"
echo "base image $image made"
