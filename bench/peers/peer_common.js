// SPDX-License-Identifier: Apache-2.0
// What both Node peers share: HS256 JWT verification (the same check imgate's auth.jwt does, so
// the comparison is fair) and imgate's push endpoint (POST /v1/push {"to": "all" | {"room": r} |
// {"rooms": [..]} | {"users": [..]}, "data": ...}), so the load generator drives every server
// the same way.
'use strict';
const crypto = require('crypto');

function verifyJwt(token, secret) {
  if (typeof token !== 'string') {
    return null;
  }
  const parts = token.split('.');
  if (parts.length !== 3) {
    return null;
  }
  const mac = crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest();
  const sig = Buffer.from(parts[2], 'base64url');
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) {
    return null;
  }
  let claims;
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  } catch (e) {
    return null;
  }
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) {
    return null;
  }
  return typeof claims.sub === 'string' ? claims : null;
}

// Calls deliver(target, text) for each push; answers like imgate ({"sessions": n}).
function pushHandler(apiKey, deliver) {
  return (req, res) => {
    if (req.method !== 'POST' || !req.url.startsWith('/v1/push')) {
      res.writeHead(404).end();
      return;
    }
    if (req.headers.authorization !== 'Bearer ' + apiKey) {
      res.writeHead(401).end('{"error":"unauthenticated"}');
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString());
      } catch (e) {
        res.writeHead(400).end('{"error":"bad_request"}');
        return;
      }
      const text = typeof body.data === 'string' ? body.data : JSON.stringify(body.data);
      const sessions = deliver(body.to, text, body.event);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ sessions }));
    });
  };
}

function argv() {
  const out = { port: 0, apiPort: 0, secret: 'bench-secret', apiKey: 'bench-key' };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[k] = /^\d+$/.test(a[i + 1]) ? Number(a[i + 1]) : a[i + 1];
  }
  return out;
}

module.exports = { verifyJwt, pushHandler, argv };
