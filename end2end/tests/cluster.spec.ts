// Two people on different nodes of a cluster (SurrealDB's server, NATS, three nodes, nginx),
// which scripts/test starts with `start_cluster` after the other end-to-end tests and names
// in E2E_CLUSTER_ENV (addresses, pids, the metrics token). Skipped in the single-server run.
import { expect } from "@playwright/test";
import { readFileSync } from "fs";
import {
  conversationItem,
  messageLog,
  openDirect,
  person,
  send,
  shownBodies,
  status,
  test,
} from "./helpers";

const envFile = process.env.E2E_CLUSTER_ENV;

function clusterEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(envFile!, "utf8").split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) env[line.slice(0, at)] = line.slice(at + 1);
  }
  return env;
}

/// The WebSockets open on the node at `addr`, from its /metrics.
async function socketsOn(addr: string, token: string): Promise<number> {
  const res = await fetch(`http://${addr}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  const found = text.match(/^chat_sockets (\d+)/m);
  if (!found) throw new Error(`no chat_sockets in ${addr}/metrics: ${text.slice(0, 200)}`);
  return Number(found[1]);
}

test.skip(!envFile, "runs against the cluster scripts/test starts (E2E_CLUSTER_ENV)");

test("two people on different nodes chat live, and the node of one of them dies mid-conversation", async ({
  browser,
}) => {
  test.setTimeout(120_000);
  const env = clusterEnv();
  const nodes = [0, 1, 2].map((i) => env[`NODE${i}_ADDR`]);
  // Bob's page comes from node 1 itself; Ann's through the balancer.
  const bob = await person(browser, "bob", { base: `http://${nodes[1]}/` });
  const ann = await person(browser, "ann", { base: `http://${env.CLUSTER_ADDR}/` });

  // Which node Ann's socket landed on: reloaded until it is not Bob's.
  let annNode = -1;
  for (let attempt = 0; attempt < 10 && annNode < 0; attempt++) {
    let counts: number[] = [];
    await expect
      .poll(async () => {
        counts = await Promise.all(nodes.map((a) => socketsOn(a, env.METRICS_TOKEN)));
        return counts.reduce((a, b) => a + b, 0);
      })
      .toBe(2);
    counts[1] -= 1;
    const at = counts.findIndex((c) => c > 0);
    if (at !== 1) {
      annNode = at;
    } else {
      await ann.page.reload();
      await expect(status(ann.page)).toHaveText("Connected");
    }
  }
  expect(annNode, "Ann's socket on a node other than Bob's").not.toBe(-1);

  await openDirect(ann.page, bob.name);
  await send(ann.page, "c01");
  await conversationItem(bob.page, ann.name).click();
  await expect(messageLog(bob.page).getByText("c01")).toBeVisible();
  await send(bob.page, "c02");
  await expect(messageLog(ann.page).getByText("c02")).toBeVisible();
  // Presence crosses nodes too.
  await expect(ann.page.getByText(`@${bob.name} · online`)).toBeVisible();

  // Ann's node dies without a goodbye.
  process.kill(Number(env[`NODE${annNode}_PID`]), "SIGKILL");
  await expect(status(ann.page)).not.toHaveText("Connected");
  // Bob writes meanwhile (his node lives), then Ann writes while she is away: hers is
  // sent once her page has reconnected through the balancer to a node that lives.
  await send(bob.page, "c03");
  await expect(messageLog(bob.page).locator('li[data-state="sent"]').getByText("c03")).toBeVisible();
  await send(ann.page, "c04");
  await expect(status(ann.page)).toHaveText("Connected", { timeout: 30_000 });
  await send(bob.page, "c05");

  const expected = ["c01", "c02", "c03", "c04", "c05"];
  await expect.poll(() => shownBodies(ann.page), { timeout: 30_000 }).toEqual(expected);
  await expect.poll(() => shownBodies(bob.page), { timeout: 30_000 }).toEqual(expected);
  await expect(messageLog(ann.page).locator('li[data-state="pending"], li[data-state="failed"]')).toHaveCount(0);
  await ann.page.screenshot({ path: "screenshots/cluster-after-node-loss.png" });

  // What the other node stored is what a fresh page reads.
  await bob.page.reload();
  await conversationItem(bob.page, ann.name).click();
  await expect.poll(() => shownBodies(bob.page)).toEqual(expected);
});
