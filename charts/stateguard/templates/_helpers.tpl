{{/* The chart's name, or nameOverride: the app.kubernetes.io/name label. */}}
{{- define "stateguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name: fullnameOverride, or the release's
name followed by the chart's unless it already contains it. Names of
Kubernetes objects and labels stop at 63 characters. */}}
{{- define "stateguard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "stateguard.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "stateguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stateguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stateguard.labels" -}}
{{ include "stateguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Names of the TLS objects, shared by the Certificate, the Deployment and the webhook configurations. */}}
{{- define "stateguard.tlsSecretName" -}}{{ include "stateguard.fullname" . }}-tls{{- end -}}
{{- define "stateguard.certificateName" -}}{{ include "stateguard.fullname" . }}{{- end -}}
{{- define "stateguard.issuerName" -}}{{ include "stateguard.fullname" . }}-selfsigned{{- end -}}

{{/* The annotation that has cert-manager's CA injector fill in the caBundle. */}}
{{- define "stateguard.webhookAnnotations" -}}
{{- if .Values.certManager.enabled }}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "stateguard.certificateName" .) }}
{{- end }}
{{- end -}}

{{/* The namespaces never sent to the webhooks, as a JSON list. The background
audit skips the same ones (--exclude-namespaces), so that it reports only
what the webhooks would judge. */}}
{{- define "stateguard.excludedNamespaces" -}}
{{- concat .Values.webhook.excludedNamespaces (list .Release.Namespace) | uniq | toJson -}}
{{- end -}}

{{/* Whether a default is configured: only then is the mutating webhook
registered, so that the API server calls stateguard for nothing it would
leave unchanged. */}}
{{- define "stateguard.defaulting" -}}
{{- with .Values.defaults }}{{ if or .podManagementPolicy .persistentVolumeClaimRetentionPolicy.whenDeleted .persistentVolumeClaimRetentionPolicy.whenScaled }}true{{ end }}{{ end -}}
{{- end -}}

{{/* Whether the background audit runs: a Go duration is zero when all its digits are. */}}
{{- define "stateguard.auditEnabled" -}}
{{- if regexMatch "[1-9]" (toString .Values.audit.interval) }}true{{ end -}}
{{- end -}}

{{/* Fields shared by every webhook: where to call, and which namespaces never to send. */}}
{{- define "stateguard.webhookCommon" -}}
sideEffects: None
admissionReviewVersions: [v1]
timeoutSeconds: {{ .root.Values.webhook.timeoutSeconds }}
matchPolicy: Equivalent
clientConfig:
  service:
    name: {{ include "stateguard.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "stateguard.excludedNamespaces" .root }}
    - key: stateguard.io/ignore
      operator: NotIn
      values: ["true"]
{{- end -}}

{{/* A Go duration (audit.interval: 5m, 1h30m, 1.5h) in seconds. */}}
{{- define "stateguard.durationSeconds" -}}
{{- $unit := dict "h" 3600 "m" 60 "s" 1 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 -}}
{{- $seconds := 0.0 -}}
{{- range regexFindAll "[0-9.]+[^0-9.]+" (toString .) -1 -}}
{{- $n := regexFind "^[0-9.]+" . -}}
{{- $seconds = addf $seconds (mulf $n (get $unit (trimPrefix $n .))) -}}
{{- end -}}
{{- $seconds -}}
{{- end -}}
