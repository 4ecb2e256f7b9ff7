// Plays an rtmp:// URL with node-media-server's own RTMP client (its
// Enhanced RTMP FLV parser reads each message) and prints one JSON line per
// audio/video/data message: {type, codec (FourCC or legacy id), flags, size}.
// flags as node-media-server's parser sets them: 2 sequence start, 3
// keyframe, 4 inter frame, 5 script data. Exits after COUNT messages or
// TIMEOUT_MS. Usage: node play.js URL COUNT
"use strict";
const RtmpClient = require("node-media-server/src/protocol/rtmp_client.js");

const [url, count] = process.argv.slice(2);
const want = Number(count || 30);
const client = new RtmpClient();
let seen = 0;
const fourcc = (id) => (id > 0xffff ? Buffer.from(id.toString(16).padStart(8, "0"), "hex").toString() : id);
// Set before connecting: a server may send media in the same read as the
// play status.
client.onPacketCallback = (p) => {
  console.log(JSON.stringify({ type: p.codec_type, codec: fourcc(p.codec_id), flags: p.flags, size: p.size }));
  if (++seen >= want) {
    client.disconnect();
    process.exit(0);
  }
};
setTimeout(() => {
  console.error(`timeout after ${seen} messages`);
  process.exit(2);
}, Number(process.env.TIMEOUT_MS || 20000));
(async () => {
  await client.connect(url);
  await client.sendConnect();
  await client.sendCreateStream();
  await client.sendPlay(client.urlInfo.streamName);
})().catch((e) => {
  console.error(`play failed: ${e.message}`);
  process.exit(1);
});
