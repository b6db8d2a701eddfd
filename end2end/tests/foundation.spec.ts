// The thin vertical slice: the server renders the page, the browser hydrates it, and the
// hydrated page talks typed frames to /ws.
import { test, expect } from "@playwright/test";

test("the server-rendered page hydrates and round-trips a ping over the WebSocket", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));

  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Chat", level: 1 })).toBeVisible();

  // Only the hydrated page opens the socket: the server rendered "Loading…" and a disabled
  // button, so a connected status and a working button prove hydration.
  const status = page.getByRole("status");
  await expect(status).toHaveText(/^Connected \(protocol v\d+\)$/);
  await expect(page.locator("[data-hydrated]")).toHaveAttribute("data-hydrated", "true");

  const ping = page.getByRole("button", { name: "Ping server" });
  await expect(ping).toBeEnabled();
  await ping.click();
  await ping.click();
  const replies = page.getByRole("list", { name: "Replies" }).getByRole("listitem");
  await expect(replies).toHaveText(["Pong #1", "Pong #2"]);

  await page.screenshot({ path: "screenshots/foundation.png", fullPage: true });
  expect(errors).toEqual([]);
});

test("the page is server-rendered before any script runs", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Chat", level: 1 })).toBeVisible();
  await expect(page.getByRole("status")).toHaveText("Loading…");
  await expect(page.getByRole("button", { name: "Ping server" })).toBeDisabled();
  await context.close();
});

test("healthz reports the database", async ({ request }) => {
  const res = await request.get("/healthz");
  expect(res.ok()).toBeTruthy();
  const body = await res.json();
  expect(body.status).toBe("ok");
  expect(body.database.ok).toBe(true);
});
