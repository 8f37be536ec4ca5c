// go-hello: greets params.name with the GREETING config, says whether the HELLO_API_TOKEN
// secret is set (never its value), logs JSON lines and emits a follow-up event.
// Exits 2 on bad input, 1 when the follow-up event is refused.
package main

import (
	"context"
	"os"
	"strings"

	"k8x.local/sdk/k8x"
)

func main() { os.Exit(run()) }

func run() int {
	var params struct {
		Name *string `json:"name"`
	}
	err := k8x.Params(&params)
	if err != nil || params.Name == nil || len(strings.TrimSpace(*params.Name)) < 1 || len(strings.TrimSpace(*params.Name)) > 100 {
		msg := `params must be an object with "name": a string of 1-100 chars`
		if err != nil {
			msg += ": " + err.Error()
		}
		k8x.Log("bad input", map[string]any{"level": "error", "error": msg, "params": os.Getenv("K8X_PARAMS")})
		return 2
	}
	name := strings.TrimSpace(*params.Name)
	greeting := k8x.Config("GREETING", "Hello") + ", " + name + k8x.Config("PUNCTUATION", "!")
	_, secretSet := k8x.Secret("HELLO_API_TOKEN")
	run := k8x.Current()
	k8x.Log("greeting", map[string]any{
		"greeting": greeting, "secret_set": secretSet, "trigger": run.Trigger, "correlation_id": run.CorrelationID,
	})
	if os.Getenv("K8X_EVENTS_URL") == "" {
		k8x.Log("K8X_EVENTS_URL is not set: no follow-up event (running outside K8X?)", map[string]any{"level": "warn"})
		return 0
	}
	answer, err := k8x.Send(context.Background(), "com.example.hello.greeted",
		map[string]any{"name": name, "greeting": greeting, "by": "go"})
	if err != nil {
		k8x.Log("follow-up event refused", map[string]any{"level": "error", "error": err.Error()})
		return 1
	}
	k8x.Log("follow-up event sent", map[string]any{"type": "com.example.hello.greeted", "event_id": answer["id"]})
	return 0
}
