// SPDX-License-Identifier: Apache-2.0
// A long-lived socket.io-client (npm, 4.x) for the chaos test (test_chaos.py):
//   node sio_chaos.js <base url> <json options>
// options: token; pid and offset (the connection state recovery position a previous process of
// this client had: a client that was killed and restarted resumes like one that reconnected);
// reconnect_ms (the automatic reconnection delay); life_ms (exits after this long, so a lost
// parent never leaves it running).
//
// It prints one line per happening, as JSON after a keyword, and flushes each before acting on
// it (stdout to a pipe is synchronous in Node), so that what the parent read is exactly what was
// processed, even when it is killed the next instant:
//   connect {"id","pid","recovered"}   each (re)connect; recovered is socket.recovered
//   event {"event","data","acked","offset"}   each event, printed before its ack is sent
//   disconnect {"reason"}   the transport went away (the client reconnects by itself)
//   error {"message"}   connect_error (auth refused ...): the parent restarts the process
// Commands on stdin, one per line: "reset" closes the TCP connection with a reset (RST), the
// client then reconnects and recovers by itself; "quit" disconnects and exits. stdin's end exits.
'use strict';
const { io } = require('socket.io-client');
const readline = require('readline');

const [base, optionsText] = process.argv.slice(2);
const options = JSON.parse(optionsText || '{}');
const reconnectMs = options.reconnect_ms || 150;

function say(kind, obj) {
  process.stdout.write(kind + ' ' + JSON.stringify(obj) + '\n');
}

const socket = io(base, {
  transports: ['websocket'],
  auth: { token: options.token },
  autoConnect: false,
  timeout: 5000,
  reconnection: true,
  reconnectionDelay: reconnectMs,
  reconnectionDelayMax: reconnectMs * 2,
  randomizationFactor: 0.5,
});
// A restarted process presents the position its predecessor reached, exactly as the library does
// after an in-process reconnect (it sends {pid, offset} in CONNECT when _pid is set), and
// computes `recovered` the same way.
if (options.pid) {
  socket._pid = options.pid;
  socket._lastOffset = options.offset || undefined;
}

socket.on('connect', () => {
  say('connect', { id: socket.id, pid: socket._pid || null, recovered: Boolean(socket.recovered) });
});
socket.on('disconnect', (reason) => say('disconnect', { reason: String(reason) }));
socket.on('connect_error', (err) => {
  say('error', { message: String(err && err.message) });
});
socket.onAny((event, ...args) => {
  const rest = args.slice();
  let ack = null;
  let offset = null;
  if (typeof rest[rest.length - 1] === 'function') {
    ack = rest.pop();
  } else if (socket._pid && typeof rest[rest.length - 1] === 'string') {
    offset = rest.pop();
  }
  say('event', { event, data: rest.length === 1 ? rest[0] : rest, acked: ack !== null, offset });
  if (ack !== null) {
    ack('ok');
  }
});

function quit() {
  socket.disconnect();
  process.exit(0);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'reset') {
    const transport = socket.io.engine && socket.io.engine.transport;
    const raw = transport && transport.ws && transport.ws._socket;
    if (raw && typeof raw.resetAndDestroy === 'function') {
      raw.resetAndDestroy();
      say('reset', {});
    } else {
      say('reset', { skipped: 'not connected' });
    }
  } else if (cmd === 'quit') {
    quit();
  }
}).on('close', quit);

setTimeout(quit, options.life_ms || 120000).unref();
socket.connect();
