// Package k8x is a thin helper for Go services run by K8X (standard library only): it reads
// the container contract and emits follow-up events. Plain environment variables work as well.
//
//	var p struct{ Name string `json:"name"` }
//	err := k8x.Params(&p)                     // the event's data, or the manual-run form values
//	greeting := k8x.Config("GREETING", "hi")  // a config entry (an environment variable)
//	answer, err := k8x.Send(ctx, "com.acme.order.shipped", map[string]any{"id": 7})
//	k8x.Log("shipped", map[string]any{"order": 7})
package k8x

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// Getenv (how the helper reads the environment) and Out (where Log writes: the
// run's log is the container's stdout) are variables so that tests can replace them.
var (
	Getenv           = os.Getenv
	Out    io.Writer = os.Stdout
)

// Run is the identity of a run; Current reads this run's from the contract variables.
type Run struct{ ID, Service, Project, Trigger, CorrelationID string }

func Current() Run {
	return Run{Getenv("K8X_RUN_ID"), Getenv("K8X_SERVICE"), Getenv("K8X_PROJECT"), Getenv("K8X_TRIGGER"), Getenv("K8X_CORRELATION_ID")}
}

// Event returns the whole CloudEvent (nil when there is none), from K8X_EVENT_FILE when set.
func Event() (map[string]any, error) {
	raw := []byte(Getenv("K8X_EVENT"))
	if path := Getenv("K8X_EVENT_FILE"); path != "" {
		var err error
		if raw, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	if len(raw) == 0 {
		return nil, nil
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("K8X_EVENT is not JSON: %w", err)
	}
	return ev, nil
}

// Params decodes K8X_PARAMS (the event's data) into v; it falls back to the event's data.
func Params(v any) error {
	raw := Getenv("K8X_PARAMS")
	if raw == "" {
		ev, err := Event()
		if err != nil || ev == nil {
			return err
		}
		b, _ := json.Marshal(ev["data"])
		raw = string(b)
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return fmt.Errorf("K8X_PARAMS does not fit: %w", err)
	}
	return nil
}

// Config returns a config entry (an environment variable), or fallback when unset.
func Config(key, fallback string) string {
	if strings.HasPrefix(key, "K8X_") {
		panic(key + " is a K8X contract variable, not a config")
	}
	if v, ok := Secret(key); ok {
		return v
	}
	return fallback
}

// Secret returns a secret entry and whether it is set. Never log the value.
func Secret(key string) (string, bool) { v := Getenv(key); return v, v != "" }

// SendError is K8X's refusal (Status > 0) or an unreachable bridge (Status 0).
type SendError struct {
	Status  int
	Message string
}

func (e *SendError) Error() string {
	return fmt.Sprintf("k8x send (status %d): %s", e.Status, e.Message)
}

// Send POSTs one structured CloudEvent to K8X_EVENTS_URL with K8X_RUN_TOKEN and this
// run's correlation id; it returns K8X's answer ({"id", "correlation_id"}).
func Send(ctx context.Context, eventType string, data any) (map[string]string, error) {
	url, token := Getenv("K8X_EVENTS_URL"), Getenv("K8X_RUN_TOKEN")
	if url == "" || token == "" {
		return nil, &SendError{Message: "K8X_EVENTS_URL and K8X_RUN_TOKEN must be set"}
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	ce := map[string]any{
		"specversion": "1.0", "id": fmt.Sprintf("%x", id), "type": eventType, "datacontenttype": "application/json",
		"source": fmt.Sprintf("k8x://%s/%s", Getenv("K8X_PROJECT"), Getenv("K8X_SERVICE")),
		"data":   data,
	}
	if cid := Getenv("K8X_CORRELATION_ID"); cid != "" {
		ce["correlationid"] = cid
	}
	body, err := json.Marshal(ce)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &SendError{Message: err.Error()}
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, &SendError{Message: fmt.Sprintf("K8X event bridge unreachable at %s: %v", url, err)}
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return nil, &SendError{Status: resp.StatusCode, Message: string(text)}
	}
	answer := map[string]string{}
	_ = json.Unmarshal(text, &answer)
	return answer, nil
}

// Log prints one structured (JSON) log line with the run id.
func Log(msg string, fields map[string]any) {
	line := map[string]any{"level": "info", "msg": msg, "run_id": Getenv("K8X_RUN_ID")}
	for k, v := range fields {
		line[k] = v
	}
	b, _ := json.Marshal(line)
	fmt.Fprintln(Out, string(b))
}
