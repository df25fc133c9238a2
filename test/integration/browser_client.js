// SPDX-License-Identifier: Apache-2.0
// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) opens a WebSocket to
// imgate the way a web page does: the token travels in a subprotocol, because browsers cannot
// set headers. Prints JSON: the negotiated protocol, the messages received, and the close code.
const { chromium } = require('playwright-core');

const [url, token, want] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    // Open the socket, then report readiness through the console so the test can push.
    page.on('console', (msg) => { if (msg.text() === 'ready') console.log('ready'); });
    const result = await page.evaluate(({ url, token, want }) => new Promise((resolve) => {
      const ws = new WebSocket(url, ['imgate', 'bearer.' + token]);
      const messages = [];
      const timer = setTimeout(() => resolve({ error: 'timeout', messages }), 15000);
      // "ready" once the echo of our own message is back, so the test's push comes after it
      // (a push sent earlier could overtake the echo: they are independent streams).
      ws.onopen = () => { ws.send('from the browser'); };
      ws.onmessage = (e) => {
        messages.push(e.data);
        if (messages.length === 1) console.log('ready');
        if (messages.length >= Number(want)) {
          clearTimeout(timer);
          resolve({ protocol: ws.protocol, extensions: ws.extensions, messages });
          ws.close(1000);
        }
      };
      ws.onclose = (e) => { clearTimeout(timer); resolve({ closed: e.code, messages }); };
    }), { url, token, want });
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
