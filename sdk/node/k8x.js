// K8X helper for Node.js services (no dependencies, Node 18+): thin reads of the
// container contract. Plain environment variables work just as well.
//
//   const k8x = require('./k8x');
//   k8x.params()              // the event's data, or the manual-run form values
//   k8x.config('GREETING')    // a config entry (an environment variable)
//   k8x.secret('API_TOKEN')   // a secret entry (an environment variable from a Kubernetes Secret)
//   k8x.event()               // the whole CloudEvent; read from K8X_EVENT_FILE when large
//   k8x.run()                 // {id, service, project, trigger, correlationId}
//   await k8x.send('com.acme.order.shipped', {id: 7})  // follow-up event, same correlation id
//   k8x.log('shipped', {order: 7})                      // one JSON log line
'use strict';

const fs = require('node:fs');
const crypto = require('node:crypto');

class EventSendError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'EventSendError';
    this.status = status;
  }
}

function event(env = process.env) {
  if (env.K8X_EVENT_FILE) return JSON.parse(fs.readFileSync(env.K8X_EVENT_FILE, 'utf8'));
  return env.K8X_EVENT ? JSON.parse(env.K8X_EVENT) : null;
}

function params(env = process.env) {
  if (env.K8X_PARAMS !== undefined) return JSON.parse(env.K8X_PARAMS);
  const ev = event(env);
  return ev ? ev.data : undefined;
}

// Configs and secrets are both plain environment variables; K8X_* names are the contract's own.
function config(key, fallback, env = process.env) {
  if (key.startsWith('K8X_')) throw new Error(`${key} is a K8X contract variable, not a config`);
  return env[key] !== undefined ? env[key] : fallback;
}

function secret(key, env = process.env) {
  return config(key, undefined, env);
}

function run(env = process.env) {
  return {
    id: env.K8X_RUN_ID || '',
    service: env.K8X_SERVICE || '',
    project: env.K8X_PROJECT || '',
    trigger: env.K8X_TRIGGER || '',
    correlationId: env.K8X_CORRELATION_ID || '',
  };
}

// POST one structured CloudEvent to K8X_EVENTS_URL with the run's token; resolves to
// K8X's answer ({id, correlation_id}), rejects with EventSendError.
async function send(type, data, { source, subject, timeoutMs = 10000, env = process.env } = {}) {
  const url = env.K8X_EVENTS_URL;
  if (!url || !env.K8X_RUN_TOKEN) throw new EventSendError('K8X_EVENTS_URL and K8X_RUN_TOKEN must be set');
  const ce = {
    specversion: '1.0',
    id: crypto.randomUUID(),
    type,
    source: source || `k8x://${env.K8X_PROJECT || ''}/${env.K8X_SERVICE || ''}`,
    datacontenttype: 'application/json',
    data: data === undefined ? null : data,
  };
  if (env.K8X_CORRELATION_ID) ce.correlationid = env.K8X_CORRELATION_ID;
  if (subject) ce.subject = subject;
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/cloudevents+json',
        Authorization: `Bearer ${env.K8X_RUN_TOKEN}`,
      },
      body: JSON.stringify(ce),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new EventSendError(`K8X event bridge unreachable at ${url}: ${err.message}`);
  }
  const text = await response.text();
  if (!response.ok) throw new EventSendError(text, response.status);
  return text ? JSON.parse(text) : {};
}

function log(message, fields = {}, { level = 'info', env = process.env, out = process.stdout } = {}) {
  out.write(JSON.stringify({ level, msg: message, run_id: env.K8X_RUN_ID || '', ...fields }) + '\n');
}

module.exports = { EventSendError, event, params, config, secret, run, send, log };
