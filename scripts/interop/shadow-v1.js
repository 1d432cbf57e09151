// Runs the unmodified AWS IoT Device SDK for JavaScript v1 (thingShadow)
// against a pinshadow local cloud over mutual TLS, the way a device and a
// cloud application would use AWS IoT, and checks what AWS would answer.
//
// Environment: HOST, PORT, CERTS (a directory made by `agent certs`), THING.
// Prints one JSON line per step and "INTEROP OK" at the end; exits non-zero
// with the failing step otherwise.
'use strict';
const awsIot = require('aws-iot-device-sdk');
const path = require('path');

const certs = process.env.CERTS;
const thing = process.env.THING || 'interop1';
const opts = (clientId) => ({
  keyPath: path.join(certs, 'device.key'),
  certPath: path.join(certs, 'device.crt'),
  caPath: path.join(certs, 'ca.crt'),
  clientId,
  host: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT),
  protocol: 'mqtts',
  keepalive: 30,
  baseReconnectTimeMs: 250,
});

const deadline = setTimeout(() => fail('overall timeout (20 s)'), 20000);
function fail(msg) {
  console.log(JSON.stringify({ step: 'fail', msg }));
  process.exit(1);
}
function log(step, data) { console.log(JSON.stringify({ step, ...data })); }
function expect(cond, msg) { if (!cond) fail(msg); }

const device = awsIot.thingShadow(opts(thing));
const app = awsIot.thingShadow(opts(thing + '-app'));

// Waits for the 'status' event answering clientToken on client c.
function status(c, token) {
  return new Promise((resolve) => {
    const onStatus = (name, stat, tok, doc) => {
      if (tok !== token) return;
      c.removeListener('status', onStatus);
      resolve({ stat, doc });
    };
    c.on('status', onStatus);
  });
}
function once(c, ev) { return new Promise((resolve) => c.once(ev, (...a) => resolve(a))); }
function register(c) {
  return new Promise((resolve) => c.register(thing, { persistentSubscribe: true }, () => resolve()));
}

(async () => {
  await Promise.all([once(device, 'connect'), once(app, 'connect')]);
  await Promise.all([register(device), register(app)]);
  log('connected', {});

  // 1. The device reports; the service accepts and creates version 1+.
  let tok = device.update(thing, { state: { reported: { temp: 21.5, led: 'off' } } });
  expect(tok !== null, 'device.update returned null');
  let r = await status(device, tok);
  expect(r.stat === 'accepted', 'report not accepted: ' + JSON.stringify(r));
  expect(r.doc.state.reported.temp === 21.5, 'accepted state differs');
  expect(typeof r.doc.metadata.reported.temp.timestamp === 'number', 'no metadata timestamp');
  const v1 = r.doc.version;
  log('reported', { version: v1 });

  // 2. The application sets desired; the device gets a delta.
  const delta = once(device, 'delta');
  tok = app.update(thing, { state: { desired: { led: 'on' } } });
  r = await status(app, tok);
  expect(r.stat === 'accepted', 'desired not accepted: ' + JSON.stringify(r));
  const [, d] = await delta;
  expect(d.state.led === 'on' && d.state.temp === undefined, 'delta wrong: ' + JSON.stringify(d));
  expect(d.version === v1 + 1, 'delta version ' + d.version + ', want ' + (v1 + 1));
  log('delta', { state: d.state, version: d.version });

  // 3. get shows desired, reported and the delta.
  tok = device.get(thing);
  r = await status(device, tok);
  expect(r.stat === 'accepted' && r.doc.state.delta.led === 'on', 'get wrong: ' + JSON.stringify(r));
  log('get', { version: r.doc.version });

  // 4. The device applies and reports; the SDK sends the version it knows
  // (optimistic locking), the service accepts, no delta remains.
  tok = device.update(thing, { state: { reported: { led: 'on' } } });
  r = await status(device, tok);
  expect(r.stat === 'accepted', 'in-sync report not accepted: ' + JSON.stringify(r));
  tok = device.get(thing);
  r = await status(device, tok);
  expect(r.doc.state.delta === undefined, 'delta left after sync: ' + JSON.stringify(r.doc));
  log('in-sync', { version: r.doc.version });

  // 5. A rejected update: a node the service does not allow.
  tok = device.update(thing, { state: { delta: { x: 1 } } });
  r = await status(device, tok);
  expect(r.stat === 'rejected' && r.doc.code === 400, 'invalid node not rejected: ' + JSON.stringify(r));
  log('rejected', { code: r.doc.code, message: r.doc.message });

  // 6. delete, then get → 404 with the thing's name.
  tok = device.delete(thing);
  r = await status(device, tok);
  expect(r.stat === 'accepted', 'delete not accepted: ' + JSON.stringify(r));
  tok = device.get(thing);
  r = await status(device, tok);
  expect(r.stat === 'rejected' && r.doc.code === 404 &&
    r.doc.message === "No shadow exists with name: '" + thing + "'", 'get after delete: ' + JSON.stringify(r));
  log('deleted', { message: r.doc.message });

  clearTimeout(deadline);
  console.log('INTEROP OK');
  device.end(true);
  app.end(true);
  process.exit(0);
})().catch((e) => fail(String(e && e.stack || e)));
