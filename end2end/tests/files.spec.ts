// Files, two people in two browser contexts: an image pasted into the message box shows as
// a thumbnail on both sides and opens whole; a PDF dropped on the page is downloaded by the
// other person; a file that is too large says so; names and contents that try to run
// script never do; at desktop width and at 360 px.
import AxeBuilder from "@axe-core/playwright";
import { expect, type Page } from "@playwright/test";
import { composer, messageLog, openDirect, person, test } from "./helpers";

/// Makes a PNG of `w` × `h` in the page (a canvas) and pastes it into the message box, as
/// a screenshot is pasted.
async function pasteImage(page: Page, w: number, h: number) {
  await composer(page).evaluate(
    async (box, [w, h]) => {
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const g = canvas.getContext("2d")!;
      const sky = g.createLinearGradient(0, 0, w, h);
      sky.addColorStop(0, "#3b5bdb");
      sky.addColorStop(1, "#f59f00");
      g.fillStyle = sky;
      g.fillRect(0, 0, w, h);
      g.fillStyle = "#ffffff";
      g.font = `${Math.round(h / 6)}px sans-serif`;
      g.fillText("截图 screenshot", w / 10, h / 2);
      const blob: Blob = await new Promise((done) => canvas.toBlob((b) => done(b!), "image/png"));
      const data = new DataTransfer();
      data.items.add(new File([blob], "image.png", { type: "image/png" }));
      box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
    },
    [w, h],
  );
}

/// Drops a file on the page, as one dragged from the desktop.
async function dropFile(page: Page, name: string, type: string, content: string) {
  await page.evaluate(
    ([name, type, content]) => {
      const data = new DataTransfer();
      data.items.add(new File([content], name, { type }));
      const target = document.querySelector(".pane")!;
      for (const kind of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(kind, { dataTransfer: data, bubbles: true, cancelable: true }));
      }
    },
    [name, type, content],
  );
}

/// axe-core's WCAG 2.2 A/AA rules on the page as it is.
async function axeFindsNothing(page: Page) {
  const result = await new AxeBuilder({ page })
    .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"])
    .analyze();
  expect(result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)).toEqual([]);
}

async function noSideways(page: Page) {
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(wide).toBeLessThanOrEqual(0);
}

for (const [label, viewport] of [
  ["", undefined],
  [" at 360 px", { width: 360, height: 740 }],
] as const) {
  test(`a pasted image shows as a thumbnail on both sides and opens whole${label}`, async ({ browser }) => {
    const ann = await person(browser, "ann", { viewport });
    const bob = await person(browser, "bob", { viewport });
    await openDirect(ann.page, bob.name);
    await pasteImage(ann.page, 1200, 800);
    const tray = ann.page.getByRole("list", { name: "Files for the next message" });
    await expect(tray.getByText("image.png")).toBeVisible();
    await composer(ann.page).fill("看这张图");
    await composer(ann.page).press("Enter");

    const mine = messageLog(ann.page).locator("li.msg[data-state=sent]").last();
    await expect(mine.locator(".bubble")).toHaveText("看这张图");
    const thumb = mine.getByRole("button", { name: "Open image image.png" }).locator("img");
    // Its box is reserved before it loads: 360 × 240 (the image's shape) at most.
    await expect(thumb).toHaveAttribute("width", "360");
    await expect(thumb).toHaveAttribute("height", "240");
    await expect.poll(() => thumb.evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(400);
    await expect(tray).toBeHidden();

    await openDirect(bob.page, ann.name);
    const theirs = messageLog(bob.page).locator("li.msg[data-state=sent]").last();
    const image = theirs.getByRole("button", { name: "Open image image.png" });
    await expect.poll(() => image.locator("img").evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(400);
    await noSideways(bob.page);
    await axeFindsNothing(bob.page);
    await bob.page.screenshot({ path: `screenshots/image-message${viewport ? "-360" : ""}.png` });

    await image.click();
    const viewer = bob.page.getByRole("dialog", { name: "image.png" });
    await expect(viewer).toBeVisible();
    const whole = viewer.getByRole("img", { name: "image.png" });
    await expect.poll(() => whole.evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(1200);
    await expect(viewer.getByRole("button", { name: "Close" })).toBeFocused();
    await axeFindsNothing(bob.page);
    await bob.page.screenshot({ path: `screenshots/image-viewer${viewport ? "-360" : ""}.png` });
    await bob.page.keyboard.press("Escape");
    await expect(viewer).toBeHidden();
    await expect(image).toBeFocused();
  });
}

test("a dropped PDF is downloaded by the other person, a file too large says so", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(ann.page, bob.name);
  const pdf = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
  await dropFile(ann.page, "季度报告 Q3.pdf", "application/pdf", pdf);
  const tray = ann.page.getByRole("list", { name: "Files for the next message" });
  await expect(tray.getByText("季度报告 Q3.pdf")).toBeVisible();
  const sendButton = ann.page.getByRole("button", { name: "Send" });
  // Files alone make a message.
  await expect(sendButton).toBeEnabled();
  await sendButton.click();
  const card = messageLog(ann.page).locator("li.msg[data-state=sent] .file-card").last();
  await expect(card).toContainText("季度报告 Q3.pdf");
  await expect(card).toContainText("PDF");

  await openDirect(bob.page, ann.name);
  const theirs = messageLog(bob.page).getByRole("link", { name: /季度报告 Q3\.pdf/ });
  await expect(theirs).toBeVisible();
  await bob.page.screenshot({ path: "screenshots/file-message.png" });
  await axeFindsNothing(bob.page);
  const [download] = await Promise.all([bob.page.waitForEvent("download"), theirs.click()]);
  expect(download.suggestedFilename()).toBe("季度报告 Q3.pdf");
  const saved = await download.path();
  const { readFileSync } = await import("node:fs");
  expect(readFileSync(saved!, "utf8")).toBe(pdf);

  // Larger than the server takes: refused at once, and the message cannot go with it.
  await ann.page.locator("input[type=file]").setInputFiles({
    name: "huge.bin",
    mimeType: "application/octet-stream",
    buffer: Buffer.alloc(26 * 1024 * 1024),
  });
  await expect(tray.getByRole("alert")).toHaveText("Too large to upload.");
  await composer(ann.page).fill("with the big one");
  await expect(sendButton).toBeDisabled();
  await ann.page.screenshot({ path: "screenshots/upload-refused.png" });
  await axeFindsNothing(ann.page);
  await tray.getByRole("button", { name: "Remove huge.bin" }).click();
  await expect(sendButton).toBeEnabled();
});

test("file names and contents that try to run script stay text and downloads", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(ann.page, bob.name);
  const names = [
    `<img src=x onerror="window.pwned=1">.png`,
    `"><svg onload="window.pwned=2">.svg`,
    "javascript:window.pwned=3.html",
  ];
  // Picked through the attach button's file chooser.
  const [chooser] = await Promise.all([
    ann.page.waitForEvent("filechooser"),
    ann.page.getByRole("button", { name: "Attach files" }).click(),
  ]);
  expect(chooser.isMultiple()).toBe(true);
  await chooser.setFiles(
    names.map((name) => ({
      name,
      mimeType: "text/html",
      buffer: Buffer.from(`<script>window.pwned=4</script><svg onload="window.pwned=5"/>`),
    })),
  );
  const tray = ann.page.getByRole("list", { name: "Files for the next message" });
  for (const name of names) await expect(tray.getByText(name, { exact: true })).toBeVisible();
  await composer(ann.page).fill("**three** files");
  await composer(ann.page).press("Enter");
  await openDirect(bob.page, ann.name);
  const cards = messageLog(bob.page).locator("li.msg[data-state=sent] .file-card");
  await expect(cards).toHaveCount(3);
  for (const [i, name] of names.entries()) {
    await expect(cards.nth(i).locator(".file-name")).toHaveText(name);
  }
  // Opening one downloads it; nothing runs on either side.
  const [download] = await Promise.all([bob.page.waitForEvent("download"), cards.first().click()]);
  expect(download.suggestedFilename()).toContain("onerror");
  for (const page of [ann.page, bob.page]) {
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    await expect(page.locator("img[src=x], svg[onload]")).toHaveCount(0);
  }
});
