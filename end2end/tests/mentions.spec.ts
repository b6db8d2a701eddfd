// Mentions, notification levels and room read receipts, two people in two browser contexts:
// "@" offers the room's members, a mention is highlighted and badged "@ 1" and raises a
// notification even in a muted room, the level follows the user to their other tab, and
// the sender sees "Seen by 1"; at desktop width and at 360 px.
import { expect, type Page } from "@playwright/test";
import { composer, conversationItem, messageLog, person, send, status, uniqueName, test } from "./helpers";

/// Replaces the browser's notifications with a recorder that has permission, and lets the
/// test say whether the tab is hidden (`window.hideTab`): headless pages are never hidden.
async function recordNotifications(page: Page) {
  await page.addInitScript(() => {
    const w = window as any;
    w.notes = [];
    w.tabHidden = false;
    class Recorder {
      static permission = "granted";
      static requestPermission() {
        return Promise.resolve("granted");
      }
      tag: string;
      constructor(title: string, options: { body?: string; tag?: string } = {}) {
        this.tag = options.tag ?? "";
        w.notes.push({ title, body: options.body ?? "" });
      }
      close() {}
      set onclick(_: unknown) {}
    }
    w.Notification = Recorder;
    Object.defineProperty(document, "hidden", { configurable: true, get: () => w.tabHidden });
    w.hideTab = (hidden: boolean) => {
      w.tabHidden = hidden;
      document.dispatchEvent(new Event("visibilitychange"));
    };
  });
  await page.reload();
  await expect(status(page)).toHaveText("Connected");
}

const notes = (page: Page) => page.evaluate(() => (window as any).notes as { title: string; body: string }[]);

async function createRoom(page: Page, name: string) {
  await page.getByRole("button", { name: "New room" }).click();
  await page.getByLabel("Room name").fill(name);
  await page.getByRole("button", { name: "Create room" }).click();
  await expect(page.getByRole("heading", { level: 2, name })).toBeVisible();
}

async function joinRoom(page: Page, name: string) {
  await page.getByRole("button", { name: "New room" }).click();
  await page.getByRole("button", { name: `Join ${name}` }).click();
  await expect(page.getByRole("heading", { level: 2, name })).toBeVisible();
}

for (const [label, viewport] of [
  ["", undefined],
  [" at 360 px", { width: 360, height: 740 }],
] as const) {
  test(`a mention is offered, highlighted, badged and notified even in a muted room${label}`, async ({
    browser,
  }) => {
    const ann = await person(browser, "ann", { viewport });
    const bob = await person(browser, "bob", { viewport });
    await recordNotifications(bob.page);
    const room = uniqueName("Launch");
    await createRoom(ann.page, room);
    await joinRoom(bob.page, room);

    // Bob mutes the room, then leaves it for the list, and his tab goes to the background.
    const level = bob.page.getByRole("combobox", { name: "Notifications" });
    await level.selectOption("mute");
    await expect(level).toHaveValue("mute");
    if (viewport) {
      await bob.page.getByRole("button", { name: "Back to conversations" }).click();
    } else {
      await bob.page.getByRole("button", { name: "New room" }).click();
      await bob.page.getByRole("button", { name: /^(Join|Open) General$/ }).click();
    }
    await expect(conversationItem(bob.page, room).getByRole("img", { name: "muted" })).toBeVisible();
    await bob.page.evaluate(() => (window as any).hideTab(true));

    // Ann's first message is not for Bob; her second calls him, picked from the offer.
    await send(ann.page, "plain news");
    await composer(ann.page).fill("hello @" + bob.name.slice(0, 3));
    const offer = ann.page.getByRole("listbox", { name: "People to mention" });
    await expect(offer.getByRole("option", { name: new RegExp(bob.name) })).toBeVisible();
    await expect(offer.getByRole("option", { name: new RegExp(ann.name) })).toHaveCount(0);
    await ann.page.screenshot({ path: `screenshots/mention-offer${viewport ? "-360" : ""}.png` });
    await composer(ann.page).press("Enter");
    await expect(composer(ann.page)).toHaveValue(`hello @${bob.name} `);
    await expect(offer).toHaveCount(0);
    await composer(ann.page).pressSequentially("can you look?");
    await composer(ann.page).press("Enter");
    await expect(
      messageLog(ann.page).locator(".mention", { hasText: `@${bob.name}` }),
    ).toBeVisible();

    // Bob: both messages counted, the mention badged apart, one notification (the muted
    // room's ordinary message raised none).
    const line = conversationItem(bob.page, room);
    await expect(line.getByRole("img", { name: "1 mention" })).toHaveText("@ 1");
    await expect(line.getByRole("img", { name: "2 unread" })).toBeVisible();
    await expect.poll(() => notes(bob.page)).toHaveLength(1);
    expect((await notes(bob.page))[0].body).toContain("can you look?");
    await bob.page.screenshot({ path: `screenshots/mention-badge${viewport ? "-360" : ""}.png` });

    // Back in front, Bob opens the room: his name stands out, and the badges go.
    await bob.page.evaluate(() => (window as any).hideTab(false));
    await line.click();
    const called = messageLog(bob.page).locator("li.msg.mentions-me");
    await expect(called.locator(".mention.own")).toHaveText(`@${bob.name}`);
    await expect(line.getByRole("img", { name: /mention/ })).toHaveCount(0);
    await bob.page.screenshot({ path: `screenshots/mention-seen${viewport ? "-360" : ""}.png` });

    // Ann sees who read her newest message.
    const seen = messageLog(ann.page).locator("li.seen");
    await expect(seen).toHaveText("Seen by 1");
    await expect(seen).toHaveAttribute("title", bob.name);
  });
}

test("a notification level chosen in one tab is the level in the user's other tabs", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const room = uniqueName("Ops");
  await createRoom(ann.page, room);
  const other = await ann.page.context().newPage();
  await other.goto("/");
  await conversationItem(other, room).click();
  const here = ann.page.getByRole("combobox", { name: "Notifications" });
  const there = other.getByRole("combobox", { name: "Notifications" });
  await expect(there).toHaveValue("all");
  await here.selectOption("mentions");
  await expect(there).toHaveValue("mentions");
  await there.selectOption("mute");
  await expect(here).toHaveValue("mute");
  // Kept: a reload shows it.
  await other.reload();
  await expect(other.getByRole("combobox", { name: "Notifications" })).toHaveValue("mute");
});
