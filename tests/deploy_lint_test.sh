#!/usr/bin/env bash
# Lints what deploy/ ships: shell scripts (shellcheck, the benchmarks' too),
# Kubernetes manifests (yamllint, then structure: selectors match labels,
# volumes and secrets exist, workers request GPUs in the CUDA image, probes
# and ports line up), container definitions, and systemd units
# (systemd-analyze where systemd is installed, else a structural check); and
# that bench/gpu.sh stops at once, saying why, on a machine without a GPU.
#
#   tests/deploy_lint_test.sh SOURCE_DIR
set -euo pipefail
src=$(readlink -f "$1")
cd "$src"
missing=()
for tool in shellcheck yamllint python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing ${missing[*]}: deploy/install-deps.sh installs them" >&2
  exit 1
fi

echo "== shellcheck"
shellcheck deploy/*.sh deploy/gpu/*.sh deploy/slurm/*.sbatch tests/*.sh tests/support/*.sh .ci/run bench/*.sh

echo "== yamllint"
yamllint -d '{extends: default, rules: {line-length: {max: 100}, document-start: disable, comments: {min-spaces-from-content: 2}}}' deploy/kubernetes/

echo "== kubernetes structure"
python3 - deploy/kubernetes/*.yaml <<'PY'
import sys, yaml
docs = [d for path in sys.argv[1:] for d in yaml.safe_load_all(open(path)) if d]
errors = []
def err(msg): errors.append(msg)
by_kind = {}
for d in docs:
    for key in ("apiVersion", "kind", "metadata"):
        if key not in d: err(f"a document lacks {key}")
    by_kind.setdefault(d["kind"], []).append(d)
claims = {d["metadata"]["name"] for d in by_kind.get("PersistentVolumeClaim", [])}
secrets = {d["metadata"]["name"] for d in by_kind.get("Secret", [])}
deployments = by_kind.get("Deployment", [])
for dep in deployments:
    name = dep["metadata"]["name"]
    spec = dep["spec"]
    selector = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        err(f"{name}: selector {selector} does not match template labels {labels}")
    pod = spec["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for v in volumes.values():
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in claims:
            err(f"{name}: volume {v['name']} uses an undeclared claim")
        if "secret" in v and v["secret"]["secretName"] not in secrets:
            err(f"{name}: volume {v['name']} uses an undeclared secret")
    for c in pod["containers"]:
        if not c.get("image"): err(f"{name}/{c['name']}: no image")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes: err(f"{name}/{c['name']}: mount {m['name']} has no volume")
        ports = {p["name"] for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            p = c.get(probe, {}).get("httpGet")
            if p and p["port"] not in ports: err(f"{name}: {probe} port {p['port']} is not declared")
        args = " ".join(c.get("args", []))
        if "coordinator" in name and "--state_dir=" not in args: err(f"{name}: no --state_dir")
        if "worker" in name:
            if c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu") != 1:
                err(f"{name}: a worker must request one GPU")
            if not c.get("image", "").startswith("twist-cuda:"):
                err(f"{name}: a GPU worker needs the CUDA image (Containerfile.cuda)")
            if "--coordinator=" not in args: err(f"{name}: no --coordinator")
for svc in by_kind.get("Service", []):
    sel = svc["spec"]["selector"]
    if not any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())
               for d in deployments):
        err(f"service {svc['metadata']['name']} selects no deployment")
    for p in svc["spec"]["ports"]:
        targets = {cp["name"] for d in deployments for c in d["spec"]["template"]["spec"]["containers"]
                   for cp in c.get("ports", [])}
        if p["targetPort"] not in targets: err(f"service port {p['name']} targets {p['targetPort']}, undeclared")
if errors:
    print("\n".join(errors)); sys.exit(1)
print(f"{len(docs)} documents: {sorted(by_kind)}")
PY

echo "== container definitions"
python3 - deploy/container/Containerfile* <<'PY'
import os, re, shlex, sys
known = {"FROM", "ARG", "ENV", "RUN", "COPY", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "EXPOSE",
         "LABEL", "VOLUME"}
ignored = set(open(".gitignore").read().split())
errors = []
for path in sys.argv[1:]:
    text = re.sub(r"\\\n", " ", open(path).read())
    stages, args = set(), set()
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word not in known:
            errors.append(f"{path}:{n}: unknown instruction {word}")
            continue
        if word == "ARG":
            args.add(rest.split("=")[0].strip())
        if word == "FROM":
            for var in re.findall(r"\$\{(\w+)\}", rest):
                if var not in args:
                    errors.append(f"{path}:{n}: FROM uses undeclared ARG {var}")
            m = re.search(r"\bAS (\w+)", rest)
            if m:
                stages.add(m.group(1))
        if word == "COPY":
            parts = shlex.split(rest)
            source_stage = [p.split("=", 1)[1] for p in parts if p.startswith("--from=")]
            if source_stage and source_stage[0] not in stages:
                errors.append(f"{path}:{n}: COPY from unknown stage {source_stage[0]}")
            if not source_stage:
                for src in [p for p in parts if not p.startswith("--")][:-1]:
                    if src != "." and not os.path.exists(src):
                        errors.append(f"{path}:{n}: COPY source {src} does not exist")
        if word == "RUN":
            for script in re.findall(r"bash (\S+\.sh)", rest):
                if not os.path.exists(script):
                    errors.append(f"{path}:{n}: RUN calls {script}, which does not exist")
            for archive in re.findall(r"(deploy/\S+\.tar\.\w+)", rest):
                if "/" + archive not in ignored:
                    errors.append(f"{path}:{n}: {archive} is a build product: list it in .gitignore")
    if not stages and "Containerfile" in path and "AS build" not in text:
        errors.append(f"{path}: no build stage")
if errors:
    print("\n".join(errors)); sys.exit(1)
print(f"{len(sys.argv) - 1} container definitions checked")
PY
shellcheck deploy/container/*.sh

echo "== systemd units"
if command -v systemd-analyze >/dev/null && systemd-analyze --version >/dev/null 2>&1; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  for unit in deploy/systemd/*.service; do
    name=$(basename "$unit")
    sed 's|/usr/local/bin/|/bin/|; s|ExecStart=/bin/twist-[a-z]*|ExecStart=/bin/true|' "$unit" >"$tmp/$name"
  done
  cp "$tmp/twist-worker@.service" "$tmp/twist-worker@0.service"
  SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp/twist-coordinator.service" \
    "$tmp/twist-worker@0.service" >"$tmp/verify.log" 2>&1 || true
  # Only complaints about the units themselves count, not about this host.
  grep -iE "twist-(coordinator|worker)" "$tmp/verify.log" | grep -vE "Cannot add dependency|Failed to (look up|resolve) user" \
    >"$tmp/problems.log" || true
  cat "$tmp/problems.log"
  [ ! -s "$tmp/problems.log" ] || exit 1
  echo "systemd-analyze verify: clean"
fi
python3 - deploy/systemd/*.service <<'PY'
import sys, configparser
known = {
  "Unit": {"Description", "Documentation", "After", "Wants", "Requires"},
  "Service": {"Type", "User", "Group", "Environment", "EnvironmentFile", "ExecStart", "StateDirectory",
              "StateDirectoryMode", "Restart", "RestartSec", "KillSignal", "TimeoutStopSec",
              "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"},
  "Install": {"WantedBy"},
}
errors = []
for path in sys.argv[1:]:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read(path)
    for section in ("Unit", "Service", "Install"):
        if section not in cp: errors.append(f"{path}: no [{section}]"); continue
        for key in cp[section]:
            if key not in known[section]: errors.append(f"{path}: unknown key {section}.{key}")
    exec_start = cp["Service"].get("ExecStart", "")
    if not exec_start.startswith("/usr/local/bin/twist-"): errors.append(f"{path}: ExecStart {exec_start!r}")
    if cp["Service"].get("KillSignal") != "SIGTERM": errors.append(f"{path}: stops without SIGTERM")
if errors:
    print("\n".join(errors)); sys.exit(1)
print(f"{len(sys.argv) - 1} units checked")
PY
echo "== bench/gpu.sh without a GPU"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  rc=0
  message=$(bash bench/gpu.sh "$(mktemp -d)" 2>&1) || rc=$?
  if [ "$rc" != 2 ] || [[ $message != *"no NVIDIA GPU here"* ]]; then
    echo "bench/gpu.sh on a machine without a GPU: exit $rc, said: $message"; exit 1
  fi
  echo "stops at once (exit 2) saying there is no GPU"
fi

echo "deploy lint: all clean"
