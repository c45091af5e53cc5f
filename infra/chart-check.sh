#!/usr/bin/env bash
# Checks charts/lienthong: helm lint --strict, helm template of every example, validation of
# every rendered object against a fixed Kubernetes version, and drift against the rendered
# examples checked in under charts/lienthong/examples/<name>/rendered.yaml.
#
#   infra/chart-check.sh            check (exit non-zero on any failure)
#   infra/chart-check.sh --update   re-render the examples after an intended chart change
#
# Examples: "default" (values.yaml alone) plus one per charts/lienthong/values-<name>.yaml.
# Needs only go, python3 and the repository's .venv; helm and kubernetes-validate are
# installed on first use.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/lienthong"
HELM_VERSION="v3.22.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
KUBE_VERSION="1.33.0"          # the Kubernetes version everything is rendered and validated for
RELEASE="lienthong"
NAMESPACE="lienthong"
BIN="$ROOT/.cache/bin"
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
say "helm $("$HELM" version --template '{{.Version}}'), kubernetes-validate $KUBERNETES_VALIDATE_VERSION, Kubernetes $KUBE_VERSION"

# --- Dockerfiles: the six are one file with the service name swapped --------------------------
reference="$ROOT/services/gateway/Dockerfile"
[[ -f "$reference" ]] || fail "services/gateway/Dockerfile is missing"
for dockerfile in "$ROOT"/services/*/Dockerfile; do
  svc="$(basename "$(dirname "$dockerfile")")"
  if ! diff -u <(sed "s/gateway/$svc/g" "$reference") "$dockerfile" >/dev/null; then
    diff -u <(sed "s/gateway/$svc/g" "$reference") "$dockerfile" >&2 || true
    fail "services/$svc/Dockerfile drifted from services/gateway/Dockerfile (they differ only by service name)"
  fi
done
say "Dockerfiles consistent"

# --- examples ---------------------------------------------------------------------------------
names=(default)
declare -A values_of=([default]="")
for f in "$CHART"/values-*.yaml; do
  [[ -e "$f" ]] || continue
  n="$(basename "$f" .yaml)"; n="${n#values-}"
  names+=("$n"); values_of[$n]="$f"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0

for n in "${names[@]}"; do
  args=()
  [[ -n "${values_of[$n]}" ]] && args=(-f "${values_of[$n]}")
  say "example $n${values_of[$n]:+ (${values_of[$n]#$ROOT/})}"

  if ! "$HELM" lint --strict --quiet --kube-version "$KUBE_VERSION" "$CHART" "${args[@]}" >"$work/lint.txt" 2>&1; then
    cat "$work/lint.txt" >&2; echo "  lint: FAILED" >&2; failures=$((failures + 1)); continue
  fi
  echo "  lint: ok"

  out="$work/$n.yaml"
  if ! "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" \
      "${args[@]}" >"$out" 2>"$work/template.txt"; then
    cat "$work/template.txt" >&2; echo "  template: FAILED" >&2; failures=$((failures + 1)); continue
  fi
  echo "  template: ok ($(grep -c '^kind:' "$out") objects)"

  if ! "$VENV/bin/python" - "$out" "$KUBE_VERSION" <<'PY'
import sys
import yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

class StrictLoader(yaml.SafeLoader):
    """Rejects duplicate keys, which Kubernetes clients reject too but PyYAML would hide."""

def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)

StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)

path, version = sys.argv[1], sys.argv[2]
with open(path) as fh:
    try:
        docs = [d for d in yaml.load_all(fh, Loader=StrictLoader) if d]
    except yaml.YAMLError as e:
        print(f"  invalid YAML: {e}", file=sys.stderr)
        sys.exit(1)
ok, skipped, bad = 0, {}, 0
for doc in docs:
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        ok += 1
    except SchemaNotFoundError:
        key = f"{doc.get('apiVersion')} {doc.get('kind')}"
        skipped[key] = skipped.get(key, 0) + 1
    except ValidationError as e:
        bad += 1
        where = "/".join(str(p) for p in e.path)
        print(f"  invalid {name} at {where or '.'}: {e.message}", file=sys.stderr)
print(f"  validate: {ok} valid against Kubernetes {version} (strict), {bad} invalid")
for key, count in sorted(skipped.items()):
    print(f"  validate: skipped {count} x {key}: no schema (custom resource; its operator validates it)")
sys.exit(1 if bad else 0)
PY
  then
    failures=$((failures + 1)); continue
  fi

  golden="$CHART/examples/$n/rendered.yaml"
  if [[ $update -eq 1 ]]; then
    mkdir -p "$(dirname "$golden")"
    cp "$out" "$golden"
    echo "  rendered: updated ${golden#$ROOT/}"
  elif [[ ! -f "$golden" ]]; then
    echo "  rendered: ${golden#$ROOT/} is missing; run infra/chart-check.sh --update" >&2
    failures=$((failures + 1))
  elif ! diff -u "$golden" "$out" >"$work/diff.txt"; then
    head -n 80 "$work/diff.txt" >&2
    echo "  rendered: ${golden#$ROOT/} no longer matches the chart; review the diff and re-render with infra/chart-check.sh --update" >&2
    failures=$((failures + 1))
  else
    echo "  rendered: matches ${golden#$ROOT/}"
  fi
done

# Examples whose values file is gone.
for d in "$CHART"/examples/*/; do
  [[ -d "$d" ]] || continue
  n="$(basename "$d")"
  if [[ -z "${values_of[$n]+x}" ]]; then
    if [[ $update -eq 1 ]]; then rm -rf "$d"; echo "removed stale example $n"
    else echo "stale example charts/lienthong/examples/$n (no values-$n.yaml); run infra/chart-check.sh --update" >&2; failures=$((failures + 1)); fi
  fi
done

if [[ $failures -gt 0 ]]; then
  fail "$failures check(s) failed"
fi
say "chart-check: all ${#names[@]} examples passed"
