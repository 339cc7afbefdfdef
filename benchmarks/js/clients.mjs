// The client side of benchmarks/e2e_bench.py: one Node process holding many Socket.IO
// clients (socket.io-client, websocket transport), cheaper per echo than python-socketio,
// so the system under test keeps more of the machine's CPU.
//
// Usage: node clients.mjs URL PATH COUNT TAG
// Connects COUNT clients, prints one JSON line {"event": "connected", ...}, then obeys JSON
// commands read from stdin, one per line, answering each with one JSON line on stdout:
//
// - {"cmd": "rate", "rate": R, "duration": D, "start_at": T}: open loop. From wall clock
//   time T (Unix seconds), send R dummy echoes per second for D seconds, round-robin over
//   the clients. Latency runs from each request's *scheduled* time to its ack, so a sender
//   that falls behind shows up in the figures (no coordinated omission).
// - {"cmd": "closed", "window": W, "duration": D, "start_at": T}: saturation. Every client
//   keeps W requests outstanding for D seconds.
// - {"cmd": "quit"}: disconnect everything, print {"event": "bye"} and exit.
//
// Order check: each client numbers its echoes (the number ends the message's content, which
// the dummy echo returns). A client's requests form one session, keyed to one request
// partition, run one at a time in sent order by its runner's lane, and answered in that
// order on the gateway's reply partition, whose reader acks them as it reads them: so the
// numbers of a client's good answers must rise. Each result counts the answers whose number
// is not above the client's highest one answered before (`order_violations`).
//
// Every send is bounded by the duration and every wait by ACK_TIMEOUT.
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const ACK_TIMEOUT_MS = 30_000;
const CONNECT_PARALLEL = 32;
const CONTEXT = [
  "https://www.w3.org/ns/activitystreams",
  "https://sockethub.org/ns/context/v1.jsonld",
  "https://sockethub.org/ns/context/platform/dummy/v1.jsonld",
];
// The headers aiohttp added to the former python-socketio clients' handshakes (ws sends the
// rest), so the gateway keeps the same per-connection state in the idle-memory phase.
const HEADERS = {
  Accept: "*/*",
  "Accept-Encoding": "gzip, deflate",
  "User-Agent": `Node/${process.versions.node} socket.io-client/4.8`,
};

const echo = (id, seq) => ({
  "@context": CONTEXT,
  type: "echo",
  id,
  actor: { id: "bench@dummy", type: "person", name: "Bench" },
  object: { type: "message", content: `hello ${id} #${seq}` },
});

/** The client's sequence number at the end of an echo's content, or NaN. */
const sequenceOf = (ack) => {
  const content = ack?.object?.content;
  const match = typeof content === "string" ? /#(\d+)$/.exec(content) : null;
  return match ? Number(match[1]) : Number.NaN;
};

/** Per-socket numbering, kept across phases (a socket is one session for its life). */
const sentSeq = new WeakMap();
const ackedSeq = new WeakMap();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const sleepUntilWall = (startAt) => sleep(startAt * 1000 - Date.now());
const emitLine = (payload) => process.stdout.write(`${JSON.stringify(payload)}\n`);

/** What one load phase saw: latencies (ms) of good answers, and the failures. */
class Tally {
  constructor() {
    this.sent = 0;
    this.answered = 0;
    this.errors = 0;
    this.timeouts = 0;
    this.wrong = 0;
    this.orderViolations = 0;
    this.latencies = [];
    this.lastAnswer = 0;
    this.windowEnd = Infinity;
    this.inWindow = 0; // good answers before the end of the sending window (throughput)
    this.outstanding = 0;
    this.idle = null; // resolves when nothing is outstanding
  }

  /** Send one echo from `t0` (ms, performance clock); `then` runs once it is settled. */
  call(socket, id, t0, then) {
    this.sent += 1;
    this.outstanding += 1;
    const settle = () => {
      this.outstanding -= 1;
      if (then) then();
      if (this.outstanding === 0 && this.idle) this.idle();
    };
    if (!socket.connected) {
      this.errors += 1;
      setImmediate(settle);
      return;
    }
    const seq = (sentSeq.get(socket) ?? 0) + 1;
    sentSeq.set(socket, seq);
    socket.timeout(ACK_TIMEOUT_MS).emit("message", echo(id, seq), (err, ...acks) => {
      const now = performance.now();
      if (err) {
        if (err.message === "operation has timed out") this.timeouts += 1;
        else this.errors += 1;
      } else {
        this.lastAnswer = now;
        const ack = acks.length === 1 ? acks[0] : undefined;
        if (ack === null || typeof ack !== "object" || Array.isArray(ack) || ack.id !== id) {
          this.wrong += 1;
        } else if ("error" in ack) {
          this.errors += 1;
        } else {
          const got = sequenceOf(ack);
          const last = ackedSeq.get(socket) ?? 0;
          if (!(got > last)) this.orderViolations += 1;
          if (got > last) ackedSeq.set(socket, got);
          this.answered += 1;
          if (now <= this.windowEnd) this.inWindow += 1;
          this.latencies.push(now - t0);
        }
      }
      settle();
    });
  }

  /** Resolves when every request has settled, or after `ms`. */
  drained(ms) {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  report(started, duration) {
    return {
      event: "result",
      sent: this.sent,
      answered: this.answered,
      errors: this.errors,
      timeouts: this.timeouts,
      wrong: this.wrong,
      order_violations: this.orderViolations,
      in_window: this.inWindow,
      duration,
      drain_s: Math.max(0, (this.lastAnswer - started) / 1000 - duration),
      latencies_ms: this.latencies.map((x) => Math.round(x * 1000) / 1000),
    };
  }
}

async function runRate(sockets, tag, rate, duration, startAt) {
  const tally = new Tally();
  await sleepUntilWall(startAt);
  const started = performance.now();
  tally.windowEnd = started + duration * 1000;
  const total = Math.floor(rate * duration);
  const interval = 1000 / rate;
  let n = 0;
  // Every request due by now goes out on this tick with its own scheduled time as t0;
  // timers fire at best every millisecond, so sends come in small bursts.
  while (n < total) {
    const now = performance.now();
    for (; n < total && started + n * interval <= now; n += 1) {
      tally.call(sockets[n % sockets.length], `${tag}-r${n}`, started + n * interval);
    }
    if (n < total) await sleep(started + n * interval - performance.now());
  }
  await tally.drained(ACK_TIMEOUT_MS + 5000);
  return tally.report(started, duration);
}

async function runClosed(sockets, tag, window, duration, startAt) {
  const tally = new Tally();
  await sleepUntilWall(startAt);
  const started = performance.now();
  const end = (tally.windowEnd = started + duration * 1000);
  let counter = 0;
  const lane = (socket) => {
    if (performance.now() >= end) return;
    tally.call(socket, `${tag}-c${counter++}`, performance.now(), () => lane(socket));
  };
  for (const socket of sockets) for (let i = 0; i < window; i += 1) lane(socket);
  await sleep(end - performance.now());
  await tally.drained(ACK_TIMEOUT_MS + 5000);
  return tally.report(started, duration);
}

function connectOne(url, path) {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      path,
      transports: ["websocket"],
      reconnection: false,
      forceNew: true, // one websocket per client, not one shared (multiplexed) Manager
      perMessageDeflate: false, // as python-socketio: no compression negotiated
      extraHeaders: HEADERS,
      timeout: 30_000,
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
  });
}

async function connectAll(url, path, count) {
  const sockets = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      for (let attempt = 0; ; attempt += 1) {
        try {
          sockets.push(await connectOne(url, path));
          break;
        } catch (err) {
          if (attempt === 4) throw err;
          await sleep(500 * (attempt + 1));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_PARALLEL, count) }, worker));
  return sockets;
}

/**
 * Disconnect and wait for the websocket to close, as python-socketio's disconnect() does:
 * one client at a time, not a burst of thousands that the gateway must clean up at once.
 */
function disconnect(socket) {
  const ws = socket.io.engine?.transport?.ws; // the `ws` WebSocket under engine.io-client
  socket.disconnect();
  if (!ws || ws.readyState === ws.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000);
    ws.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function main() {
  const [url, path, countArg, tagArg] = process.argv.slice(2);
  let tag = tagArg;
  const started = performance.now();
  const sockets = await connectAll(url, path, Number(countArg));
  emitLine({
    event: "connected",
    clients: sockets.length,
    seconds: (performance.now() - started) / 1000,
  });
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    if (command.cmd === "quit") break;
    let result;
    if (command.cmd === "rate") {
      result = await runRate(sockets, tag, command.rate, command.duration, command.start_at);
    } else if (command.cmd === "closed") {
      result = await runClosed(sockets, tag, command.window, command.duration, command.start_at);
    } else {
      result = { event: "error", detail: `unknown command ${JSON.stringify(command.cmd)}` };
    }
    tag += "x"; // fresh request ids for the next phase
    emitLine(result);
  }
  for (const socket of sockets) await disconnect(socket);
  emitLine({ event: "bye" });
  process.exit(0);
}

main().catch((err) => {
  console.error(`clients.mjs: ${err?.stack ?? err}`);
  process.exit(1);
});
