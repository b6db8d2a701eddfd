// The vertical slice: the server renders the page, the browser hydrates it, a new user
// creates an account, and the hydrated page talks typed frames to /ws with that session.
import { expect } from "@playwright/test";
import { fillCredentials, PASSWORD, signOut, status, uniqueName, watchForErrors, test } from "./helpers";

test("a new user signs up and the hydrated page connects over the WebSocket", async ({ page }) => {
  watchForErrors(page);
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Chat", level: 1 })).toBeVisible();

  // The form only appears once the hydrated page has asked the server who we are.
  const name = uniqueName("ada");
  await fillCredentials(page, name, PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(status(page)).toHaveText("Connected");
  await expect(page.locator(".me-name")).toHaveText(name);
  await expect(page.getByText("No conversations yet.")).toBeVisible();
  await page.screenshot({ path: "screenshots/signed-in.png" });

  // The session is a cookie: a reload stays signed in.
  await page.reload();
  await expect(status(page)).toHaveText("Connected");
  await expect(page.locator(".me-name")).toHaveText(name);
});
test("wrong passwords and taken usernames are explained next to the form", async ({ page }) => {
  const name = uniqueName("bob");
  await page.goto("/");
  await fillCredentials(page, name, PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(status(page)).toHaveText("Connected");
  await signOut(page);

  await fillCredentials(page, name, "not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Wrong username or password.");

  await fillCredentials(page, name, PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("alert")).toHaveText("This username is taken.");
  await page.screenshot({ path: "screenshots/sign-in-error.png", fullPage: true });

  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(status(page)).toHaveText("Connected");
});

test("signing out ends the session", async ({ page }) => {
  await page.goto("/");
  const name = uniqueName("cy");
  await fillCredentials(page, name, PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(status(page)).toHaveText("Connected");
  // Sign-out lives in the profile menu: Esc closes it and gives the focus back.
  const menu = page.getByRole("button", { name: "Profile and settings" });
  await menu.click();
  await expect(menu).toHaveAttribute("aria-expanded", "true");
  await expect(page.getByText(`Signed in as @${name}`)).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(page.getByRole("button", { name: "Sign out" })).toHaveCount(0);
  await expect(menu).toBeFocused();
  await page.keyboard.press("Enter");
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

test("an unreachable server is explained next to the form", async ({ page }) => {
  await page.goto("/");
  await page.route("**/api/auth/signin", (route) => route.abort("connectionrefused"));
  await fillCredentials(page, uniqueName("dee"), PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText(/server is unreachable/);
});

test("a signed-in view that cannot be downloaded is explained and fetched again on request", async ({
  page,
}) => {
  watchForErrors(page);
  // The signed-in view is a WASM module of its own (the split build the test command makes):
  // its download fails, at the page's preload and again when the view is first needed.
  const chunk = "**/pkg/split_*.wasm";
  let refused = 0;
  await page.route(chunk, (route) => {
    refused += 1;
    return route.abort("connectionrefused");
  });
  await page.goto("/");
  await fillCredentials(page, uniqueName("flo"), PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("alert")).toHaveText(
    "The chat could not be loaded. Check your connection and try again.",
  );
  expect(refused).toBeGreaterThanOrEqual(1);
  await page.screenshot({ path: "screenshots/chat-module-unavailable.png" });

  // Still unreachable: the same explanation, not a dead page.
  const before = refused;
  await page.getByRole("button", { name: "Try again" }).click();
  await expect.poll(() => refused).toBeGreaterThan(before);
  await expect(page.getByRole("alert")).toHaveText(/could not be loaded/);

  await page.unroute(chunk);
  await page.getByRole("button", { name: "Try again" }).click();
  await expect(status(page)).toHaveText("Connected");
  await expect(page.getByText("No conversations yet.")).toBeVisible();
});

test("pages and API answers carry a Content-Security-Policy and the usual security headers", async ({
  request,
}) => {
  const page = await request.get("/");
  const csp = page.headers()["content-security-policy"];
  expect(csp).toMatch(/script-src 'self' 'nonce-[A-Za-z0-9_-]+' 'wasm-unsafe-eval'/);
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toMatch(/script-src[^;]*'unsafe-inline'/);
  // The nonce in the header is the one on the page's inline scripts, and differs per response.
  const nonce = csp.match(/'nonce-([^']+)'/)![1];
  expect(await page.text()).toContain(`<script type="module" nonce="${nonce}">`);
  const again = (await request.get("/")).headers()["content-security-policy"];
  expect(again).not.toEqual(csp);

  for (const path of ["/", "/api/auth/me", "/healthz", "/pkg/chat.css", "/no-such-page"]) {
    const headers = (await request.get(path)).headers();
    expect(headers["x-content-type-options"], path).toBe("nosniff");
    expect(headers["x-frame-options"], path).toBe("DENY");
    expect(headers["referrer-policy"], path).toBe("no-referrer");
    expect(headers["content-security-policy"], path).toBeTruthy();
  }
});
