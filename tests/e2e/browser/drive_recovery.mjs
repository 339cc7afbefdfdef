// Drives the demo page in Debian's chromium (playwright-core) across a gateway kill; called
// by test_demo_recovery.py, which kills and replaces the gateway between the steps:
//
//   node drive_recovery.mjs <page url>
//
// stdout: {"ready": true} once connected; then, after a "send" line on stdin, three dummy
// echoes are sent and {"sent": true} is printed; after a "wait" line, the status line once it
// reports the reconnect: {"status": <text>}. Exits non-zero with a message otherwise.
import { createInterface } from "node:readline";
import { launchChromium } from "./chromium.mjs";

const [pageUrl] = process.argv.slice(2);
const WAIT = { timeout: 120_000 };
const out = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const expect = async (word) => {
  const { value } = await lines.next();
  if (value?.trim() !== word) throw new Error(`expected "${word}" on stdin, got ${value}`);
};

let browserClose;
try {
  let page;
  ({ page, close: browserClose } = await launchChromium("recovery"));
  await page.goto(pageUrl, { waitUntil: "load", ...WAIT });
  await page.waitForSelector('#status[data-state="connected"]', WAIT);
  await page.waitForFunction(
    () => document.getElementById("platforms").textContent.includes("dummy"),
    null,
    WAIT,
  );
  out({ ready: true });

  await expect("send");
  for (const n of [1, 2, 3]) {
    await page.locator("#dummy").getByLabel("Message").fill(`missed ${n}`);
    await page.locator("#dummy-form").getByRole("button", { name: "Send" }).click();
  }
  await page.waitForFunction(
    () => document.getElementById("dummy-result").textContent.includes("Waiting"),
    null,
    WAIT,
  );
  out({ sent: true });

  await expect("wait");
  await page.waitForFunction(
    () => document.getElementById("status").textContent.includes("reconnected:"),
    null,
    WAIT,
  );
  // The count settles when the registry's ack comes after the replay.
  await page.waitForFunction(
    () => !document.getElementById("status").textContent.includes("recovering"),
    null,
    WAIT,
  );
  out({ status: await page.locator("#status").textContent() });
} catch (err) {
  console.error(`drive_recovery: ${err?.stack ?? err}`);
  process.exitCode = 1;
} finally {
  await browserClose?.();
  process.exit();
}
