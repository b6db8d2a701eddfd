// Shared steps of the end-to-end tests: signing up, finding the parts of the chat screen by
// their accessible names, posting many messages quickly, and running a server of our own.
import { test as base, expect, type Browser, type Locator, type Page } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export const PASSWORD = "correct horse battery";

/// Playwright's `test`, with every browser context a test opens (each person's) closed when
/// it ends: a page left open keeps its socket, its timers and its WASM running, and over a
/// whole run those slowed the later tests down to timeouts.
export const test = base.extend<{ closeContexts: void }>({
  closeContexts: [
    async ({ browser }, use, testInfo) => {
      const before = new Set(browser.contexts());
      await use();
      // A failed test's pages stay open for its screenshots and trace.
      if (testInfo.status !== testInfo.expectedStatus) return;
      for (const context of browser.contexts()) {
        if (!before.has(context)) await context.close();
      }
    },
    { auto: true },
  ],
});

/// A username no other test has taken.
export function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

export async function fillCredentials(page: Page, username: string, password: string) {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
}

/// Opens `base` (default: the configured baseURL), creates an account and waits until the
/// chat is connected.
export async function signUp(page: Page, username: string, base = "/"): Promise<void> {
  await page.goto(base);
  await fillCredentials(page, username, PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(status(page)).toHaveText("Connected");
}

/// A new browser context (its own cookies: its own person) signed up as a new user.
export async function person(
  browser: Browser,
  prefix: string,
  options: { base?: string; viewport?: { width: number; height: number } } = {},
): Promise<{ page: Page; name: string }> {
  const context = await browser.newContext(options.viewport ? { viewport: options.viewport } : {});
  const page = await context.newPage();
  watchForErrors(page);
  const name = uniqueName(prefix);
  await signUp(page, name, options.base);
  return { page, name };
}

/// Fails the test on any uncaught error, dialog (alert, confirm) or Content-Security-Policy
/// violation in the page.
export function watchForErrors(page: Page) {
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy/i.test(m.text())) {
      throw new Error(`CSP violation: ${m.text()}`);
    }
  });
  page.on("pageerror", (e) => {
    throw new Error(`uncaught error in the page: ${e.message}`);
  });
  page.on("dialog", (d) => {
    throw new Error(`the page opened a ${d.type()} dialog: ${d.message()}`);
  });
}

export const status = (page: Page) => page.getByRole("status");

/// Signs out through the profile menu.
export async function signOut(page: Page) {
  await page.getByRole("button", { name: "Profile and settings" }).click();
  await page.getByRole("button", { name: "Sign out" }).click();
}
export const conversations = (page: Page) => page.getByRole("navigation", { name: "Conversations" });
export const messageLog = (page: Page) => page.getByRole("log", { name: "Messages" });
export const composer = (page: Page) => page.getByRole("textbox", { name: "Message", exact: true });

/// The conversation's line in the sidebar, by its title.
export function conversationItem(page: Page, title: string): Locator {
  return conversations(page).getByRole("button").filter({ hasText: title });
}

/// The bodies of the stored (acknowledged) messages in the open conversation, in page order.
export async function shownBodies(page: Page): Promise<string[]> {
  return messageLog(page).locator('li.msg[data-state="sent"] .bubble').allInnerTexts();
}

/// Starts a direct conversation with `username` through "New message".
export async function openDirect(page: Page, username: string) {
  await page.getByRole("button", { name: "New message" }).click();
  await page.getByLabel("Search users").fill(username);
  await page.getByRole("button", { name: new RegExp(`@${username}$`) }).click();
  // The header names the person and, below, their username.
  await expect(page.getByText(new RegExp(`^@${username} · (online|offline)$`))).toBeVisible();
}

/// Joins (or opens) the public General room through "New room".
export async function openGeneral(page: Page) {
  await page.getByRole("button", { name: "New room" }).click();
  await page.getByRole("button", { name: /^(Join|Open) General$/ }).click();
  await expect(page.getByRole("heading", { level: 2, name: "General" })).toBeVisible();
}

/// Types a message and presses Enter.
export async function send(page: Page, text: string) {
  await composer(page).fill(text);
  await composer(page).press("Enter");
}

/// The id of a conversation shown in the sidebar.
export async function conversationId(page: Page, title: string): Promise<string> {
  const id = await conversationItem(page, title).getAttribute("data-id");
  if (!id) throw new Error(`no conversation titled ${title}`);
  return id;
}

/// Sends `steps` one at a time over a second WebSocket of the page's user, each waiting for
/// its answer (a frame of type `reply`); a rate-limited one is sent again.
export async function overSecondSocket(page: Page, steps: { frame: object; reply: string }[]) {
  await page.evaluate(async (steps) => {
    const ws = new WebSocket(`ws://${location.host}/ws`);
    const frames: any[] = [];
    let wake: (() => void) | null = null;
    ws.onmessage = (e) => {
      frames.push(JSON.parse(e.data));
      wake?.();
    };
    const next = async (type: string) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const i = frames.findIndex((f) => f.type === type || f.type === "error");
        if (i >= 0) return frames.splice(i, 1)[0];
        if (Date.now() > deadline) throw new Error(`no ${type} frame`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      }
    };
    await next("hello");
    ws.send(JSON.stringify({ type: "resume", positions: [] }));
    await next("resumed");
    for (const { frame, reply } of steps) {
      for (let attempt = 0; ; attempt++) {
        ws.send(JSON.stringify(frame));
        const answer = await next(reply);
        if (answer.type === reply) break;
        if (answer.code !== "rate_limited" || attempt > 50) throw new Error(JSON.stringify(answer));
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    ws.close();
  }, steps);
}

/// Posts `bodies` into a conversation over a second WebSocket of the page's user, in order,
/// with up to 16 sends awaiting their acks at once (one at a time, each send's durable commit
/// was a round trip of its own: 180 of them took most of a test's time on a busy machine). A
/// rate-limited send is sent again with the same id once those before it are answered
/// (`scripts/test` raises the send rate, so that this is rare); a later one stored before it
/// fails the call, as the messages would not be in order.
export async function postMany(page: Page, conversation: string, bodies: string[]) {
  const batch = Date.now();
  await page.evaluate(
    async ({ conversation, bodies, batch }) => {
      const ws = new WebSocket(`ws://${location.host}/ws`);
      const frames: any[] = [];
      let wake: (() => void) | null = null;
      ws.onmessage = (e) => {
        frames.push(JSON.parse(e.data));
        wake?.();
      };
      const deadline = Date.now() + 60_000;
      const wait = async () => {
        if (Date.now() > deadline) throw new Error("postMany: no answer in time");
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      };
      while (!frames.some((f) => f.type === "hello")) await wait();
      ws.send(JSON.stringify({ type: "resume", positions: [] }));
      while (!frames.some((f) => f.type === "resumed")) await wait();
      const send = (i: number) =>
        ws.send(
          JSON.stringify({
            type: "send",
            conversation_id: conversation,
            client_msg_id: `bulk-${batch}-${i}`,
            body: bodies[i],
          }),
        );
      const index = (id: string | undefined) => Number((id ?? "").split("-").pop());
      // Sends go out in order; one refused for the rate waits, and so do those after it, so
      // that the conversation gets them in order.
      let next = 0;
      const acked = new Set<number>();
      const inFlight = new Set<number>();
      let retryFrom: number | null = null;
      while (acked.size < bodies.length) {
        while (retryFrom === null && next < bodies.length && inFlight.size < 16) {
          inFlight.add(next);
          send(next++);
        }
        if (frames.length === 0) await wait();
        for (const f of frames.splice(0)) {
          if (f.type === "ack" && inFlight.delete(index(f.client_msg_id))) {
            acked.add(index(f.client_msg_id));
          } else if (f.type === "error" && f.code === "rate_limited" && f.client_msg_id) {
            const i = index(f.client_msg_id);
            inFlight.delete(i);
            retryFrom = retryFrom === null ? i : Math.min(retryFrom, i);
          } else if (f.type === "error") {
            throw new Error(JSON.stringify(f));
          }
        }
        if (retryFrom !== null && inFlight.size === 0) {
          const from = retryFrom;
          if ([...acked].some((i) => i > from)) throw new Error("postMany: a later message got in first");
          await new Promise((r) => setTimeout(r, 250));
          next = from;
          retryFrom = null;
        }
      }
      ws.close();
    },
    { conversation, bodies, batch },
  );
}

/// Marks a conversation read up to `seq` for the page's user, as another tab of theirs would.
export async function markRead(page: Page, conversation: string, seq: number) {
  await overSecondSocket(page, [
    { frame: { type: "mark_read", conversation_id: conversation, seq }, reply: "read_state" },
  ]);
}

/// A chat server of the test's own (the one `cargo leptos end-to-end` started cannot be
/// restarted from here), on a fresh disk data directory that survives its restarts.
export class OwnServer {
  readonly base: string;
  readonly dataDir: string;
  private child: ChildProcess | null = null;
  private log: string[] = [];

  constructor(readonly port: number) {
    this.base = `http://127.0.0.1:${port}`;
    this.dataDir = mkdtempSync(path.join(tmpdir(), "chat-e2e-"));
  }

  async start() {
    const bin = process.env.E2E_SERVER_BIN;
    const siteRoot = process.env.E2E_SITE_ROOT;
    if (!bin || !siteRoot) {
      throw new Error("E2E_SERVER_BIN and E2E_SITE_ROOT must be set (scripts/test sets them)");
    }
    const child = spawn(bin, [], {
      env: {
        ...process.env,
        CHAT_ADDR: `127.0.0.1:${this.port}`,
        CHAT_DATA_DIR: this.dataDir,
        CHAT_STORAGE: "disk",
        LEPTOS_SITE_ROOT: siteRoot,
        LEPTOS_SITE_ADDR: `127.0.0.1:${this.port}`,
        LEPTOS_OUTPUT_NAME: "chat",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (d) => this.log.push(String(d)));
    child.stderr!.on("data", (d) => this.log.push(String(d)));
    this.child = child;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) break;
      try {
        if ((await fetch(`${this.base}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`own server did not start:\n${this.log.join("")}`);
  }

  /// Stops the server the hard way (SIGKILL: no goodbye to any socket) or the polite way.
  async stop(signal: "SIGKILL" | "SIGTERM" = "SIGTERM") {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
    this.child = null;
  }

  /// Freezes the server (SIGSTOP): its sockets stay open and nothing answers, as when a
  /// network drops packets without a word. `resume` thaws it.
  pause() {
    this.child?.kill("SIGSTOP");
  }

  resume() {
    this.child?.kill("SIGCONT");
  }

  async dispose() {
    this.resume();
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  logs(): string {
    return this.log.join("");
  }
}

/// Runs `body` with a server of the test's own (on `E2E_OWN_PORT`), printing its log if the
/// body fails, and removing it and its data afterwards.
export async function withOwnServer(body: (server: OwnServer) => Promise<void>) {
  const server = new OwnServer(Number(process.env.E2E_OWN_PORT ?? 3007));
  await server.start();
  try {
    await body(server);
  } catch (e) {
    console.log(server.logs());
    throw e;
  } finally {
    await server.dispose();
  }
}
