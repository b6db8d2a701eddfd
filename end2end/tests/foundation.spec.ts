// The vertical slice: the server renders the page, the browser hydrates it, a new user
// creates an account, and the hydrated page talks typed frames to /ws with that session.
import { test, expect, type Page } from "@playwright/test";

const PASSWORD = "correct horse battery";

/// A username no earlier run has taken (the data directory is fresh per run anyway).
function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

async function fillCredentials(page: Page, username: string, password: string) {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
}

test("a new user signs up and the hydrated page round-trips pings over the WebSocket", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));

  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Chat", level: 1 })).toBeVisible();

  // The form only appears once the hydrated page has asked the server who we are.
  const name = uniqueName("ada");
  await fillCredentials(page, name, PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByText("Signed in as")).toBeVisible();
  await expect(page.getByRole("status")).toHaveText(/^Connected \(protocol v\d+\)$/);

  const ping = page.getByRole("button", { name: "Ping server" });
  await ping.click();
  await ping.click();
  const replies = page.getByRole("list", { name: "Replies" }).getByRole("listitem");
  await expect(replies).toHaveText(["Pong #1", "Pong #2"]);
  await page.screenshot({ path: "screenshots/signed-in.png", fullPage: true });

  // The session is a cookie: a reload stays signed in.
  await page.reload();
  await expect(page.getByText("Signed in as")).toBeVisible();
  await expect(page.getByRole("status")).toHaveText(/^Connected/);
  expect(errors).toEqual([]);
});

test("wrong passwords and taken usernames are explained next to the form", async ({ page }) => {
  const name = uniqueName("bob");
  await page.goto("/");
  await fillCredentials(page, name, PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByText("Signed in as")).toBeVisible();
  await page.getByRole("button", { name: "Sign out" }).click();

  await fillCredentials(page, name, "not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Wrong username or password.");

  await fillCredentials(page, name, PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("alert")).toHaveText("This username is taken.");
  await page.screenshot({ path: "screenshots/sign-in-error.png", fullPage: true });

  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByText("Signed in as")).toBeVisible();
});

test("signing out ends the session", async ({ page }) => {
  await page.goto("/");
  await fillCredentials(page, uniqueName("cy"), PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("status")).toHaveText(/^Connected/);
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  await page.reload();
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  const me = await page.request.get("/api/auth/me");
  expect(me.status()).toBe(401);
});

test("the page is server-rendered before any script runs", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Chat", level: 1 })).toBeVisible();
  await expect(page.getByRole("status")).toHaveText("Loading…");
  await context.close();
});

test("healthz reports the database", async ({ request }) => {
  const res = await request.get("/healthz");
  expect(res.ok()).toBeTruthy();
  const body = await res.json();
  expect(body.status).toBe("ok");
  expect(body.database.ok).toBe(true);
});
