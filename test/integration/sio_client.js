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

// The transport a socket ends on ("polling" or "websocket"), for the result line.
function transportOf(socket) {
  const engine = socket.io.engine;
  return engine && engine.transport ? engine.transport.name : null;
}

// Resolves once the engine has written what it buffered (acks just given): a polling send is an
// HTTP request in flight, which process.exit() would abort. Bounded to 2 s.
function settled(socket) {
  const engine = socket.io.engine;
  if (!engine || (engine.writeBuffer.length === 0 && (!engine.transport || engine.transport.writable))) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    engine.once('drain', resolve);
    setTimeout(resolve, 2000);
  });
}

// With transports ["polling", "websocket"] (the client's default) the session starts on HTTP
// long-polling and upgrades: resolves once on WebSocket (at once when already there).
function upgraded(socket) {
  if (transportOf(socket) === 'websocket') {
    return Promise.resolve();
  }
  return new Promise((resolve) => socket.io.engine.once('upgrade', resolve));
}

function connect(path, auth, extra) {
  return io(base + (path || ''), {
    transports,
    auth,
    reconnection: false,
    timeout: 5000,
    ...(extra || {}),
  });
}

// One received event as printed: a trailing ack callback (the server asked for an ack: a
// reliable push) is called unless options.no_ack, and reported as `acked`; with `strip_offset`,
// a trailing string argument of an event without ack callback is the connection state recovery
// offset (what socket.io-client keeps as its last offset) and is reported apart.
function received(event, args, strip_offset) {
  const rest = args.slice();
  const entry = { event };
  if (typeof rest[rest.length - 1] === 'function') {
    const ack = rest.pop();
    entry.acked = !options.no_ack;
    if (entry.acked) {
      ack('ok');
    }
  } else if (strip_offset && typeof rest[rest.length - 1] === 'string') {
    entry.offset = rest.pop();
  }
  entry.args = rest.map((a) => (Buffer.isBuffer(a) ? { hex: a.toString('hex') } : a));
  return entry;
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
    const first = transportOf(socket);
    const answer = await socket.timeout(5000).emitWithAck('chat', { text: 'hi' }, 2);
    const binary = options.binary ? await socket.timeout(5000).emitWithAck('upload', Buffer.from([0, 1, 2, 255])) : null;
    // Attachments among other arguments (socket.io-client sends BINARY_EVENT with placeholders).
    const mixed = options.binary
      ? await socket.timeout(5000).emitWithAck('attach', { name: 'x.bin', data: Buffer.from([1, 2]) }, Buffer.from([3]))
      : null;
    let after_upgrade = null;
    if (options.wait_upgrade) {
      await upgraded(socket);
      after_upgrade = await socket.timeout(5000).emitWithAck('chat', 'after upgrade');
    }
    const transport = transportOf(socket);
    socket.disconnect();
    finish({ connected: true, id: socket.id, answer, binary, mixed, first, transport, after_upgrade });
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
    let closing = false;
    socket.onAny((event, ...args) => {
      if (closing) {
        return;
      }
      const entry = received(event, args, false);
      if (options.with_transport) {
        entry.transport = transportOf(socket);
      }
      events.push(entry);
      if (events.length >= (options.count || 1) || (options.until && event === options.until)) {
        const transport = transportOf(socket);
        closing = true;
        settled(socket).then(() => {
          socket.disconnect();
          finish({ events, transport });
        });
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

  // Connection state recovery (proto.socketio `recovery: true`), with the client options the
  // Socket.IO docs use for it: automatic reconnection, auth as an object (socket.io-client adds
  // {pid, offset} to it). Prints "ready <id> <recovered>" at each connect. After `drop_after`
  // events it closes the transport as a network drop would (socket.io.engine.close()), prints
  // "dropped", and reconnects after `reconnect_delay_ms` (default 1000: time for the test to push
  // while it is away). Finishes after `count` events in all, or with `connects` connects.
  // Events are printed without their trailing offset (reported as `offset`); reliable pushes
  // are acked (see received()).
  async recover() {
    const delay = options.reconnect_delay_ms || 1000;
    const socket = io(base + (options.namespace || ''), {
      transports, auth: { token: options.token }, timeout: 5000,
      reconnection: true, reconnectionDelay: delay, reconnectionDelayMax: delay,
      randomizationFactor: 0,
    });
    const connects = [];
    const events = [];
    const reasons = [];
    let dropped = false;
    const done = () => settled(socket).then(() => {
      socket.disconnect();
      finish({ connects, events, reasons });
    });
    socket.on('connect_error', (err) => fail('connect_error: ' + err.message));
    socket.on('disconnect', (reason) => reasons.push(reason));
    socket.on('connect', () => {
      connects.push({ id: socket.id, recovered: Boolean(socket.recovered) });
      console.log('ready ' + socket.id + ' ' + Boolean(socket.recovered));
      if (options.connects && connects.length >= options.connects) {
        done();
      }
    });
    socket.onAny((event, ...args) => {
      events.push(received(event, args, Boolean(socket._pid)));
      if (!dropped && options.drop_after && events.length >= options.drop_after) {
        dropped = true;
        socket.io.engine.close();
        console.log('dropped');
      }
      if (events.length >= (options.count || 1)) {
        done();
      }
    });
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
