// Time to interactive, in headless Chromium, against a running server (not part of the
// test suite: it reports times, it asserts none).
//
//   node end2end/tti.mjs [http://127.0.0.1:3000] [loads] [Mbit/s] [round trip ms]
//
// With the last two, every page's network is slowed to that bandwidth (both ways) and round
// trip, as Chromium's DevTools emulate it; without them it is loopback's.
//
// Each load is a new browser context (empty cache, no cookies), so every load fetches the
// page, the JS and the WASM. Measured in the page's own clock (ms since navigation start):
// - `form`: the sign-in form is on screen. The server renders "Loading…"; the form only
//   appears once the WASM has loaded, hydrated and asked `/api/auth/me`, so this is the
//   moment a visitor can type.
// - `chat`: a new account is created from that form and the chat shows "Connected" (sign-up
//   includes the server's Argon2 hash: it is the time to a usable chat, not a page metric).
// - `back`: that account comes back (its session cookie, but again an empty cache) and the
//   chat shows "Connected": the page, both WASM modules and the socket, no form in between.
// Output: one line per load, then p50/max and one JSON line.
import { chromium } from "@playwright/test";

const base = process.argv[2] ?? "http://127.0.0.1:3000";
const loads = Math.max(1, Math.min(50, Number(process.argv[3] ?? 10)));
const mbit = Number(process.argv[4] ?? 0);
const rttMs = Number(process.argv[5] ?? 0);

// A new page, on the emulated network if one was asked for.
async function open(context) {
  const page = await context.newPage();
  if (mbit > 0) {
    const cdp = await context.newCDPSession(page);
    const bytesPerS = (mbit * 1e6) / 8;
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: rttMs,
      downloadThroughput: bytesPerS,
      uploadThroughput: bytesPerS,
    });
  }
  return page;
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || undefined,
  args: ["--disable-gpu", "--disable-quic", "--no-first-run"],
});

const form = [];
const chat = [];
const back = [];
for (let i = 0; i < loads; i++) {
  const context = await browser.newContext();
  const page = await open(context);
  await page.goto(base, { waitUntil: "commit" });
  await page.getByLabel("Username").waitFor({ state: "visible", timeout: 30_000 });
  form.push(await page.evaluate(() => performance.now()));
  await page.getByLabel("Username").fill(`tti${Date.now().toString(36)}${i}`);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
  chat.push(await page.evaluate(() => performance.now()));
  const signedIn = await browser.newContext({ storageState: await context.storageState() });
  await context.close();
  const again = await open(signedIn);
  await again.goto(base, { waitUntil: "commit" });
  await again.getByRole("status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
  back.push(await again.evaluate(() => performance.now()));
  await signedIn.close();
  console.log(
    `load ${i + 1}: form ${form[i].toFixed(0)} ms, connected ${chat[i].toFixed(0)} ms, ` +
      `signed-in load connected ${back[i].toFixed(0)} ms`,
  );
}
await browser.close();

const pct = (v, q) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) * q)];
const summary = {
  scenario: "tti",
  loads,
  network: mbit > 0 ? `${mbit} Mbit/s, ${rttMs} ms round trip` : "loopback",
  form_p50_ms: Math.round(pct(form, 0.5)),
  form_max_ms: Math.round(Math.max(...form)),
  connected_p50_ms: Math.round(pct(chat, 0.5)),
  connected_max_ms: Math.round(Math.max(...chat)),
  signed_in_p50_ms: Math.round(pct(back, 0.5)),
  signed_in_max_ms: Math.round(Math.max(...back)),
};
console.log(
  `sign-in form interactive: p50 ${summary.form_p50_ms} ms, max ${summary.form_max_ms} ms; ` +
    `new account connected: p50 ${summary.connected_p50_ms} ms, max ${summary.connected_max_ms} ms; ` +
    `signed-in load connected: p50 ${summary.signed_in_p50_ms} ms, max ${summary.signed_in_max_ms} ms`,
);
console.log(JSON.stringify(summary));
