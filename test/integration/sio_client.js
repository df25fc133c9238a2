// SPDX-License-Identifier: Apache-2.0
// The official socket.io-client (npm, 4.x) against imgate, one scenario per run:
//   node sio_client.js <scenario> <base url> <json options>
// Prints progress lines ("ready <sid>") and, last, one JSON line with what happened; the pytest
// side (test_socketio.py) asserts on it. Every scenario ends by itself (timers are bounded).
'use strict';
const { io } = require('socket.io-client');

const [scenario, base, optionsText] = process.argv.slice(2);
const options = JSON.parse(optionsText || '{}');
const transports = options.transports || ['websocket'];

function connect(path, auth, extra) {
  return io(base + (path || ''), {
    transports,
    auth,
    reconnection: false,
    timeout: 5000,
    ...(extra || {}),
  });
}

function finish(result) {
  console.log(JSON.stringify(result));
  process.exit(0);
}

function fail(why) {
  console.log(JSON.stringify({ error: String(why) }));
  process.exit(0);
}

setTimeout(() => fail('scenario timed out'), options.timeout_ms || 10000);

const scenarios = {
  // Connect with a token, emit with an ack answered by the pipeline, disconnect.
  async ack() {
    const socket = connect('', { token: options.token });
    socket.on('connect_error', (err) => fail('connect_error: ' + err.message));
    await new Promise((resolve) => socket.on('connect', resolve));
    const answer = await socket.timeout(5000).emitWithAck('chat', { text: 'hi' }, 2);
    const binary = options.binary ? await socket.timeout(5000).emitWithAck('upload', Buffer.from([0, 1, 2, 255])) : null;
    socket.disconnect();
    finish({ connected: true, id: socket.id, answer, binary });
  },

  // A bad token: connect_error with the server's reason, no connect.
  async refused() {
    const socket = connect('', { token: options.token });
    socket.on('connect', () => fail('connected although refused'));
    socket.on('connect_error', (err) => finish({ connect_error: err.message, data: err.data || null }));
  },

  // Waits for pushes: prints "ready" once connected, then collects `count` events.
  async receive() {
    const socket = connect(options.namespace || '', { token: options.token });
    socket.on('connect_error', (err) => fail('connect_error: ' + err.message));
    const events = [];
    socket.onAny((event, ...args) => {
      events.push({ event, args: args.map((a) => (Buffer.isBuffer(a) ? { hex: a.toString('hex') } : a)) });
      if (events.length >= (options.count || 1)) {
        socket.disconnect();
        finish({ events });
      }
    });
    socket.on('connect', () => console.log('ready ' + socket.id));
  },

  // A configured namespace works beside the main one; an unknown one is refused.
  async namespaces() {
    const main = connect('', { token: options.token });
    await new Promise((resolve, reject) => { main.on('connect', resolve); main.on('connect_error', reject); });
    const chat = connect('/chat', { token: options.token });
    await new Promise((resolve, reject) => { chat.on('connect', resolve); chat.on('connect_error', reject); });
    const answer = await chat.timeout(5000).emitWithAck('hello', 'from chat');
    const bad = connect('/nope', { token: options.token });
    const refused = await new Promise((resolve) => {
      bad.on('connect', () => resolve('connected'));
      bad.on('connect_error', (err) => resolve(err.message));
    });
    main.disconnect();
    chat.disconnect();
    bad.close();
    finish({ answer, refused });
  },

  // The server closes the transport (idle timeout): the client reconnects by itself.
  async reconnect() {
    const socket = io(base, {
      transports, auth: { token: options.token },
      reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, timeout: 5000,
    });
    let connects = 0;
    const reasons = [];
    socket.on('disconnect', (reason) => reasons.push(reason));
    socket.on('connect', () => {
      connects += 1;
      if (connects === 2) {
        socket.disconnect();
        finish({ connects, reasons });
      }
    });
  },
};

if (!scenarios[scenario]) {
  fail('unknown scenario ' + scenario);
}
scenarios[scenario]().catch(fail);
