// The client published on npm, @sockethub/client@5.0.0-alpha.11 (it speaks G2), in Node
// against a running gateway: register an actor, send a dummy echo, print the answer.
// Usage: node client_echo.mjs <gateway url> [socket.io path]
import SockethubClient from "@sockethub/client";
import { io } from "socket.io-client";

const [url, path = "/sockethub"] = process.argv.slice(2);
const fail = (why) => {
  console.error(`client_echo: ${why}`);
  process.exit(1);
};
const timer = setTimeout(() => fail("no answer within 60 s"), 60_000);

const socket = io(url, { path, transports: ["websocket"], reconnection: false });
const sc = new SockethubClient(socket);
sc.debug = false;

sc.socket.on("connect_error", (err) => fail(`cannot connect: ${err?.message ?? err}`));
sc.socket.on("connect", () => {
  // The client library turns this into an `activity-object` event for the server.
  sc.ActivityStreams.Object.create({ id: "jimmy@dummy", type: "person", name: "Jimmy" });
  sc.socket.emit(
    "message",
    {
      context: "dummy",
      type: "echo",
      actor: "jimmy@dummy",
      object: { type: "message", content: "hello from node" },
    },
    (result) => {
      clearTimeout(timer);
      console.log(JSON.stringify({ result }));
      sc.socket.disconnect();
      process.exit(0);
    },
  );
});
