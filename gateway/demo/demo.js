/*
 * The Sockethub demo page: plain DOM code over the two bundles the gateway serves,
 * /socket.io.js (global `io`) and /sockethub-client.js (global `SockethubClient`).
 *
 * Activities go out through SockethubClient, which remembers credentials, connects and
 * joins and replays them after a reconnect. Everything that crosses the wire is shown in
 * the traffic pane. Content from feeds, pages and chat peers is untrusted: it is only
 * ever inserted as text, and links only when they are http(s).
 */
(() => {
  "use strict";

  const AS_CONTEXT = "https://www.w3.org/ns/activitystreams";
  const SOCKETHUB_CONTEXT = "https://sockethub.org/ns/context/v1.jsonld";
  const ACK_TIMEOUT_MS = 60000;
  const LOG_LIMIT = 200;
  const SECRET_KEYS = new Set(["password", "token"]);

  const $ = (id) => document.getElementById(id);
  const path = document.querySelector('meta[name="sockethub-path"]')?.content || "/sockethub";
  const contexts = new Map(); // platform id -> its context URL, from the `schemas` registry
  const chats = new Map(); // platform id -> chat panel, for the events the platform pushes
  let counter = 0;

  // --- small DOM helpers ------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function safeUrl(value) {
    try {
      const url = new URL(String(value));
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function link(href, text) {
    const url = safeUrl(href);
    return url ? el("a", { href: url, rel: "noopener noreferrer" }, text) : el("span", {}, text);
  }

  function showResult(node, text, isError = false) {
    node.textContent = text;
    node.classList.toggle("error", isError);
    if (isError) node.setAttribute("role", "alert");
    else node.removeAttribute("role");
  }

  function setStatus(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  // --- the traffic pane ---------------------------------------------------------------

  function masked(value) {
    return JSON.stringify(
      value === undefined ? null : value,
      (key, v) => (SECRET_KEYS.has(key) && typeof v === "string" ? "••••••" : v),
      2,
    );
  }

  function logTraffic(direction, event, payload) {
    const log = $("log");
    const text = masked(payload);
    const failed = payload && typeof payload === "object" && "error" in payload;
    const type = payload && typeof payload === "object" && payload.type ? ` ${payload.type}` : "";
    const time = new Date().toLocaleTimeString();
    const arrow = direction === "out" ? "→" : "←";
    const entry = el(
      "li",
      { class: `entry ${direction}${failed ? " failed" : ""}`, "data-event": event },
      el(
        "details",
        text.length < 2000 ? { open: "" } : {}, // big results start folded
        el("summary", {}, `${arrow} ${event}${type}`, el("time", {}, time)),
        el("pre", {}, text),
      ),
    );
    log.append(entry);
    while (log.children.length > LOG_LIMIT) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  // --- talking to the gateway ---------------------------------------------------------

  if (typeof io !== "function" || typeof SockethubClient !== "function") {
    setStatus(
      "error",
      "The client bundles did not load (/socket.io.js, /sockethub-client.js): " +
        "run `make run` or `sockethub provision` on the gateway's machine.",
    );
    return;
  }

  const socket = io({ path });
  const sc = new SockethubClient(socket);
  sc.debug = false;

  function contextFor(platform) {
    const url = contexts.get(platform) ||
      `https://sockethub.org/ns/context/platform/${platform}/v1.jsonld`;
    return [AS_CONTEXT, SOCKETHUB_CONTEXT, url];
  }

  function platformOf(activity) {
    if (!activity || typeof activity !== "object") return null;
    if (typeof activity.context === "string") return activity.context; // the G2 dialect
    for (const url of Array.isArray(activity["@context"]) ? activity["@context"] : []) {
      for (const [id, known] of contexts) if (known === url) return id;
      const match = /\/platform\/([^/]+)\//.exec(String(url));
      if (match) return match[1];
    }
    return null;
  }

  /** Emit with an acknowledgement; resolves with the ack (which may carry `error`). */
  function send(event, payload) {
    if (payload && typeof payload === "object" && !payload.id && event === "message") {
      payload.id = `demo-${Date.now().toString(36)}-${++counter}`;
    }
    logTraffic("out", event, payload);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        resolve({ error: `no answer from the gateway within ${ACK_TIMEOUT_MS / 1000} s` });
      }, ACK_TIMEOUT_MS);
      sc.socket.emit(event, payload, (ack) => {
        clearTimeout(timer);
        logTraffic("in", `${event} ack`, ack);
        resolve(ack && typeof ack === "object" ? ack : { error: `unexpected answer: ${ack}` });
      });
    });
  }

  function loadRegistry() {
    logTraffic("out", "schemas", null);
    socket.emit("schemas", null, (registry) => {
      if (recovering !== null) {
        setStatus(
          "connected",
          `${connectedText}; reconnected: ${recovering} missed events recovered`,
        );
        recovering = null;
      }
      const platforms = registry && Array.isArray(registry.platforms) ? registry.platforms : [];
      logTraffic("in", "schemas ack (the registry, summarised)", {
        fingerprint: registry?.fingerprint,
        version: registry?.version,
        platforms: platforms.map((p) => p.id),
      });
      contexts.clear();
      for (const platform of platforms) contexts.set(platform.id, platform.contextUrl);
      $("platforms").textContent = platforms.map((p) => `${p.id} ${p.version}`).join(", ") ||
        "none";
      // Panel id -> the platforms behind it; a panel is usable when one of them is enabled.
      const panels = { dummy: ["dummy"], feeds: ["feeds"], metadata: ["metadata"],
        irc: ["irc"], xmpp: ["xmpp"], dav: ["caldav", "carddav"] };
      for (const [id, needs] of Object.entries(panels)) {
        const section = $(id);
        const enabled = needs.some((platform) => contexts.has(platform));
        section.classList.toggle("disabled", !enabled);
        section.inert = !enabled;
        section.querySelector(".off-note")?.remove();
        if (!enabled) {
          section.querySelector("h2").after(
            el("p", { class: "off-note" }, "This platform is not enabled on this gateway."),
          );
        }
      }
    });
  }

  // Connection state recovery: the gateway pushes what a recovered session missed right
  // after its CONNECT answer and before it handles any event of the client, so the
  // `message` events between a recovered connect and the registry's ack are those.
  let everConnected = false;
  let recovering = null;
  let connectedText = "";
  sc.socket.on("connect", () => {
    connectedText = `Connected to ${location.host}${path} (session ${sc.socket.id})`;
    if (socket.recovered) {
      recovering = 0;
      setStatus("connected", `${connectedText}; reconnected, recovering missed events…`);
    } else {
      const note = everConnected ? "; reconnected: new session" : "";
      setStatus("connected", `${connectedText}${note}`);
    }
    everConnected = true;
    loadRegistry();
  });
  sc.socket.on("disconnect", (reason) => {
    setStatus("disconnected", `Disconnected (${reason}); reconnecting…`);
  });
  sc.socket.on("connect_error", (err) => {
    setStatus("error", `Cannot reach the gateway at ${location.host}${path}: ${err?.message}`);
  });
  // Raw events straight from Socket.IO: the traffic pane shows them untouched.
  socket.on("message", (activity) => {
    if (recovering !== null) recovering += 1;
    logTraffic("in", "message", activity);
    chats.get(platformOf(activity))?.incoming(activity);
  });
  socket.on("error", (notice) => {
    logTraffic("in", "error", notice);
    setStatus("error", `Gateway: ${notice?.summary || notice?.error || "error"}`);
  });

  // --- dummy --------------------------------------------------------------------------

  $("dummy-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const verb = $("dummy-verb").value;
    const result = $("dummy-result");
    showResult(result, "Waiting for the dummy platform…");
    const ack = await send("message", {
      "@context": contextFor("dummy"),
      type: verb,
      actor: { id: "demo@dummy", type: "person", name: "Demo" },
      object: { type: "message", content: $("dummy-content").value },
    });
    if (ack.error) showResult(result, ack.error, true);
    else showResult(result, `${ack.actor?.id ?? "?"} answered ${ack.type}: ${ack.object?.content}`);
  });

  // --- feeds --------------------------------------------------------------------------

  $("feeds-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = $("feed-url").value.trim();
    const summary = $("feed-summary");
    const list = $("feed-items");
    list.replaceChildren();
    showResult(summary, `Fetching ${url}…`);
    const ack = await send("message", {
      "@context": contextFor("feeds"),
      type: "fetch",
      actor: { id: url, type: "feed" },
    });
    if (ack.error) {
      showResult(summary, ack.error, true);
      return;
    }
    const items = Array.isArray(ack.items) ? ack.items : [];
    showResult(summary, `${ack.summary ?? "Feed"}: ${ack.totalItems ?? items.length} items`);
    for (const item of items) {
      const article = item.object ?? {};
      const date = article.published ?? (article.datenum ? new Date(article.datenum) : null);
      list.append(
        el(
          "li",
          { class: "feed-item" },
          link(article.url ?? article.id, article.title || "(untitled)"),
          date ? el("time", {}, new Date(date).toLocaleString()) : null,
          article.brief ? el("p", { class: "brief" }, article.brief) : null,
        ),
      );
    }
  });

  // --- metadata -----------------------------------------------------------------------

  $("metadata-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = $("page-url").value.trim();
    const summary = $("metadata-summary");
    const fields = $("metadata-fields");
    fields.replaceChildren();
    showResult(summary, `Fetching ${url}…`);
    const ack = await send("message", {
      "@context": contextFor("metadata"),
      type: "fetch",
      actor: { id: url, type: "website" },
    });
    if (ack.error) {
      showResult(summary, ack.error, true);
      return;
    }
    const page = ack.object ?? {};
    showResult(summary, page.title || ack.actor?.name || url);
    const rows = [
      ["Title", page.title],
      ["Description", page.description],
      ["Language", page.language],
      ["Canonical URL", page.url && link(page.url, page.url)],
      ["Favicon", page.favicon && link(page.favicon, page.favicon)],
    ];
    for (const [name, value] of rows) {
      if (value) fields.append(el("dt", {}, name), el("dd", {}, value));
    }
    const image = Array.isArray(page.image) ? page.image.find((i) => safeUrl(i?.url)) : null;
    if (image) {
      fields.append(
        el("dt", {}, "Image"),
        el("dd", {}, el("img", { src: safeUrl(image.url), alt: image.alt || "", loading: "lazy" })),
      );
    }
  });

  // --- IRC and XMPP: credentials, connect, join, send ---------------------------------

  /**
   * One chat panel. `spec` gives the platform's shapes: the actor, the credentials object
   * and the room target, each built from the connect form's values.
   */
  function chatPanel(platform, spec) {
    const section = $(platform);
    const form = section.querySelector("form.connect");
    const joinButton = form.querySelector("button.join");
    const disconnectButton = form.querySelector("button.disconnect");
    const state = section.querySelector(".state");
    const transcript = section.querySelector(".transcript");
    const say = section.querySelector("form.say");
    let actor = null;
    let room = null;

    const values = () => Object.fromEntries(
      [...form.elements].filter((e) => e.name).map((e) => [
        e.name,
        e.type === "checkbox" ? e.checked : e.value.trim(),
      ]),
    );
    const base = (type) => ({ "@context": contextFor(platform), type, actor });

    function line(kind, who, text) {
      transcript.append(
        el("li", { class: kind }, who ? el("b", {}, who) : null, who ? " " : null, text),
      );
      transcript.scrollTop = transcript.scrollHeight;
    }

    function setSay(enabled) {
      for (const control of say.elements) control.disabled = !enabled;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = values();
      actor = spec.actor(v);
      room = null;
      setSay(false);
      showResult(state, "Sending credentials…");
      const credentials = await send("credentials", {
        ...base("credentials"),
        object: { type: "credentials", ...spec.credentials(v) },
      });
      if (credentials.error) {
        showResult(state, credentials.error, true);
        return;
      }
      showResult(state, `Connecting as ${actor.id}…`);
      const connected = await send("message", base("connect"));
      if (connected.error) {
        showResult(state, connected.error, true);
        return;
      }
      showResult(state, `Connected as ${actor.id}. Join ${v.room} next.`);
      joinButton.disabled = false;
      disconnectButton.disabled = false;
    });

    joinButton.addEventListener("click", async () => {
      const target = spec.room(values());
      showResult(state, `Joining ${target.name || target.id}…`);
      const joined = await send("message", { ...base("join"), target });
      if (joined.error) {
        showResult(state, joined.error, true);
        return;
      }
      room = target;
      showResult(state, `In ${target.name || target.id} as ${actor.name || actor.id}.`);
      setSay(true);
      say.elements.content.focus();
    });

    disconnectButton.addEventListener("click", async () => {
      const done = await send("message", base("disconnect"));
      if (done.error) showResult(state, done.error, true);
      else showResult(state, "Disconnected.");
      room = null;
      setSay(false);
      joinButton.disabled = true;
      disconnectButton.disabled = true;
    });

    say.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = say.elements.content;
      const content = input.value;
      if (!room || !content) return;
      input.value = "";
      const sent = await send("message", {
        ...base("send"),
        target: room,
        object: { type: "message", content },
      });
      if (sent.error) line("error", null, `not sent: ${sent.error}`);
      else line("mine", actor.name || actor.id, content);
    });

    return {
      /** An event the platform pushed: a message, a join or leave, a topic, an error. */
      incoming(activity) {
        const who = activity.actor?.name || activity.actor?.id || "";
        const object = activity.object ?? {};
        const content = object.content ?? "";
        const private_ = activity.target?.type === "person" ? " (private)" : "";
        if (activity.error) line("error", null, activity.error);
        else if (activity.type === "send" && object.type === "me") {
          line("theirs", `* ${who}`, content);
        } else if (activity.type === "send") {
          line("theirs", `${who}${private_}${object.type === "notice" ? " (notice)" : ""}`,
            content);
        } else if (activity.type === "join") line("notice", null, `${who} joined`);
        else if (activity.type === "leave") {
          line("notice", null, `${who} left${content ? `: ${content}` : ""}`);
        } else if (activity.type === "update" && object.type === "topic") {
          line("notice", null, `topic: ${content}`);
        } else if (activity.type === "update" && object.type === "address") {
          line("notice", null, `${who} is now ${activity.target?.name || activity.target?.id}`);
        } else if (activity.type === "update" && object.type === "presence") {
          const state = object.presence || (object.role ? `here (${object.role})` : "here");
          line("notice", null, `${who} is ${state}${content ? `: ${content}` : ""}`);
        } else line("notice", null, `${activity.type} from ${who}`);
      },
    };
  }

  const nick = `demo${Math.floor(1000 + Math.random() * 9000)}`;
  $("irc-nick").value = nick;
  $("xmpp-nick").value = nick;

  chats.set("irc", chatPanel("irc", {
    actor: (v) => ({ id: `${v.nick}@${v.server}`, type: "person", name: v.nick }),
    credentials: (v) => ({
      nick: v.nick,
      server: v.server,
      port: Number(v.port),
      secure: Boolean(v.secure),
    }),
    room: (v) => {
      const channel = v.room.startsWith("#") ? v.room : `#${v.room}`;
      return { id: `${channel.slice(1)}@${v.server}`, type: "room", name: channel };
    },
  }));

  chats.set("xmpp", chatPanel("xmpp", {
    actor: (v) => ({ id: v.userAddress, type: "person", name: v.nick }),
    credentials: (v) => ({
      userAddress: v.userAddress,
      password: v.password,
      resource: v.resource,
      ...(v.server ? { server: v.server } : {}),
    }),
    room: (v) => ({ id: v.room, type: "room", name: v.room }),
  }));

  // --- CalDAV and CardDAV: credentials, then list, show and create ------------------

  /**
   * The DAV panel. One credentials form serves both platforms (the same account usually
   * holds calendars and contacts); each part then lists its collections, queries one and
   * creates an item. The server checks the password on the first request, not on
   * `credentials`, so a wrong one shows up as the list's error.
   */
  const dav = { actor: null, parts: [] };
  const counted = (n, one, many) => `${n} ${n === 1 ? one : many}.`;

  function davPart(platform, spec) {
    const part = $(spec.fieldset);
    const select = part.querySelector("select.collection");
    const result = part.querySelector(".result");
    const list = part.querySelector(".dav-items");
    const create = part.querySelector("form.create");
    const base = (type) => ({ "@context": contextFor(platform), type, actor: dav.actor });
    const target = () => ({ id: select.value, type: spec.targetType });

    async function listCollections() {
      showResult(result, `Listing ${spec.collections}…`);
      const ack = await send("message", base("fetch"));
      if (ack.error) {
        showResult(result, ack.error, true);
        return;
      }
      const items = Array.isArray(ack.items) ? ack.items : [];
      select.replaceChildren(
        ...items.map((c) => el("option", { value: String(c.id) }, c.name || c.id)),
      );
      showResult(result, counted(items.length, spec.collection, spec.collections));
    }

    async function showItems(quiet = false) {
      if (!select.value) {
        showResult(result, `List the ${spec.collections} first.`, true);
        return;
      }
      if (!quiet) showResult(result, `Querying ${select.selectedOptions[0].textContent}…`);
      const query = spec.query ? { object: spec.query } : {};
      const ack = await send("message", { ...base("query"), target: target(), ...query });
      if (ack.error) {
        showResult(result, ack.error, true);
        return;
      }
      const items = Array.isArray(ack.items) ? ack.items : [];
      list.replaceChildren(...items.map((item) => {
        if (item.error) return el("li", { class: "error" }, `${item.id}: ${item.error}`);
        const details = [spec.detail(item), item.etag ? `ETag ${item.etag}` : null];
        return el(
          "li",
          {},
          item.name || item.uid || item.id,
          el("span", { class: "meta" }, details.filter(Boolean).join(" · ")),
        );
      }));
      if (!quiet) showResult(result, counted(items.length, spec.item, spec.items));
    }

    part.querySelector("button.list").addEventListener("click", listCollections);
    part.querySelector("button.show").addEventListener("click", () => showItems());
    create.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!select.value) {
        showResult(result, `List the ${spec.collections} first.`, true);
        return;
      }
      const values = Object.fromEntries(
        [...create.elements].filter((e) => e.name).map((e) => [e.name, e.value.trim()]),
      );
      let object;
      try {
        object = spec.object(values);
      } catch (err) {
        showResult(result, err.message, true);
        return;
      }
      showResult(result, `Creating ${object.name}…`);
      const ack = await send("message", { ...base("create"), target: target(), object });
      if (ack.error) {
        showResult(result, ack.error, true);
        return;
      }
      const made = ack.object ?? {};
      showResult(result, `Created ${object.name}: ${made.id} (ETag ${made.etag ?? "none"})`);
      await showItems(true);
    });
    return { platform, part };
  }

  /** A datetime-local value as UTC with an offset, which the caldav schema requires. */
  function utc(local, plusMinutes = 0) {
    const time = new Date(local);
    if (Number.isNaN(time.getTime())) throw new Error(`not a date and time: ${local}`);
    time.setMinutes(time.getMinutes() + plusMinutes);
    return time.toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  const tomorrow = new Date(Date.now() + 86400000);
  tomorrow.setHours(10, 0, 0, 0);
  const pad = (n) => String(n).padStart(2, "0");
  $("dav-event-start").value = `${tomorrow.getFullYear()}-${pad(tomorrow.getMonth() + 1)}-` +
    `${pad(tomorrow.getDate())}T10:00`;

  dav.parts.push(davPart("caldav", {
    fieldset: "dav-calendars",
    targetType: "calendar",
    collection: "calendar",
    collections: "calendars",
    item: "event",
    items: "events",
    query: { type: "event" },
    object: (v) => ({
      type: "event",
      name: v.name,
      startTime: utc(v.start),
      endTime: utc(v.start, 60),
    }),
    detail: (item) => (item.startTime ? `starts ${item.startTime}` : null),
  }));
  dav.parts.push(davPart("carddav", {
    fieldset: "dav-contacts",
    targetType: "addressBook",
    collection: "address book",
    collections: "address books",
    item: "contact",
    items: "contacts",
    query: null,
    object: (v) => ({
      type: "person",
      name: v.name,
      ...(v.email ? { emails: [{ value: v.email }] } : {}),
    }),
    detail: (item) => item.emails?.[0]?.value ?? null,
  }));

  $("dav-login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const state = $("dav-state");
    const url = $("dav-url").value.trim();
    const username = $("dav-username").value.trim();
    let host;
    try {
      host = new URL(url).host;
    } catch {
      showResult(state, `not a URL: ${url}`, true);
      return;
    }
    // The schemas allow only `id` and `type` on a DAV actor (no `name`).
    dav.actor = { id: `${username}@${host}`, type: "person" };
    const enabled = dav.parts.filter((p) => contexts.has(p.platform));
    for (const { part } of dav.parts) part.disabled = true;
    showResult(state, "Sending credentials…");
    for (const { platform } of enabled) {
      const ack = await send("credentials", {
        "@context": contextFor(platform),
        type: "credentials",
        actor: dav.actor,
        object: { type: "credentials", url, username, password: $("dav-password").value },
      });
      if (ack.error) {
        showResult(state, `${platform}: ${ack.error}`, true);
        return;
      }
    }
    for (const { part } of enabled) part.disabled = false;
    showResult(state, `Credentials sent as ${dav.actor.id}; the server checks them on the ` +
      "first request.");
  });

  $("log-clear").addEventListener("click", () => $("log").replaceChildren());
})();
