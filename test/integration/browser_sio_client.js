// SPDX-License-Identifier: Apache-2.0
// Headless Chromium (Debian's /usr/bin/chromium via playwright-core) runs a page that loads the
// socket.io-client browser bundle from this folder's node_modules, connects to imgate with an
// auth token with the client's default transports (HTTP long-polling, then the upgrade to
// WebSocket; the page is cross-origin, so polling needs imgate's CORS answers), says "ready"
// through the console, and reports the first "news" event and the transport after the upgrade.
const path = require('path');
const { chromium } = require('playwright-core');

const [base, token] = process.argv.slice(2);
const bundle = path.join(__dirname, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    page.on('console', (msg) => { if (msg.text() === 'ready') console.log('ready'); });
    await page.setContent('<!doctype html><title>imgate socket.io test</title>');
    await page.addScriptTag({ path: bundle });
    const result = await page.evaluate(({ base, token }) => new Promise((resolve) => {
      const socket = io(base, { auth: { token }, reconnection: false });
      const timer = setTimeout(() => resolve({ error: 'timeout' }), 15000);
      socket.on('connect_error', (err) => { clearTimeout(timer); resolve({ connect_error: err.message }); });
      socket.on('connect', () => console.log('ready'));
      let news = null;
      let upgraded = false;
      const finish = () => {
        if (news !== null && upgraded) {
          clearTimeout(timer);
          socket.disconnect();
          resolve({ news, transport: socket.io.engine.transport.name });
        }
      };
      socket.io.on('open', () => {
        upgraded = socket.io.engine.transport.name === 'websocket';
        socket.io.engine.on('upgrade', () => { upgraded = true; finish(); });
      });
      socket.on('news', (data) => { news = data; finish(); });
    }), { base, token });
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
