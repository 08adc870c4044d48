{{/* Names: the release name, unless it lacks the chart name ("prod" → "prod-relayweb"). */}}
{{- define "relayweb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "web"). */}}
{{- define "relayweb.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The usual labels of one component: (dict "root" $ "component" "web"). */}}
{{- define "relayweb.labels" -}}
{{ include "relayweb.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: relayweb
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "relayweb.secretName" -}}
{{- .Values.existingSecret | default (include "relayweb.fullname" .) -}}
{{- end -}}

{{- define "relayweb.gatewayUrl" -}}
{{- .Values.relay.gatewayUrl | default (printf "http://ambassador.%s.svc.cluster.local" .Values.relay.gatewayNamespace) -}}
{{- end -}}

{{- define "relayweb.ambassadorAdminUrl" -}}
{{- .Values.relay.ambassadorAdminUrl | default (printf "http://ambassador-admin.%s.svc.cluster.local:8877" .Values.relay.gatewayNamespace) -}}
{{- end -}}

{{/* Values a schema cannot judge alone; each failure says what to set. */}}
{{- define "relayweb.validate" -}}
{{- if not .Values.existingSecret -}}
{{- if not .Values.secretKey -}}
{{- fail "secretKey is required (a long random string: python -c 'import secrets; print(secrets.token_urlsafe(50))'), or set existingSecret to a Secret with SECRET_KEY, DATABASE_URL and REDIS_URL" -}}
{{- end -}}
{{- if lt (len .Values.secretKey) 50 -}}
{{- fail (printf "secretKey must be at least 50 characters long (got %d)" (len .Values.secretKey)) -}}
{{- end -}}
{{- if not .Values.database.url -}}
{{- fail "database.url is required: the external PostgreSQL as postgres://user:password@host:5432/relayweb (or set existingSecret)" -}}
{{- end -}}
{{- if not .Values.redis.url -}}
{{- fail "redis.url is required: the external Redis as redis://host:6379/0 (or set existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := .Values.extraEnv -}}
{{- if has $name (list "SECRET_KEY" "DATABASE_URL" "REDIS_URL" "SECRET_KEY_FILE" "DATABASE_URL_FILE" "REDIS_URL_FILE") -}}
{{- fail (printf "extraEnv.%s: secrets do not go in the ConfigMap; use secretKey, database.url, redis.url or existingSecret" $name) -}}
{{- end -}}
{{- if has $name (list "KUBECONFIG" "RELAY_KUBECONFIG" "DEBUG") -}}
{{- fail (printf "extraEnv.%s must not be set on a cluster (relayweb uses its in-cluster ServiceAccount, and DEBUG is for development only)" $name) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.web.autoscaling.enabled (lt (int .Values.web.autoscaling.maxReplicas) (int .Values.web.autoscaling.minReplicas)) -}}
{{- fail (printf "web.autoscaling.maxReplicas (%v) must not be below web.autoscaling.minReplicas (%v)" .Values.web.autoscaling.maxReplicas .Values.web.autoscaling.minReplicas) -}}
{{- end -}}
{{- if and .Values.ingress.enabled .Values.ingress.tls.enabled (not .Values.ingress.tls.secretName) -}}
{{- fail "ingress.tls.secretName is required when ingress.tls.enabled is true" -}}
{{- end -}}
{{- end -}}

{{/* Non-secret settings (README.md, "Settings"): the ConfigMap's data. */}}
{{- define "relayweb.configData" -}}
{{- $hosts := concat (list .Values.host) (compact (list .Values.ingress.hooksHost)) .Values.extraAllowedHosts | uniq -}}
SITE_URL: {{ printf "https://%s" .Values.host | quote }}
RELAY_HOOKS_URL: {{ with .Values.ingress.hooksHost }}{{ printf "https://%s" . | quote }}{{ else }}""{{ end }}
RELAY_TRUSTED_PROXIES: {{ .Values.relay.trustedProxies | quote }}
ALLOWED_HOSTS: {{ join "," $hosts | quote }}
CSRF_TRUSTED_ORIGINS: {{ printf "https://%s" .Values.host | quote }}
LOG_LEVEL: {{ .Values.logLevel | quote }}
DB_CONN_MAX_AGE: {{ .Values.database.connMaxAge | quote }}
RELAY_NAMESPACE_PREFIX: {{ .Values.relay.namespacePrefix | quote }}
RELAY_AMBASSADOR_ID: {{ .Values.relay.ambassadorId | quote }}
RELAY_GATEWAY_NAMESPACE: {{ .Values.relay.gatewayNamespace | quote }}
RELAY_KNATIVE_NAMESPACE: {{ .Values.relay.knativeNamespace | quote }}
RELAY_GATEWAY_URL: {{ include "relayweb.gatewayUrl" . | quote }}
RELAY_AMBASSADOR_ADMIN_URL: {{ include "relayweb.ambassadorAdminUrl" . | quote }}
RELAY_KUBE_TIMEOUT: {{ .Values.relay.kubeTimeout | quote }}
RELAY_GATEWAY_ROUTE_TIMEOUT: {{ .Values.relay.gatewayRouteTimeout | quote }}
RELAY_LEADER_LEASE_NAMESPACE: {{ .Release.Namespace | quote }}
RELAY_CLIENT_TIMEOUT: {{ .Values.web.server.clientTimeout | quote }}
RELAY_CLIENT_MIN_RATE: {{ .Values.web.server.clientMinRate | quote }}
{{- range $name, $value := .Values.extraEnv }}
{{ $name }}: {{ toString $value | quote }}
{{- end }}
{{- end -}}

{{- define "relayweb.secretData" -}}
SECRET_KEY: {{ .Values.secretKey | b64enc | quote }}
DATABASE_URL: {{ .Values.database.url | b64enc | quote }}
REDIS_URL: {{ .Values.redis.url | b64enc | quote }}
{{- end -}}

{{/*
The pod spec every process shares: one image, settings from the ConfigMap, secrets as files
(SECRET_KEY_FILE, DATABASE_URL_FILE, REDIS_URL_FILE), non-root, read-only root filesystem.
(dict "root" $ "component" "web" "command" (list …) "resources" … "configMap" name "secret" name
      "serviceAccount" true|false "container" (extra container YAML))
*/}}
{{- define "relayweb.podSpec" -}}
{{- $root := .root -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .serviceAccount }}
serviceAccountName: {{ include "relayweb.fullname" $root }}
automountServiceAccountToken: true
{{- else }}
automountServiceAccountToken: false
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: {{ .component }}
    image: {{ printf "%s:%s" $root.Values.image.repository $root.Values.image.tag | quote }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command:
      {{- toYaml .command | nindent 6 }}
    envFrom:
      - configMapRef:
          name: {{ .configMap }}
    env:
      - name: SECRET_KEY_FILE
        value: /etc/relayweb/secrets/SECRET_KEY
      - name: DATABASE_URL_FILE
        value: /etc/relayweb/secrets/DATABASE_URL
      - name: REDIS_URL_FILE
        value: /etc/relayweb/secrets/REDIS_URL
    {{- with .container }}
    {{- . | nindent 4 }}
    {{- end }}
    volumeMounts:
      - name: secrets
        mountPath: /etc/relayweb/secrets
        readOnly: true
      - name: tmp
        mountPath: /tmp
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
    {{- with .resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
volumes:
  - name: secrets
    secret:
      secretName: {{ .secret }}
      defaultMode: 288  # 0440: readable by the pod's fsGroup
      items:
        - {key: SECRET_KEY, path: SECRET_KEY}
        - {key: DATABASE_URL, path: DATABASE_URL}
        - {key: REDIS_URL, path: REDIS_URL}
  - name: tmp
    emptyDir: {}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod metadata: labels, and checksums that roll the pods when settings or secrets change. */}}
{{- define "relayweb.podMetadata" -}}
labels:
  {{- include "relayweb.labels" . | nindent 2 }}
annotations:
  checksum/config: {{ include "relayweb.configData" .root | sha256sum }}
  {{- if not .root.Values.existingSecret }}
  checksum/secret: {{ include "relayweb.secretData" .root | sha256sum }}
  {{- end }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
