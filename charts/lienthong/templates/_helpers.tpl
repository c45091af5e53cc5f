{{/*
Names, labels and the one place where peer addresses, the call graph and shared environment
are derived. Components never repeat each other's addresses: they all come from here.
*/}}

{{- define "lienthong.fullname" -}}
{{- if contains "lienthong" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-lienthong" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The six services, in a fixed order. */}}
{{- define "lienthong.componentNames" -}}
gateway directory docstore sigverify routing statistics
{{- end -}}

{{/*
Who calls whom over gRPC (caller -> callees). NetworkPolicy egress uses it as is and
ingress uses it inverted. Change it here only.
*/}}
{{- define "lienthong.callGraph" -}}
gateway: [directory, docstore, sigverify, routing, statistics]
sigverify: [docstore, directory]
routing: [directory]
statistics: [directory]
directory: []
docstore: []
{{- end -}}

{{- define "lienthong.componentFullname" -}}
{{- printf "%s-%s" (include "lienthong.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lienthong.chartLabel" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lienthong.metaLabels" -}}
helm.sh/chart: {{ include "lienthong.chartLabel" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Labels for objects that belong to no one component (and for CRs whose operators copy labels to pods). */}}
{{- define "lienthong.commonLabels" -}}
{{ include "lienthong.metaLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Pod selector of one component: ctx = dict root name. */}}
{{- define "lienthong.selectorLabels" -}}
app.kubernetes.io/name: lienthong
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/*
Labels of every pod this chart itself runs. `part-of: lienthong` is what the default-deny
NetworkPolicy selects, so pods that Strimzi or CloudNativePG create are left to their operators.
*/}}
{{- define "lienthong.labels" -}}
{{ include "lienthong.metaLabels" .root }}
{{ include "lienthong.selectorLabels" . }}
app.kubernetes.io/part-of: lienthong
{{- end -}}

{{/* repository[:tag][@digest] from a dict with repository, tag and digest. A tag that already
     carries "@sha256:..." (as skaffold passes it) or is itself a digest is kept as it is. */}}
{{- define "lienthong.imageRef" -}}
{{- $ref := .repository -}}
{{- if hasPrefix "sha256:" (.tag | default "") -}}
{{- $ref = printf "%s@%s" $ref .tag -}}
{{- else if .tag -}}
{{- $ref = printf "%s:%s" $ref .tag -}}
{{- end -}}
{{- if and .digest (not (contains "@" $ref)) -}}
{{- $ref = printf "%s@%s" $ref .digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "lienthong.image" -}}
{{- $d := .root.Values.default.image -}}
{{- $c := (index .root.Values.components .name).image | default dict -}}
{{- $repo := $c.repository | default (printf "%s/lienthong-%s" $d.registry .name) -}}
{{- $tag := $c.tag | default $d.tag | default .root.Chart.AppVersion -}}
{{- include "lienthong.imageRef" (dict "repository" $repo "tag" $tag "digest" ($c.digest | default "")) -}}
{{- end -}}

{{/* Probe timings of one component: the defaults with the component's `probes` merged over. */}}
{{- define "lienthong.probes" -}}
{{- $c := index .root.Values.components .name -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.default.probes) ($c.probes | default dict)) -}}
{{- end -}}

{{- define "lienthong.resources" -}}
{{- $c := index .root.Values.components .name -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.default.resources) ($c.resources | default dict)) -}}
{{- end -}}

{{- define "lienthong.serviceAccountName" -}}
{{- include "lienthong.componentFullname" . -}}
{{- end -}}

{{/* host:port of one component's Service. */}}
{{- define "lienthong.address" -}}
{{- $c := index .root.Values.components .name -}}
{{- printf "%s:%v" (include "lienthong.componentFullname" .) $c.port -}}
{{- end -}}

{{- define "lienthong.kafka.clusterName" -}}
{{- .Values.kafka.strimzi.clusterName | default (printf "%s-kafka" (include "lienthong.fullname" .)) | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "lienthong.kafka.bootstrapServers" -}}
{{- if .Values.kafka.strimzi.enabled -}}
{{- printf "%s-kafka-bootstrap:9092" (include "lienthong.kafka.clusterName" .) -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required when kafka.strimzi.enabled is false" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* Whether a component has a Kafka principal (kafka.access names it) and auth is on. */}}
{{- define "lienthong.kafka.hasPrincipal" -}}
{{- if and .root.Values.kafka.auth.enabled (hasKey .root.Values.kafka.access .name) -}}true{{- end -}}
{{- end -}}

{{/* A component's Kafka user: its KafkaUser's name with Strimzi, else the component's name
     (lienthong_common.kafka_access names the principals so). */}}
{{- define "lienthong.kafka.username" -}}
{{- if .root.Values.kafka.strimzi.enabled -}}
{{- include "lienthong.componentFullname" . -}}
{{- else -}}
{{- .name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding a component's Kafka password (key `password`): the one Strimzi's user
     operator makes for the KafkaUser, else one made beforehand. */}}
{{- define "lienthong.kafka.secretName" -}}
{{- if .root.Values.kafka.strimzi.enabled -}}
{{- include "lienthong.componentFullname" . -}}
{{- else -}}
{{- printf "%s-kafka" (include "lienthong.componentFullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "lienthong.otel.collectorName" -}}
{{- printf "%s-otel-collector" (include "lienthong.fullname" .) -}}
{{- end -}}

{{- define "lienthong.jaegerName" -}}
{{- printf "%s-jaeger" (include "lienthong.fullname" .) -}}
{{- end -}}

{{- define "lienthong.otel.endpoint" -}}
{{- if .Values.opentelemetry.endpoint -}}
{{- .Values.opentelemetry.endpoint -}}
{{- else if .Values.opentelemetry.collector.enabled -}}
{{- printf "http://%s:4317" (include "lienthong.otel.collectorName" .) -}}
{{- end -}}
{{- end -}}

{{/* CloudNativePG cluster of one component: ctx = dict root name. */}}
{{- define "lienthong.pg.clusterName" -}}
{{- printf "%s-%s-pg" (include "lienthong.fullname" .root) .name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "lienthong.database.secretName" -}}
{{- $c := index .root.Values.components .name -}}
{{- $c.database.existingSecret | default (printf "%s-db" (include "lienthong.componentFullname" .)) -}}
{{- end -}}

{{- define "lienthong.jwt.secretName" -}}
{{- .Values.components.gateway.jwtSecret.existingSecret | default (printf "%s-gateway-jwt" (include "lienthong.fullname" .)) -}}
{{- end -}}

{{/* Whether a component is enabled: ctx = dict root name. Prints "true" or nothing. */}}
{{- define "lienthong.enabled" -}}
{{- $c := index .root.Values.components .name -}}
{{- if $c.enabled -}}true{{- end -}}
{{- end -}}

{{- define "lienthong.terminationGracePeriodSeconds" -}}
{{- $s := .Values.default.shutdown -}}
{{- add $s.preStopSeconds $s.drainSeconds $s.marginSeconds -}}
{{- end -}}

{{/*
Plain (non-secret) environment of one component, as YAML key: "value". The Deployment gets it
through its ConfigMap; the migration Job (a hook, which runs before that ConfigMap exists)
inlines the same map.
*/}}
{{- define "lienthong.configData" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $c := index $root.Values.components $name -}}
{{- $env := dict -}}
{{- $_ := set $env "LIENTHONG_ENVIRONMENT" $root.Values.default.environment -}}
{{- $_ := set $env "LIENTHONG_DATA_DIR" "/data" -}}
{{- $_ := set $env "LIENTHONG_DRAIN_SECONDS" (toString $root.Values.default.shutdown.drainSeconds) -}}
{{- $_ := set $env "LIENTHONG_KAFKA__BOOTSTRAP_SERVERS" (include "lienthong.kafka.bootstrapServers" $root) -}}
{{- /* The services' own topic creation makes 3 partitions with one replica: development only.
       With Strimzi the KafkaTopics own the topics; with an existing cluster they are created
       beforehand (docs/operations.md) unless kafka.ensureTopics says otherwise. */ -}}
{{- $_ := set $env "LIENTHONG_KAFKA__ENSURE_TOPICS" (toString (and $root.Values.kafka.ensureTopics (not $root.Values.kafka.strimzi.enabled))) -}}
{{- if include "lienthong.kafka.hasPrincipal" . -}}
{{- $_ := set $env "LIENTHONG_KAFKA__USERNAME" (include "lienthong.kafka.username" .) -}}
{{- $_ := set $env "LIENTHONG_KAFKA__SECURITY_PROTOCOL" "SASL_PLAINTEXT" -}}
{{- $_ := set $env "LIENTHONG_KAFKA__SASL_MECHANISM" "SCRAM-SHA-512" -}}
{{- end -}}
{{- if eq $name "gateway" -}}
{{- $_ := set $env "LIENTHONG_HTTP__HOST" "0.0.0.0" -}}
{{- $_ := set $env "LIENTHONG_HTTP__PORT" (toString $c.port) -}}
{{- else -}}
{{- $_ := set $env "LIENTHONG_GRPC__HOST" "0.0.0.0" -}}
{{- $_ := set $env "LIENTHONG_GRPC__PORT" (toString $c.port) -}}
{{- /* grpc.health.v1 only, plaintext, for kubelet's gRPC probes (they present no certificate). */ -}}
{{- $_ := set $env "LIENTHONG_GRPC__HEALTH_PORT" (toString $root.Values.grpcTls.healthPort) -}}
{{- end -}}
{{- /* mTLS on every gRPC hop: the component's identity, mounted from its Secret. */ -}}
{{- $_ := set $env "LIENTHONG_GRPC__TLS__CA_FILE" (printf "%s/ca.crt" $root.Values.grpcTls.mountPath) -}}
{{- $_ := set $env "LIENTHONG_GRPC__TLS__CERT_FILE" (printf "%s/tls.crt" $root.Values.grpcTls.mountPath) -}}
{{- $_ := set $env "LIENTHONG_GRPC__TLS__KEY_FILE" (printf "%s/tls.key" $root.Values.grpcTls.mountPath) -}}
{{- range $peer := splitList " " (include "lienthong.componentNames" .) -}}
{{- if and (ne $peer "gateway") (include "lienthong.enabled" (dict "root" $root "name" $peer)) -}}
{{- $_ := set $env (printf "LIENTHONG_SERVICES__%s" (upper $peer)) (include "lienthong.address" (dict "root" $root "name" $peer)) -}}
{{- end -}}
{{- end -}}
{{- /* The gateway too: its metrics leave the API port for this one, which its Service does
       not expose (a Service of their own, "<fullname>-gateway-metrics", for scraping). */ -}}
{{- if $root.Values.metrics.enabled -}}
{{- $_ := set $env "LIENTHONG_METRICS__HOST" "0.0.0.0" -}}
{{- $_ := set $env "LIENTHONG_METRICS__PORT" (toString $root.Values.metrics.port) -}}
{{- end -}}
{{- if eq $name "docstore" -}}
{{- $_ := set $env "LIENTHONG_DOCSTORE__BLOB_DIR" $c.persistence.mountPath -}}
{{- /* docstore spools uploads under its data dir and hard-links them into the blob store; a
       link cannot cross mounts, so the data dir lives on the blob volume too (else every
       package and attachment is copied and hashed a second time). */ -}}
{{- $_ := set $env "LIENTHONG_DATA_DIR" (printf "%s/.data" $c.persistence.mountPath) -}}
{{- end -}}
{{- /* Typed service settings: components.<name>.settings.<key> (one nesting level for routing's
       sections) -> LIENTHONG_<NAME>__[<SECTION>__]<KEY>; lists and maps as JSON. */ -}}
{{- range $k, $v := $c.settings | default dict -}}
{{- if and (kindIs "map" $v) (eq $name "routing") -}}
{{- range $k2, $v2 := $v -}}
{{- $_ := set $env (printf "LIENTHONG_%s__%s__%s" (upper $name) (upper $k) (upper $k2)) (ternary (toJson $v2) (toString $v2) (or (kindIs "slice" $v2) (kindIs "map" $v2))) -}}
{{- end -}}
{{- else -}}
{{- $_ := set $env (printf "LIENTHONG_%s__%s" (upper $name) (upper $k)) (ternary (toJson $v) (toString $v) (or (kindIs "slice" $v) (kindIs "map" $v))) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $name "sigverify") (or $c.trustRoots.existingConfigMap $c.trustRoots.existingSecret) -}}
{{- /* A list setting: pydantic-settings reads it as JSON. */ -}}
{{- $_ := set $env "LIENTHONG_SIGVERIFY__TRUST_ROOTS" (list (printf "%s/%s" $c.trustRoots.mountPath $c.trustRoots.key) | toJson) -}}
{{- end -}}
{{- $otel := include "lienthong.otel.endpoint" $root -}}
{{- $_ := set $env "OTEL_SERVICE_NAME" $name -}}
{{- if $otel -}}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" $otel -}}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_PROTOCOL" "grpc" -}}
{{- else -}}
{{- $_ := set $env "OTEL_SDK_DISABLED" "true" -}}
{{- end -}}
{{- range $k, $v := $root.Values.default.env -}}
{{- $_ := set $env $k (toString $v) -}}
{{- end -}}
{{- range $k, $v := $c.env -}}
{{- $_ := set $env $k (toString $v) -}}
{{- end -}}
{{- range $k := keys $env | sortAlpha }}
{{ $k }}: {{ index $env $k | quote }}
{{- end -}}
{{- end -}}

{{/*
Environment entries that are not plain config: the pod's identity for OTEL_RESOURCE_ATTRIBUTES
(dependent variables must be listed after what they reference) and the secrets.
*/}}
{{- define "lienthong.podEnv" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $c := index $root.Values.components $name -}}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- $attrs := list (printf "service.namespace=%s" "lienthong") (printf "service.version=%s" $root.Chart.AppVersion) (printf "deployment.environment.name=%s" $root.Values.default.environment) "service.instance.id=$(K8S_POD_NAME)" "k8s.pod.name=$(K8S_POD_NAME)" "k8s.namespace.name=$(K8S_NAMESPACE)" "k8s.node.name=$(K8S_NODE_NAME)" (ternary (printf "k8s.job.name=%s-migrate" (include "lienthong.componentFullname" .)) (printf "k8s.deployment.name=%s" (include "lienthong.componentFullname" .)) (eq (.workload | default "deployment") "job")) }}
{{- range $k, $v := $root.Values.opentelemetry.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k (toString $v)) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- include "lienthong.secretEnv" . }}
{{- end -}}

{{/* Secret-backed environment of one component. */}}
{{- define "lienthong.secretEnv" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $c := index $root.Values.components $name -}}
{{- /* In development a missing Secret is allowed: the services then fall back to their
       development defaults (SQLite under /data, a placeholder JWT secret). */}}
{{- $optional := eq $root.Values.default.environment "development" -}}
{{- if eq $name "gateway" }}
- name: LIENTHONG_GATEWAY__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "lienthong.jwt.secretName" $root }}
      key: {{ $c.jwtSecret.key }}
      optional: {{ $optional }}
{{- with $c.jwtSecret.previousKey }}
- name: LIENTHONG_GATEWAY__PREVIOUS_JWT_SECRETS
  valueFrom:
    secretKeyRef:
      name: {{ include "lienthong.jwt.secretName" $root }}
      key: {{ . }}
      optional: true
{{- end }}
{{- end }}
{{- if and (include "lienthong.kafka.hasPrincipal" .) (ne (.workload | default "deployment") "job") }}
- name: LIENTHONG_KAFKA__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "lienthong.kafka.secretName" . }}
      key: password
{{- end }}
{{- if and (eq $name "directory") $c.masterKeys }}
{{- with $c.masterKeys.existingSecret }}
- name: LIENTHONG_DIRECTORY__MASTER_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $c.masterKeys.key }}
{{- end }}
{{- end }}
{{- if $c.database }}
{{- if $root.Values.postgresql.cloudnativepg.enabled }}
{{- $cluster := include "lienthong.pg.clusterName" . }}
{{- /* CNPG's app secret has a libpq URI; the services want the psycopg 3 dialect. Its
       generated passwords are alphanumeric, so composing the URL needs no escaping. */}}
- name: LIENTHONG_DB_USER
  valueFrom:
    secretKeyRef:
      name: {{ $cluster }}-app
      key: username
- name: LIENTHONG_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $cluster }}-app
      key: password
- name: DATABASE_URL
  value: {{ printf "postgresql+psycopg://$(LIENTHONG_DB_USER):$(LIENTHONG_DB_PASSWORD)@%s-rw:%v/%s" $cluster $root.Values.postgresql.port $c.database.name | quote }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "lienthong.database.secretName" . }}
      key: {{ $c.database.key }}
      optional: {{ $optional }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "lienthong.podSecurityContext" -}}
{{ toYaml .Values.default.podSecurityContext }}
{{- end -}}

{{- define "lienthong.containerSecurityContext" -}}
{{ toYaml .Values.default.securityContext }}
{{- end -}}

{{/* Writable scratch space (the root filesystem is read-only). */}}
{{- define "lienthong.scratchVolumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.default.scratch.dataSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.default.scratch.tmpSizeLimit }}
{{- end -}}

{{- define "lienthong.scratchMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* NetworkPolicy egress rule for DNS. */}}
{{- define "lienthong.netpol.dnsEgress" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.dns.podSelector | nindent 8 }}
    {{- range .Values.networkPolicy.dns.ipBlocks }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}

{{/* Egress to the database of one component (ctx = dict root name). */}}
{{- define "lienthong.netpol.dbEgress" -}}
{{- $root := .root -}}
- ports:
    - {protocol: TCP, port: {{ $root.Values.postgresql.port }}}
{{- if $root.Values.postgresql.cloudnativepg.enabled }}
  to:
    - podSelector:
        matchLabels:
          cnpg.io/cluster: {{ include "lienthong.pg.clusterName" . }}
{{- else if $root.Values.postgresql.egressTo }}
  to:
    {{- toYaml $root.Values.postgresql.egressTo | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "lienthong.netpol.kafkaEgress" -}}
{{- if .Values.kafka.strimzi.enabled }}
- ports:
    - {protocol: TCP, port: 9092}
  to:
    - podSelector:
        matchLabels:
          strimzi.io/cluster: {{ include "lienthong.kafka.clusterName" . }}
{{- else }}
- ports:
    - {protocol: TCP, port: {{ .Values.kafka.port }}}
{{- if .Values.kafka.egressTo }}
  to:
    {{- toYaml .Values.kafka.egressTo | nindent 4 }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "lienthong.netpol.otelEgress" -}}
{{- if and .Values.opentelemetry.collector.enabled (not .Values.opentelemetry.endpoint) }}
- ports:
    - {protocol: TCP, port: 4317}
  to:
    - podSelector:
        matchLabels:
          {{- include "lienthong.selectorLabels" (dict "root" . "name" "otel-collector") | nindent 10 }}
{{- else if .Values.opentelemetry.endpoint }}
{{- /* The port of the endpoint URL (4317 when it names none). */}}
{{- $port := regexFind ":[0-9]+/?$" .Values.opentelemetry.endpoint | trimPrefix ":" | trimSuffix "/" | default "4317" }}
- ports:
    - {protocol: TCP, port: {{ $port }}}
{{- with .Values.opentelemetry.egressTo }}
  to:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Components that own a database, in order. */}}
{{- define "lienthong.databaseComponents" -}}
{{- $out := list -}}
{{- range $name := splitList " " (include "lienthong.componentNames" .) -}}
{{- $c := index $.Values.components $name -}}
{{- if and $c.enabled $c.database -}}
{{- $out = append $out $name -}}
{{- end -}}
{{- end -}}
{{- join " " $out -}}
{{- end -}}

{{/* sigverify's trust roots: volume and mount (ctx = dict root name); empty when none is named. */}}
{{- define "lienthong.trustRootsVolume" -}}
{{- $c := index .root.Values.components .name -}}
{{- if and (eq .name "sigverify") $c.trustRoots.existingConfigMap }}
- name: trust-roots
  configMap:
    name: {{ $c.trustRoots.existingConfigMap }}
    items:
      - {key: {{ $c.trustRoots.key }}, path: {{ $c.trustRoots.key }}}
{{- else if and (eq .name "sigverify") $c.trustRoots.existingSecret }}
- name: trust-roots
  secret:
    secretName: {{ $c.trustRoots.existingSecret }}
    items:
      - {key: {{ $c.trustRoots.key }}, path: {{ $c.trustRoots.key }}}
{{- end }}
{{- end -}}

{{- define "lienthong.trustRootsMount" -}}
{{- $c := index .root.Values.components .name -}}
{{- if and (eq .name "sigverify") (or $c.trustRoots.existingConfigMap $c.trustRoots.existingSecret) }}
- name: trust-roots
  mountPath: {{ $c.trustRoots.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The Secret holding one identity's gRPC mTLS files (ca.crt, tls.crt, tls.key); ctx = dict root name. */}}
{{- define "lienthong.grpcTls.secretName" -}}
{{- printf "%s-%s-grpc-tls" (include "lienthong.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The component's gRPC identity: volume and mount (every component calls or serves gRPC). */}}
{{- define "lienthong.grpcTlsVolume" -}}
- name: grpc-tls
  secret:
    secretName: {{ include "lienthong.grpcTls.secretName" . }}
    defaultMode: 0440
{{- end -}}

{{- define "lienthong.grpcTlsMount" -}}
- name: grpc-tls
  mountPath: {{ .root.Values.grpcTls.mountPath }}
  readOnly: true
{{- end -}}
