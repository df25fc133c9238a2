// SPDX-License-Identifier: Apache-2.0
// npm engine.io-client (plain Engine.IO, no Socket.IO) against imgate's proto.socketio in
// `mode: engineio`: connects with the token in the query (transports: the 4th argument, comma
// separated, default websocket), sends a text and a binary message, prints "ready", collects
// `count` messages, prints them as JSON.
'use strict';
const { Socket } = require('engine.io-client');

const [base, token, count, transports] = process.argv.slice(2);
const socket = new Socket(base, {
  transports: (transports || 'websocket').split(','),
  query: { token },
  // IMGATE_TLS_INSECURE=1: the tests' self-signed certificate (Node only).
  rejectUnauthorized: process.env.IMGATE_TLS_INSECURE !== '1',
});
const got = [];
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout', got })); process.exit(0); }, 10000);
// The 5th argument "upgrade": after the polling -> WebSocket upgrade, one more message
// ("after upgrade") goes out, and the run ends only once its answer is in.
const afterUpgrade = process.argv[6] === 'upgrade';
let upgraded = false;
socket.on('open', () => {
  socket.send('hello engine');
  socket.send(Buffer.from([1, 2, 3]));
  console.log('ready');
});
socket.on('upgrade', () => {
  upgraded = true;
  if (afterUpgrade) {
    socket.send('after upgrade');
  }
});
socket.on('message', (data) => {
  got.push(typeof data === 'string' ? data : { hex: Buffer.from(data).toString('hex') });
  if (got.length >= Number(count) && (!afterUpgrade || got.includes('after upgrade'))) {
    socket.close();
    console.log(JSON.stringify({ got, upgraded, transport: socket.transport ? socket.transport.name : null }));
    process.exit(0);
  }
});
socket.on('error', (err) => { console.log(JSON.stringify({ error: String(err) })); process.exit(0); });
