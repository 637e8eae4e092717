{{/* Object name prefix: RELEASE-tokenwatt, or RELEASE when it holds the chart name. */}}
{{- define "tokenwatt.fullname" -}}
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

{{- define "tokenwatt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "tokenwatt.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "tokenwatt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of a component: include "tokenwatt.selectorLabels" (list . "loadgen"). */}}
{{- define "tokenwatt.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "tokenwatt.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "tokenwatt.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/* The run id: loadgen.runId, else the release name. */}}
{{- define "tokenwatt.runId" -}}
{{- default .Release.Name .Values.loadgen.runId -}}
{{- end -}}

{{/*
The shards' common start (--start-at), "" for none: loadgen.startAt, else
for more than one shard `helm install`'s time plus loadgen.startDelay, in
UTC RFC 3339.
*/}}
{{- define "tokenwatt.startAt" -}}
{{- $l := .Values.loadgen -}}
{{- if $l.startAt -}}
{{- $l.startAt -}}
{{- else if gt (int $l.shards) 1 -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(h|m|s|ms))+$" (toString $l.startDelay)) -}}
{{- fail (printf "loadgen.startDelay %q is not a duration such as 90s or 2m" (toString $l.startDelay)) -}}
{{- end -}}
{{- dateInZone "2006-01-02T15:04:05Z07:00" (now | dateModify (printf "+%s" $l.startDelay)) "UTC" -}}
{{- end -}}
{{- end -}}

{{/* The name of the results PersistentVolumeClaim. */}}
{{- define "tokenwatt.resultsClaim" -}}
{{- default (printf "%s-results" (include "tokenwatt.fullname" .)) .Values.loadgen.results.pvc.existingClaim -}}
{{- end -}}

{{/*
The loadgen pod template's spec, shared by the Job and the soak
Deployment: include "tokenwatt.loadgenPodSpec" (list . SHARD_ARGS OUT RESTART).
*/}}
{{- define "tokenwatt.loadgenPodSpec" -}}
{{- $ := index . 0 -}}
{{- $l := $.Values.loadgen -}}
{{- $shardArgs := index . 1 -}}
{{- $out := index . 2 -}}
restartPolicy: {{ index . 3 }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $l.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $l.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $l.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $l.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
# A soak's Ctrl-C: in-flight requests get --grace (30 s) to finish.
terminationGracePeriodSeconds: 45
containers:
  - name: loadgen
    image: {{ include "tokenwatt.image" $ | quote }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    args:
      - run
      - {{ printf "--run-id=%s" (include "tokenwatt.runId" $) | quote }}
      {{- if $l.scenarioYAML }}
      - --scenario=/etc/tokenwatt/scenario.yaml
      {{- else }}
      - {{ printf "--scenario=%s" $l.scenario | quote }}
      {{- end }}
      - {{ printf "--endpoint=%s" $l.endpoint | quote }}
      {{- with $l.model }}
      - {{ printf "--model=%s" . | quote }}
      {{- end }}
      {{- range $shardArgs }}
      - {{ . | quote }}
      {{- end }}
      - {{ printf "--out=%s" $out | quote }}
      - {{ printf "--metrics-addr=:%v" $l.metricsPort | quote }}
      - {{ printf "--linger=%s" $l.linger | quote }}
      - {{ printf "--energy=%s" $l.energy | quote }}
      {{- with $l.gpuSelector }}
      - {{ printf "--gpu-selector=%s" . | quote }}
      {{- end }}
      {{- if $l.push.urlSecret.name }}
      - --push-url=$(TOKENWATT_PUSH_URL)
      {{- else if $l.push.url }}
      - {{ printf "--push-url=%s" $l.push.url | quote }}
      {{- end }}
      {{- if or $l.push.url $l.push.urlSecret.name }}
      - {{ printf "--push-interval=%s" $l.push.interval | quote }}
      {{- end }}
      {{- range $l.args }}
      - {{ . | quote }}
      {{- end }}
    env:
      # The GPUs' hostname label (--hostname defaults to it) and the
      # caches of hf:// datasets and tokenizers, on the writable /tmp.
      - name: NODE_NAME
        valueFrom:
          fieldRef:
            fieldPath: spec.nodeName
      - name: XDG_CACHE_HOME
        value: /tmp/cache
      {{- if $l.apiKeySecret.name }}
      - name: OPENAI_API_KEY
        valueFrom:
          secretKeyRef:
            name: {{ $l.apiKeySecret.name }}
            key: {{ required "loadgen.apiKeySecret.key is required with loadgen.apiKeySecret.name" $l.apiKeySecret.key }}
      {{- end }}
      {{- if $l.push.urlSecret.name }}
      - name: TOKENWATT_PUSH_URL
        valueFrom:
          secretKeyRef:
            name: {{ $l.push.urlSecret.name }}
            key: {{ required "loadgen.push.urlSecret.key is required with loadgen.push.urlSecret.name" $l.push.urlSecret.key }}
      {{- end }}
    ports:
      - name: metrics
        containerPort: {{ $l.metricsPort }}
        protocol: TCP
    {{- with $l.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $l.securityContext }}
    securityContext:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - name: results
        mountPath: /results
      - name: tmp
        mountPath: /tmp
      {{- if $l.scenarioYAML }}
      - name: scenario
        mountPath: /etc/tokenwatt
        readOnly: true
      {{- end }}
volumes:
  - name: results
    {{- if eq $l.results.volume "pvc" }}
    persistentVolumeClaim:
      claimName: {{ include "tokenwatt.resultsClaim" $ }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  - name: tmp
    emptyDir: {}
  {{- if $l.scenarioYAML }}
  - name: scenario
    configMap:
      name: {{ include "tokenwatt.fullname" $ }}-scenario
  {{- end }}
{{- end -}}
