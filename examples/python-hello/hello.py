"""python-hello: greets params.name with the GREETING config, says whether the
HELLO_API_TOKEN secret is set (never its value), logs JSON lines and emits a
follow-up event. Exits 2 on bad input, 1 when the follow-up event is refused."""

import os
import sys

from k8x_sdk import EventSendError, context


def main() -> int:
    params = context.params
    name = params.get("name") if isinstance(params, dict) else None
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        context.log(
            "bad input",
            level="error",
            error='params must be an object with "name": a string of 1-100 chars',
            params=params,
        )
        return 2
    greeting = f"{context.config.get('GREETING', 'Hello')}, {name.strip()}{context.config.get('PUNCTUATION', '!')}"
    context.log(
        "greeting",
        greeting=greeting,
        secret_set=bool(context.secrets.get("HELLO_API_TOKEN")),
        trigger=context.trigger,
        correlation_id=context.correlation_id,
    )
    if not os.environ.get("K8X_EVENTS_URL"):
        context.log("K8X_EVENTS_URL is not set: no follow-up event (running outside K8X?)", level="warn")
        return 0
    try:
        answer = context.events.send("com.example.hello.greeted", {"name": name, "greeting": greeting, "by": "python"})
    except EventSendError as exc:
        context.log("follow-up event refused", level="error", status=exc.status, error=str(exc))
        return 1
    context.log("follow-up event sent", type="com.example.hello.greeted", event_id=answer.get("id"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
