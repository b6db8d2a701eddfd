// Accessibility: axe-core (WCAG 2.2 A and AA rules) finds no violation on the main screens
// and dialogs, in the light and the dark theme, at desktop width and at 360 px.
import AxeBuilder from "@axe-core/playwright";
import { expect, type Locator, type Page } from "@playwright/test";
import { composer, messageLog, openDirect, person, send, test } from "./helpers";

const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

async function violations(page: Page, screen: string): Promise<string[]> {
  const result = await new AxeBuilder({ page }).withTags(TAGS).analyze();
  return result.violations.map(
    (v) => `${screen}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
  );
}

for (const scheme of ["light", "dark"] as const) {
  for (const [label, viewport] of [
    ["", undefined],
    [" at 360 px", { width: 360, height: 740 }],
  ] as const) {
    test(`axe finds nothing on any main screen in the ${scheme} theme${label}`, async ({ browser }) => {
      test.setTimeout(90_000);
      const found: string[] = [];

      // Signed out: the sign-in form.
      const visitor = await browser.newContext({ colorScheme: scheme, ...(viewport ? { viewport } : {}) });
      const signIn = await visitor.newPage();
      await signIn.goto("/");
      await expect(signIn.getByRole("button", { name: "Create account" })).toBeVisible();
      found.push(...(await violations(signIn, "sign-in")));
      await visitor.close();

      const ann = await person(browser, "ann", { viewport });
      const bob = await person(browser, "bob", { viewport });
      await ann.page.emulateMedia({ colorScheme: scheme });

      // Signed in, nothing open yet.
      found.push(...(await violations(ann.page, "empty chat")));

      // The dialogs.
      await ann.page.getByRole("button", { name: "New message" }).click();
      await ann.page.getByLabel("Search users").fill(bob.name);
      await expect(ann.page.getByRole("button", { name: new RegExp(`@${bob.name}$`) })).toBeVisible();
      found.push(...(await violations(ann.page, "new message dialog")));
      await ann.page.keyboard.press("Escape");
      await ann.page.getByRole("button", { name: "New room" }).click();
      await expect(ann.page.getByRole("dialog")).toBeVisible();
      found.push(...(await violations(ann.page, "rooms dialog")));
      await ann.page.keyboard.press("Escape");

      // A conversation with messages both ways: plain, formatted, a mention, a reply.
      await openDirect(ann.page, bob.name);
      await send(ann.page, "hello **bob**, see `code` and https://example.com");
      await composer(ann.page).fill("```\nlet x = 1;\n```");
      await composer(ann.page).press("Enter");
      await openDirect(bob.page, ann.name);
      await send(bob.page, `@${ann.name} hi`);
      await expect(messageLog(ann.page).getByText(`@${ann.name}`)).toBeVisible();
      await expect(messageLog(ann.page).locator('li[data-state="pending"]')).toHaveCount(0);
      found.push(...(await violations(ann.page, "conversation")));

      // Search results: conversations, people and messages, with the words marked.
      await ann.page.keyboard.press("Control+k");
      await expect(ann.page.getByRole("searchbox")).toBeFocused();
      await ann.page.keyboard.type("hello");
      await expect(async () => {
        await ann.page.keyboard.press("Enter");
        await expect(ann.page.getByRole("list", { name: "Messages found" })).toBeVisible({ timeout: 1500 });
      }).toPass({ timeout: 20_000 });
      found.push(...(await violations(ann.page, "search results")));
      await ann.page.keyboard.press("Escape");

      await ann.page.screenshot({ path: `screenshots/a11y-${scheme}${viewport ? "-360" : ""}.png` });

      expect(found).toEqual([]);
    });
  }
}

test("dialogs keep the keyboard inside, close on Escape wherever the focus is, and give it back", async ({
  browser,
}) => {
  const { page } = await person(browser, "ann");
  const opener = page.getByRole("button", { name: "New message" });
  await opener.focus();
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await expect(page.getByLabel("Search users")).toBeFocused();
  const focusInside = () => dialog.evaluate((d) => d.contains(document.activeElement));
  // More Tabs (and Shift+Tabs) than the dialog has controls: the focus never leaves it.
  for (const key of ["Tab", "Tab", "Tab", "Shift+Tab", "Shift+Tab", "Shift+Tab", "Shift+Tab"]) {
    await page.keyboard.press(key);
    expect(await focusInside(), key).toBe(true);
  }
  // An Esc that cancels an input method's composition (Chinese typed with pinyin) is not
  // for the dialog.
  await page.getByLabel("Search users").evaluate((input) =>
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", isComposing: true, bubbles: true })),
  );
  await expect(dialog).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await expect(opener).toBeFocused();

  // Focus lost to the page: Tab brings it back in, and Escape still closes.
  const rooms = page.getByRole("button", { name: "New room" });
  await rooms.focus();
  await page.keyboard.press("Enter");
  await expect(page.getByLabel("Room name")).toBeFocused();
  await page.evaluate(() => (document.activeElement as HTMLElement).blur());
  await page.keyboard.press("Tab");
  expect(await focusInside()).toBe(true);
  await page.evaluate(() => (document.activeElement as HTMLElement).blur());
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await expect(rooms).toBeFocused();

  // Choosing a person puts the focus in the message box, ready to type.
  const bob = await person(browser, "bob");
  await opener.focus();
  await page.keyboard.press("Enter");
  await page.keyboard.type(bob.name);
  const pick = page.getByRole("button", { name: new RegExp(`@${bob.name}$`) });
  await expect(pick).toBeVisible();
  await pick.focus();
  await page.keyboard.press("Enter");
  await expect(dialog).toBeHidden();
  await expect(composer(page)).toBeFocused();
  await page.keyboard.type("typed without a click");
  await page.keyboard.press("Enter");
  await expect(messageLog(page).getByText("typed without a click")).toBeVisible();
});

test("a message's toolbar, its emoji picker, a deletion and the notification level work by keyboard alone", async ({
  browser,
}) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  const { page } = ann;
  await openDirect(page, bob.name);
  await send(page, "keyboard only");
  const msg = messageLog(page).locator('li.msg[data-state="sent"]').filter({ hasText: "keyboard only" });
  await expect(msg).toHaveCount(1);
  const isFocused = (l: Locator) => l.evaluate((e) => e === document.activeElement);
  // Back from the message box to the log, ArrowUp to the newest message, Tab into its
  // toolbar.
  const log = messageLog(page);
  await composer(page).focus();
  for (let i = 0; i < 10 && !(await isFocused(log)); i++) await page.keyboard.press("Shift+Tab");
  await expect(log).toBeFocused();
  await page.keyboard.press("ArrowUp");
  await expect(msg).toBeFocused();
  await page.keyboard.press("Tab");
  const react = msg.getByRole("button", { name: "Add reaction" });
  await expect(react).toBeFocused();
  // The picker opens at its first emoji; Escape closes it and gives the focus back.
  await page.keyboard.press("Enter");
  const picker = msg.getByRole("group", { name: "Pick a reaction" });
  await expect(picker.getByRole("button", { name: "React with 👍" })).toBeFocused();
  await page.keyboard.press("Tab");
  await page.keyboard.press("Escape");
  await expect(picker).toBeHidden();
  await expect(react).toBeFocused();
  // Opened again, an emoji chosen by key: the reaction is there, the focus still in the bar.
  await page.keyboard.press("Enter");
  await page.keyboard.press("Tab");
  await expect(picker.getByRole("button", { name: "React with ❤️" })).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(msg.locator(".reactions")).toContainText("❤️");
  await expect(react).toBeFocused();
  // Delete asks first, with the focus on Cancel; Escape cancels; confirmed, it is gone.
  const del = msg.getByRole("button", { name: "Delete" });
  for (let i = 0; i < 6 && !(await isFocused(del)); i++) await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await expect(msg.getByRole("button", { name: "Cancel" })).toBeFocused();
  await page.keyboard.press("Escape");
  await expect(msg.getByText("Delete this message?")).toBeHidden();
  await expect(react).toBeFocused();
  for (let i = 0; i < 6 && !(await isFocused(del)); i++) await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Shift+Tab");
  await expect(msg.getByRole("button", { name: "Delete" })).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(messageLog(page).getByText("keyboard only")).toHaveCount(0);
  // The notification level is a plain select: reached and changed by key.
  const level = page.getByRole("combobox", { name: "Notifications" });
  await level.focus();
  await page.keyboard.press("ArrowDown");
  await expect(level).toHaveValue("mentions");
});
