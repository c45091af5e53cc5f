#!/usr/bin/env bash
# Checks charts/lienthong (make chart-check, part of make test):
#   - the six Dockerfiles are one file with the service name swapped, their base pinned by digest;
#   - charts/lienthong/files/ (rules, dashboard packaged by the chart) equal dashboards/;
#   - for every example charts/lienthong/examples/<name>.yaml: helm lint --strict, helm template,
#     infra/chart_policy.py (Kubernetes schemas in strict mode, the Strimzi / CloudNativePG /
#     Prometheus Operator CRD schemas, and the policy: probes, requests and limits, runAsNonRoot,
#     readOnlyRootFilesystem, no :latest), and the render compared with the one checked in under
#     charts/lienthong/examples/rendered/<name>.yaml;
#   - the negative cases under tests/chart/: every bad values file (schema break, a dropped probe,
#     :latest, ...) and every bad manifest must make the check fail, with the expected message.
#
#   infra/chart-check.sh            check (exit non-zero on any failure)
#   infra/chart-check.sh --update   re-render the examples after an intended chart change
#
# Needs go, node/npm, python3 and the repository's .venv; helm (go install), kubernetes-validate
# (pip) and the CRD validators (npm ci, versions locked in infra/crd-validate/) are installed
# into .cache/ and .venv on first use.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/lienthong"
EXAMPLES="$CHART/examples"
TESTS="$ROOT/tests/chart"
HELM_VERSION="v3.22.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
KUBE_VERSION="1.33.0"          # the Kubernetes version everything is rendered and validated for
RELEASE="lienthong"
NAMESPACE="lienthong"
BIN="$ROOT/.cache/bin"
CRD_DIR="$ROOT/.cache/crd-validate"
VENV="$ROOT/.venv"

update=0
case "${1:-}" in
  --update) update=1 ;;
  "") ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

say() { printf '==> %s\n' "$*"; }
fail() { printf 'chart-check: FAIL: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------------------
HELM="$BIN/helm"
if [[ -x "$HELM" ]] && "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
  :
elif command -v helm >/dev/null 2>&1 && helm version --template '{{.Version}}' | grep -q "^${HELM_VERSION%.*}"; then
  HELM="$(command -v helm)"
else
  command -v go >/dev/null || fail "helm is missing and so is go to build it"
  say "installing helm $HELM_VERSION into $BIN (go install, a few minutes the first time)"
  mkdir -p "$BIN"
  GOBIN="$BIN" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
  say "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

command -v node >/dev/null && command -v npm >/dev/null || fail "node and npm are needed for the CRD schema validators"
lock="$ROOT/infra/crd-validate/package-lock.json"
if ! cmp -s "$lock" "$CRD_DIR/package-lock.json" || [[ ! -d "$CRD_DIR/node_modules/@kubernetes-models" ]]; then
  say "installing the CRD validators into ${CRD_DIR#$ROOT/} (npm ci, infra/crd-validate/package-lock.json)"
  rm -rf "$CRD_DIR"; mkdir -p "$CRD_DIR"
  cp "$ROOT/infra/crd-validate/package.json" "$lock" "$CRD_DIR/"
  (cd "$CRD_DIR" && npm ci --silent --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null) \
    || { rm -rf "$CRD_DIR"; fail "npm ci of the CRD validators failed"; }
fi
say "helm $("$HELM" version --template '{{.Version}}'), kubernetes-validate $KUBERNETES_VALIDATE_VERSION, Kubernetes $KUBE_VERSION, node $(node --version)"

# --- Dockerfiles: the six are one file with the service name swapped --------------------------
reference="$ROOT/services/gateway/Dockerfile"
[[ -f "$reference" ]] || fail "services/gateway/Dockerfile is missing"
grep -Eq '^ARG PYTHON_IMAGE=[^ ]+@sha256:[0-9a-f]{64}$' "$reference" \
  || fail "services/gateway/Dockerfile: the base image (ARG PYTHON_IMAGE) is not pinned by digest"
if grep -E '^FROM ' "$reference" | grep -vq '^FROM \${PYTHON_IMAGE}'; then
  fail "services/gateway/Dockerfile: every FROM must use the pinned \${PYTHON_IMAGE}"
fi
for dockerfile in "$ROOT"/services/*/Dockerfile; do
  svc="$(basename "$(dirname "$dockerfile")")"
  if ! diff -u <(sed "s/gateway/$svc/g" "$reference") "$dockerfile" >/dev/null; then
    diff -u <(sed "s/gateway/$svc/g" "$reference") "$dockerfile" >&2 || true
    fail "services/$svc/Dockerfile drifted from services/gateway/Dockerfile (they differ only by service name)"
  fi
done
say "Dockerfiles consistent, base pinned by digest"

# --- skaffold.yaml: one artifact per service, every values file it names exists ---------------
"$VENV/bin/python" - "$ROOT" <<'PY' || fail "skaffold.yaml is inconsistent with the repository"
import pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
cfg = yaml.safe_load((root / "skaffold.yaml").read_text())
services = sorted(p.parent.name for p in root.glob("services/*/Dockerfile"))
artifacts = sorted(a["image"].removeprefix("lienthong-") for a in cfg["build"]["artifacts"])
problems = [] if artifacts == services else [f"artifacts {artifacts} != services with a Dockerfile {services}"]
for a in cfg["build"]["artifacts"]:
    if not (root / a["docker"]["dockerfile"]).is_file():
        problems.append(f"{a['image']}: no {a['docker']['dockerfile']}")
for where in [cfg] + cfg.get("profiles", []):
    for release in where.get("deploy", {}).get("helm", {}).get("releases", []):
        for f in release.get("valuesFiles", []):
            if not (root / f).is_file():
                problems.append(f"{where.get('name', 'top level')}: values file {f} does not exist")
for p in problems:
    print(f"  skaffold.yaml: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
say "skaffold.yaml consistent (one artifact per service, values files exist)"

# --- packaged copies of dashboards/ -----------------------------------------------------------
for f in lienthong-rules.yaml lienthong.json; do
  if [[ $update -eq 1 ]]; then
    cp "$ROOT/dashboards/$f" "$CHART/files/$f"
  elif ! cmp -s "$ROOT/dashboards/$f" "$CHART/files/$f"; then
    fail "charts/lienthong/files/$f differs from dashboards/$f; run infra/chart-check.sh --update"
  fi
done
say "charts/lienthong/files match dashboards/"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0

# render NAME VALUES... : lint, template and check; the manifest is left in $work/NAME.yaml and
# every message in $work/NAME.log (also shown). Returns non-zero on any failure.
render() {
  local n="$1"; shift
  local args=()
  for v in "$@"; do args+=(-f "$v"); done
  local out="$work/$n.yaml" log="$work/$n.log"
  : >"$log"
  if ! "$HELM" lint --strict --quiet --kube-version "$KUBE_VERSION" "$CHART" "${args[@]}" >>"$log" 2>&1; then
    echo "  lint: FAILED" >>"$log"; return 1
  fi
  echo "  lint: ok" >>"$log"
  if ! "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" \
      "${args[@]}" >"$out" 2>>"$log"; then
    echo "  template: FAILED" >>"$log"; return 1
  fi
  echo "  template: ok ($(grep -c '^kind:' "$out") objects)" >>"$log"
  local status=0
  "$VENV/bin/python" "$ROOT/infra/chart_policy.py" "$out" --kube-version "$KUBE_VERSION" \
    --crd-modules "$CRD_DIR/node_modules" >>"$log" 2>&1 || status=$?
  # The gRPC CA and certificates the chart generates (genCA/genSignedCert, grpcTls.source
  # generated) are new keys on every render: compare renders with them masked (ADR 0067).
  sed -E -i 's/^(  (ca|tls)\.(crt|key): )[A-Za-z0-9+\/=]{200,}$/\1(generated; masked by chart-check)/' "$out"
  return $status
}

# --- examples ---------------------------------------------------------------------------------
names=()
for f in "$EXAMPLES"/*.yaml; do
  [[ -e "$f" ]] && names+=("$(basename "$f" .yaml)")
done
[[ ${#names[@]} -gt 0 ]] || fail "no examples in charts/lienthong/examples/"

for n in "${names[@]}"; do
  say "example $n (charts/lienthong/examples/$n.yaml)"
  if ! render "$n" "$EXAMPLES/$n.yaml"; then
    cat "$work/$n.log" >&2; failures=$((failures + 1)); continue
  fi
  cat "$work/$n.log"
  golden="$EXAMPLES/rendered/$n.yaml"
  if [[ $update -eq 1 ]]; then
    mkdir -p "$(dirname "$golden")"
    cp "$work/$n.yaml" "$golden"
    echo "  rendered: updated ${golden#$ROOT/}"
  elif [[ ! -f "$golden" ]]; then
    echo "  rendered: ${golden#$ROOT/} is missing; run infra/chart-check.sh --update" >&2
    failures=$((failures + 1))
  elif ! diff -u "$golden" "$work/$n.yaml" >"$work/diff.txt"; then
    head -n 80 "$work/diff.txt" >&2
    echo "  rendered: ${golden#$ROOT/} no longer matches the chart; review the diff and re-render with infra/chart-check.sh --update" >&2
    failures=$((failures + 1))
  else
    echo "  rendered: matches ${golden#$ROOT/}"
  fi
done

# Renders whose example is gone.
for g in "$EXAMPLES"/rendered/*.yaml; do
  [[ -e "$g" ]] || continue
  n="$(basename "$g" .yaml)"
  if [[ ! -f "$EXAMPLES/$n.yaml" ]]; then
    if [[ $update -eq 1 ]]; then rm -f "$g"; echo "removed stale render $n"
    else echo "stale render charts/lienthong/examples/rendered/$n.yaml (no examples/$n.yaml); run infra/chart-check.sh --update" >&2; failures=$((failures + 1)); fi
  fi
done

# --- negative cases: each must fail, for the reason its "# expect:" line names -----------------
# tests/chart/bad-values/<case>.yaml is layered over the example its "# base:" line names
# (default if none); tests/chart/bad-manifests/<case>.yaml goes straight to chart_policy.py.
expect_of() { sed -n 's/^# expect: //p' "$1" | head -n 1; }
negatives=0
for f in "$TESTS"/bad-values/*.yaml "$TESTS"/bad-manifests/*.yaml; do
  [[ -e "$f" ]] || continue
  rel="${f#$ROOT/}"
  expect="$(expect_of "$f")"
  [[ -n "$expect" ]] || { echo "  $rel has no '# expect: <regex>' line" >&2; failures=$((failures + 1)); continue; }
  n="neg-$(basename "$f" .yaml)"
  if [[ "$f" == */bad-values/* ]]; then
    base="$(sed -n 's/^# base: //p' "$f" | head -n 1)"
    if render "$n" "$EXAMPLES/${base:-default}.yaml" "$f"; then status=0; else status=1; fi
  else
    if "$VENV/bin/python" "$ROOT/infra/chart_policy.py" "$f" --kube-version "$KUBE_VERSION" \
        --crd-modules "$CRD_DIR/node_modules" >"$work/$n.log" 2>&1; then status=0; else status=1; fi
  fi
  if [[ $status -eq 0 ]]; then
    echo "  negative $rel: PASSED the check, but must fail ($expect)" >&2
    failures=$((failures + 1))
  elif ! grep -Eq -- "$expect" "$work/$n.log"; then
    cat "$work/$n.log" >&2
    echo "  negative $rel: failed, but not with /$expect/" >&2
    failures=$((failures + 1))
  else
    negatives=$((negatives + 1))
    echo "  negative $rel: fails as expected: $(grep -Em1 -- "$expect" "$work/$n.log" | sed 's/^ *//' | cut -c1-150)"
  fi
done
[[ $negatives -gt 0 ]] || { echo "no negative cases under tests/chart/" >&2; failures=$((failures + 1)); }

if [[ $failures -gt 0 ]]; then
  fail "$failures check(s) failed"
fi
say "chart-check: ${#names[@]} examples and $negatives negative cases passed"
