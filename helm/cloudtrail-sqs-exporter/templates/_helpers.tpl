{{/*
Helpers. The ones a host chart may call (sidecar mode) take a context that only needs
.Values (this chart's values, e.g. .Values.<alias> in the host) and .Release; they never read
.Chart, so the same names come out in this chart and in a host chart.
*/}}

{{/* The exporter version this chart ships; tests keep it equal to Chart.yaml appVersion. */}}
{{- define "cloudtrail-sqs-exporter.appVersion" -}}
0.1.0
{{- end }}

{{- define "cloudtrail-sqs-exporter.name" -}}
{{- default "cloudtrail-sqs-exporter" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cloudtrail-sqs-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "cloudtrail-sqs-exporter.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cloudtrail-sqs-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudtrail-sqs-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cloudtrail-sqs-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cloudtrail-sqs-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ include "cloudtrail-sqs-exporter.appVersion" . | quote }}
app.kubernetes.io/component: exporter
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cloudtrail-sqs-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloudtrail-sqs-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cloudtrail-sqs-exporter.image" -}}
{{- $tag := default (include "cloudtrail-sqs-exporter.appVersion" .) .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The exporter's config.yaml. `listen` comes from .Values.port; an empty source list is left out so
the exporter falls back to its embedded demo source.
*/}}
{{- define "cloudtrail-sqs-exporter.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.port)) }}
{{- $_ := set $cfg "health_listen" (printf "0.0.0.0:%d" (int .Values.healthPort)) }}
{{- if include "cloudtrail-sqs-exporter.webEnabled" . }}
{{- $_ := set $cfg "web_config_file" "/etc/cloudtrail-sqs-exporter/web/web-config.yml" }}
{{- end }}
{{- if not $cfg.sources }}
{{- $_ := unset $cfg "sources" }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Pod annotation that rolls the pods when the configuration changes. */}}
{{- define "cloudtrail-sqs-exporter.configChecksum" -}}
checksum/config: {{ include "cloudtrail-sqs-exporter.config" . | sha256sum }}
{{- if and (include "cloudtrail-sqs-exporter.webEnabled" .) (not .Values.web.existingSecret) }}
{{/* the exporter re-reads its web-config itself; rolling on a change keeps the pods' view uniform */}}
checksum/web: {{ include "cloudtrail-sqs-exporter.webConfig" . | sha256sum }}
{{- end }}
{{- end }}

{{/* "true" when /metrics has a web-config (TLS and/or basic auth). */}}
{{- define "cloudtrail-sqs-exporter.webEnabled" -}}
{{- if or .Values.web.config .Values.web.existingSecret .Values.web.tlsSecret }}true{{ end }}
{{- end }}

{{/*
The web-config file put in the chart's Secret: web.config, with cert_file/key_file (and client_ca_file
when client certificates are verified) pointing into the mounted web.tlsSecret unless given.
*/}}
{{- define "cloudtrail-sqs-exporter.webConfig" -}}
{{- $web := deepCopy (default dict .Values.web.config) }}
{{- if .Values.web.tlsSecret }}
{{- $tls := default dict (get $web "tls_server_config") }}
{{- $_ := set $tls "cert_file" (default "/etc/cloudtrail-sqs-exporter/tls/tls.crt" (get $tls "cert_file")) }}
{{- $_ := set $tls "key_file" (default "/etc/cloudtrail-sqs-exporter/tls/tls.key" (get $tls "key_file")) }}
{{- $auth := default "NoClientCert" (get $tls "client_auth_type") }}
{{- if and (ne $auth "NoClientCert") (not (get $tls "client_ca_file")) }}
{{- $_ := set $tls "client_ca_file" "/etc/cloudtrail-sqs-exporter/tls/ca.crt" }}
{{- end }}
{{- $_ := set $web "tls_server_config" $tls }}
{{- end }}
{{- toYaml $web }}
{{- end }}

{{/* The scheme the monitors scrape with. Context: dict "Values" and "monitor" (its values). */}}
{{- define "cloudtrail-sqs-exporter.scheme" -}}
{{- $tls := or .Values.web.tlsSecret (and .Values.web.config (get .Values.web.config "tls_server_config")) }}
{{- default (ternary "https" "http" (not (not $tls))) .monitor.scheme }}
{{- end }}

{{/*
Several replicas only work when SQS splits the work (s3-sqs sources only) and the state store is
shared (Redis); anything else would count every event once per replica.
*/}}
{{- define "cloudtrail-sqs-exporter.validate" -}}
{{- if and (eq .Values.mode "deployment") (gt (int .Values.replicaCount) 1) }}
{{- $types := list }}
{{- range .Values.config.sources }}
{{- $types = append $types (toString .type) }}
{{- end }}
{{- $types = uniq $types }}
{{- $redis := or .Values.config.state.redis_url .Values.redis.existingSecret }}
{{- if or (eq (len $types) 0) (ne (join "," $types) "s3-sqs") (not $redis) }}
{{- fail (printf "replicaCount=%d: several replicas need every config.sources[].type to be s3-sqs (SQS hands each notification to one replica) and a shared state store (config.state.redis_url or redis.existingSecret). Found source types [%s] and %s. Use replicaCount: 1 otherwise." (int .Values.replicaCount) (join ", " (default (list "embedded demo file source") $types)) (ternary "a Redis store" "no Redis store" (not (not $redis)))) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.mode "deployment") (gt (int .Values.replicaCount) 1) .Values.persistence.enabled }}
{{- fail (printf "replicaCount=%d with persistence.enabled: replicas keep their shared state in Redis, and one volume cannot hold a SQLite store for several pods. Set persistence.enabled=false." (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.redis.existingSecret (not .Values.redis.existingSecretKey) }}
{{- fail "redis.existingSecret is set: redis.existingSecretKey must name the key holding the URL" }}
{{- end }}
{{- end }}

{{/*
The exporter container. Context: dict with "Values" (this chart's values) and "Release".
*/}}
{{- define "cloudtrail-sqs-exporter.container" -}}
- name: cloudtrail-sqs-exporter
  image: {{ include "cloudtrail-sqs-exporter.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - run
    - --config
    - /etc/cloudtrail-sqs-exporter/config.yaml
  ports:
    - name: http-metrics
      containerPort: {{ int .Values.port }}
      protocol: TCP
    - name: http-health
      containerPort: {{ int .Values.healthPort }}
      protocol: TCP
  {{- if or .Values.redis.existingSecret .Values.aws.region .Values.extraEnv }}
  env:
    {{- if .Values.redis.existingSecret }}
    - name: CTSQS_STATE__REDIS_URL
      valueFrom:
        secretKeyRef:
          name: {{ .Values.redis.existingSecret }}
          key: {{ .Values.redis.existingSecretKey }}
    {{- end }}
    {{- if .Values.aws.region }}
    - name: AWS_REGION
      value: {{ .Values.aws.region | quote }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with .Values.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: cloudtrail-sqs-exporter-config
      mountPath: /etc/cloudtrail-sqs-exporter
      readOnly: true
    - name: cloudtrail-sqs-exporter-state
      mountPath: /var/lib/cloudtrail-sqs-exporter
    - name: cloudtrail-sqs-exporter-tmp
      mountPath: /tmp
    {{- if include "cloudtrail-sqs-exporter.webEnabled" . }}
    - name: cloudtrail-sqs-exporter-web
      mountPath: /etc/cloudtrail-sqs-exporter/web
      readOnly: true
    {{- end }}
    {{- if .Values.web.tlsSecret }}
    - name: cloudtrail-sqs-exporter-tls
      mountPath: /etc/cloudtrail-sqs-exporter/tls
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- /* a sidecar never gates its host pod's readiness: a failing CloudTrail source is no reason to
         take the host application out of its Service (liveness still restarts a dead process) */}}
  {{- if ne .Values.mode "sidecar" }}
  {{- with .Values.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The exporter's volumes. Context as for the container. */}}
{{- define "cloudtrail-sqs-exporter.volumes" -}}
- name: cloudtrail-sqs-exporter-config
  configMap:
    name: {{ include "cloudtrail-sqs-exporter.fullname" . }}
- name: cloudtrail-sqs-exporter-state
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-state" (include "cloudtrail-sqs-exporter.fullname" .)) .Values.persistence.existingClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.persistence.emptyDirSizeLimit }}
  {{- end }}
- name: cloudtrail-sqs-exporter-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if include "cloudtrail-sqs-exporter.webEnabled" . }}
- name: cloudtrail-sqs-exporter-web
  secret:
    {{- if .Values.web.existingSecret }}
    secretName: {{ .Values.web.existingSecret }}
    items:
      - key: {{ .Values.web.existingSecretKey }}
        path: web-config.yml
    {{- else }}
    secretName: {{ include "cloudtrail-sqs-exporter.fullname" . }}-web
    {{- end }}
{{- end }}
{{- if .Values.web.tlsSecret }}
- name: cloudtrail-sqs-exporter-tls
  secret:
    secretName: {{ .Values.web.tlsSecret }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Sidecar mode: the public names a host chart includes, with this chart as a dependency
(alias e.g. "exporter") and `exporter.mode: sidecar`:

  metadata:
    annotations:
      {{- include "cloudtrail-sqs-exporter.sidecar.podAnnotations" (dict "Values" .Values.exporter "Release" .Release) | nindent 8 }}
  spec:
    containers:
      - name: app
        ...
      {{- include "cloudtrail-sqs-exporter.sidecar.container" (dict "Values" .Values.exporter "Release" .Release) | nindent 6 }}
    volumes:
      {{- include "cloudtrail-sqs-exporter.sidecar.volumes" (dict "Values" .Values.exporter "Release" .Release) | nindent 6 }}

The host pod's securityContext / ServiceAccount stay the host's; the container carries its own
securityContext. The ConfigMap it mounts is rendered by this chart.
*/}}
{{- define "cloudtrail-sqs-exporter.sidecar.container" -}}
{{- include "cloudtrail-sqs-exporter.container" . }}
{{- end }}

{{- define "cloudtrail-sqs-exporter.sidecar.volumes" -}}
{{- include "cloudtrail-sqs-exporter.volumes" . }}
{{- end }}

{{- define "cloudtrail-sqs-exporter.sidecar.podAnnotations" -}}
{{- include "cloudtrail-sqs-exporter.configChecksum" . }}
{{- end }}
