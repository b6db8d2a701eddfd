// Playwright configuration for the end-to-end tests.
//
// `cargo leptos end-to-end` starts the server and runs `npx playwright test` at the same
// moment, with LEPTOS_SITE_ADDR in the environment; `globalSetup` waits until the server
// answers /healthz. The browser is the system's Chromium (CHROMIUM_PATH, set by
// scripts/setup.sh) when there is one, else Playwright's own download.
import { defineConfig, devices } from "@playwright/test";

const address = process.env.LEPTOS_SITE_ADDR ?? "127.0.0.1:3000";
const executablePath = process.env.CHROMIUM_PATH || undefined;

export default defineConfig({
  testDir: "./tests",
  globalSetup: "./global-setup.ts",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: 1,
  // results.json lets scripts/test check that the tests really ran (cargo-leptos reports
  // success when the front end fails to build and Playwright never starts).
  reporter: [["list"], ["html", { open: "never" }], ["json", { outputFile: "results.json" }]],
  outputDir: "test-results",
  use: {
    baseURL: `http://${address}`,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
  projects: [
    {
      name: "chromium",
      use: {
        ...devices["Desktop Chrome"],
        launchOptions: {
          executablePath,
          // Without these, Chromium spends its start-up on connections this machine's
          // closed network refuses.
          args: [
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
          ],
        },
      },
    },
  ],
});
