{{/* The release's full name, at most 63 characters. */}}
{{- define "chartstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "chartstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of a component: call with (list $ "serve"). */}}
{{- define "chartstream.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "chartstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chartstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "chartstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The secret settings a component reads, as a dict of setting name to Secret
key: call with (list $ "DATABASE_URL" "REDIS_URL"); the optional keys are
added for serve and work (anything but the admin URL).
*/}}
{{- define "chartstream.secretKeys" -}}
{{- $root := index . 0 -}}
{{- $out := dict -}}
{{- range $name := rest . -}}
{{- $key := required (printf "secrets.keys.%s is required" $name) (get $root.Values.secrets.keys $name) -}}
{{- $_ := set $out $name $key -}}
{{- end -}}
{{- if not (has "DATABASE_ADMIN_URL" (rest .)) -}}
{{- range $name, $key := $root.Values.secrets.optionalKeys -}}
{{- $_ := set $out $name $key -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Environment of a container: the secret settings as X_FILE, config, extras. Call with (list $ secretKeysYAML). */}}
{{- define "chartstream.env" -}}
{{- $root := index . 0 -}}
{{- $secrets := fromYaml (index . 1) -}}
{{- range $name, $_ := $secrets }}
- name: {{ $name }}_FILE
  value: /var/run/chartstream/secrets/{{ $name }}
{{- end }}
{{- range $name, $value := $root.Values.config }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- if $root.Values.metrics.enabled }}
- name: METRICS_ADDR
  value: "0.0.0.0:{{ $root.Values.metrics.port }}"
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The Secret volume of a component's secret settings. Call with (list $ secretKeysYAML). */}}
{{- define "chartstream.secretsVolume" -}}
{{- $root := index . 0 -}}
- name: secrets
  secret:
    secretName: {{ required "secrets.existingSecret is required" $root.Values.secrets.existingSecret }}
    defaultMode: 0440
    items:
    {{- range $name, $key := fromYaml (index . 1) }}
      - key: {{ $key }}
        path: {{ $name }}
    {{- end }}
{{- end -}}

{{/*
The PHI key provider (phiKeys.provider): "local" or "aws-kms", anything
else fails the render.
*/}}
{{- define "chartstream.phiKeyProvider" -}}
{{- $p := .Values.phiKeys.provider -}}
{{- if not (has $p (list "local" "aws-kms")) -}}
{{- fail (printf "phiKeys.provider must be local or aws-kms, not %q" $p) -}}
{{- end -}}
{{- $p -}}
{{- end -}}

{{/* Whether the pods hold a local PHI master key ("true" or ""). */}}
{{- define "chartstream.localPHIKey" -}}
{{- if eq (include "chartstream.phiKeyProvider" .) "local" }}true{{ end -}}
{{- end -}}

{{/* Key material for serve and work: the signing keys, and the local PHI key's copy. */}}
{{- define "chartstream.keyVolumes" -}}
- name: key-source
  secret:
    secretName: {{ required "keyFiles.existingSecret is required" .Values.keyFiles.existingSecret }}
    defaultMode: 0440
{{- if include "chartstream.localPHIKey" . }}
- name: keys
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- end -}}

{{/* Copies the PHI master key into the memory volume, owned by the app user, mode 0400. */}}
{{- define "chartstream.keyCopy" -}}
- name: phi-key
  image: {{ .Values.keyFiles.copyImage }}
  imagePullPolicy: IfNotPresent
  command: ["install", "-m", "0400", "/var/run/chartstream/key-source/{{ required "keyFiles.phiMasterKey is required with phiKeys.provider local" .Values.keyFiles.phiMasterKey }}", "/var/run/chartstream/keys/phi-master.key"]
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {cpu: 100m, memory: 32Mi}
  volumeMounts:
    - name: key-source
      mountPath: /var/run/chartstream/key-source
      readOnly: true
    - name: keys
      mountPath: /var/run/chartstream/keys
{{- end -}}

{{/* The key settings of serve and work. */}}
{{- define "chartstream.keyEnv" -}}
{{- if include "chartstream.localPHIKey" . }}
- name: PHI_KEY_FILE
  value: /var/run/chartstream/keys/phi-master.key
{{- else }}
{{- $kms := .Values.phiKeys.awsKms | default dict }}
- name: PHI_KEY_PROVIDER
  value: aws-kms
{{- if and $kms.keyId $kms.keyAliasTemplate }}
{{- fail "phiKeys.awsKms: set keyId or keyAliasTemplate, not both" }}
{{- else if $kms.keyAliasTemplate }}
- name: AWS_KMS_KEY_ALIAS_TEMPLATE
  value: {{ $kms.keyAliasTemplate | quote }}
{{- else }}
- name: AWS_KMS_KEY_ID
  value: {{ required "phiKeys.awsKms.keyId (or keyAliasTemplate) is required with phiKeys.provider aws-kms" $kms.keyId | quote }}
{{- end }}
{{- with $kms.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with $kms.endpoint }}
- name: AWS_KMS_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: MESSAGE_SIGNING_KEY_FILE
  value: /var/run/chartstream/key-source/{{ .Values.keyFiles.messageSigningKey }}
{{- with .Values.keyFiles.messageVerifyKeys }}
- name: MESSAGE_VERIFY_KEY_FILES
  value: {{ $list := list }}{{ range . }}{{ $list = append $list (printf "/var/run/chartstream/key-source/%s" .) }}{{ end }}{{ join "," $list | quote }}
{{- end }}
- name: CHECKPOINT_SIGNING_KEY_FILE
  value: /var/run/chartstream/key-source/{{ .Values.keyFiles.checkpointSigningKey }}
- name: CHECKPOINT_VERIFY_KEY_FILES
  {{- if .Values.keyFiles.checkpointVerifyKeys }}
  value: {{ $list := list }}{{ range .Values.keyFiles.checkpointVerifyKeys }}{{ $list = append $list (printf "/var/run/chartstream/key-source/%s" .) }}{{ end }}{{ join "," $list | quote }}
  {{- else }}
  value: /var/run/chartstream/key-source/{{ .Values.keyFiles.checkpointSigningKey }}.pub
  {{- end }}
{{- end -}}

{{- define "chartstream.keyMounts" -}}
- name: key-source
  mountPath: /var/run/chartstream/key-source
  readOnly: true
{{- if include "chartstream.localPHIKey" . }}
- name: keys
  mountPath: /var/run/chartstream/keys
  readOnly: true
{{- end }}
{{- end -}}

{{/* The pod spec's head shared by serve and work: call with (list $ componentValues). */}}
{{- define "chartstream.podHead" -}}
{{- $root := index . 0 -}}
serviceAccountName: {{ include "chartstream.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ (index . 1).terminationGracePeriodSeconds }}
{{- if include "chartstream.localPHIKey" $root }}
initContainers:
  {{- include "chartstream.keyCopy" $root | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Mounts shared by serve and work. */}}
{{- define "chartstream.mounts" -}}
- name: secrets
  mountPath: /var/run/chartstream/secrets
  readOnly: true
{{ include "chartstream.keyMounts" . }}
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes shared by serve and work: call with (list $ secretKeysYAML). */}}
{{- define "chartstream.volumes" -}}
{{ include "chartstream.secretsVolume" . }}
{{ include "chartstream.keyVolumes" (index . 0) }}
- name: tmp
  emptyDir: {sizeLimit: 64Mi}
{{- with (index . 0).Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Node placement of a component: call with its values. */}}
{{- define "chartstream.placement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
