// The interface in Chinese and English: a browser that prefers Chinese gets the page in
// Chinese from the server (no flash of English), signs up and chats in Chinese, searches,
// reads times and errors in Chinese; the language can be switched and is remembered; axe
// finds nothing on the Chinese screens either.
import AxeBuilder from "@axe-core/playwright";
import { expect, type Browser, type Page } from "@playwright/test";
import { PASSWORD, uniqueName, watchForErrors, test } from "./helpers";

const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

/// A person whose browser prefers Simplified Chinese, signed up through the Chinese form.
async function chinesePerson(
  browser: Browser,
  prefix: string,
  options: { colorScheme?: "light" | "dark"; viewport?: { width: number; height: number } } = {},
): Promise<{ page: Page; name: string }> {
  const context = await browser.newContext({ locale: "zh-CN", timezoneId: "Asia/Shanghai", ...options });
  const page = await context.newPage();
  watchForErrors(page);
  const name = uniqueName(prefix);
  await page.goto("/");
  await page.getByLabel("用户名").fill(name);
  await page.getByLabel("密码").fill(PASSWORD);
  await page.getByRole("button", { name: "创建账号" }).click();
  await expect(page.getByRole("status")).toHaveText("已连接");
  return { page, name };
}

async function violations(page: Page, screen: string): Promise<string[]> {
  const result = await new AxeBuilder({ page }).withTags(TAGS).analyze();
  return result.violations.map(
    (v) => `${screen}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
  );
}

test("the server renders the page in the language the browser prefers", async ({ request }) => {
  const zh = await (await request.get("/", { headers: { "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8" } })).text();
  expect(zh).toMatch(/<html[^>]* lang="zh-CN"/);
  expect(zh).toContain("<title>聊天</title>");
  expect(zh).toContain("正在加载…");
  // Plain "zh" (and Chinese of another region) still reads Simplified Chinese best.
  const plain = await (await request.get("/", { headers: { "Accept-Language": "zh" } })).text();
  expect(plain).toMatch(/<html[^>]* lang="zh-CN"/);
  const en = await (await request.get("/", { headers: { "Accept-Language": "en-GB,en;q=0.9" } })).text();
  expect(en).toMatch(/<html[^>]* lang="en"/);
  expect(en).toContain("Loading…");
  const other = await (await request.get("/", { headers: { "Accept-Language": "fr-FR" } })).text();
  expect(other).toMatch(/<html[^>]* lang="en"/);
});

test("a Chinese-speaking user chats, searches and reads errors in Chinese, and can switch to English", async ({
  browser,
}) => {
  test.setTimeout(90_000);
  // The sign-in page, before and after a mistake.
  const visitor = await browser.newContext({ locale: "zh-CN" });
  const page = await visitor.newPage();
  watchForErrors(page);
  await page.goto("/");
  await expect(page.locator("html")).toHaveAttribute("lang", "zh-CN");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("聊天");
  await page.getByLabel("用户名").fill("x");
  await page.getByLabel("密码").fill(PASSWORD);
  await page.getByRole("button", { name: "创建账号" }).click();
  await expect(page.getByRole("alert")).toHaveText("用户名须为 3–32 个字符。");
  await page.getByLabel("用户名").fill(uniqueName("nobody"));
  await page.getByRole("button", { name: "登录" }).click();
  await expect(page.getByRole("alert")).toHaveText("用户名或密码错误。");
  await page.screenshot({ path: "screenshots/zh-sign-in.png" });
  await visitor.close();

  const ann = await chinesePerson(browser, "ann");
  const bob = await chinesePerson(browser, "bob");
  await expect(ann.page.getByText("还没有会话。")).toBeVisible();
  await expect(ann.page).toHaveTitle("聊天");

  // A direct conversation, in Chinese.
  await ann.page.getByRole("button", { name: "新消息" }).click();
  await expect(ann.page.getByRole("dialog", { name: "新消息" })).toBeVisible();
  await ann.page.getByLabel("搜索用户").fill(bob.name);
  await ann.page.getByRole("button", { name: new RegExp(`@${bob.name}$`) }).click();
  await expect(ann.page.getByText(new RegExp(`^@${bob.name} · (在线|离线)$`))).toBeVisible();
  const annBox = ann.page.getByRole("textbox", { name: "消息", exact: true });
  await expect(annBox).toHaveAttribute("placeholder", `发消息给 ${bob.name}`);
  await annBox.fill("我们的数据库今天很慢");
  await annBox.press("Enter");
  const annLog = ann.page.getByRole("log", { name: "消息" });
  await expect(annLog.locator('li[data-state="sent"]')).toHaveCount(1);
  await expect(annLog.getByRole("separator", { name: "今天" })).toBeVisible();
  // The conversation list says when, in Chinese.
  await expect(ann.page.locator(".conv-time").first()).toHaveText("刚刚");
  await ann.page.screenshot({ path: "screenshots/zh-conversation.png" });
  // A file, in Chinese: its line under the box, then its card in the conversation.
  await expect(ann.page.getByRole("button", { name: "添加文件" })).toBeVisible();
  await ann.page.locator("input[type=file]").setInputFiles({
    name: "会议纪要.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("第一项：周五上线"),
  });
  const annTray = ann.page.getByRole("list", { name: "下一条消息的文件" });
  await expect(annTray.getByRole("button", { name: "移除 会议纪要.txt" })).toBeVisible();
  await annBox.press("Enter");
  await expect(annLog.locator(".file-card", { hasText: "会议纪要.txt" })).toBeVisible();
  await expect(annTray).toBeHidden();

  // Bob finds it by a word inside the sentence; the result names sender and conversation.
  await bob.page.keyboard.press("Control+k");
  await expect(bob.page.getByRole("searchbox", { name: "搜索消息、联系人和会话" })).toBeFocused();
  await bob.page.keyboard.type("数据库");
  const hits = bob.page.getByRole("list", { name: "找到的消息" }).getByRole("listitem");
  await expect(async () => {
    await bob.page.getByRole("searchbox", { name: "搜索消息、联系人和会话" }).press("Enter");
    await expect(hits).toHaveCount(1, { timeout: 1500 });
  }).toPass({ timeout: 20_000 });
  await expect(hits.first()).toContainText(`${ann.name}（${ann.name}）`);
  await expect(hits.first().locator("mark")).toHaveText("数据库");
  await expect(hits.first().locator("time")).toHaveText("刚刚");
  await bob.page.screenshot({ path: "screenshots/zh-search.png" });
  await hits.first().getByRole("button").click();
  await expect(bob.page.getByRole("log", { name: "消息" }).locator("li.msg.highlight")).toContainText(
    "我们的数据库今天很慢",
  );
  // An unknown `in:` is explained in Chinese.
  await bob.page.keyboard.press("Control+k");
  await expect(bob.page.getByRole("searchbox", { name: "搜索消息、联系人和会话" })).toBeFocused();
  await bob.page.keyboard.type("in:nowhere 数据库");
  await bob.page.keyboard.press("Enter");
  await expect(bob.page.getByText("你没有名为“nowhere”的会话。")).toBeVisible();
  await bob.page.keyboard.press("Escape");

  // Ann switches to English in her profile menu: everything follows at once, and the next
  // page load keeps it.
  await ann.page.getByRole("button", { name: "个人资料与设置" }).click();
  await expect(ann.page.getByText(`已登录为 @${ann.name}`)).toBeVisible();
  await ann.page.getByRole("combobox", { name: "语言" }).selectOption("en");
  await expect(ann.page.locator("html")).toHaveAttribute("lang", "en");
  await expect(ann.page.getByRole("status")).toHaveText("Connected");
  await expect(ann.page.getByRole("button", { name: "Sign out" })).toBeVisible();
  await expect(ann.page.getByRole("log", { name: "Messages" }).getByRole("separator", { name: "Today" })).toBeVisible();
  await ann.page.reload();
  await expect(ann.page.locator("html")).toHaveAttribute("lang", "en");
  await expect(ann.page.getByRole("status")).toHaveText("Connected");
  await ann.page.screenshot({ path: "screenshots/zh-switched-to-en.png" });
  // And back.
  await ann.page.getByRole("button", { name: "Profile and settings" }).click();
  await ann.page.getByRole("combobox", { name: "Language" }).selectOption("zh-CN");
  await expect(ann.page.getByRole("status")).toHaveText("已连接");
});

for (const [scheme, label, viewport] of [
  ["light", "", undefined],
  ["dark", "", undefined],
  ["light", " at 360 px", { width: 360, height: 740 }],
] as const) {
  test(`axe finds nothing on the Chinese screens in the ${scheme} theme${label}`, async ({ browser }) => {
    test.setTimeout(60_000);
    const found: string[] = [];
    const visitor = await browser.newContext({
      locale: "zh-CN",
      colorScheme: scheme,
      ...(viewport ? { viewport } : {}),
    });
    const signIn = await visitor.newPage();
    await signIn.goto("/");
    await expect(signIn.getByRole("button", { name: "创建账号" })).toBeVisible();
    found.push(...(await violations(signIn, "sign-in")));
    await visitor.close();

    const options = { colorScheme: scheme, ...(viewport ? { viewport } : {}) };
    const ann = await chinesePerson(browser, "ann", options);
    const bob = await chinesePerson(browser, "bob", options);
    found.push(...(await violations(ann.page, "empty chat")));
    await ann.page.getByRole("button", { name: "个人资料与设置" }).click();
    await expect(ann.page.getByRole("button", { name: "退出登录" })).toBeVisible();
    found.push(...(await violations(ann.page, "profile menu")));
    await ann.page.keyboard.press("Escape");
    await ann.page.getByRole("button", { name: "新房间" }).click();
    await expect(ann.page.getByRole("dialog", { name: "房间" })).toBeVisible();
    found.push(...(await violations(ann.page, "rooms dialog")));
    await ann.page.keyboard.press("Escape");
    await ann.page.getByRole("button", { name: "新消息" }).click();
    await ann.page.getByLabel("搜索用户").fill(bob.name);
    await ann.page.getByRole("button", { name: new RegExp(`@${bob.name}$`) }).click();
    const box = ann.page.getByRole("textbox", { name: "消息", exact: true });
    await box.fill("你好 **bob**，看看 `代码`");
    await box.press("Enter");
    await expect(ann.page.getByRole("log", { name: "消息" }).locator('li[data-state="sent"]')).toHaveCount(1);
    found.push(...(await violations(ann.page, "conversation")));
    await ann.page.screenshot({ path: `screenshots/zh-${scheme}${viewport ? "-360" : ""}.png` });
    expect(found).toEqual([]);
  });
}
