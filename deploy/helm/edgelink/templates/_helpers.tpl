{{/* The release's full name, at most 63 characters. */}}
{{- define "edgelink.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "edgelink.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "edgelink.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "edgelink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "edgelink.tag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The selector of one component's pods: (dict "root" $ "component" "agent"). */}}
{{- define "edgelink.selector" -}}
app.kubernetes.io/name: {{ include "edgelink.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "edgelink.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "edgelink.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "edgelink.tag" .) -}}
{{- end -}}

{{- define "edgelink.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "edgelink.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A component's edgelink.yaml: its config with http.listen set to every
interface on its port, the rest of http kept. (dict "config" ... "port" ...)
*/}}
{{- define "edgelink.config" -}}
{{- $cfg := deepCopy .config -}}
{{- $http := deepCopy (default (dict) (get $cfg "http")) -}}
{{- $_ := set $http "listen" (printf "0.0.0.0:%d" (int .port)) -}}
{{- $_ := set $cfg "http" $http -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* http or https, as the component's http.tls says. (the component's values) */}}
{{- define "edgelink.scheme" -}}
{{- $http := default (dict) (get .config "http") -}}
{{- if get $http "tls" -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/*
One component's Deployment, Service and PodDisruptionBudget:
(dict "root" $ "component" "agent" "values" .Values.agent "args" (list "run" ...))
*/}}
{{- define "edgelink.component" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $name := printf "%s-%s" (include "edgelink.fullname" $root) .component | trunc 63 | trimSuffix "-" -}}
{{- $sel := include "edgelink.selector" (dict "root" $root "component" .component) -}}
{{- $config := include "edgelink.config" (dict "config" $v.config "port" $v.port) -}}
{{- $scheme := include "edgelink.scheme" $v -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "edgelink.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ $v.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- $sel | nindent 6 }}
  template:
    metadata:
      labels:
        {{- $sel | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # A changed configuration or secret rolls the pods.
        checksum/config: {{ $config | sha256sum }}
        {{- if $root.Values.secretEnv }}
        checksum/secret: {{ toYaml $root.Values.secretEnv | sha256sum }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "edgelink.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      # SIGTERM finishes or aborts the open transactions within 10 s.
      terminationGracePeriodSeconds: 30
      containers:
        - name: edgelink
          image: {{ include "edgelink.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ int $v.port }}
              protocol: TCP
          {{- if or $root.Values.secretEnv $root.Values.existingSecret $root.Values.envFrom }}
          envFrom:
            {{- if $root.Values.secretEnv }}
            - secretRef:
                name: {{ include "edgelink.fullname" $root }}
            {{- end }}
            {{- if $root.Values.existingSecret }}
            - secretRef:
                name: {{ $root.Values.existingSecret }}
            {{- end }}
            {{- with $root.Values.envFrom }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          {{- with $root.Values.env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          startupProbe:
            httpGet: {path: /healthz, port: http, scheme: {{ $scheme }}}
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: {path: /healthz, port: http, scheme: {{ $scheme }}}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 6
          # Ready once every link has connected to its clusters: a rollout
          # waits for the new agents before it stops the old ones.
          readinessProbe:
            httpGet: {path: /readyz, port: http, scheme: {{ $scheme }}}
            periodSeconds: 5
            timeoutSeconds: 5
            failureThreshold: 3
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: config
              mountPath: /etc/edgelink/edgelink.yaml
              subPath: edgelink.yaml
              readOnly: true
            - name: state
              mountPath: /var/lib/edgelink
            - name: tmp
              mountPath: /tmp
            {{- range $root.Values.secretMounts }}
            - name: secret-{{ .name }}
              mountPath: {{ .mountPath }}
              readOnly: true
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ $name }}
        - name: state
          emptyDir: {}
        - name: tmp
          emptyDir: {}
        {{- range $root.Values.secretMounts }}
        - name: secret-{{ .name }}
          secret:
            secretName: {{ .secretName }}
            defaultMode: 0440
        {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      affinity:
        {{- if $root.Values.affinity }}
        {{- toYaml $root.Values.affinity | nindent 8 }}
        {{- else }}
        # Replicas on different nodes where they can be: a node lost takes
        # one agent, and the others take its slots over.
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- $sel | nindent 20 }}
        {{- end }}
      {{- with $root.Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  labels:
    {{- include "edgelink.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
data:
  edgelink.yaml: |-
    {{- $config | nindent 4 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "edgelink.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  {{- with $v.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $v.service.type }}
  # Its metrics and status matter most while a link is down, when the pod
  # is not ready: the Service keeps it.
  publishNotReadyAddresses: true
  selector:
    {{- $sel | nindent 4 }}
  ports:
    - name: http
      port: {{ int $v.port }}
      targetPort: http
      protocol: TCP
{{- if $v.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "edgelink.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  maxUnavailable: {{ $v.podDisruptionBudget.maxUnavailable }}
  # An agent that is not ready (its cloud unreachable, say) never blocks a
  # node drain.
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- $sel | nindent 6 }}
{{- end }}
{{- if $root.Values.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $name }}
  labels:
    {{- include "edgelink.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $root.Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- $sel | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      scheme: {{ $scheme }}
      interval: {{ $root.Values.serviceMonitor.interval }}
      scrapeTimeout: {{ $root.Values.serviceMonitor.scrapeTimeout }}
      {{- with $root.Values.serviceMonitor.tokenSecret }}
      authorization:
        type: Bearer
        credentials:
          {{- toYaml . | nindent 10 }}
      {{- end }}
      {{- with $root.Values.serviceMonitor.tlsConfig }}
      tlsConfig:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end -}}
