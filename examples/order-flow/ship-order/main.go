// ship-order, step 2 of the order flow: triggered by com.example.order.accepted (emitted
// by take-order, same correlation id), it "ships" the order from the configured warehouse.
// Exits 2 on a bad event.
package main

import (
	"os"

	"k8x.local/sdk/k8x"
)

type accepted struct {
	OrderID  string  `json:"order_id"`
	Total    float64 `json:"total"`
	Currency string  `json:"currency"`
	Items    int     `json:"items"`
}

func main() {
	var order accepted
	if err := k8x.Params(&order); err != nil || order.OrderID == "" || order.Items < 1 {
		msg := "expected an accepted order: order_id and items >= 1"
		if err != nil {
			msg += ": " + err.Error()
		}
		k8x.Log("bad input", map[string]any{"level": "error", "error": msg})
		os.Exit(2)
	}
	run := k8x.Current()
	k8x.Log("order shipped", map[string]any{
		"order_id": order.OrderID, "total": order.Total, "currency": order.Currency,
		"warehouse": k8x.Config("WAREHOUSE", "main"), "correlation_id": run.CorrelationID,
	})
}
