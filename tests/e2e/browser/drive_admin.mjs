// Drives the gateway's admin page in Debian's chromium through playwright-core (never a
// downloaded browser). Called by test_admin_page.py with the stack already running:
//
//   node drive_admin.mjs <admin url> <screenshot path>   (the token in ADMIN_TOKEN)
//
// Prints one JSON line with what the page showed; exits non-zero with a message otherwise.
// Every wait is on a page condition with a generous timeout (a loaded 2-core machine).
import { launchChromium } from "./chromium.mjs";

const [adminUrl, screenshot] = process.argv.slice(2);
const TOKEN = process.env.ADMIN_TOKEN;
const WAIT = { timeout: 90_000 };

const problems = [];
const seen = {};
let browserClose;
try {
  const { context, page, close } = await launchChromium("admin");
  browserClose = close;
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  // A CSP violation is reported as a console error: the page must cause none. The sign-in
  // form comes with a 401, which chromium reports too: those are counted apart.
  seen.unauthorizedLoads = 0;
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    if (msg.text().includes("status of 401")) seen.unauthorizedLoads += 1;
    else problems.push(`console error: ${msg.text()}`);
  });

  // No token: the sign-in form, nothing else.
  const first = await page.goto(adminUrl, { waitUntil: "load", ...WAIT });
  seen.noTokenStatus = first.status();
  seen.noTokenCsp = first.headers()["content-security-policy"] ?? null;
  seen.noTokenHasRunners = (await page.locator("#runners, #runners-empty").count()) > 0;
  await page.waitForSelector("form#login", WAIT);

  // A wrong token: refused, still the form.
  await page.locator('input[name="token"]').fill("not-the-token");
  await Promise.all([page.waitForLoadState("load"), page.locator("form#login button").click()]);
  await page.waitForSelector("#login-problem", WAIT);
  seen.wrongToken = (await page.locator("#login-problem").textContent()).trim();

  // The right token: the page, with a cookie the page's script could not read.
  await page.locator('input[name="token"]').fill(TOKEN);
  await Promise.all([page.waitForURL(adminUrl, WAIT), page.locator("form#login button").click()]);
  await page.waitForSelector("#runners", WAIT);
  seen.documentCookie = await page.evaluate(() => document.cookie);
  const cookies = await context.cookies(adminUrl);
  seen.cookie = cookies
    .filter((c) => c.name === "sockethub_admin")
    .map((c) => ({ httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path }));
  seen.sections = await page.locator("h2").allTextContents();
  seen.sessions = await page.locator("#sessions tbody tr").allTextContents();
  seen.lag = await page.locator("#lag tbody tr").allTextContents();
  seen.runners = await page.locator("#runners tbody tr").allTextContents();
  seen.reasons = await page.locator("#dead-letter-reasons tbody tr").allTextContents();
  seen.deadLetters = await page.locator("#dead-letters tbody tr").allTextContents();
  seen.stylesheetApplied = await page.evaluate(
    () => getComputedStyle(document.querySelector("th")).backgroundColor,
  );
  await page.screenshot({ path: screenshot, fullPage: true });

  // Re-drive the first dead letter through the form.
  await page.locator('#dead-letters input[name="id"]').first().check();
  await Promise.all([
    page.waitForURL(/\/admin\/redrive$/, WAIT),
    page.locator("form#redrive button").click(),
  ]);
  seen.redrive = (await page.locator("pre").textContent()).trim();

  // Sign out: the form again.
  await page.goto(adminUrl, { waitUntil: "load", ...WAIT });
  await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Sign out" }).click()]);
  await page.waitForSelector("form#login", WAIT);
  seen.signedOut = true;
  seen.problems = problems;
  console.log(JSON.stringify(seen));
} catch (err) {
  console.error(`admin page run failed: ${err.stack || err}`);
  console.error(JSON.stringify({ ...seen, problems }));
  process.exitCode = 1;
} finally {
  await browserClose?.();
}
