{{/* Names and labels shared by every template. */}}

{{- define "artifortress-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "artifortress-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "artifortress-operator.labels" -}}
{{ include "artifortress-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "artifortress-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "artifortress-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "artifortress-operator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The one namespace watched in scope Namespace. */}}
{{- define "artifortress-operator.watchNamespace" -}}
{{- default .Release.Namespace .Values.watch.namespace -}}
{{- end -}}

{{/*
What the controllers do, and nothing more (docs/controllers.md):
- watch the four kinds, write their status, add/remove the data finalizer on
  Backups (patch), create Backups and RecoveryDrills (schedules, catalog resync),
  delete them (retention, history limits);
- create, watch and delete the engine Jobs; owner references with
  blockOwnerDeletion need update on the owner's finalizers subresource;
- read the Secrets that the resources reference (get only, never list);
- record Events (events.k8s.io).
The Lease for leader election is granted separately, in the release namespace.
*/}}
{{- define "artifortress-operator.rules" -}}
- apiGroups: ["artifortress.io"]
  resources: ["artifortresses"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["artifortress.io"]
  resources: ["backups"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["artifortress.io"]
  resources: ["recoverydrills"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["artifortress.io"]
  resources: ["backupschedules"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["artifortress.io"]
  resources: ["artifortresses/status", "backups/status", "backupschedules/status", "recoverydrills/status"]
  verbs: ["get", "patch"]
- apiGroups: ["artifortress.io"]
  resources: ["backups/finalizers", "backupschedules/finalizers", "recoverydrills/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# An installation's WAL archiver (spec.walArchive) is a Deployment of its own.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "create", "update", "delete"]
# A failed Job's pod says why it failed (its termination message).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
  {{- with .Values.rbac.secretNames }}
  resourceNames:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Claims: one backup per installation and one drill per scratch database at a
# time, arbitrated by the API server (Leases the operator creates).
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end -}}

{{/* HTTPS unless plain HTTP was chosen (tls.enabled: false). */}}
{{- define "artifortress-operator.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end -}}

{{- define "artifortress-operator.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "artifortress-operator.fullname" .)) }}
{{- end -}}
