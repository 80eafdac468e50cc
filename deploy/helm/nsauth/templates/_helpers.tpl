{{/* Names and labels. */}}
{{- define "nsauth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nsauth.fullname" -}}
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

{{- define "nsauth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nsauth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nsauth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "nsauth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "nsauth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nsauth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nsauth.secretName" -}}
{{- default (include "nsauth.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* "true" when the built-in provider runs (no external provider). */}}
{{- define "nsauth.builtin" -}}
{{- if and .Values.auth.enabled (not .Values.auth.baseURL) }}true{{ end }}
{{- end }}

{{/* "true" when the built-in provider keeps its data in SQLite on /data. */}}
{{- define "nsauth.sqlite" -}}
{{- if and (include "nsauth.builtin" .) (eq .Values.database.type "sqlite") }}true{{ end }}
{{- end }}

{{/*
nsauth.validate fails the render with a message naming the value to set
when the values describe a deployment that cannot work.
*/}}
{{- define "nsauth.validate" -}}
{{- $v := .Values }}
{{- if not (has $v.database.type (list "sqlite" "postgres")) }}
{{- fail (printf "database.type must be sqlite or postgres, not %q" $v.database.type) }}
{{- end }}
{{- if include "nsauth.builtin" . }}
  {{- if not $v.issuer }}
  {{- fail "issuer is required with the built-in provider: set it to the URL clients reach nsauth at (NSAUTH_ISSUER), e.g. --set issuer=https://auth.example.com" }}
  {{- end }}
  {{- if and (not (hasPrefix "https://" $v.issuer)) (not $v.insecureHTTPIssuer) }}
  {{- fail (printf "issuer %q must be an https:// URL (insecureHTTPIssuer=true allows http, for tests only)" $v.issuer) }}
  {{- end }}
  {{- if eq $v.database.type "sqlite" }}
    {{- if or (gt (int $v.replicaCount) 1) $v.autoscaling.enabled }}
    {{- fail "SQLite runs one replica: replicaCount > 1 (or autoscaling) needs PostgreSQL: set database.type=postgres and database.url (or secrets.existingSecret with the database URL)" }}
    {{- end }}
  {{- else }}
    {{- if and (not $v.database.url) (not $v.secrets.existingSecret) }}
    {{- fail "database.type=postgres needs a database URL: set database.url (or secrets.existingSecret holding it under secrets.keys.databaseURL)" }}
    {{- end }}
    {{- if and (not $v.secrets.secretKey) (not $v.secrets.existingSecret) }}
    {{- fail "database.type=postgres needs secrets.secretKey (32 random bytes, base64: openssl rand -base64 32) or secrets.existingSecret holding it under secrets.keys.secretKey; every replica must seal with the same key" }}
    {{- end }}
  {{- end }}
{{- else if $v.auth.baseURL }}
  {{- if not $v.auth.audience }}
  {{- fail "auth.baseURL (AUTH_BASEURL) needs auth.audience (AUTH_AUDIENCE)" }}
  {{- end }}
  {{- if not $v.auth.cliClientID }}
  {{- fail "auth.baseURL (AUTH_BASEURL) needs auth.cliClientID (AUTH_CLI_CLIENT_ID)" }}
  {{- end }}
{{- end }}
{{- if and $v.secrets.secretKey (ne (len (b64dec $v.secrets.secretKey)) 32) }}
{{- fail "secrets.secretKey must be 32 random bytes in base64 (openssl rand -base64 32)" }}
{{- end }}
{{- end }}
