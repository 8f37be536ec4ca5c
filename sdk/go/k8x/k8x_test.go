package k8x

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func withEnv(t *testing.T, env map[string]string) {
	t.Helper()
	old := Getenv
	Getenv = func(k string) string { return env[k] }
	t.Cleanup(func() { Getenv = old })
}

func TestParamsFromK8XParamsElseEventData(t *testing.T) {
	var p struct{ Name string }
	withEnv(t, map[string]string{"K8X_PARAMS": `{"name":"Ada"}`})
	if err := Params(&p); err != nil || p.Name != "Ada" {
		t.Fatalf("got %+v, %v", p, err)
	}
	withEnv(t, map[string]string{"K8X_EVENT": `{"type":"t","data":{"name":"Bo"}}`})
	if err := Params(&p); err != nil || p.Name != "Bo" {
		t.Fatalf("got %+v, %v", p, err)
	}
	withEnv(t, map[string]string{"K8X_PARAMS": `[1]`})
	if err := Params(&p); err == nil || !strings.Contains(err.Error(), "K8X_PARAMS") {
		t.Fatalf("a list into a struct must fail naming K8X_PARAMS, got %v", err)
	}
}

func TestEventFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(path, []byte(`{"type":"big"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	withEnv(t, map[string]string{"K8X_EVENT_FILE": path, "K8X_EVENT": `{"type":"small"}`})
	ev, err := Event()
	if err != nil || ev["type"] != "big" {
		t.Fatalf("got %v, %v", ev, err)
	}
}

func TestConfigSecretAndRun(t *testing.T) {
	withEnv(t, map[string]string{"GREETING": "hi", "API_TOKEN": "t", "K8X_RUN_ID": "7", "K8X_CORRELATION_ID": "c"})
	if Config("GREETING", "x") != "hi" || Config("MISSING", "fallback") != "fallback" {
		t.Fatal("config")
	}
	if v, ok := Secret("API_TOKEN"); !ok || v != "t" {
		t.Fatal("secret")
	}
	if _, ok := Secret("NOPE"); ok {
		t.Fatal("an unset secret must report false")
	}
	if r := Current(); r.ID != "7" || r.CorrelationID != "c" {
		t.Fatalf("run %+v", r)
	}
}

func TestLogPrintsOneJSONLine(t *testing.T) {
	withEnv(t, map[string]string{"K8X_RUN_ID": "r1"})
	var buf bytes.Buffer
	Out = &buf
	defer func() { Out = os.Stdout }()
	Log("hello", map[string]any{"n": 1})
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "hello" || line["run_id"] != "r1" || line["n"] != 1.0 {
		t.Fatalf("line %q: %v", buf.String(), err)
	}
}

func TestSendPostsACloudEventWithTokenAndCorrelation(t *testing.T) {
	var got map[string]any
	var auth, ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, ctype = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"new","correlation_id":"c-1"}`))
	}))
	defer srv.Close()
	withEnv(t, map[string]string{"K8X_EVENTS_URL": srv.URL, "K8X_RUN_TOKEN": "tok", "K8X_CORRELATION_ID": "c-1",
		"K8X_PROJECT": "demo", "K8X_SERVICE": "go-hello"})
	answer, err := Send(context.Background(), "com.acme.next", map[string]any{"n": 2})
	if err != nil || answer["correlation_id"] != "c-1" {
		t.Fatalf("answer %v, %v", answer, err)
	}
	if auth != "Bearer tok" || ctype != "application/cloudevents+json" {
		t.Fatalf("headers %q %q", auth, ctype)
	}
	if got["type"] != "com.acme.next" || got["correlationid"] != "c-1" || got["source"] != "k8x://demo/go-hello" {
		t.Fatalf("event %v", got)
	}
}

func TestSendReportsRefusalAndMissingContract(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"type is missing"}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	withEnv(t, map[string]string{"K8X_EVENTS_URL": srv.URL, "K8X_RUN_TOKEN": "tok"})
	_, err := Send(context.Background(), "x", nil)
	if se, ok := err.(*SendError); !ok || se.Status != 400 || !strings.Contains(se.Message, "type is missing") {
		t.Fatalf("err %v", err)
	}
	withEnv(t, map[string]string{})
	if _, err := Send(context.Background(), "x", nil); err == nil || !strings.Contains(err.Error(), "K8X_EVENTS_URL") {
		t.Fatalf("err %v", err)
	}
}
