// Drives the demo page in Debian's chromium through playwright-core (never a downloaded
// browser). Called by test_demo_page.py with the stack already running:
//
//   node drive_demo.mjs <page url> <feed url> <screenshot path> <dav JSON>
//
// <dav JSON>: {url, username, password, wrongPassword, calendar, book, event, contact}, a
// Radicale account with one calendar and one address book of those display names.
//
// Prints one JSON line with what the page showed; exits non-zero with a message otherwise.
// Every wait is on a page condition with a generous timeout (a loaded 2-core machine).
import { launchChromium } from "./chromium.mjs";

const [pageUrl, feedUrl, screenshot, davJson] = process.argv.slice(2);
const dav = JSON.parse(davJson);
const WAIT = { timeout: 90_000 };
const ECHO = "hello from headless chromium";

const problems = [];
let browserClose;
let page;
try {
  ({ page, close: browserClose } = await launchChromium("demo"));
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

  // CalDAV and CardDAV. Each step blanks the line it waits on, then waits for an answer
  // there (a progress text ends with "…"), so an earlier answer is never taken for it.
  const answer = async (selector, click) => {
    await page.locator(selector).evaluate((node) => { node.textContent = ""; });
    await click();
    await page.waitForFunction(
      (sel) => {
        const text = document.querySelector(sel).textContent;
        return text !== "" && !text.endsWith("…");
      },
      selector,
      WAIT,
    );
    return {
      text: await page.locator(selector).textContent(),
      error: await page.locator(selector).evaluate((node) => node.classList.contains("error")),
    };
  };
  const signIn = async (password) => {
    await page.getByLabel("Server URL").fill(dav.url);
    await page.getByLabel("Username").fill(dav.username);
    await page.locator("#dav-password").fill(password);
    return answer("#dav-state", () =>
      page.getByRole("button", { name: "Send credentials" }).click());
  };
  const click = (name) => () => page.getByRole("button", { name, exact: true }).click();
  const listed = (selector) =>
    page.locator(`${selector} li`).evaluateAll((items) =>
      items.map((li) => ({
        text: li.textContent,
        elements: li.querySelectorAll("*:not(span)").length,
      })),
    );

  const wrongLogin = await signIn(dav.wrongPassword);
  const wrongList = await answer("#dav-calendars-result", click("List calendars"));
  const login = await signIn(dav.password);
  const calendars = await answer("#dav-calendars-result", click("List calendars"));
  await page.locator("#dav-calendar").selectOption({ label: dav.calendar });
  await page.getByLabel("New event").fill(dav.event);
  await page.getByLabel("Starts").fill("2026-08-03T15:00");
  const eventCreated = await answer("#dav-calendars-result", click("Create event"));
  const eventsShown = await answer("#dav-calendars-result", click("Show events"));
  const events = await listed("#dav-events");

  const books = await answer("#dav-contacts-result", click("List address books"));
  await page.locator("#dav-book").selectOption({ label: dav.book });
  await page.getByLabel("New contact").fill(dav.contact);
  await page.getByLabel("Email").fill("demo@example.org");
  const contactCreated = await answer("#dav-contacts-result", click("Create contact"));
  const contactsShown = await answer("#dav-contacts-result", click("Show contacts"));
  const contacts = await listed("#dav-cards");
  const logText = await page.locator("#log").textContent();
  const davSeen = {
    wrongLogin, wrongList, login, calendars, eventCreated, eventsShown, events,
    books, contactCreated, contactsShown, contacts,
    passwordInLog: logText.includes(dav.password) || logText.includes(dav.wrongPassword),
  };

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
    JSON.stringify({
      status, platforms, echo, feedSummary, feedItems, traffic, problems, dav: davSeen,
    }),
  );
} catch (err) {
  console.error(`demo page check failed: ${err?.stack || err}`);
  if (problems.length) console.error(problems.join("\n"));
  // What the page looked like when it went wrong, beside the usual screenshot.
  await page?.screenshot({ path: screenshot.replace(/\.png$/, "-failure.png"), fullPage: true })
    .catch(() => {});
  process.exitCode = 1;
} finally {
  await browserClose?.();
}
