# K8X helper for shell services (POSIX sh: busybox, dash, bash). Source it:
#   . /opt/k8x/k8x.sh
#   name="$(k8x_param NAME world)"        # K8X_PARAM_NAME: a top-level scalar of the event's data
#   greeting="$(k8x_config GREETING hi)"  # a config entry (an environment variable)
#   k8x_secret_set API_TOKEN && echo set  # whether a secret is set (never print its value)
#   k8x_log info "hello" '"name":"Ada"'   # one JSON log line; extra fields are raw JSON members
#   k8x_send com.acme.next '{"n":2}'      # follow-up event (same correlation id); prints K8X's answer
# Plain environment variables work just as well: K8X_PARAMS holds the whole data as JSON.

# k8x_json_str STRING: STRING as a JSON string literal (other control characters are dropped).
k8x_json_str() {
  printf '%s' "$1" | tr -d '\000-\010\013-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' |
    awk 'BEGIN { ORS = ""; print "\"" } NR > 1 { print "\\n" } { print } END { print "\"" }'
}

# k8x_param NAME [DEFAULT]: the top-level scalar NAME of the event's data (K8X_PARAM_<NAME>).
k8x_param() {
  _k8x_var="K8X_PARAM_$(printf '%s' "$1" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9\n' '_')"
  eval "_k8x_val=\${$_k8x_var-}"
  if [ -n "$_k8x_val" ]; then printf '%s\n' "$_k8x_val"; else printf '%s\n' "${2-}"; fi
}

# k8x_config KEY [DEFAULT]: a config entry (an environment variable).
k8x_config() {
  case "$1" in K8X_*) echo "k8x_config: $1 is a K8X contract variable" >&2; return 2 ;; esac
  eval "_k8x_val=\${$1-}"
  if [ -n "$_k8x_val" ]; then printf '%s\n' "$_k8x_val"; else printf '%s\n' "${2-}"; fi
}

# k8x_secret_set KEY: exit status 0 when the secret KEY is set and not empty.
k8x_secret_set() {
  eval "_k8x_val=\${$1-}"
  [ -n "$_k8x_val" ]
}

# k8x_log LEVEL MESSAGE [RAW_JSON_MEMBERS]: one JSON line on stdout (the run's log).
k8x_log() {
  _k8x_extra="${3:+,$3}"
  printf '{"level":%s,"msg":%s,"run_id":%s%s}\n' "$(k8x_json_str "$1")" "$(k8x_json_str "$2")" \
    "$(k8x_json_str "${K8X_RUN_ID-}")" "$_k8x_extra"
}

# k8x_send TYPE [DATA_JSON]: POST a structured CloudEvent to K8X_EVENTS_URL with the run token.
k8x_send() {
  if [ -z "${K8X_EVENTS_URL-}" ] || [ -z "${K8X_RUN_TOKEN-}" ]; then
    echo "k8x_send: K8X_EVENTS_URL and K8X_RUN_TOKEN must be set" >&2; return 2
  fi
  _k8x_id="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  _k8x_body="{\"specversion\":\"1.0\",\"id\":\"$_k8x_id\",\"type\":$(k8x_json_str "$1")"
  _k8x_body="$_k8x_body,\"source\":$(k8x_json_str "k8x://${K8X_PROJECT-}/${K8X_SERVICE-}")"
  [ -n "${K8X_CORRELATION_ID-}" ] && _k8x_body="$_k8x_body,\"correlationid\":$(k8x_json_str "$K8X_CORRELATION_ID")"
  _k8x_body="$_k8x_body,\"datacontenttype\":\"application/json\",\"data\":${2:-null}}"
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 10 -X POST -H 'Content-Type: application/cloudevents+json' \
      -H "Authorization: Bearer $K8X_RUN_TOKEN" --data-binary "$_k8x_body" "$K8X_EVENTS_URL"
  else
    # No `wget -T`: busybox 1.35's wget crashes with it on a POST; timeout(1) bounds it instead.
    timeout 10 wget -q -O - --header 'Content-Type: application/cloudevents+json' \
      --header "Authorization: Bearer $K8X_RUN_TOKEN" --post-data "$_k8x_body" "$K8X_EVENTS_URL"
  fi
  _k8x_rc=$?
  [ $_k8x_rc -eq 0 ] || echo "k8x_send: K8X refused the event or could not be reached at $K8X_EVENTS_URL" >&2
  return $_k8x_rc
}
