{{/* Full name of the release's objects: the release name unless overridden. */}}
{{- define "k8x.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "k8x.labels" -}}
app.kubernetes.io/name: k8x
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: include "k8x.selector" (list . "web") */}}
{{- define "k8x.selector" -}}
app.kubernetes.io/name: k8x
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "k8x.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "k8x.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "k8x.secretName" -}}
{{- default (printf "%s-secrets" (include "k8x.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "k8x.image" -}}
{{- if not .Values.image.tag -}}
{{- fail "image.tag is required: the tag deploy/image/build.sh printed (localhost:5000/k8x/k8x:<tag>)" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/* The prefix of the environment variables Kubernetes gives pods for a
     Service (<NAME>_SERVICE_HOST): the local cluster has no DNS, so the pods
     reach the web and Redis Services by these. */}}
{{- define "k8x.svcEnv" -}}
{{- . | upper | replace "-" "_" -}}
{{- end -}}

{{- define "k8x.webService" -}}{{ include "k8x.fullname" . }}-web{{- end -}}
{{- define "k8x.redisService" -}}{{ include "k8x.fullname" . }}-redis{{- end -}}

{{/* Environment of every K8X container (Secret keys come by envFrom). The
     $(VAR) references are expanded by the kubelet, in order. */}}
{{- define "k8x.env" -}}
{{- $web := include "k8x.svcEnv" (include "k8x.webService" .) -}}
- name: K8X_POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
- name: K8X_HOST_IP
  valueFrom: {fieldRef: {fieldPath: status.hostIP}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: K8X_EVENTS_TOPIC
  value: {{ .Values.kafka.eventsTopic | quote }}
- name: K8X_DLQ_TOPIC
  value: {{ .Values.kafka.dlqTopic | quote }}
- name: K8X_HUB_GROUP
  value: {{ .Values.kafka.hubGroup | quote }}
- name: K8X_QUEUE
  value: {{ .Values.queue | quote }}
- name: K8X_NAMESPACE
  value: {{ .Values.projectNamespacePrefix | quote }}
- name: REDIS_URL
{{- if .Values.redis.enabled }}
  value: {{ printf "redis://$(%s_SERVICE_HOST):$(%s_SERVICE_PORT)/0" (include "k8x.svcEnv" (include "k8x.redisService" .)) (include "k8x.svcEnv" (include "k8x.redisService" .)) | quote }}
{{- else }}
  value: {{ required "redis.url is required when redis.enabled is false" .Values.redis.url | quote }}
{{- end }}
- name: K8X_EVENTS_URL
  value: {{ default (printf "http://$(%s_SERVICE_HOST):$(%s_SERVICE_PORT)/api/events" $web $web) .Values.eventsUrl | quote }}
- name: ALLOWED_HOSTS
  value: {{ join "," (concat (list "$(K8X_POD_IP)" "$(K8X_HOST_IP)" (printf "$(%s_SERVICE_HOST)" $web) "127.0.0.1" "localhost") .Values.allowedHosts) | quote }}
- name: KUBECONFIG
  value: ""
- name: K8X_STATE_DIR
  value: /tmp/k8x-state
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "k8x.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{ toYaml . | nindent 2 }}
{{- end }}
securityContext: {{ toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{ toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
