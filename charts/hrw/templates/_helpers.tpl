{{/* Names and labels shared by every template. */}}

{{- define "hrw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of object names: the release name when it already says "hrw". */}}
{{- define "hrw.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hrw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; pass (dict "root" $ "component" "operator"). */}}
{{- define "hrw.labels" -}}
helm.sh/chart: {{ include "hrw.chart" .root }}
{{ include "hrw.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: hrw
{{- end }}

{{- define "hrw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hrw.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hrw.operator.fullname" -}}
{{- printf "%s-operator" (include "hrw.fullname" .) }}
{{- end }}

{{- define "hrw.proxy.fullname" -}}
{{- printf "%s-proxy" (include "hrw.fullname" .) }}
{{- end }}

{{- define "hrw.operator.serviceAccountName" -}}
{{- default (include "hrw.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "hrw.proxy.serviceAccountName" -}}
{{- default (include "hrw.proxy.fullname" .) .Values.proxy.serviceAccount.name }}
{{- end }}

{{- define "hrw.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules of a ClusterRole in deploy/rbac/<file>, read through the files/rbac symlink, so the
chart and the plain manifests can never grant different things.
Call: (include "hrw.rbacRules" (dict "root" $ "file" "operator.yaml")).
*/}}
{{- define "hrw.rbacRules" -}}
{{- $path := printf "files/rbac/%s" .file }}
{{- $text := .root.Files.Get $path }}
{{- if not $text }}
{{- fail (printf "%s is missing or empty: the chart reads its RBAC rules from deploy/rbac through the files/rbac symlink" $path) }}
{{- end }}
{{- $rules := list }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" $text -1 }}
{{- $obj := fromYaml $doc }}
{{- if eq (get $obj "kind") "ClusterRole" }}
{{- $rules = get $obj "rules" }}
{{- end }}
{{- end }}
{{- if not $rules }}
{{- fail (printf "%s holds no ClusterRole with rules" $path) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{- define "hrw.proxy.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "hrw.proxy.fullname" .)) .Values.proxy.tls.secretName }}
{{- end }}
