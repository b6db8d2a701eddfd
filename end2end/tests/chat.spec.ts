// The chat as people use it: two (or three) browser contexts, each its own person, talking
// through the real server in real Chromium.
import { expect } from "@playwright/test";
import {
  composer,
  conversationId,
  conversationItem,
  conversations,
  markRead,
  messageLog,
  openDirect,
  openGeneral,
  person,
  postMany,
  send,
  shownBodies,
  signUp,
  status,
  uniqueName,
  watchForErrors,
  withOwnServer,
  test,
} from "./helpers";

test("two people chat both ways in a direct conversation, live", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");

  await openDirect(ann.page, bob.name);
  // Nothing to send yet: the button stays disabled for empty and blank drafts.
  const sendButton = ann.page.getByRole("button", { name: "Send" });
  await expect(sendButton).toBeDisabled();
  await composer(ann.page).fill("   ");
  await expect(sendButton).toBeDisabled();

  await send(ann.page, "Hi Bob!");
  await expect(messageLog(ann.page).locator('li[data-state="sent"]')).toHaveText([/Hi Bob!/]);

  // Bob did nothing: the conversation appears in his list, unread, and opens on the message.
  const fromAnn = conversationItem(bob.page, ann.name);
  await expect(fromAnn.getByRole("img", { name: "1 unread" })).toBeVisible();
  await fromAnn.click();
  await expect(messageLog(bob.page).getByText("Hi Bob!")).toBeVisible();
  await expect(fromAnn.getByRole("img", { name: /unread/ })).toHaveCount(0);

  await send(bob.page, "Hello Ann, how are you?");
  await expect(messageLog(ann.page).getByText("Hello Ann, how are you?")).toBeVisible();

  // Shift+Enter is a new line; Enter sends.
  await composer(ann.page).fill("Fine, thanks.");
  await composer(ann.page).press("Shift+Enter");
  await composer(ann.page).pressSequentially("And you?");
  await composer(ann.page).press("Enter");
  await expect(composer(ann.page)).toHaveValue("");
  await expect.poll(() => shownBodies(bob.page)).toEqual([
    "Hi Bob!",
    "Hello Ann, how are you?",
    "Fine, thanks.\nAnd you?",
  ]);
  expect(await shownBodies(ann.page)).toEqual(await shownBodies(bob.page));

  // Each side sees the other online, and its own messages set apart.
  await expect(ann.page.getByText(`@${bob.name} · online`)).toBeVisible();
  await expect(messageLog(ann.page).locator("li.msg.mine")).toHaveCount(2);
  await expect(messageLog(bob.page).locator("li.msg.mine")).toHaveCount(1);

  await ann.page.screenshot({ path: "screenshots/conversation.png" });
  await bob.page.screenshot({ path: "screenshots/conversation-other-side.png" });
});

test("a message elsewhere moves its conversation to the top of its section with an unread badge, in every tab", async ({
  browser,
}) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");

  await openDirect(ann.page, bob.name);
  await send(ann.page, "first");
  await conversationItem(bob.page, ann.name).click();
  await expect(messageLog(bob.page).getByText("first")).toBeVisible();

  // Bob moves to the room and writes there: the room is now his latest conversation.
  await openGeneral(bob.page);
  await send(bob.page, "morning, room");
  await expect(conversations(bob.page).getByRole("button").first()).toContainText("General");

  // A second tab of Bob's, on the list.
  const bobTab2 = await bob.page.context().newPage();
  watchForErrors(bobTab2);
  await bobTab2.goto("/");
  await expect(status(bobTab2)).toHaveText("Connected");

  for (const text of ["one", "two", "three"]) await send(ann.page, text);

  for (const page of [bob.page, bobTab2]) {
    // Rooms come first; among the direct messages, Ann's is now the latest.
    const first = page.getByRole("list", { name: "Direct messages" }).getByRole("button").first();
    await expect(first).toContainText(ann.name);
    await expect(first).toContainText("three");
    await expect(first.getByRole("img", { name: "3 unread" })).toBeVisible();
    await expect(page).toHaveTitle("(3) Chat");
  }
  await bob.page.screenshot({ path: "screenshots/unread-badge.png" });

  // Opening it in one tab clears the badge in both, and shows where the unread part starts.
  await conversationItem(bob.page, ann.name).click();
  await expect(messageLog(bob.page).getByRole("separator", { name: "New messages" })).toBeVisible();
  await expect(shownBodies(bob.page)).resolves.toEqual(["first", "one", "two", "three"]);
  for (const page of [bob.page, bobTab2]) {
    await expect(conversationItem(page, ann.name).getByRole("img", { name: /unread/ })).toHaveCount(0);
    await expect(page).toHaveTitle("Chat");
  }
});

test("scrolling up loads older pages in order without the view jumping", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(ann.page, bob.name);
  const id = await conversationId(ann.page, bob.name);
  const bodies = Array.from({ length: 160 }, (_, i) => `Message ${String(i + 1).padStart(3, "0")}`);
  await postMany(ann.page, id, bodies);
  // Read elsewhere (another tab): nothing unread, so the conversation opens at the bottom.
  await markRead(bob.page, id, bodies.length);
  await expect(conversationItem(bob.page, ann.name).getByRole("img", { name: /unread/ })).toHaveCount(0);

  await conversationItem(bob.page, ann.name).click();
  const log = messageLog(bob.page);
  const shown = log.locator("li.msg");
  // The newest page (50), at the bottom.
  await expect(shown).toHaveCount(50);
  await expect(log.getByText("Message 160")).toBeInViewport();

  for (const count of [100, 150, 160]) {
    const oldest = (await shownBodies(bob.page))[0];
    await log.evaluate((el) => (el.scrollTop = 0));
    await expect(shown).toHaveCount(count);
    // The message that was at the top is still where it was, just under the top edge.
    const logBox = (await log.boundingBox())!;
    const wasTop = (await log.getByText(oldest, { exact: true }).boundingBox())!;
    expect(Math.abs(wasTop.y - logBox.y)).toBeLessThan(120);
  }
  await expect(log.getByText("This is the beginning of the conversation.")).toBeVisible();
  expect(await shownBodies(bob.page)).toEqual(bodies);
  await bob.page.screenshot({ path: "screenshots/scroll-back.png" });

  // Scrolled up, a new message does not pull the view down: "Jump to latest" offers it.
  await send(ann.page, "a new one");
  const jump = bob.page.getByRole("button", { name: /Jump to latest/ });
  await expect(jump).toBeVisible();
  await jump.click();
  await expect(log.getByText("a new one")).toBeInViewport();
  await expect(jump).toBeHidden();
});

test("messages sent across a server restart arrive once each, in order, without a reload", async ({
  browser,
}) => {
  test.setTimeout(120_000);
  await withOwnServer(async (server) => {
    const ann = await person(browser, "ann", { base: server.base });
    const bob = await person(browser, "bob", { base: server.base });
    await openDirect(ann.page, bob.name);
    await send(ann.page, "m01");
    await conversationItem(bob.page, ann.name).click();
    await expect(messageLog(bob.page).getByText("m01")).toBeVisible();
    // Survives only if the page is never reloaded.
    await bob.page.evaluate(() => ((window as any).sameDocument = true));

    const expected = ["m01"];
    for (let i = 2; i <= 20; i++) {
      const text = `m${String(i).padStart(2, "0")}`;
      expected.push(text);
      await send(ann.page, text);
      if (i === 8) {
        // Killed mid-stream: whatever was acknowledged is on disk; the rest is retried.
        await server.stop("SIGKILL");
        await expect(status(ann.page)).not.toHaveText("Connected");
        await expect(status(bob.page)).not.toHaveText("Connected");
      }
      if (i === 14) {
        await bob.page.screenshot({ path: "screenshots/reconnecting.png" });
        await server.start();
      }
    }
    await expect(status(bob.page)).toHaveText("Connected", { timeout: 30_000 });
    await expect(status(ann.page)).toHaveText("Connected", { timeout: 30_000 });
    await expect.poll(() => shownBodies(bob.page), { timeout: 30_000 }).toEqual(expected);
    await expect.poll(() => shownBodies(ann.page)).toEqual(expected);
    await expect(messageLog(ann.page).locator('li[data-state="pending"], li[data-state="failed"]')).toHaveCount(0);
    expect(await bob.page.evaluate(() => (window as any).sameDocument)).toBe(true);

    // And the server really kept them: a fresh page loads the same history.
    await bob.page.reload();
    await conversationItem(bob.page, ann.name).click();
    await expect.poll(() => shownBodies(bob.page)).toEqual(expected);
  });
});

test("the status says Offline within a second of the network going, and what was written meanwhile is sent when it is back", async ({
  browser,
}) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(ann.page, bob.name);
  await send(ann.page, "before");
  await conversationItem(bob.page, ann.name).click();
  await expect(messageLog(bob.page).getByText("before")).toBeVisible();

  await expect(ann.page.getByText(`@${bob.name} · online`)).toBeVisible();
  await ann.page.context().setOffline(true);
  await expect(status(ann.page)).toHaveText("Offline", { timeout: 1_000 });
  // Without a connection nobody is known to be online.
  await expect(ann.page.getByText(`@${bob.name} · offline`)).toBeVisible({ timeout: 1_000 });
  await send(ann.page, "written offline");
  await expect(messageLog(ann.page).locator('li[data-state="pending"]')).toHaveCount(1);
  await ann.page.screenshot({ path: "screenshots/offline.png" });

  await ann.page.context().setOffline(false);
  await expect(status(ann.page)).toHaveText("Connected", { timeout: 5_000 });
  await expect(ann.page.getByText(`@${bob.name} · online`)).toBeVisible();
  await expect.poll(() => shownBodies(bob.page)).toEqual(["before", "written offline"]);
  await expect(messageLog(ann.page).locator('li[data-state="pending"]')).toHaveCount(0);
});

test("a send the server does not answer changes the status, and goes once the server is back", async ({
  browser,
}) => {
  test.setTimeout(90_000);
  await withOwnServer(async (server) => {
    const ann = await person(browser, "ann", { base: server.base });
    const bob = await person(browser, "bob", { base: server.base });
    await openDirect(ann.page, bob.name);
    await send(ann.page, "before");
    await conversationItem(bob.page, ann.name).click();
    await expect(messageLog(bob.page).getByText("before")).toBeVisible();

    // The socket stays open, but nothing comes back: the browser cannot tell by itself.
    server.pause();
    await send(ann.page, "unanswered");
    await expect(status(ann.page)).not.toHaveText("Connected", { timeout: 3_500 });
    server.resume();
    await expect(status(ann.page)).toHaveText("Connected", { timeout: 30_000 });
    await expect.poll(() => shownBodies(bob.page), { timeout: 30_000 }).toEqual(["before", "unanswered"]);
    await expect.poll(() => shownBodies(ann.page)).toEqual(["before", "unanswered"]);
  });
});

test("message text is shown as text and never runs", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  const payloads = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '"><svg onload=alert(3)>',
    "<a href=\"javascript:alert(4)\">click</a>",
  ];
  await openDirect(ann.page, bob.name);
  for (const p of payloads) await send(ann.page, p);
  await conversationItem(bob.page, ann.name).click();
  for (const page of [ann.page, bob.page]) {
    await expect.poll(() => shownBodies(page)).toEqual(payloads);
    await expect(messageLog(page).locator("img, script, svg, a")).toHaveCount(0);
  }
  // The sidebar preview is text too.
  await expect(conversationItem(bob.page, ann.name)).toContainText('<a href="javascript:alert(4)">click</a>');
  await bob.page.screenshot({ path: "screenshots/xss-as-text.png" });
});

test("display names and room names are shown as text and never run", async ({ browser }) => {
  const payload = `<img src=x onerror="window.pwned=1">`;
  // Display names are set at sign-up (the API takes one; the form uses the username).
  const context = await browser.newContext();
  const mal = await context.newPage();
  watchForErrors(mal);
  const malName = uniqueName("mal");
  const res = await mal.request.post("/api/auth/signup", {
    data: { username: malName, password: "correct horse battery", display_name: payload },
  });
  expect(res.status()).toBe(201);
  await mal.goto("/");
  await expect(status(mal)).toHaveText("Connected");
  await expect(mal.locator(".me-name")).toHaveText(payload);

  // A room named like markup, with a message from the user named like markup.
  const room = `<script>window.pwned=2</script>${uniqueName("r")}`;
  await mal.getByRole("button", { name: "New room" }).click();
  await mal.getByLabel("Room name").fill(room);
  await mal.getByRole("button", { name: "Create room" }).click();
  await expect(mal.getByRole("heading", { level: 2, name: room })).toBeVisible();
  await send(mal, "hi");

  const ann = await person(browser, "ann");
  await openDirect(ann.page, malName);
  await expect(ann.page.getByRole("heading", { level: 2, name: payload })).toBeVisible();
  await ann.page.getByRole("button", { name: "New room" }).click();
  await expect(ann.page.getByText(room)).toBeVisible();
  await ann.page.getByRole("button", { name: `Join ${room}` }).click();
  await expect(messageLog(ann.page).getByText(payload)).toBeVisible();
  await ann.page.screenshot({ path: "screenshots/xss-names-as-text.png" });
  for (const page of [ann.page, mal]) {
    expect(await page.evaluate(() => (window as any).pwned)).toBeUndefined();
    await expect(page.locator("main img, aside img, main script, aside script")).toHaveCount(0);
  }
});

test("a hidden tab counts new messages in its title and shows a notification", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const context = await browser.newContext();
  await context.grantPermissions(["notifications"]);
  // Records notifications instead of relying on the desktop to show them.
  await context.addInitScript(() => {
    const shown: { title: string; body: string }[] = [];
    (window as any).shownNotifications = shown;
    class Recorder {
      static permission = "granted";
      static requestPermission = async () => "granted";
      onclick: unknown = null;
      tag: string;
      constructor(title: string, options: { body: string; tag: string }) {
        shown.push({ title, body: options.body });
        this.tag = options.tag;
      }
      close() {}
    }
    (window as any).Notification = Recorder;
  });
  const page = await context.newPage();
  watchForErrors(page);
  const bobName = uniqueName("bob");
  await signUp(page, bobName);

  await openDirect(ann.page, bobName);
  await send(ann.page, "are you there?");
  await conversationItem(page, ann.name).click();
  await expect(messageLog(page).getByText("are you there?")).toBeVisible();
  await expect(page).toHaveTitle("Chat");

  // The tab goes to the background.
  await page.evaluate(() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
    document.dispatchEvent(new Event("visibilitychange", { bubbles: true }));
  });
  await send(ann.page, "ping 1");
  await send(ann.page, "ping 2");
  await expect(page).toHaveTitle("(2) Chat");
  await expect
    .poll(() => page.evaluate(() => (window as any).shownNotifications))
    .toEqual([
      { title: ann.name, body: "ping 1" },
      { title: ann.name, body: "ping 2" },
    ]);

  // Back in front: the open conversation is read.
  await page.evaluate(() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
    document.dispatchEvent(new Event("visibilitychange", { bubbles: true }));
  });
  await expect(page).toHaveTitle("Chat");
});

test("a 360 px wide screen can sign in, open a conversation and send", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const phone = await person(browser, "pia", { viewport: { width: 360, height: 740 } });
  const page = phone.page;
  await page.screenshot({ path: "screenshots/phone-list-empty.png" });

  await openDirect(ann.page, phone.name);
  await send(ann.page, "hello from a laptop");

  // One screen at a time: the list, then the conversation with a way back.
  await expect(conversationItem(page, ann.name)).toBeVisible();
  await page.screenshot({ path: "screenshots/phone-list.png" });
  await conversationItem(page, ann.name).click();
  await expect(conversations(page)).toBeHidden();
  await expect(messageLog(page).getByText("hello from a laptop")).toBeVisible();
  await send(page, "hello from a phone");
  await expect(messageLog(ann.page).getByText("hello from a phone")).toBeVisible();
  await page.screenshot({ path: "screenshots/phone-conversation.png" });

  // Nothing sticks out sideways.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);

  await page.getByRole("button", { name: "Back to conversations" }).click();
  await expect(conversations(page)).toBeVisible();
});

test("someone typing is shown to the other person, cleared by their message or after a pause", async ({
  browser,
}) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob", { viewport: { width: 360, height: 740 } });
  await openDirect(ann.page, bob.name);
  await send(ann.page, "Hi there");
  await conversationItem(bob.page, ann.name).click();
  await expect(messageLog(bob.page).getByText("Hi there")).toBeVisible();

  const typing = bob.page.getByText(`${ann.name} is typing…`);
  await composer(ann.page).pressSequentially("How are", { delay: 20 });
  await expect(typing).toBeVisible();
  await bob.page.screenshot({ path: "screenshots/typing-phone.png" });
  // Nobody is told about their own typing.
  await expect(ann.page.getByText(/is typing…/)).toHaveCount(0);

  await composer(ann.page).pressSequentially(" you?");
  await composer(ann.page).press("Enter");
  await expect(messageLog(bob.page).getByText("How are you?")).toBeVisible();
  await expect(typing).toHaveCount(0);

  // Typing that stops lapses after a few seconds.
  await composer(ann.page).pressSequentially("Also");
  await expect(typing).toBeVisible();
  await expect(typing).toHaveCount(0, { timeout: 10_000 });
});

test("every conversation has an address: a reload keeps it, back goes back, outsiders get not found", async ({
  browser,
}) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob", { viewport: { width: 360, height: 740 } });
  await openDirect(ann.page, bob.name);
  await send(ann.page, "at this address");
  await expect(ann.page).toHaveURL(/\/c\/[^/]+$/);
  const address = ann.page.url();

  // A reload opens the same conversation.
  await ann.page.reload();
  await expect(messageLog(ann.page).getByText("at this address")).toBeVisible();
  await expect(ann.page).toHaveURL(address);
  // Back goes to the list, forward to the conversation again.
  await ann.page.goBack();
  await expect(ann.page.getByRole("heading", { name: "No conversation open" })).toBeVisible();
  await ann.page.goForward();
  await expect(messageLog(ann.page).getByText("at this address")).toBeVisible();

  // The other person follows the link (on a phone); the back gesture returns to the list
  // rather than leaving the chat.
  await bob.page.goto(address);
  await expect(messageLog(bob.page).getByText("at this address")).toBeVisible();
  await expect(conversations(bob.page)).toBeHidden();
  await bob.page.screenshot({ path: "screenshots/address-phone.png" });
  await bob.page.goBack();
  await expect(conversations(bob.page)).toBeVisible();
  await expect(bob.page).toHaveURL(/\/$/);

  // Someone who is not in it gets the same answer as for an address that leads nowhere.
  const eve = await person(browser, "eve");
  for (const where of [address, "/c/nobody~nothing"]) {
    await eve.page.goto(where);
    await expect(eve.page.getByRole("heading", { name: "Conversation not found" })).toBeVisible();
    await expect(messageLog(eve.page)).toHaveCount(0);
  }
  await eve.page.screenshot({ path: "screenshots/address-not-found.png" });
});

test("'Seen' appears under your message once the other person has read it", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(ann.page, bob.name);
  await send(ann.page, "did you see this?");
  await expect(messageLog(ann.page).locator('li[data-state="sent"]')).toHaveText([/did you see this\?/]);
  const seen = messageLog(ann.page).locator("li.seen");
  await expect(seen).toHaveCount(0);

  await conversationItem(bob.page, ann.name).click();
  await expect(messageLog(bob.page).getByText("did you see this?")).toBeVisible();
  await expect(seen).toHaveText("Seen");
  await ann.page.screenshot({ path: "screenshots/seen.png" });
  // Bob sees nothing of the kind: the newest message is not his.
  await expect(messageLog(bob.page).locator("li.seen")).toHaveCount(0);

  // Once Bob answers, the newest message is his and Ann's "Seen" goes.
  await send(bob.page, "yes");
  await expect(messageLog(ann.page).getByText("yes", { exact: true })).toBeVisible();
  await expect(seen).toHaveCount(0);
});

test("a conversation opens at its first unread message, however far back, with a way to the latest", async ({
  browser,
}) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(ann.page, bob.name);
  const id = await conversationId(ann.page, bob.name);
  await postMany(ann.page, id, ["Read already"]);
  await markRead(bob.page, id, 1);
  const bodies = Array.from({ length: 180 }, (_, i) => `Unread ${String(i + 1).padStart(3, "0")}`);
  await postMany(ann.page, id, bodies);
  await expect(conversationItem(bob.page, ann.name).getByRole("img", { name: "180 unread" })).toBeVisible();

  await conversationItem(bob.page, ann.name).click();
  const log = messageLog(bob.page);
  // Four pages back: the line, and the first unread message under it, in view.
  await expect(log.getByRole("separator", { name: "New messages" })).toBeInViewport();
  await expect(log.getByText("Unread 001", { exact: true })).toBeInViewport();
  await expect(log.getByText("Unread 180", { exact: true })).not.toBeInViewport();
  await bob.page.screenshot({ path: "screenshots/first-unread.png" });
  const jump = bob.page.getByRole("button", { name: /Jump to latest/ });
  await jump.click();
  await expect(log.getByText("Unread 180", { exact: true })).toBeInViewport();
  await expect(jump).toBeHidden();
  expect(await shownBodies(bob.page)).toEqual(["Read already", ...bodies]);
});

test("a message's link opens the conversation at that message, highlighted, pages back", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await ann.page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
  await openDirect(ann.page, bob.name);
  const id = await conversationId(ann.page, bob.name);
  const bodies = Array.from({ length: 130 }, (_, i) => `Numbered ${String(i + 1).padStart(3, "0")}`);
  await postMany(ann.page, id, bodies);

  // The toolbar of an early message copies its address.
  const early = messageLog(ann.page).locator("li.msg", { hasText: "Numbered 005" });
  await early.scrollIntoViewIfNeeded();
  await early.hover();
  await early.getByRole("button", { name: "Copy link to message" }).click();
  await expect(early.getByRole("button", { name: "Copy link to message" })).toHaveText("Link copied");
  const link = await ann.page.evaluate(() => navigator.clipboard.readText());
  expect(link).toMatch(/\/c\/[^/]+\/5$/);

  // Bob follows it: the conversation opens there, three pages back, the message marked.
  await bob.page.goto(link);
  const target = messageLog(bob.page).locator('li.msg[data-seq="5"]');
  await expect(target).toHaveClass(/highlight/);
  await expect(target).toBeInViewport();
  await expect(messageLog(bob.page).getByText("Numbered 130", { exact: true })).not.toBeInViewport();
  await bob.page.screenshot({ path: "screenshots/message-link.png" });
  // Opening it from the list again is an ordinary opening, without the mark.
  await bob.page.goBack();
  await conversationItem(bob.page, ann.name).click();
  await expect(bob.page).toHaveURL(/\/c\/[^/]+$/);
  await expect(messageLog(bob.page).locator("li.msg.highlight")).toHaveCount(0);
});
