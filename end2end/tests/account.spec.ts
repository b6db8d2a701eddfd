// One's own account: a display name chosen at sign-up, the signed-in devices (one signed out
// from another, which goes back to the sign-in form by itself), and a new password.
import AxeBuilder from "@axe-core/playwright";
import { expect, type Browser, type Page } from "@playwright/test";
import {
  conversationItem,
  fillCredentials,
  messageLog,
  openDirect,
  PASSWORD,
  person,
  send,
  status,
  uniqueName,
  watchForErrors,
  test,
} from "./helpers";

async function newPage(browser: Browser): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  watchForErrors(page);
  return page;
}

async function signIn(page: Page, name: string, password = PASSWORD) {
  await page.goto("/");
  await fillCredentials(page, name, password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("status").first()).toHaveText("Connected");
}

async function openAccount(page: Page) {
  await page.getByRole("button", { name: "Profile and settings" }).click();
  await page.getByRole("button", { name: "Account and devices" }).click();
  return page.getByRole("dialog", { name: "Your account" });
}

test("a display name chosen at sign-up is what others see", async ({ browser }) => {
  const page = await newPage(browser);
  const name = uniqueName("dn");
  await page.goto("/");
  await fillCredentials(page, name, PASSWORD);
  await page.getByLabel("Display name").fill("王小明 Ming");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(status(page)).toHaveText("Connected");
  const me = await page.evaluate(async () => (await fetch("/api/auth/me")).json());
  expect(me.display_name).toBe("王小明 Ming");
});

test("a new display name reaches the other side at once", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(bob.page, ann.name);
  await send(bob.page, "你好 Ann");
  await expect(conversationItem(ann.page, bob.name.toLowerCase())).toBeVisible();

  const dialog = await openAccount(ann.page);
  const field = dialog.getByRole("textbox", { name: "Display name" });
  await expect(field).toHaveValue(ann.name);
  await field.fill("   ");
  await dialog.getByRole("button", { name: "Save" }).click();
  await expect(dialog.getByRole("alert")).toBeVisible();
  await field.fill("安娜 Ann");
  await dialog.getByRole("button", { name: "Save" }).click();
  await expect(dialog.getByText("Everyone now sees you as 安娜 Ann.")).toBeVisible();
  // On the other side, without a reload: the conversation's title and its header.
  await expect(conversationItem(bob.page, "安娜 Ann")).toBeVisible();
  await expect(bob.page.getByRole("heading", { level: 2, name: "安娜 Ann" })).toBeVisible();
  await expect(messageLog(bob.page)).toContainText("你好 Ann");
  await bob.page.screenshot({ path: "screenshots/display-name-changed.png" });
  // And one's own name at the top of the sidebar.
  await ann.page.keyboard.press("Escape");
  await expect(ann.page.locator(".me-name")).toHaveText("安娜 Ann");
});

/// A 96×48 PNG: red, green and blue thirds (the middle square is the green one).
const STRIPES_PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAGAAAAAwCAIAAABhdOiYAAAAZElEQVR42u3QQQ0AMAgEMOSciImYxAlDzFTwIGlSBa1ORuXdWadHlSBBggQJEiRIkCBBggQJEiRIkCBBggQJEiRIkCBBggQJEiRIkCBBggQJEiRIkCBBggQJEiRIkCBBggTtCPoCGhk8O9MyQwAAAABJRU5ErkJggg==",
  "base64",
);

test("a new picture and status reach the other side at once", async ({ browser }) => {
  const ann = await person(browser, "ann");
  const bob = await person(browser, "bob");
  await openDirect(bob.page, ann.name);
  await send(bob.page, "hi");
  await expect(conversationItem(ann.page, bob.name)).toBeVisible();
  const header = bob.page.locator(".pane-header .avatar");
  await expect(header.locator("img")).toHaveCount(0);

  const dialog = await openAccount(ann.page);
  // Not an image: refused, said why.
  await ann.page.locator('input[type="file"][accept^="image/"]').setInputFiles({
    name: "notes.png",
    mimeType: "image/png",
    buffer: Buffer.from("not really a picture"),
  });
  await expect(dialog.getByRole("alert")).toHaveText("That is not a PNG, JPEG, GIF or WebP image.");
  await ann.page.locator('input[type="file"][accept^="image/"]').setInputFiles({
    name: "stripes.png",
    mimeType: "image/png",
    buffer: STRIPES_PNG,
  });
  await expect(dialog.getByText("Your picture is saved.")).toBeVisible();
  await dialog.getByRole("textbox", { name: "Status" }).fill("🌴 On holiday 休假中");
  await dialog.getByRole("button", { name: "Set status" }).click();
  await ann.page.screenshot({ path: "screenshots/account-picture.png" });

  // On the other side, without a reload: the picture in the header and the list, a square
  // cut from the middle; the status beside the name.
  await expect(header.locator("img")).toBeVisible();
  await expect(conversationItem(bob.page, ann.name).locator(".avatar img")).toBeVisible();
  const size = await header.locator("img").evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]);
  expect(size).toEqual([256, 256]);
  const middle = await header.locator("img").evaluate((img: HTMLImageElement) => {
    const c = document.createElement("canvas");
    c.width = c.height = 256;
    const g = c.getContext("2d")!;
    g.drawImage(img, 0, 0);
    return Array.from(g.getImageData(128, 128, 1, 1).data.slice(0, 3));
  });
  expect(middle[1]).toBeGreaterThan(120);
  expect(middle[0]).toBeLessThan(90);
  await expect(bob.page.locator(".pane-title")).toContainText("🌴 On holiday 休假中");
  await bob.page.screenshot({ path: "screenshots/picture-changed.png" });
  // And after a reload, from the server's lists.
  await bob.page.reload();
  await expect(conversationItem(bob.page, ann.name).locator(".avatar img")).toBeVisible();

  // Removed: initials again, on both sides.
  await dialog.getByRole("button", { name: "Remove picture" }).click();
  await expect(conversationItem(bob.page, ann.name).locator(".avatar img")).toHaveCount(0);
  await expect(ann.page.locator(".me .avatar img")).toHaveCount(0);
});

test("a device is signed out from another, and a new password signs out the rest", async ({ browser }) => {
  const name = uniqueName("dev");
  const laptop = await newPage(browser);
  await laptop.goto("/");
  await fillCredentials(laptop, name, PASSWORD);
  await laptop.getByRole("button", { name: "Create account" }).click();
  await expect(status(laptop)).toHaveText("Connected");
  const tablet = await newPage(browser);
  await signIn(tablet, name);
  const phone = await newPage(browser);
  await signIn(phone, name);

  let dialog = await openAccount(laptop);
  await expect(dialog).toBeVisible();
  // Focus starts in the dialog, on the first field.
  await expect(dialog.getByRole("textbox", { name: "Display name" })).toBeFocused();
  const devices = laptop.getByRole("dialog", { name: "Your account" }).getByRole("list");
  await expect(devices.getByRole("listitem")).toHaveCount(3);
  await expect(devices.getByRole("listitem").filter({ hasText: "This device" })).toHaveCount(1);
  await expect(devices.getByRole("listitem").first()).toContainText("127.0.0.1");
  const axe = await new AxeBuilder({ page: laptop })
    .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"])
    .analyze();
  expect(axe.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)).toEqual([]);
  await laptop.screenshot({ path: "screenshots/account-devices.png" });

  // Signing every other device out sends them back to the sign-in form by themselves.
  await dialog.getByRole("button", { name: "Sign out all other devices" }).click();
  await expect(dialog.getByText("2 other device(s) signed out.")).toBeVisible();
  await expect(devices.getByRole("listitem")).toHaveCount(1);
  await expect(tablet.getByRole("button", { name: "Create account" })).toBeVisible({ timeout: 5_000 });
  await expect(phone.getByRole("button", { name: "Create account" })).toBeVisible({ timeout: 5_000 });

  // One device signed out from another.
  await laptop.keyboard.press("Escape");
  await signIn(tablet, name);
  await signIn(phone, name);
  dialog = await openAccount(laptop);
  await expect(devices.getByRole("listitem")).toHaveCount(3);
  const other = devices.getByRole("listitem").filter({ hasNotText: "This device" }).first();
  await other.getByRole("button", { name: /^Sign out / }).click();
  await expect(devices.getByRole("listitem")).toHaveCount(2);
  await expect
    .poll(async () =>
      (await Promise.all([tablet, phone].map((p) => p.getByRole("button", { name: "Create account" }).isVisible()))).filter(
        Boolean,
      ).length,
    )
    .toBe(1);
  const stillIn = (await tablet.getByRole("button", { name: "Create account" }).isVisible()) ? phone : tablet;
  await expect(stillIn.getByRole("status")).toHaveText("Connected");

  // A wrong current password changes nothing.
  await dialog.getByLabel("Current password").fill("not my password");
  await dialog.getByLabel("New password").fill("a brand new password");
  await dialog.getByRole("button", { name: "Change password" }).click();
  await expect(dialog.getByRole("alert")).toHaveText("The current password is wrong.");
  await expect(stillIn.getByRole("status")).toHaveText("Connected");

  await dialog.getByLabel("Current password").fill(PASSWORD);
  await dialog.getByLabel("New password").fill("a brand new password");
  await dialog.getByRole("button", { name: "Change password" }).click();
  await expect(dialog.getByText("Password changed; 1 other device(s) signed out.")).toBeVisible();
  await expect(stillIn.getByRole("button", { name: "Create account" })).toBeVisible({ timeout: 5_000 });
  await expect(devices.getByRole("listitem")).toHaveCount(1);
  await laptop.screenshot({ path: "screenshots/account-password-changed.png" });

  // Escape closes the dialog and gives the focus back.
  await laptop.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  // The new password works; the old one does not.
  await phone.goto("/");
  await fillCredentials(phone, name, PASSWORD);
  await phone.getByRole("button", { name: "Sign in" }).click();
  await expect(phone.getByRole("alert")).toHaveText("Wrong username or password.");
  await signIn(phone, name, "a brand new password");
});

test("the account dialog in Chinese", async ({ browser }) => {
  const context = await browser.newContext({ locale: "zh-CN" });
  const page = await context.newPage();
  watchForErrors(page);
  const name = uniqueName("zh");
  await page.goto("/");
  await page.getByLabel("用户名").fill(name);
  await page.getByLabel("密码").fill(PASSWORD);
  await page.getByRole("button", { name: "创建账号" }).click();
  await expect(page.getByRole("status")).toHaveText("已连接");
  await page.getByRole("button", { name: "个人资料与设置" }).click();
  await page.getByRole("button", { name: "账号与设备" }).click();
  const dialog = page.getByRole("dialog", { name: "我的账号" });
  await expect(dialog.getByText("本设备")).toBeVisible();
  await expect(dialog.getByText(/最近活动/)).toBeVisible();
  await page.screenshot({ path: "screenshots/account-zh.png" });
});
