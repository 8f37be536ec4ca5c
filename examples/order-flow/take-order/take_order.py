"""take-order, step 1 of the order flow: checks a com.example.order.created event,
totals it and emits com.example.order.accepted (same correlation id), which
triggers ship-order. Exits 2 on a bad order."""

import sys
from typing import Any

from k8x_sdk import EventSendError, context


def order_check(order: Any, *, max_items: int) -> str | None:
    """The first problem with ``order``, or None."""
    if not isinstance(order, dict):
        return "the event data must be a JSON object"
    if not isinstance(order.get("order_id"), str) or not order["order_id"]:
        return "order_id must be a non-empty string"
    items = order.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= max_items:
        return f"items must be a list of 1-{max_items} items"
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
            return f"items[{i}].sku must be a string"
        if not isinstance(item.get("qty"), int) or item["qty"] < 1:
            return f"items[{i}].qty must be a positive integer"
        if not isinstance(item.get("price"), int | float) or item["price"] < 0:
            return f"items[{i}].price must be a number >= 0"
    return None


def main() -> int:
    order = context.params
    problem = order_check(order, max_items=int(context.config.get("MAX_ITEMS", "50")))
    if problem:
        context.log("order refused", level="error", error=problem)
        return 2
    total = round(sum(item["qty"] * item["price"] for item in order["items"]), 2)
    currency = context.config.get("CURRENCY", "EUR")
    context.log("order accepted", order_id=order["order_id"], total=total, currency=currency)
    accepted = {"order_id": order["order_id"], "total": total, "currency": currency, "items": len(order["items"])}
    try:
        answer = context.events.send("com.example.order.accepted", accepted, subject=order["order_id"])
    except EventSendError as exc:
        context.log("follow-up event refused", level="error", status=exc.status, error=str(exc))
        return 1
    context.log("follow-up event sent", type="com.example.order.accepted", correlation_id=answer.get("correlation_id"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
