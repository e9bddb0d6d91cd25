{{/* Labels on every object of the release. */}}
{{- define "familyhub-operator.labels" -}}
app.kubernetes.io/name: familyhub-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector of the operator pods. Unchanged since the first chart version: a Deployment's selector is immutable. */}}
{{- define "familyhub-operator.selectorLabels" -}}
app.kubernetes.io/name: familyhub-operator
{{- end }}
