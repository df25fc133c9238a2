// SPDX-License-Identifier: Apache-2.0
// npm `ws` client for the integration tests: connects, collects N messages, prints JSON.
const WebSocket = require('ws');
const [url, count] = process.argv.slice(2);
const want = Number(count || 1);
const ws = new WebSocket(url, { perMessageDeflate: true });
const messages = [];
const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout', messages })); process.exit(2); }, 15000);
ws.on('message', (data, isBinary) => {
  messages.push(isBinary ? Buffer.from(data).toString('base64') : data.toString());
  if (messages.length >= want) {
    clearTimeout(timer);
    console.log(JSON.stringify({ messages, extensions: ws.extensions }));
    ws.close(1000);
  }
});
ws.on('error', (e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(3); });
