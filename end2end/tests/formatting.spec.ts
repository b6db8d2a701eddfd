// Formatted text, two people in two browser contexts: Markdown shows as formatting for the
// reader, links open in a new tab without access to the page, raw HTML and unsafe links stay
// text, and a long code block scrolls inside its message (the page never scrolls sideways)
// and copies; at desktop width and at 360 px.
import { expect } from "@playwright/test";
import { composer, conversationItem, messageLog, openDirect, person, test } from "./helpers";

const CODE_LINE = `let total = ${Array.from({ length: 30 }, (_, i) => `value_${i}`).join(" + ")};`;

const BODY = [
  "**Release** is *today*, ~~tomorrow~~ — see `cargo build`",
  "> the plan, quoted",
  "",
  "1. build",
  "2. ship",
  "",
  "Docs: [the guide](https://example.com/guide) and https://example.org/x_(y)，好吗",
  '<img src=x onerror="window.pwned=1"> [click](javascript:window.pwned=2)',
  "```rust",
  CODE_LINE,
  "```",
].join("\n");

for (const [label, viewport] of [
  ["", undefined],
  [" at 360 px", { width: 360, height: 740 }],
] as const) {
  test(`Markdown is shown formatted and safe, code scrolls and copies${label}`, async ({ browser }) => {
    const ann = await person(browser, "ann", { viewport });
    const bob = await person(browser, "bob", { viewport });
    await bob.page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
    await openDirect(ann.page, bob.name);
    await composer(ann.page).fill(BODY);
    await composer(ann.page).press("Enter");

    const annLog = messageLog(ann.page);
    await expect(annLog.locator("li.msg[data-state=sent] strong", { hasText: "Release" })).toBeVisible();

    // The sidebar's preview is the text without its marks.
    if (!viewport) {
      await expect(conversationItem(ann.page, bob.name).locator(".conv-preview")).toContainText(
        "You: Release is today, tomorrow — see cargo build",
      );
    }

    await openDirect(bob.page, ann.name);
    const log = messageLog(bob.page);
    const bubble = log.locator("li.msg[data-state=sent] .bubble").last();
    await expect(bubble.locator("strong")).toHaveText("Release");
    await expect(bubble.locator("em")).toHaveText("today");
    await expect(bubble.locator("del")).toHaveText("tomorrow");
    await expect(bubble.locator("p code")).toHaveText("cargo build");
    await expect(bubble.locator("blockquote")).toHaveText("the plan, quoted");
    await expect(bubble.locator("ol > li")).toHaveText(["build", "ship"]);

    // Links: the named one, and a bare URL that ends at the full-width comma.
    const guide = bubble.getByRole("link", { name: "the guide" });
    await expect(guide).toHaveAttribute("href", "https://example.com/guide");
    await expect(guide).toHaveAttribute("target", "_blank");
    await expect(guide).toHaveAttribute("rel", "noopener noreferrer");
    const bare = bubble.getByRole("link", { name: "https://example.org/x_(y)" });
    await expect(bare).toHaveAttribute("href", "https://example.org/x_(y)");
    await expect(bubble).toContainText("，好吗");

    // Raw HTML is text, the javascript: link is its text alone: no element, no script.
    await expect(bubble).toContainText('<img src=x onerror="window.pwned=1">');
    await expect(bubble.locator("img")).toHaveCount(0);
    await expect(bubble.locator('a[href^="javascript"]')).toHaveCount(0);
    await expect(bubble).toContainText("click");
    expect(await bob.page.evaluate(() => (window as any).pwned)).toBeUndefined();
    // Every link in the message goes where the rules allow.
    for (const href of await bubble.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href")))) {
      expect(href).toMatch(/^(https?:\/\/|mailto:)/);
    }

    // The code block keeps its text exactly, scrolls inside the message, and copies.
    const pre = bubble.locator(".code-block pre");
    await expect(pre).toHaveText(CODE_LINE);
    await expect(pre.locator("code")).toHaveAttribute("data-language", "rust");
    const sizes = await pre.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
    expect(sizes.scroll).toBeGreaterThan(sizes.client);
    const page = await bob.page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    expect(page.scroll).toBeLessThanOrEqual(page.client);
    const copy = bubble.getByRole("button", { name: "Copy code" });
    await copy.click();
    await expect(bubble.getByRole("button", { name: "Copied" })).toBeVisible();
    expect(await bob.page.evaluate(() => navigator.clipboard.readText())).toBe(CODE_LINE);

    await bob.page.screenshot({ path: `screenshots/formatted${viewport ? "-360" : ""}.png` });
    await ann.page.screenshot({ path: `screenshots/formatted-own${viewport ? "-360" : ""}.png` });
  });
}
