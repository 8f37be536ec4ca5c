#!/bin/sh
# shell-hello: greets params.name with the GREETING config, says whether the HELLO_API_TOKEN
# secret is set (never its value), logs JSON lines and emits a follow-up event.
# Exits 2 on bad input, 1 when the follow-up event is refused.
. /app/k8x.sh

name="$(k8x_param name)"
if [ -z "$name" ] || [ "${#name}" -gt 100 ]; then
  k8x_log error "bad input" "\"error\":\"params must be an object with \\\"name\\\": a string of 1-100 chars\",\"params\":${K8X_PARAMS:-null}"
  exit 2
fi
greeting="$(k8x_config GREETING Hello), $name$(k8x_config PUNCTUATION '!')"
if k8x_secret_set HELLO_API_TOKEN; then secret_set=true; else secret_set=false; fi
k8x_log info greeting "\"greeting\":$(k8x_json_str "$greeting"),\"secret_set\":$secret_set,\"trigger\":$(k8x_json_str "${K8X_TRIGGER-}"),\"correlation_id\":$(k8x_json_str "${K8X_CORRELATION_ID-}")"

if [ -z "${K8X_EVENTS_URL-}" ]; then
  k8x_log warn "K8X_EVENTS_URL is not set: no follow-up event (running outside K8X?)"
  exit 0
fi
if ! answer="$(k8x_send com.example.hello.greeted "{\"name\":$(k8x_json_str "$name"),\"greeting\":$(k8x_json_str "$greeting"),\"by\":\"shell\"}")"; then
  k8x_log error "follow-up event refused"
  exit 1
fi
k8x_log info "follow-up event sent" "\"type\":\"com.example.hello.greeted\",\"answer\":$answer"
