{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "sockethub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name of the chart's objects. */}}
{{- define "sockethub.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sockethub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sockethub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sockethub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sockethub.labels" -}}
helm.sh/chart: {{ include "sockethub.chart" . }}
{{ include "sockethub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sockethub
{{- end }}

{{- define "sockethub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sockethub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sockethub.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Enabled platforms, sorted, comma-separated: what the gateway offers. */}}
{{- define "sockethub.enabledPlatforms" -}}
{{- $enabled := list }}
{{- range $name, $p := .Values.runners.platforms }}
{{- if $p.enabled }}{{ $enabled = append $enabled $name }}{{ end }}
{{- end }}
{{- join "," $enabled }}
{{- end }}

{{/* Browser origins: the value, else the ingress hosts, else the app's default. */}}
{{- define "sockethub.allowedOrigins" -}}
{{- if .Values.gateway.allowedOrigins }}
{{- .Values.gateway.allowedOrigins }}
{{- else if .Values.ingress.enabled }}
{{- $tlsHosts := list }}
{{- range .Values.ingress.tls }}{{ $tlsHosts = concat $tlsHosts .hosts }}{{ end }}
{{- $origins := list }}
{{- range .Values.ingress.hosts }}
{{- $origins = append $origins (printf "%s://%s" (ternary "https" "http" (has .host $tlsHosts)) .host) }}
{{- end }}
{{- join "," $origins }}
{{- end }}
{{- end }}

{{/* Secret names: an existing Secret when given, else the chart's own. */}}
{{- define "sockethub.appSecretName" -}}
{{- default (include "sockethub.fullname" .) .Values.secrets.existingSecret }}
{{- end }}
{{- define "sockethub.redisSecretName" -}}
{{- default (include "sockethub.fullname" .) .Values.redis.existingSecret }}
{{- end }}
{{- define "sockethub.saslSecretName" -}}
{{- default (include "sockethub.fullname" .) .Values.kafka.sasl.existingSecret }}
{{- end }}
{{- define "sockethub.saslEnabled" -}}
{{- if and .Values.kafka.sasl.mechanism (hasPrefix "SASL_" .Values.kafka.securityProtocol) }}true{{ end }}
{{- end }}

{{/* Does the chart render its own Secret (something is not in an existing one)? */}}
{{- define "sockethub.ownSecret" -}}
{{- if or (not .Values.secrets.existingSecret) (not .Values.redis.existingSecret) (and (include "sockethub.saslEnabled" .) (not .Values.kafka.sasl.existingSecret)) }}true{{ end }}
{{- end }}

{{/*
Pod annotations that roll the pods when settings change: the ConfigMaps' rendered
content, and the secret inputs given in values (not their generated values, so the
same values render the same checksum). A change inside an existing Secret needs
`kubectl rollout restart`.
*/}}
{{- define "sockethub.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ dict "s" .Values.secrets "r" .Values.redis "k" .Values.kafka.sasl | toJson | sha256sum }}
{{- end }}

{{/*
Payload encryption is on unless the values say, on purpose, that it is off: a key ring in
secrets.logKeys, or one in the existing Secret (its logKeysKey), or logKeys.disabled.
*/}}
{{- define "sockethub.requireLogKeys" -}}
{{- if not (or .Values.secrets.logKeys .Values.secrets.existingSecret .Values.logKeys.disabled) }}
{{- fail "payload keys are required: set secrets.logKeys (or the log-keys entry of secrets.existingSecret), or logKeys.disabled=true to store payloads in Kafka unencrypted on purpose" }}
{{- end }}
{{- end }}

{{/* Environment of every container: the common ConfigMap plus the secret settings. */}}
{{- define "sockethub.secretEnv" -}}
{{- include "sockethub.requireLogKeys" . }}
- name: SOCKETHUB_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "sockethub.appSecretName" . }}
      key: {{ .Values.secrets.secretKey }}
- name: SOCKETHUB_LOG_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "sockethub.appSecretName" . }}
      key: {{ .Values.secrets.logKeysKey }}
      {{- if .Values.logKeys.disabled }}
      optional: true
      {{- end }}
- name: SOCKETHUB_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "sockethub.redisSecretName" . }}
      key: {{ .Values.redis.urlKey }}
{{- if include "sockethub.saslEnabled" . }}
- name: SOCKETHUB_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "sockethub.saslSecretName" . }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}

{{- define "sockethub.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/sockethub/kafka-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "sockethub.volumes" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: {{ .Values.kafka.tls.caKey }}
{{- end }}
{{- end }}

{{/* The internal (headless) Service of the gateways: probes' port, metrics, pod DNS. */}}
{{- define "sockethub.gatewayInternalService" -}}
{{- printf "%s-gateway-internal" (include "sockethub.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The most gateway pods that may exist: ordinals 0 .. this - 1 are the gateway ids. */}}
{{- define "sockethub.maxGateways" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ .Values.gateway.replicaCount }}{{ end }}
{{- end }}

{{/* The ingress controller whose cookie-affinity annotations to render. */}}
{{- define "sockethub.stickyController" -}}
{{- $class := lower (default "" .Values.ingress.className) }}
{{- if .Values.ingress.stickyController }}{{ .Values.ingress.stickyController }}
{{- else if contains "traefik" $class }}traefik
{{- else if contains "haproxy" $class }}haproxy
{{- else }}nginx
{{- end }}
{{- end }}

{{/* Is a sticky path in front of the gateways (ingress cookie or HTTPRoute persistence)? */}}
{{- define "sockethub.sticky" -}}
{{- if or (and .Values.ingress.enabled .Values.ingress.stickySessions) (and .Values.httpRoute.enabled .Values.httpRoute.sessionPersistence) }}true{{ end }}
{{- end }}

{{/* The runner deadline rule: SIGKILL must never land inside a transaction. */}}
{{- define "sockethub.checkRunnerGrace" -}}
{{- $needed := add (ceil .Values.runners.shutdownGrace) 20 15 }}
{{- if lt (int .Values.runners.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "runners.terminationGracePeriodSeconds must be at least runners.shutdownGrace + 20 + 15 = %d" (int $needed)) }}
{{- end }}
{{- end }}
