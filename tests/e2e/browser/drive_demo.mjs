// Drives the demo page in Debian's chromium through playwright-core (never a downloaded
// browser). Called by test_demo_page.py with the stack already running:
//
//   node drive_demo.mjs <page url> <feed url> <screenshot path>
//
// Prints one JSON line with what the page showed; exits non-zero with a message otherwise.
// Every wait is on a page condition with a generous timeout (a loaded 2-core machine).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [pageUrl, feedUrl, screenshot] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = { timeout: 90_000 };
const ECHO = "hello from headless chromium";

const profile = mkdtempSync(join(tmpdir(), "sockethub-demo-chromium-"));
const problems = [];
let context;
let page;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 120_000,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
  });
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()}`));

  await page.goto(pageUrl, { waitUntil: "load", ...WAIT });
  await page.waitForSelector('#status[data-state="connected"]', WAIT);
  // The registry arrived: the platforms line names the dummy platform.
  await page.waitForFunction(
    () => document.getElementById("platforms").textContent.includes("dummy"),
    null,
    WAIT,
  );

  // A dummy echo: the answer appears in the page.
  await page.locator("#dummy").getByLabel("Message").fill(ECHO);
  await page.locator("#dummy-form").getByRole("button", { name: "Send" }).click();
  await page.waitForFunction(
    (text) => document.getElementById("dummy-result").textContent.includes(text),
    ECHO,
    WAIT,
  );
  const echo = await page.locator("#dummy-result").textContent();

  // A feed fetch: its items are listed.
  await page.getByLabel("Feed URL (RSS or Atom)").fill(feedUrl);
  await page.getByRole("button", { name: "Fetch feed" }).click();
  await page.waitForFunction(
    () =>
      document.querySelectorAll("#feed-items li").length > 0 ||
      document.getElementById("feed-summary").classList.contains("error"),
    null,
    WAIT,
  );
  const feedSummary = await page.locator("#feed-summary").textContent();
  const feedItems = await page.locator("#feed-items li").evaluateAll((items) =>
    items.map((li) => ({
      title: li.firstElementChild?.textContent ?? "",
      href: li.querySelector("a")?.getAttribute("href") ?? null,
    })),
  );

  const traffic = await page.locator("#log li").evaluateAll((entries) =>
    entries.map((li) => ({
      direction: li.classList.contains("out") ? "out" : "in",
      event: li.dataset.event,
      failed: li.classList.contains("failed"),
    })),
  );
  const status = await page.locator("#status").textContent();
  const platforms = await page.locator("#platforms").textContent();

  await page.evaluate(() => window.scrollTo(0, 0)); // the traffic pane is sticky
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(
    JSON.stringify({ status, platforms, echo, feedSummary, feedItems, traffic, problems }),
  );
} catch (err) {
  console.error(`demo page check failed: ${err?.stack || err}`);
  if (problems.length) console.error(problems.join("\n"));
  // What the page looked like when it went wrong, beside the usual screenshot.
  await page?.screenshot({ path: screenshot.replace(/\.png$/, "-failure.png"), fullPage: true })
    .catch(() => {});
  process.exitCode = 1;
} finally {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
}
