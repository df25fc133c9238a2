// SPDX-License-Identifier: Apache-2.0
// The reference Socket.IO server (npm socket.io 4.8), configured as its docs show: JWT checked
// in a middleware from the client's auth payload ({token}), users and rooms as Socket.IO rooms,
// pushes emitted with io.to(room).emit(event, data). Same push endpoint as imgate.
//   node sio_peer.js --port 9200 --api-port 9201 --secret S --api-key K
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { verifyJwt, pushHandler, argv } = require('./peer_common');

const opt = argv();
const server = http.createServer();
const io = new Server(server, { transports: ['websocket', 'polling'], perMessageDeflate: false });
io.use((socket, next) => {
  const claims = verifyJwt(socket.handshake.auth && socket.handshake.auth.token, opt.secret);
  if (!claims) {
    next(new Error('unauthenticated'));
    return;
  }
  socket.data.claims = claims;
  next();
});
io.on('connection', (socket) => {
  socket.join('user:' + socket.data.claims.sub);
  for (const r of socket.data.claims.rooms || []) socket.join('room:' + r);
});

function deliver(to, text, event) {
  const name = event || 'message';
  if (to === 'all') {
    io.emit(name, text);
    return io.engine.clientsCount;
  }
  let target = null;
  if (to && to.room) target = io.to('room:' + to.room);
  else if (to && to.rooms) target = io.to(to.rooms.map((r) => 'room:' + r));
  else if (to && to.users) target = io.to(to.users.map((u) => 'user:' + u));
  if (target) target.emit(name, text);
  return 0;  // socket.io does not count recipients cheaply
}

server.listen(opt.port, '127.0.0.1', () => {
  const api = http.createServer(pushHandler(opt.apiKey, deliver));
  api.listen(opt.apiPort, '127.0.0.1', () => {
    console.log(`sio_peer listening ${server.address().port} api ${api.address().port}`);
  });
});
