// A socket.io-client (v4, connection state recovery built in) driven over stdin/stdout:
// each stdin line is {"emit": <activity>, "event": <name, default "message">, "tag": <any>}
// or {"close": true}; each stdout line is one of {"connect": {id, recovered}},
// {"message": <payload>, "offset": <its offset>}, {"ack": <answer>, "tag": <the emit's>},
// {"disconnect": <reason>}, {"failed": <why a reconnect attempt failed>}.
// Usage: node recovery_client.mjs <gateway url> [socket.io path] [transports, comma-separated]
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [url, path = "/sockethub", transports = "websocket"] = process.argv.slice(2);
const out = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const socket = io(url, {
  path,
  transports: transports.split(","),
  reconnectionDelay: 200,
  reconnectionDelayMax: 500,
});
socket.on("connect", () =>
  // _pid: socket.io-client's own copy of the recovery id (the test reads the index with it).
  out({ connect: { id: socket.id, recovered: socket.recovered, pid: socket._pid ?? null } }),
);
socket.on("disconnect", (reason) => out({ disconnect: reason }));
socket.io.on("reconnect_error", (error) => out({ failed: String(error?.message ?? error) }));
socket.on("message", (payload, offset) => out({ message: payload, offset: offset ?? null }));

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.close) {
    socket.close();
    process.exit(0);
  }
  const event = command.event ?? "message";
  socket.emit(event, command.emit, (answer) => out({ ack: answer, tag: command.tag ?? null }));
});
