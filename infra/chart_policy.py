"""Checks one rendered manifest (the output of `helm template`) for infra/chart-check.sh.

    python infra/chart_policy.py RENDERED.yaml --kube-version 1.33.0 --crd-modules DIR

1. YAML: parsed strictly (a duplicate key is an error, as it is for Kubernetes clients).
2. Built-in kinds: validated against the Kubernetes OpenAPI schemas of --kube-version shipped by
   the kubernetes-validate package, in strict mode (unknown fields are errors).
3. Custom resources (Strimzi, CloudNativePG, Prometheus Operator): validated against their CRD
   schemas by infra/crd-validate/validate.mjs (node) with the validators installed in DIR; a
   custom resource without a known schema is an error, never a skip.
4. Policy, for every container and init container of every workload (Deployment, StatefulSet,
   DaemonSet, Job, CronJob, Pod):
   - probes: liveness and readiness (and startup for the six lienthong services); Jobs, which
     run to completion, need none;
   - resources: requests.cpu, requests.memory and limits.memory (no CPU limit is required:
     docs/adr/0058-chart-check.md);
   - securityContext: runAsNonRoot (container or pod), readOnlyRootFilesystem,
     allowPrivilegeEscalation false;
   - image: pinned by a tag or a digest, and never the tag `latest`.

Exit status 0 when everything passes, 1 otherwise; every finding is printed on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

SERVICES = {"gateway", "directory", "docstore", "sigverify", "routing", "statistics"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
VALIDATOR = Path(__file__).resolve().parent / "crd-validate" / "validate.mjs"
# repository[:tag][@sha256:digest]; the tag is what follows the last ':' after the last '/'.
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


class StrictLoader(yaml.SafeLoader):
    """Rejects duplicate keys, which Kubernetes clients reject too but PyYAML would hide."""


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind in WORKLOADS:
        return (spec.get("template") or {}).get("spec")
    return None


def image_findings(image: str) -> list[str]:
    if not image:
        return ["has no image"]
    digest = DIGEST.search(image)
    rest = image[: digest.start()] if digest else image
    last = rest.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if tag == "latest":
        return [f"image {image!r} uses the tag :latest"]
    if not tag and not digest:
        return [f"image {image!r} has neither a tag nor a digest (it would pull :latest)"]
    return []


def policy(doc: dict[str, Any]) -> list[str]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    findings: list[str] = []
    kind = doc["kind"]
    if kind == "Pod":
        labels = (doc.get("metadata") or {}).get("labels") or {}
    else:
        labels = (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    component = labels.get("app.kubernetes.io/component", "")
    pod_sc = spec.get("securityContext") or {}
    runs_to_completion = kind in {"Job", "CronJob"}
    containers = [("container", c) for c in spec.get("containers") or []]
    containers += [("init container", c) for c in spec.get("initContainers") or []]
    if not containers:
        findings.append("has no containers")
    for what, c in containers:
        where = f"{what} {c.get('name')!r}"
        if not runs_to_completion and what == "container":
            needed = ["livenessProbe", "readinessProbe"]
            if component in SERVICES:
                needed.append("startupProbe")
            for probe in needed:
                if not c.get(probe):
                    findings.append(f"{where} has no {probe}")
        res = c.get("resources") or {}
        for section, key in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
            if not (res.get(section) or {}).get(key):
                findings.append(f"{where} has no resources.{section}.{key}")
        sc = c.get("securityContext") or {}
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            findings.append(f"{where} does not set runAsNonRoot: true")
        if sc.get("readOnlyRootFilesystem") is not True:
            findings.append(f"{where} does not set readOnlyRootFilesystem: true")
        if sc.get("allowPrivilegeEscalation") is not False:
            findings.append(f"{where} does not set allowPrivilegeEscalation: false")
        findings += [f"{where} {f}" for f in image_findings(c.get("image", ""))]
    return findings


def validate_crs(crs: list[dict[str, Any]], modules: Path) -> list[tuple[str, list[str]]]:
    if not crs:
        return []
    out = subprocess.run(
        ["node", str(VALIDATOR), str(modules)],
        input=json.dumps(crs),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"  crd-validate failed to run: {out.stderr.strip()}")
    return [(r["name"], r["errors"]) for r in json.loads(out.stdout)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rendered", type=Path)
    parser.add_argument("--kube-version", required=True)
    parser.add_argument("--crd-modules", type=Path, required=True)
    args = parser.parse_args()

    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    try:
        docs = [d for d in yaml.load_all(args.rendered.read_text(), Loader=StrictLoader) if d]
    except yaml.YAMLError as e:
        print(f"  invalid YAML: {e}", file=sys.stderr)
        return 1

    bad = 0
    valid = 0
    crs: list[dict[str, Any]] = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, args.kube_version, strict=True)
            valid += 1
        except SchemaNotFoundError:
            crs.append(doc)
        except ValidationError as e:
            bad += 1
            where = "/".join(str(p) for p in e.path)
            print(f"  invalid {name_of(doc)} at {where or '.'}: {e.message}", file=sys.stderr)
    print(f"  validate: {valid} objects valid against Kubernetes {args.kube_version} (strict)")

    cr_results = validate_crs(crs, args.crd_modules)
    for name, errors in cr_results:
        for error in errors:
            bad += 1
            print(f"  invalid {name}: {error}", file=sys.stderr)
    if cr_results:
        kinds = sorted({f"{d['apiVersion']} {d['kind']}" for d in crs})
        ok = sum(1 for _, errors in cr_results if not errors)
        print(
            f"  crd: {ok} of {len(cr_results)} custom resources valid against their CRD schemas"
            f" ({', '.join(kinds)})"
        )

    workloads = [d for d in docs if d.get("kind") in WORKLOADS]
    findings = 0
    for doc in workloads:
        for finding in policy(doc):
            findings += 1
            print(f"  policy: {name_of(doc)}: {finding}", file=sys.stderr)
    specs = [pod_spec(d) or {} for d in workloads]
    containers = sum(len(s.get("containers") or []) + len(s.get("initContainers") or []) for s in specs)
    print(f"  policy: {len(workloads)} workloads, {containers} containers, {findings} findings")
    return 1 if bad or findings else 0


if __name__ == "__main__":
    sys.exit(main())
