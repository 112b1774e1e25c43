{{/*
Names. Every object is called "vipd" (or nameOverride), as `vipd manifest`
names them, so the chart and the generator produce the same objects and a
cluster switches between them without leftovers. One release per cluster:
the VIP's lease is cluster-wide state anyway.
*/}}
{{- define "vipd.name" -}}
{{- default "vipd" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vipd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vipd.name" . }}
{{- end -}}

{{- define "vipd.labels" -}}
{{ include "vipd.selectorLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "vipd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vipd.name" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The lease lives in cp_namespace (kube-vip's variable), else the release namespace. */}}
{{- define "vipd.leaseNamespace" -}}
{{- default .Release.Namespace .Values.env.cp_namespace -}}
{{- end -}}

{{/* "true" when Services mode is on (kube-vip's svc_enable). */}}
{{- define "vipd.services" -}}
{{- eq (toString (default "false" .Values.env.svc_enable)) "true" -}}
{{- end -}}

{{/* The metrics port: the port of prometheus_server (":2112" or "ip:port"). */}}
{{- define "vipd.metricsPort" -}}
{{- $p := regexFind "[0-9]+$" (toString (default ":2112" .Values.env.prometheus_server)) -}}
{{- required "env.prometheus_server must end in a port when a monitor is enabled" $p -}}
{{- end -}}

{{- define "vipd.monitoring" -}}
{{- or .Values.podMonitor.enabled .Values.serviceMonitor.enabled -}}
{{- end -}}
