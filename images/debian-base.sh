#!/usr/bin/env bash
# Builds a minimal Debian image with Python 3.11 (debootstrap + docker import), for building the
# service's images where no registry serves a base image. Prints the tag; reuses an existing one.
#   bash images/debian-base.sh [TAG]      (DEBIAN_MIRROR overrides debootstrap's default mirror)
set -euo pipefail
tag=${1:-img-classification-debian:bookworm}
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"
    exit 0
fi
for tool in debootstrap docker; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing: apt-get install ${tool/docker/docker.io}" >&2; exit 1; }
done
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo " • debootstrap Debian bookworm (minbase + python3) into $rootfs" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; exit 1; }
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$tag" >/dev/null
rm -f "$rootfs.log"
echo "$tag"
