// Running a room, one browser context per person: a private room, joined by an invite link,
// an admin made, a member removed, a message removed by an admin, a person banned (their page
// lets go of the room at once and the link no longer lets them in), the link revoked.
import AxeBuilder from "@axe-core/playwright";
import { expect, type Page } from "@playwright/test";
import {
  conversationItem,
  messageLog,
  PASSWORD,
  person,
  send,
  shownBodies,
  test,
  uniqueName,
  watchForErrors,
} from "./helpers";

async function openSettings(page: Page) {
  await page.getByRole("button", { name: "Room settings" }).click();
  const dialog = page.getByRole("dialog", { name: "Room settings" });
  await expect(dialog).toBeVisible();
  return dialog;
}

async function closeDialog(page: Page) {
  await page.getByRole("dialog").getByRole("button", { name: "Close" }).click();
}

test("a private room: invite link, admin, removal, moderation, ban", async ({ browser }) => {
  test.setTimeout(90_000);
  const olga = await person(browser, "olga");
  const room = `Ops ${Date.now().toString(36)}`;

  // Created private: the header says so.
  await olga.page.getByRole("button", { name: "New room" }).click();
  await olga.page.getByLabel("Room name").fill(room);
  await olga.page.getByLabel("Private: only people invited").check();
  await olga.page.getByRole("button", { name: "Create room" }).click();
  await expect(olga.page.getByRole("heading", { level: 2, name: room })).toBeVisible();
  await expect(olga.page.getByRole("img", { name: "Private room" })).toBeVisible();

  // A topic, and an invite link.
  let settings = await openSettings(olga.page);
  await settings.getByLabel("Topic").fill("On call 值班");
  await settings.getByRole("button", { name: "Save" }).click();
  await expect(olga.page.locator(".room-subtitle")).toHaveText("On call 值班");
  await settings.getByRole("button", { name: "Create invite link" }).click();
  const link = await settings.getByRole("textbox", { name: "Invite link" }).first().inputValue();
  expect(link).toMatch(/\/\?join=[0-9a-f]{32}$/);
  expect(
    (await new AxeBuilder({ page: olga.page }).include(".dialog").analyze()).violations,
  ).toEqual([]);
  await olga.page.screenshot({ path: "screenshots/room-settings-owner.png" });
  await closeDialog(olga.page);

  // Someone else cannot find it; with the link, they are in.
  const bob = await person(browser, "bob");
  await bob.page.getByRole("button", { name: "New room" }).click();
  await expect(bob.page.getByRole("button", { name: `Join ${room}` })).toHaveCount(0);
  await closeDialog(bob.page);
  await bob.page.goto(link);
  await expect(bob.page.getByRole("heading", { level: 2, name: room })).toBeVisible();
  await expect(bob.page.locator(".room-subtitle")).toHaveText("On call 值班");
  await send(bob.page, "hello from bob");
  await expect(messageLog(olga.page).getByText("hello from bob")).toBeVisible();

  // Bob made an admin: his panel now offers the invite links. A message arriving while
  // the owner types in the panel leaves what she typed alone.
  settings = await openSettings(olga.page);
  await settings.getByLabel("Topic").fill("half-typed");
  await send(bob.page, "while you type");
  await expect(messageLog(olga.page).getByText("while you type")).toBeAttached();
  await expect(settings.getByLabel("Topic")).toHaveValue("half-typed");
  await settings.getByRole("button", { name: `Make ${bob.name} an admin` }).click();
  await expect(settings.locator(`li[data-username="${bob.name}"] .role-badge`)).toHaveText("Admin");
  await closeDialog(olga.page);
  settings = await openSettings(bob.page);
  await expect(settings.getByRole("button", { name: "Create invite link" })).toBeVisible();
  await closeDialog(bob.page);

  // A third person joins by the link and writes; the owner removes the message, an admin
  // removes the person.
  const cy = await person(browser, "cy");
  await cy.page.goto(link);
  await expect(cy.page.getByRole("heading", { level: 2, name: room })).toBeVisible();
  await send(cy.page, "buy cheap watches");
  const spam = messageLog(olga.page).locator("li.msg").filter({ hasText: "buy cheap watches" });
  await spam.locator(".bubble").click();
  await spam.getByRole("button", { name: "Delete" }).click();
  await spam.getByRole("button", { name: "Delete" }).click();
  await expect(messageLog(cy.page).getByText("Removed by an admin")).toBeVisible();
  await expect(messageLog(bob.page).getByText("Removed by an admin")).toBeVisible();

  settings = await openSettings(bob.page);
  await settings.getByRole("button", { name: `Remove ${cy.name}` }).click();
  await expect(cy.page.getByRole("alert").filter({ hasText: `You were removed from ${room}.` })).toBeVisible();
  await expect(conversationItem(cy.page, room)).toHaveCount(0);
  await expect(settings.locator(`li[data-username="${cy.name}"]`)).toHaveCount(0);
  await closeDialog(bob.page);

  // The owner bans the admin: his page lets go of the room at once, nothing more reaches
  // it, and the link no longer lets him back.
  settings = await openSettings(olga.page);
  await settings.getByRole("button", { name: `Ban ${bob.name}` }).click();
  await expect(settings.getByRole("list", { name: "Banned" })).toContainText(bob.name);
  await olga.page.screenshot({ path: "screenshots/room-settings-banned.png" });
  await closeDialog(olga.page);
  await expect(bob.page.getByRole("alert").filter({ hasText: `You were banned from ${room}.` })).toBeVisible();
  await expect(conversationItem(bob.page, room)).toHaveCount(0);
  await send(olga.page, "after the ban");
  await expect(messageLog(olga.page).getByText("after the ban")).toBeVisible();
  await bob.page.goto(link);
  await expect(bob.page.getByRole("alert").filter({ hasText: "You are banned from this room." })).toBeVisible();
  await expect(conversationItem(bob.page, room)).toHaveCount(0);

  // Revoked: the link lets nobody else in.
  settings = await openSettings(olga.page);
  await settings.getByRole("button", { name: "Revoke" }).click();
  await expect(settings.getByText("No invite links.")).toBeVisible();
  await closeDialog(olga.page);
  const dan = await person(browser, "dan");
  await dan.page.goto(link);
  await expect(
    dan.page.getByRole("alert").filter({ hasText: "This invite link has expired or was revoked." }),
  ).toBeVisible();
  await expect(conversationItem(dan.page, room)).toHaveCount(0);
  expect(await shownBodies(olga.page)).toContain("after the ban");
});

test("the room panel in Chinese", async ({ browser }) => {
  const context = await browser.newContext({ locale: "zh-CN", timezoneId: "Asia/Shanghai" });
  const page = await context.newPage();
  watchForErrors(page);
  await page.goto("/");
  await page.getByLabel("用户名").fill(uniqueName("zh"));
  await page.getByLabel("密码").fill(PASSWORD);
  await page.getByRole("button", { name: "创建账号" }).click();
  await expect(page.getByRole("status")).toHaveText("已连接");
  await page.getByRole("button", { name: "新房间" }).click();
  await page.getByLabel("房间名").fill(`值班 ${Date.now().toString(36)}`);
  await page.getByLabel("私密：只有受邀的人才能找到并加入").check();
  await page.getByRole("button", { name: "创建房间" }).click();
  await expect(page.getByRole("img", { name: "私密房间" })).toBeVisible();
  await page.getByRole("button", { name: "房间设置" }).click();
  const dialog = page.getByRole("dialog", { name: "房间设置" });
  await dialog.getByRole("button", { name: "创建邀请链接" }).click();
  await expect(dialog.getByText(/过期$/)).toBeVisible();
  await expect(dialog.locator(".role-badge")).toHaveText("所有者");
  expect((await new AxeBuilder({ page }).include(".dialog").analyze()).violations).toEqual([]);
  await page.screenshot({ path: "screenshots/room-settings-zh.png" });
});
