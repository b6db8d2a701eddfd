// Working with messages, two people in two browser contexts: replies and their quotes,
// reactions, edits (ArrowUp) and deletions, each seen live on the other side; at desktop
// width and at 360 px.
import { expect, type Page } from "@playwright/test";
import {
  composer,
  conversationId,
  conversationItem,
  messageLog,
  openDirect,
  overSecondSocket,
  person,
  postMany,
  send,
  test,
} from "./helpers";

/// The stored message whose own text (not a quote of it) contains `text`.
const message = (page: Page, text: string) =>
  messageLog(page)
    .locator('li.msg[data-state="sent"]')
    .filter({ has: page.locator(".bubble", { hasText: text }) });

/// Shows a message's toolbar (a tap or a hover) and presses one of its buttons.
async function act(page: Page, text: string, button: string) {
  const m = message(page, text);
  await m.locator(".bubble").click();
  await m.getByRole("button", { name: button, exact: true }).click();
}

for (const [label, viewport] of [
  ["", undefined],
  [" at 360 px", { width: 360, height: 740 }],
] as const) {
  test(`reply, react, edit and delete, each seen live by the other person${label}`, async ({ browser }) => {
    const ann = await person(browser, "ann", { viewport });
    const bob = await person(browser, "bob", { viewport });
    await openDirect(ann.page, bob.name);
    await send(ann.page, "helo bob");
    await conversationItem(bob.page, ann.name).click();
    await expect(message(bob.page, "helo bob")).toBeVisible();

    // Bob answers Ann's message: his reply quotes it, on both sides.
    await act(bob.page, "helo bob", "Reply");
    await expect(bob.page.getByText(/Replying to/)).toBeVisible();
    await send(bob.page, "hi ann");
    for (const page of [ann.page, bob.page]) {
      await expect(message(page, "hi ann").locator("a.quote")).toContainText("helo bob");
    }

    // Bob reacts; Ann sees the count and adds hers, highlighted as her own.
    await act(bob.page, "helo bob", "Add reaction");
    await bob.page.getByRole("button", { name: "React with 👍" }).click();
    const annChip = message(ann.page, "helo bob").getByRole("button", { name: /^👍 1/ });
    await expect(annChip).toBeVisible();
    await annChip.click();
    await expect(message(bob.page, "helo bob").getByRole("button", { name: /^👍 2/ })).toBeVisible();
    await expect(message(ann.page, "helo bob").getByRole("button", { name: /^👍 2/ })).toHaveAttribute(
      "aria-pressed",
      "true",
    );
    // Any emoji can be typed; something else is refused in place.
    await act(ann.page, "hi ann", "Add reaction");
    const any = ann.page.getByRole("textbox", { name: "Any emoji" });
    await any.fill("nope");
    await any.press("Enter");
    await expect(ann.page.getByRole("alert").filter({ hasText: "Type one emoji." })).toBeVisible();
    await any.fill("🦀");
    await any.press("Enter");
    await expect(message(bob.page, "hi ann").getByRole("button", { name: /^🦀 1/ })).toBeVisible();

    // ArrowUp in the empty box edits Ann's last message; Bob sees it, and his quote follows.
    await composer(ann.page).click();
    await composer(ann.page).press("ArrowUp");
    await expect(composer(ann.page)).toHaveValue("helo bob");
    await composer(ann.page).fill("hello bob");
    await composer(ann.page).press("Enter");
    await expect(message(bob.page, "hello bob")).toContainText("(edited)");
    await expect(message(bob.page, "hi ann").locator("a.quote")).toContainText("hello bob");
    await bob.page.screenshot({ path: `screenshots/message-actions${viewport ? "-360" : ""}.png` });

    // Bob can neither edit nor delete Ann's message: his toolbar does not offer it.
    await message(bob.page, "hello bob").locator(".bubble").click();
    await expect(message(bob.page, "hello bob").getByRole("button", { name: "Edit", exact: true })).toHaveCount(0);

    // Ann deletes it, after confirming: gone for both, and the quote says so.
    await act(ann.page, "hello bob", "Delete");
    await message(ann.page, "hello bob").getByRole("button", { name: "Delete", exact: true }).click();
    for (const page of [ann.page, bob.page]) {
      await expect(messageLog(page).getByText("hello bob")).toHaveCount(0);
      await expect(messageLog(page).locator("li.msg.deleted .bubble")).toHaveText("Message deleted");
      await expect(message(page, "hi ann").locator("a.quote")).toContainText("Message deleted");
    }
    await ann.page.screenshot({ path: `screenshots/message-deleted${viewport ? "-360" : ""}.png` });
  });
}

test("a reply's quote opens the original, loading the pages back to it", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(ann.page, bob.name);
  await send(ann.page, "The original question");
  await expect(message(ann.page, "The original question")).toBeVisible();
  const id = await conversationId(ann.page, bob.name);
  await postMany(
    ann.page,
    id,
    Array.from({ length: 120 }, (_, i) => `Filler ${i + 1}`),
  );
  // Bob answers the first message from another tab of his.
  await ann.page.reload();
  await overSecondSocket(bob.page, [
    {
      frame: { type: "send", conversation_id: id, client_msg_id: "answer-1", body: "The answer", reply_to: 1 },
      reply: "ack",
    },
  ]);
  const answer = message(ann.page, "The answer");
  await expect(answer).toBeVisible();
  await answer.locator("a.quote").click();
  await expect(ann.page).toHaveURL(new RegExp(`/c/[^/]+/1$`));
  const original = messageLog(ann.page).locator('li.msg[data-seq="1"]');
  await expect(original).toHaveClass(/highlight/);
  await expect(original).toBeInViewport();
});
