// SPDX-License-Identifier: Apache-2.0
// A minimal Node `ws` broadcast server, as a team would write it in an afternoon: JWT in the
// query (?token=), rooms from the token's `rooms` claim, users from `sub`, a push endpoint on a
// second port. No per-message compression (ws's default for servers is off).
//   node ws_peer.js --port 9100 --api-port 9101 --secret S --api-key K
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');
const { verifyJwt, pushHandler, argv } = require('./peer_common');

const opt = argv();
const users = new Map();  // sub -> Set(ws)
const rooms = new Map();  // room -> Set(ws)
const all = new Set();

const server = http.createServer((req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const claims = verifyJwt(url.searchParams.get('token'), opt.secret);
  if (!claims) {
    socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    all.add(ws);
    const mine = [];
    const add = (map, key) => {
      if (!map.has(key)) map.set(key, new Set());
      map.get(key).add(ws);
      mine.push([map, key]);
    };
    add(users, claims.sub);
    for (const r of claims.rooms || []) add(rooms, r);
    ws.on('close', () => {
      all.delete(ws);
      for (const [map, key] of mine) {
        const set = map.get(key);
        set.delete(ws);
        if (set.size === 0) map.delete(key);
      }
    });
    ws.on('message', () => {});  // uplink is not part of these scenarios
  });
});

function deliver(to, text) {
  let targets = [];
  if (to === 'all') {
    targets = [all];
  } else if (to && to.room) {
    targets = [rooms.get(to.room) || []];
  } else if (to && to.rooms) {
    targets = to.rooms.map((r) => rooms.get(r) || []);
  } else if (to && to.users) {
    targets = to.users.map((u) => users.get(u) || []);
  }
  let n = 0;
  for (const set of targets) {
    for (const ws of set) {
      ws.send(text);
      n += 1;
    }
  }
  return n;
}

server.listen(opt.port, '127.0.0.1', () => {
  const api = http.createServer(pushHandler(opt.apiKey, deliver));
  api.listen(opt.apiPort, '127.0.0.1', () => {
    console.log(`ws_peer listening ${server.address().port} api ${api.address().port}`);
  });
});
