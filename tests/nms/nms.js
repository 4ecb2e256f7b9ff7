// node-media-server 4 (a real Enhanced RTMP server: av01, hvc1) for the e2e
// tests, on 127.0.0.1 only, media only (no web admin, no persistence of
// relays). Usage:
//   node nms.js RTMP_PORT DATA_DIR [pull|push URL STREAM_PATH]...
// `pull URL /live/x` plays URL (rtmp://) and republishes it as /live/x;
// `push URL /live/x` publishes /live/x to URL each time something publishes it.
// Prints "nms ready" once listening.
"use strict";
const net = require("net");
const NodeMediaServer = require("node-media-server");

const [rtmpPort, dataDir, ...rest] = process.argv.slice(2);
const nms = new NodeMediaServer({
  bind: "127.0.0.1",
  rtmp: { port: Number(rtmpPort) },
  webadmin: { enable: false },
  store: { path: dataDir },
  record: { auto: false, path: `${dataDir}/record` },
  auth: { play: false, publish: false },
});

async function main() {
  await nms.run();
  const pushes = [];
  for (let i = 0; i + 3 <= rest.length; i += 3) {
    const [mode, url, streamPath] = rest.slice(i, i + 3);
    if (mode === "push") {
      pushes.push({ mode, url, streamPath, reconnectInterval: 500 });
    } else {
      nms.relayServer.addTask({ mode, url, streamPath, reconnectInterval: 500 });
    }
  }
  // A push relay needs its local stream to exist when it starts.
  nms.on("postPublish", (session) => {
    for (const task of pushes.filter((t) => t.streamPath === session.streamPath)) {
      nms.relayServer.removeTask(`push:${task.url}`);
      nms.relayServer.addTask(task);
    }
  });
  // Ready once the RTMP port answers.
  const poll = () => {
    const s = net.connect(Number(rtmpPort), "127.0.0.1", () => {
      s.destroy();
      console.log("nms ready");
    });
    s.on("error", () => setTimeout(poll, 50));
  };
  poll();
}

process.on("SIGTERM", () => {
  nms.stop().finally(() => process.exit(0));
});
main();
