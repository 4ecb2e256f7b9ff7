"""An aiortc WebRTC viewer in its own process, for tests that make it vanish
(SIGKILL: no DTLS close, no more consent checks), like a browser tab whose
machine drops off the network.

    python webrtc_viewer.py http://127.0.0.1:PORT cam

Prints `PLAYING` once 10 video frames decoded, then keeps receiving.
"""

import asyncio
import sys

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription


async def main(base, src):
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    frames = 0
    playing = asyncio.Event()

    @pc.on("track")
    def on_track(track):
        async def pump():
            nonlocal frames
            while True:
                await track.recv()
                frames += 1
                if frames == 10:
                    playing.set()
        asyncio.ensure_future(pump())

    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/api/webrtc?src={src}",
                          json={"type": "offer", "sdp": pc.localDescription.sdp}) as r:
            answer = await r.json()
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    await asyncio.wait_for(playing.wait(), 30)
    print("PLAYING", flush=True)
    await asyncio.Event().wait()


asyncio.run(main(sys.argv[1], sys.argv[2]))
