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
The `rules:` block of the object of kind `kind` in deploy/rbac/<file>, read through the
files/rbac symlink as text, so the rendered Roles carry each rule's comment and the chart and
the plain manifests can never grant different things. The rules must be the object's last key.
Call: (include "hrw.rbacRules" (dict "root" $ "file" "per-namespace/proxy.yaml" "kind" "Role")).
*/}}
{{- define "hrw.rbacRules" -}}
{{- $path := printf "files/rbac/%s" .file }}
{{- $text := .root.Files.Get $path }}
{{- if not $text }}
{{- fail (printf "%s is missing or empty: the chart reads its RBAC rules from deploy/rbac through the files/rbac symlink" $path) }}
{{- end }}
{{- $block := "" }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" $text -1 }}
{{- if eq (get (fromYaml $doc) "kind") $.kind }}
{{- $block = regexFind "(?ms)^rules:.*" $doc | trim }}
{{- end }}
{{- end }}
{{- if not (get (fromYaml $block) "rules") }}
{{- fail (printf "%s holds no %s whose last key is rules" $path .kind) }}
{{- end }}
{{- $block }}
{{- end }}

{{/*
The namespaces the operator serves and where the proxy and the operator get their Roles, as a
YAML list: `watchNamespaces`, or the release's namespace when it is empty. Namespaces of the
cluster's own components are refused: a Role there would let the proxy write the
controller-manager's and scheduler's leader-election Leases and read their Secrets.
*/}}
{{- define "hrw.watchNamespaces" -}}
{{- $namespaces := .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- range $namespaces }}
{{- if has . (list "kube-system" "kube-public" "kube-node-lease") }}
{{- fail (printf "watchNamespaces must not list %s: the proxy would get its Secrets and Leases (keep hrw objects in namespaces of their own)" .) }}
{{- end }}
{{- end }}
{{- toYaml (uniq $namespaces) }}
{{- end }}

{{- define "hrw.proxy.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "hrw.proxy.fullname" .)) .Values.proxy.tls.secretName }}
{{- end }}
