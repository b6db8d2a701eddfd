// Search, two people in two browser contexts: Ctrl+K (or "/") focuses the box, Chinese is
// found by a word inside a sentence with the word marked, the arrow keys move through the
// results, a result opens its conversation at that message however far back it is, people
// and conversations are found in the same box, someone outside a conversation never finds
// its text, Esc brings the list back, and rooms one is not in are found and joined.
import { expect, type Page } from "@playwright/test";
import { conversationId, conversations, messageLog, openDirect, person, postMany, send, shownBodies, test } from "./helpers";

const searchBox = (page: Page) => page.getByRole("searchbox", { name: "Search messages, people and conversations" });
const hits = (page: Page) => page.getByRole("list", { name: "Messages found" }).getByRole("listitem");

for (const [label, viewport] of [
  ["", undefined],
  [" at 360 px", { width: 360, height: 740 }],
] as const) {
  test(`a Chinese word inside a sentence is found and opens its conversation at the message${label}`, async ({
    browser,
  }) => {
    test.setTimeout(90_000);
    const later = Array.from({ length: 200 }, (_, i) => `later message ${i + 1}`);
    const ann = await person(browser, "ann", { viewport });
    const bob = await person(browser, "bob", { viewport });
    const eve = await person(browser, "eve", { viewport });
    await openDirect(ann.page, bob.name);
    await send(ann.page, "我们的数据库今天很慢，WebSocket连接也断了");
    await expect(messageLog(ann.page).locator('li[data-state="pending"]')).toHaveCount(0);
    // Many newer messages, so that the one found is far back in the conversation.
    if (!viewport) {
      const id = await conversationId(ann.page, bob.name);
      await postMany(ann.page, id, later);
    }
    await send(ann.page, "数据在仓库，据库存不多");

    // Bob looks for it from the empty page, by keyboard.
    await bob.page.keyboard.press("Control+k");
    await expect(searchBox(bob.page)).toBeFocused();
    await bob.page.keyboard.type("数据库");
    // Indexed within about a second: the answer may need asking again.
    await expect(async () => {
      await searchBox(bob.page).press("Enter");
      await expect(hits(bob.page)).toHaveCount(1, { timeout: 1500 });
    }).toPass({ timeout: 20_000 });
    const hit = hits(bob.page).first();
    await expect(hit).toContainText("我们的数据库今天很慢");
    await expect(hit.locator("mark")).toHaveText("数据库");
    await expect(hit).toContainText(`${ann.name} in ${ann.name}`);
    // People are found in the same box.
    await searchBox(bob.page).fill(ann.name);
    await expect(bob.page.getByRole("list", { name: "People found" })).toContainText(`@${ann.name}`);
    await searchBox(bob.page).fill("websocket");
    await expect(hits(bob.page)).toHaveCount(1);
    await expect(hits(bob.page).first().locator("mark")).toHaveText("WebSocket");
    await bob.page.screenshot({ path: `screenshots/search-results${viewport ? "-360" : ""}.png` });

    // A result opens the conversation at its message, highlighted; the arrow keys reach it
    // from the box (and lead back to it).
    await searchBox(bob.page).press("ArrowDown");
    await expect(hits(bob.page).first().getByRole("button")).toBeFocused();
    await bob.page.keyboard.press("ArrowUp");
    await expect(searchBox(bob.page)).toBeFocused();
    await bob.page.keyboard.press("ArrowDown");
    await bob.page.keyboard.press("Enter");
    const target = messageLog(bob.page).locator("li.msg.highlight");
    await expect(target).toContainText("我们的数据库今天很慢");
    await expect(target).toBeInViewport();
    await bob.page.screenshot({ path: `screenshots/search-opened${viewport ? "-360" : ""}.png` });
    if (!viewport) {
      // Opened at a page around it, not every page back to it: the messages between that
      // page and the newest ones load as the reader scrolls down to them (or asks by key).
      const log = messageLog(bob.page);
      const gap = log.locator("li.gap");
      await expect(gap).toHaveCount(1);
      expect(await log.locator("li.msg").count()).toBeLessThan(120);
      await gap.getByRole("button", { name: "Show newer messages" }).focus();
      await bob.page.keyboard.press("Enter");
      await expect(async () => {
        await gap.scrollIntoViewIfNeeded({ timeout: 500 }).catch(() => {});
        await expect(gap).toHaveCount(0, { timeout: 500 });
      }).toPass({ timeout: 20_000 });
      // Every message once, in order.
      expect(await shownBodies(bob.page)).toEqual([
        "我们的数据库今天很慢，WebSocket连接也断了",
        ...later,
        "数据在仓库，据库存不多",
      ]);
    }

    // Eve is in no conversation with them: she finds nothing.
    await eve.page.keyboard.press("/");
    await expect(searchBox(eve.page)).toBeFocused();
    await eve.page.keyboard.type("数据库");
    await searchBox(eve.page).press("Enter");
    await expect(eve.page.getByText("No messages match.")).toBeVisible();
    // Esc empties the box and the list is back.
    await searchBox(eve.page).press("Escape");
    await expect(searchBox(eve.page)).toHaveValue("");
    await expect(conversations(eve.page).getByText("No messages match.")).toHaveCount(0);
  });
}

test("from: and in: narrow a search, and a mistake in them is explained", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(ann.page, bob.name);
  await send(ann.page, "会议改到周三");
  await openDirect(bob.page, ann.name);
  await send(bob.page, "周三的会议我来不了");
  await expect(messageLog(bob.page).locator('li[data-state="pending"]')).toHaveCount(0);

  await searchBox(ann.page).fill(`会议 from:${bob.name}`);
  await expect(async () => {
    await searchBox(ann.page).press("Enter");
    await expect(hits(ann.page)).toHaveCount(1, { timeout: 1500 });
  }).toPass({ timeout: 20_000 });
  await expect(hits(ann.page).first()).toContainText("周三的会议我来不了");
  await searchBox(ann.page).fill("会议 in:nowhere");
  await expect(ann.page.getByText("You have no conversation called “nowhere”.")).toBeVisible();
});

test("a room one is not in is found by a word of its name and joined from the results", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  const name = `Night shift 夜班 ${Date.now().toString(36)}`;
  await ann.page.getByRole("button", { name: "New room" }).click();
  await ann.page.getByLabel("Room name").fill(name);
  await ann.page.getByRole("button", { name: "Create room" }).click();
  await expect(ann.page.getByRole("heading", { level: 2, name })).toBeVisible();

  await searchBox(bob.page).fill("夜班");
  const found = bob.page.getByRole("list", { name: "Rooms found" });
  await expect(found.getByRole("button", { name: `Join ${name}` })).toBeVisible();
  await found.getByRole("button", { name: `Join ${name}` }).click();
  await expect(bob.page.getByRole("heading", { level: 2, name })).toBeVisible();
  await expect(conversations(bob.page).getByRole("list", { name: "Rooms" })).toContainText(name);
});
