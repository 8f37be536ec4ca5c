// node-hello: greets params.name with the GREETING config, says whether the HELLO_API_TOKEN
// secret is set (never its value), logs JSON lines and emits a follow-up event.
// Exits 2 on bad input, 1 when the follow-up event is refused.
'use strict';
const k8x = require('./k8x');

async function main() {
  const params = k8x.params();
  const name = params && typeof params === 'object' ? params.name : undefined;
  if (typeof name !== 'string' || name.trim().length < 1 || name.trim().length > 100) {
    k8x.log('bad input', { error: 'params must be an object with "name": a string of 1-100 chars', params }, { level: 'error' });
    return 2;
  }
  const greeting = `${k8x.config('GREETING', 'Hello')}, ${name.trim()}${k8x.config('PUNCTUATION', '!')}`;
  const run = k8x.run();
  k8x.log('greeting', {
    greeting,
    secret_set: Boolean(k8x.secret('HELLO_API_TOKEN')),
    trigger: run.trigger,
    correlation_id: run.correlationId,
  });
  if (!process.env.K8X_EVENTS_URL) {
    k8x.log('K8X_EVENTS_URL is not set: no follow-up event (running outside K8X?)', {}, { level: 'warn' });
    return 0;
  }
  try {
    const answer = await k8x.send('com.example.hello.greeted', { name, greeting, by: 'node' });
    k8x.log('follow-up event sent', { type: 'com.example.hello.greeted', event_id: answer.id });
  } catch (err) {
    k8x.log('follow-up event refused', { status: err.status, error: err.message }, { level: 'error' });
    return 1;
  }
  return 0;
}

main().then((code) => { process.exitCode = code; });
