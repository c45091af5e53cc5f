#!/usr/bin/env bash
# make kube-up: from a fresh clone to the chart running on a single-node Kubernetes on this
# machine, idempotent. Installs what it needs (install.sh), builds the binaries (build-bin.sh)
# and images (images.sh), starts the cluster (cluster.sh), then in namespace $NAMESPACE:
# Kafka and PostgreSQL (manifests/deps.yaml), the Secrets and ConfigMap the chart expects,
# `helm upgrade --install --wait` with charts/lienthong/examples/kube-local.yaml, and the demo
# seeded into the cluster's directory. Prints GATEWAY_URL= and KUBECONFIG= (also in .data/kube/env).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
t0=$SECONDS
cd "$KUBE_ROOT"
VENV_BIN="$KUBE_ROOT/.venv/bin"
[[ -x "$VENV_BIN/lienthong" ]] || die "no .venv with the lienthong CLI; run make setup (make kube-up does)"
mkdir -p "$KUBE_DATA" "$KUBE_LOGS"

bash infra/kube/install.sh
bash infra/kube/build-bin.sh all ${KUBE_BUILD_EXTRA:-}
bash infra/kube/images.sh build
bash infra/kube/cluster.sh start
HELM="$KUBE_BIN/helm"

# --- in-cluster dependencies -----------------------------------------------------------------
say "namespace $NAMESPACE: Kafka, PostgreSQL, volumes"
for d in kafka:10003 postgresql:10002 docstore:10001; do
  dir="$KUBE_STATE/volumes/${d%%:*}"; mkdir -p "$dir"; chown "${d##*:}:${d##*:}" "$dir"; chmod 0700 "$dir"
done
kctl get namespace "$NAMESPACE" >/dev/null 2>&1 || kctl create namespace "$NAMESPACE" >/dev/null
secret_value() {  # secret_value NAME KEY: a Secret's value, or nothing
  kctl -n "$NAMESPACE" get secret "$1" -o "jsonpath={.data.$2}" 2>/dev/null | base64 -d 2>/dev/null || true
}
PG_PASSWORD="$(secret_value kube-local-postgresql password)"
[[ -n "$PG_PASSWORD" ]] || PG_PASSWORD="$(openssl rand -hex 16)"
# Kafka's SCRAM passwords (docs/adr/0070): the admin's and each service's, kept across runs; the
# broker reads the admin's, the access Job all of them, each service its own Secret.
kafka_users=()
for user in admin directory docstore sigverify routing statistics; do
  pw="$(secret_value kube-local-kafka-users "$user\\.password")"; [[ -n "$pw" ]] || pw="$(openssl rand -hex 24)"
  kafka_users+=(--from-literal "$user.password=$pw")
  [[ $user == admin ]] || kctl -n "$NAMESPACE" create secret generic "$RELEASE-$user-kafka" --from-literal "password=$pw" \
    --dry-run=client -o yaml | kctl apply -f - >/dev/null
done
kctl -n "$NAMESPACE" create secret generic kube-local-kafka-users "${kafka_users[@]}" \
  --dry-run=client -o yaml | kctl apply -f - >/dev/null
kctl -n "$NAMESPACE" delete job kube-local-kafka-access --ignore-not-found >/dev/null
export NAMESPACE IMAGE_TAG KUBE_STATE PG_PASSWORD RELEASE GATEWAY_NODEPORT BRIDGE_IP
envsubst '${NAMESPACE} ${IMAGE_TAG} ${KUBE_STATE} ${PG_PASSWORD} ${RELEASE} ${GATEWAY_NODEPORT} ${BRIDGE_IP}' \
  <infra/kube/manifests/deps.yaml | kctl apply -f - >/dev/null
for svc in directory docstore sigverify routing statistics; do
  kctl -n "$NAMESPACE" create secret generic "$RELEASE-$svc-db" \
    --from-literal "DATABASE_URL=postgresql+psycopg://lienthong:$PG_PASSWORD@postgresql:5432/$svc" \
    --dry-run=client -o yaml | kctl apply -f - >/dev/null
done
jwt="$(secret_value "$RELEASE-gateway-jwt" jwt-secret)"; [[ -n "$jwt" ]] || jwt="$(openssl rand -hex 32)"
kctl -n "$NAMESPACE" create secret generic "$RELEASE-gateway-jwt" --from-literal "jwt-secret=$jwt" \
  --dry-run=client -o yaml | kctl apply -f - >/dev/null
mk="$(secret_value kube-local-directory-master-keys master-keys)"
[[ -n "$mk" ]] || mk="kube-local-1:$(openssl rand -base64 32)"
kctl -n "$NAMESPACE" create secret generic kube-local-directory-master-keys --from-literal "master-keys=$mk" \
  --dry-run=client -o yaml | kctl apply -f - >/dev/null
# The dev PKI the demo signs with: its root is what sigverify trusts.
LIENTHONG_DATA_DIR="$KUBE_DATA" "$VENV_BIN/python" -c \
  'import os, pathlib; from lienthong_common.pki import DevPki; DevPki.init(pathlib.Path(os.environ["LIENTHONG_DATA_DIR"]) / "pki")' \
  || die "could not create the dev PKI in $KUBE_DATA/pki"
kctl -n "$NAMESPACE" create configmap kube-local-trust-roots --from-file "trust-roots.pem=$KUBE_DATA/pki/root.pem" \
  --dry-run=client -o yaml | kctl apply -f - >/dev/null
say "waiting for Kafka and PostgreSQL"
kctl -n "$NAMESPACE" rollout status statefulset/postgresql --timeout 300s >&2
kctl -n "$NAMESPACE" rollout status statefulset/kafka --timeout 300s >&2
say "waiting for the Kafka users, topics and ACLs (job/kube-local-kafka-access)"
kctl -n "$NAMESPACE" wait --for=condition=complete job/kube-local-kafka-access --timeout 300s >&2 \
  || { kctl -n "$NAMESPACE" logs job/kube-local-kafka-access --tail 30 >&2; die "the Kafka access Job failed"; }

# --- the chart -------------------------------------------------------------------------------
t_helm=$SECONDS
say "helm upgrade --install $RELEASE charts/lienthong -f charts/lienthong/examples/kube-local.yaml --wait"
"$HELM" --kubeconfig "$KUBECONFIG" upgrade --install "$RELEASE" charts/lienthong -n "$NAMESPACE" \
  -f charts/lienthong/examples/kube-local.yaml ${KUBE_HELM_ARGS:-} --wait --timeout 10m >&2 \
  || { kctl -n "$NAMESPACE" get pods -o wide >&2; die "helm install failed"; }
say "helm install --wait took $((SECONDS - t_helm)) s"

# --- the administrators' gRPC identity (the chart's generated Secret), for `lienthong demo` ------
# The directory requires a client certificate from the chart's service CA (docs/adr/0067).
tls_dir="$KUBE_DATA/grpc-tls"
mkdir -p "$tls_dir" && chmod 700 "$tls_dir"
for pair in ca.crt:ca.pem tls.crt:admin.pem tls.key:admin-key.pem; do
  key="${pair%%:*}"
  (umask 077; kctl -n "$NAMESPACE" get secret "$RELEASE-admin-grpc-tls" -o "jsonpath={.data.${key//./\\.}}" \
    | base64 -d >"$tls_dir/${pair#*:}") || die "cannot read $key of Secret $RELEASE-admin-grpc-tls"
done

# --- the demo, seeded into the cluster's directory (through its ClusterIP, routed to the bridge) --
dir_ip="$(kctl -n "$NAMESPACE" get service "$RELEASE-directory" -o jsonpath='{.spec.clusterIP}')"
dir_port="$(kctl -n "$NAMESPACE" get service "$RELEASE-directory" -o jsonpath='{.spec.ports[?(@.name=="grpc")].port}')"
say "seeding the demo through directory $dir_ip:${dir_port:-50051}"
for attempt in 1 2 3 4 5; do
  if LIENTHONG_DATA_DIR="$KUBE_DATA" LIENTHONG_SERVICES__DIRECTORY="$dir_ip:${dir_port:-50051}" \
      "$VENV_BIN/lienthong" demo >&2; then break; fi
  [[ $attempt == 5 ]] && die "lienthong demo failed against the cluster"
  sleep 5
done

GATEWAY_URL="http://127.0.0.1:$GATEWAY_NODEPORT"
for _ in $(seq 1 60); do curl -fsS "$GATEWAY_URL/readyz" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "$GATEWAY_URL/readyz" >/dev/null || die "gateway not ready at $GATEWAY_URL"
cat >"$KUBE_DATA/env" <<ENV
GATEWAY_URL=$GATEWAY_URL
KUBECONFIG=$KUBECONFIG
LIENTHONG_URL=$GATEWAY_URL
LIENTHONG_DATA_DIR=$KUBE_DATA
ENV
say "kube-up: done in $((SECONDS - t0)) s"
echo "GATEWAY_URL=$GATEWAY_URL"
echo "KUBECONFIG=$KUBECONFIG"
