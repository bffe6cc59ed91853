// Browser smoke test of the dashboard against a running hub, driven through Debian's Chromium
// with playwright-core. Run by tests/dashboard/test_dashboard_browser.py, which starts the hub
// and a real agent; configuration comes from the environment (see `need`). Exits non-zero,
// naming the failed step, when anything a user would notice is wrong.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`smoke: set ${name}`);
  return value;
}

const HUB = need("HUB_URL");
const DEVICE = need("DEVICE_ID");
const DEVICE_NAME = need("DEVICE_NAME");
const ADMIN = need("ADMIN_USER");
const VIEWER = need("VIEWER_USER");
const PASSWORD = need("PASSWORD");
const ARTIFACTS = need("ARTIFACTS");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Set when the hub has a floor plan for the device's site (outpost demo pushes the warehouse's).
const ZONE = process.env.MAP_ZONE;
const TIMEOUT = 20_000;

mkdirSync(ARTIFACTS, { recursive: true });
let step = "launch";
const errors = [];

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function login(page, user) {
  step = `log in as ${user}`;
  await page.goto(`${HUB}/`);
  await page.waitForURL("**/login/", { timeout: TIMEOUT });
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(PASSWORD);
  await shot(page, `login-${user}`);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL("**/fleet/", { timeout: TIMEOUT });
  await page.getByTestId("whoami").filter({ hasText: user }).waitFor({ timeout: TIMEOUT });
}

async function expectText(locator, pattern, what) {
  step = what;
  await locator.filter({ hasText: pattern }).first().waitFor({ timeout: TIMEOUT });
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => errors.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/status of 40[134]/.test(msg.text())) errors.push(`console: ${msg.text()}`);
  });

  // Every live socket goes through this route, so the test can cut it like a network drop.
  let refuse = false;
  const sockets = [];
  await page.routeWebSocket(/\/api\/v1\/ws$/, (ws) => {
    if (refuse) {
      void ws.close({ code: 4000, reason: "test: network down" });
      return;
    }
    ws.connectToServer();
    sockets.push(ws);
  });

  await login(page, ADMIN);
  const row = page.locator(`tr[data-device="${DEVICE}"]`);
  await expectText(row.getByTestId("online"), /^online$/, "the fleet list shows the enrolled device online");
  step = "the live socket connects (no stale banner)";
  await page.getByTestId("stale-banner").waitFor({ state: "detached", timeout: TIMEOUT });
  step = "the map shows the robot at its reported pose";
  await page.locator("svg.sitemap g.robot title").filter({ hasText: DEVICE_NAME }).first().waitFor({ state: "attached", timeout: TIMEOUT });
  if (ZONE) {
    step = `the map draws the site's floor plan (zone ${ZONE})`;
    await page.locator("svg.sitemap g.zone title").filter({ hasText: ZONE }).first().waitFor({ state: "attached", timeout: TIMEOUT });
  }
  await expectText(row.locator("td"), /^\d+ %$/, "the fleet list shows the robot's battery");
  step = "fleet and site STOP are in the header";
  await page.getByRole("button", { name: /^STOP fleet/ }).waitFor({ timeout: TIMEOUT });
  await page.getByRole("button", { name: /^STOP site/ }).waitFor({ timeout: TIMEOUT });
  await shot(page, "fleet-admin");

  step = "a dropped live socket shows the stale banner and greys values";
  refuse = true;
  for (const ws of sockets.splice(0)) await ws.close({ code: 4000, reason: "test: network down" });
  await page.getByTestId("stale-banner").waitFor({ timeout: TIMEOUT });
  if (!(await page.evaluate(() => document.body.classList.contains("stale")))) throw new Error("values not marked stale");
  await shot(page, "fleet-stale");
  step = "the socket reconnects with backoff and the banner goes";
  refuse = false;
  await page.getByTestId("stale-banner").waitFor({ state: "detached", timeout: 40_000 });

  step = "press the device's STOP with the keyboard";
  const stop = row.getByRole("button", { name: `STOP ${DEVICE_NAME}` });
  await stop.focus();
  await page.keyboard.press("Enter");
  await expectText(row.getByTestId("stop-state"), /^stopped/, "the device's stop state turns stopped (agent acked)");
  await shot(page, "fleet-stopped");

  step = "device page";
  await row.getByRole("link", { name: DEVICE_NAME }).click();
  await page.waitForURL(`**/device/?id=${DEVICE}`, { timeout: TIMEOUT });
  await expectText(page.getByTestId("stop-state"), /^stopped/, "the device page shows the stop");
  await expectText(page.getByTestId("command-history").locator("td"), /^done$/, "the command history shows the stop done");
  await page.getByRole("heading", { name: "Telemetry" }).waitFor({ timeout: TIMEOUT });
  step = "the device page shows the Drift panel";
  await page.getByTestId("drift-panel").waitFor({ state: "visible", timeout: TIMEOUT });
  await page.waitForTimeout(1500); // let the charts draw
  await shot(page, "device");

  for (const [name, heading] of [["alerts", "Alerts"], ["models", "Models"], ["audit", "Audit log"]]) {
    step = `${name} page`;
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: heading.split(" ")[0] }).click();
    await page.getByRole("heading", { level: 1, name: heading }).waitFor({ timeout: TIMEOUT });
    if (name === "alerts") {
      const alert = page.locator("tr").filter({ hasText: "estop_engaged" }).first();
      await expectText(alert.locator("td"), /^active$/, "the stop raised a live alert");
      step = "acknowledge the alert";
      await alert.getByRole("button", { name: "Acknowledge" }).click();
      await expectText(alert.locator("td"), /^acknowledged by /, "the alert shows who acknowledged it");
    }
    if (name === "audit") {
      await expectText(page.getByTestId("chain-status"), /Chain links intact.*recomputed and matches/, "the audit chain checks out");
    }
    await page.waitForTimeout(500);
    await shot(page, name);
  }

  step = "log out";
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL("**/login/", { timeout: TIMEOUT });

  await login(page, VIEWER);
  await expectText(page.locator(`tr[data-device="${DEVICE}"]`).getByTestId("online"), /online/, "the viewer sees the device");
  step = "a viewer has no STOP or other control button";
  const stops = await page.getByRole("button", { name: /STOP/ }).count();
  if (stops !== 0) throw new Error(`the viewer sees ${stops} STOP button(s)`);
  await shot(page, "fleet-viewer");
  await page.getByRole("link", { name: DEVICE_NAME }).click();
  await page.getByRole("heading", { name: "Telemetry" }).waitFor({ timeout: TIMEOUT });
  step = "the viewer's Drift panel loads (so a relearn button would be there by now)";
  await page.getByTestId("drift-status").waitFor({ timeout: TIMEOUT });
  step = "a viewer has no control button on the device page";
  const controls = await page.getByRole("button", { name: /STOP|Release|Forward|Send path|Relearn/ }).count();
  if (controls !== 0) throw new Error(`the viewer sees ${controls} control button(s) on the device page`);
  await shot(page, "device-viewer");

  step = "no page errors";
  if (errors.length) throw new Error(errors.join("\n"));
  console.log(JSON.stringify({ ok: true, artifacts: ARTIFACTS }));
} catch (err) {
  console.error(`smoke: FAILED at step "${step}": ${err instanceof Error ? err.message : err}`);
  if (errors.length) console.error(errors.join("\n"));
  const pages = browser.contexts().flatMap((c) => c.pages());
  if (pages[0]) await pages[0].screenshot({ path: join(ARTIFACTS, "failure.png"), fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
