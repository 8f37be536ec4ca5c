'use strict';
// Run with `node --test sdk/node/`. The follow-up event goes to a real HTTP server.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const k8x = require('./k8x');

const EVENT = { specversion: '1.0', id: 'e1', type: 'com.acme.order.created', source: '/shop', data: { amount: 5 } };

test('params come from K8X_PARAMS, else from the event data', () => {
  assert.deepEqual(k8x.params({ K8X_PARAMS: '{"name":"Ada"}' }), { name: 'Ada' });
  assert.deepEqual(k8x.params({ K8X_EVENT: JSON.stringify(EVENT) }), { amount: 5 });
  assert.equal(k8x.params({}), undefined);
});

test('a large event is read from K8X_EVENT_FILE', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'k8x-')), 'event.json');
  fs.writeFileSync(file, JSON.stringify(EVENT));
  assert.equal(k8x.event({ K8X_EVENT_FILE: file, K8X_EVENT: '{}' }).type, 'com.acme.order.created');
});

test('configs and secrets are environment variables, contract variables are not', () => {
  const env = { GREETING: 'hi', API_TOKEN: 't', K8X_RUN_ID: '7' };
  assert.equal(k8x.config('GREETING', 'x', env), 'hi');
  assert.equal(k8x.config('MISSING', 'fallback', env), 'fallback');
  assert.equal(k8x.secret('API_TOKEN', env), 't');
  assert.throws(() => k8x.config('K8X_RUN_ID', undefined, env), /contract variable/);
  assert.deepEqual(k8x.run({ K8X_RUN_ID: '7', K8X_CORRELATION_ID: 'c' }).correlationId, 'c');
});

test('log prints one JSON line with the run id', () => {
  let written = '';
  k8x.log('hello', { n: 1 }, { env: { K8X_RUN_ID: 'r1' }, out: { write: (s) => { written += s; } } });
  assert.deepEqual(JSON.parse(written), { level: 'info', msg: 'hello', run_id: 'r1', n: 1 });
  assert.ok(written.endsWith('\n'));
});

function server(status, answer) {
  const received = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(body), url: req.url });
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ srv, received })));
}

test('send posts a structured CloudEvent with the run token and correlation id', async () => {
  const { srv, received } = await server(202, { id: 'new', correlation_id: 'c-1' });
  try {
    const env = {
      K8X_EVENTS_URL: `http://127.0.0.1:${srv.address().port}/api/events`,
      K8X_RUN_TOKEN: 'tok', K8X_CORRELATION_ID: 'c-1', K8X_PROJECT: 'demo', K8X_SERVICE: 'node-hello',
    };
    const answer = await k8x.send('com.acme.next', { n: 2 }, { env, subject: 's' });
    assert.deepEqual(answer, { id: 'new', correlation_id: 'c-1' });
    assert.equal(received.length, 1);
    const { headers, body, url } = received[0];
    assert.equal(url, '/api/events');
    assert.equal(headers.authorization, 'Bearer tok');
    assert.equal(headers['content-type'], 'application/cloudevents+json');
    assert.equal(body.type, 'com.acme.next');
    assert.equal(body.source, 'k8x://demo/node-hello');
    assert.equal(body.correlationid, 'c-1');
    assert.equal(body.subject, 's');
    assert.deepEqual(body.data, { n: 2 });
  } finally {
    srv.close();
  }
});

test('send rejects with K8X answer and status on refusal', async () => {
  const { srv } = await server(400, { error: 'type is missing', field: 'type' });
  try {
    const env = { K8X_EVENTS_URL: `http://127.0.0.1:${srv.address().port}/`, K8X_RUN_TOKEN: 'tok' };
    await assert.rejects(k8x.send('x', null, { env }), (err) => err.status === 400 && /type is missing/.test(err.message));
  } finally {
    srv.close();
  }
});

test('send without the contract variables fails clearly', async () => {
  await assert.rejects(k8x.send('x', null, { env: {} }), /K8X_EVENTS_URL and K8X_RUN_TOKEN/);
});
