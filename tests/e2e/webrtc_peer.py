"""A WebRTC sender for camrouter's `webrtc:` client sources to pull from:
aiortc plays a media file (re-encoded to H.264 and Opus/G.711) behind fake
signaling servers, one per shape camrouter speaks:

  POST /whep                WHEP: application/sdp → 201 + Location, DELETE on it
  POST /json                go2rtc's JSON only ({"type":"offer","sdp"}; an SDP
                            body gets 415)
  GET  /api/ws              go2rtc's ws: webrtc/offer → webrtc/answer; our
                            candidates are left out of the answer and trickled
                            as webrtc/candidate
  GET  /kinesis             Kinesis: SDP_OFFER → SDP_ANSWER and ICE_CANDIDATE,
                            base64 JSON payloads, candidates trickled
  GET  /wyze/<cam>          docker-wyze-bridge's JSON naming the /kinesis channel
  GET  /openipc             OpenIPC: we offer (as "webrtc_answer"), the client
                            answers with {"req":"answer"}
  GET  /switchbot           Kinesis with SwitchBot's resolution/play_type
  POST /creality            Creality: base64 JSON offer → base64 JSON answer
                            with a leading format it does not send
  /ms/IDP/connect/token, /ms/REST/v1/WebRTC/Session[/<id>]
                            Milestone: token, session with our offer, PATCHed answer
  GET  /stats               what the fakes saw

Run: python webrtc_peer.py FILE; prints "PORT <n>" once listening on 127.0.0.1.
"""

import asyncio
import base64
import itertools
import json
import sys

from aiohttp import WSMsgType, web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import candidate_from_sdp

FILE = sys.argv[1]
stats = {"whep_posts": 0, "whep_deletes": 0, "json_posts": 0, "json_refused_sdp": 0,
         "ws_offers": 0, "kinesis_offers": 0, "kinesis_client_ids": [], "wyze_gets": 0,
         "openipc_answers": 0, "connected": 0, "keyframe_requests": 0,
         "kinesis_extra": [], "kinesis_offer_audio": [], "creality_posts": 0,
         "milestone_tokens": 0, "milestone_sessions": [], "milestone_answers": 0,
         "talk_frames": 0, "talk_peak": 0}
# Keyframe requests (PLI/FIR) that reached a sender, counted.
_send_keyframe = RTCRtpSender._send_keyframe


def counted_send_keyframe(self):
    stats["keyframe_requests"] += 1
    _send_keyframe(self)


RTCRtpSender._send_keyframe = counted_send_keyframe
pcs = {}
ids = itertools.count(1)


def new_pc():
    pc = RTCPeerConnection()
    player = MediaPlayer(FILE, loop=True)

    @pc.on("connectionstatechange")
    async def changed():
        if pc.connectionState == "connected":
            stats["connected"] += 1
        if pc.connectionState in ("failed", "closed"):
            await pc.close()
    return pc, player


async def listen(track):
    """Talk-back: decoded audio from the client, counted, with its loudest
    sample (16-bit), so that silence is told from a tone."""
    import array
    while True:
        try:
            frame = await track.recv()
        except Exception:
            return
        stats["talk_frames"] += 1
        samples = array.array("h", bytes(frame.planes[0])[: frame.samples * 2 * len(frame.layout.channels)])
        if samples:
            stats["talk_peak"] = max(stats["talk_peak"], max(abs(x) for x in samples))


async def answer(offer_sdp):
    """The answer of a sender to `offer_sdp` (complete, with candidates);
    an audio section the client sends on (`sendrecv`) is answered
    `sendrecv`: this camera takes talk-back audio, counted in stats."""
    pc, player = new_pc()

    @pc.on("track")
    def on_track(track):
        if track.kind == "audio":
            asyncio.ensure_future(listen(track))
    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
    for t in pc.getTransceivers():
        track = player.video if t.kind == "video" else player.audio
        if track is not None:
            pc.addTrack(track)
    await pc.setLocalDescription(await pc.createAnswer())
    n = next(ids)
    pcs[n] = pc
    return n, pc.localDescription.sdp


def split_candidates(sdp):
    """The SDP without its candidate lines, and those candidates."""
    lines, cands = [], []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            cands.append(line[2:])
        elif line != "a=end-of-candidates":
            lines.append(line)
    return "\r\n".join(lines) + "\r\n", cands


async def whep(request):
    if request.content_type != "application/sdp":
        return web.Response(status=415, text="application/sdp only")
    stats["whep_posts"] += 1
    n, sdp = await answer(await request.text())
    return web.Response(status=201, text=sdp, content_type="application/sdp",
                        headers={"Location": f"/whep/{n}"})


async def whep_delete(request):
    pc = pcs.pop(int(request.match_info["id"]), None)
    if pc is None:
        return web.Response(status=404)
    stats["whep_deletes"] += 1
    await pc.close()
    return web.Response(status=200)


async def json_offer(request):
    if request.content_type != "application/json":
        stats["json_refused_sdp"] += 1
        return web.Response(status=415, text="JSON only")
    stats["json_posts"] += 1
    body = await request.json()
    _, sdp = await answer(body["sdp"])
    return web.json_response({"type": "answer", "sdp": sdp})


async def go2rtc_ws(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        m = json.loads(msg.data)
        if m["type"] == "webrtc/offer":
            stats["ws_offers"] += 1
            _, sdp = await answer(m["value"])
            sdp, cands = split_candidates(sdp)
            await ws.send_json({"type": "webrtc/answer", "value": sdp})
            for c in cands:
                await ws.send_json({"type": "webrtc/candidate", "value": c})
    return ws


async def kinesis(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        m = json.loads(msg.data)
        if m.get("action") != "SDP_OFFER":
            continue
        stats["kinesis_offers"] += 1
        stats["kinesis_client_ids"].append(m.get("recipientClientId"))
        offer = json.loads(base64.b64decode(m["messagePayload"]))
        assert offer["type"] == "offer"
        stats["kinesis_extra"].append({k: v for k, v in offer.items() if k not in ("type", "sdp")})
        stats["kinesis_offer_audio"].append("m=audio" in offer["sdp"])
        _, sdp = await answer(offer["sdp"])
        sdp, cands = split_candidates(sdp)
        payload = json.dumps({"type": "answer", "sdp": sdp}).encode()
        await ws.send_json({"messageType": "SDP_ANSWER",
                            "messagePayload": base64.b64encode(payload).decode()})
        for c in cands:
            p = json.dumps({"candidate": c, "sdpMid": "0", "sdpMLineIndex": 0}).encode()
            await ws.send_json({"messageType": "ICE_CANDIDATE",
                                "messagePayload": base64.b64encode(p).decode()})
    return ws


async def wyze(request):
    stats["wyze_gets"] += 1
    host = request.host
    return web.json_response({
        "result": "ok", "cam": request.match_info["cam"], "ClientId": "wyze-viewer-1",
        "signalingUrl": f"ws://{host}/kinesis", "servers": [],
    })


async def openipc(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    pc, player = new_pc()
    pcs[next(ids)] = pc
    if player.video:
        t = pc.addTransceiver(player.video, direction="sendonly")
        t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                               if c.mimeType == "video/H264"])
    if player.audio:
        pc.addTransceiver(player.audio, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp, cands = split_candidates(pc.localDescription.sdp)
    await ws.send_json({"reply": "webrtc_answer", "data": {"type": "offer", "sdp": sdp}})
    for c in cands:
        await ws.send_json({"reply": "webrtc_candidate", "data": {"candidate": c}})
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        m = json.loads(msg.data)
        if m.get("req") == "answer":
            stats["openipc_answers"] += 1
            await pc.setRemoteDescription(RTCSessionDescription(m["data"], "answer"))
        elif m.get("req") == "candidate" and m.get("data"):
            c = candidate_from_sdp(m["data"].removeprefix("candidate:"))
            c.sdpMid, c.sdpMLineIndex = pc.getTransceivers()[0].mid, 0
            await pc.addIceCandidate(c)
    return ws


async def creality(request):
    """A Creality printer: base64 JSON both ways, and an answer whose first
    video format is one it does not send (with an x-google fmtp)."""
    stats["creality_posts"] += 1
    offer = json.loads(base64.b64decode(await request.text()))
    _, sdp = await answer(offer["sdp"])
    lines = sdp.split("\r\n")
    for i, line in enumerate(lines):
        if line.startswith("m=video"):
            head = line.split(" ")
            lines[i] = " ".join(head[:3] + ["127"] + head[3:])
            lines.insert(i + 1, "a=fmtp:127 x-google-max-bitrate=2000")
            lines.insert(i + 1, "a=rtpmap:127 VP8/90000")
            break
    body = json.dumps({"type": "answer", "sdp": "\r\n".join(lines)}).encode()
    return web.Response(text=base64.b64encode(body).decode())


async def milestone_token(request):
    form = await request.post()
    if (form.get("grant_type"), form.get("client_id"), form.get("username"),
            form.get("password")) != ("password", "GrantValidatorClient", "User", "Test Pass"):
        return web.Response(status=401)
    stats["milestone_tokens"] += 1
    return web.json_response({"access_token": "tok-1", "token_type": "Bearer"})


async def milestone_session(request):
    if request.headers.get("Authorization") != "Bearer tok-1":
        return web.Response(status=401)
    body = await request.json()
    stats["milestone_sessions"].append(body)
    pc, player = new_pc()
    n = next(ids)
    pcs[n] = pc
    if player.video:
        t = pc.addTransceiver(player.video, direction="sendonly")
        t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                               if c.mimeType == "video/H264"])
    if player.audio:
        pc.addTransceiver(player.audio, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = json.dumps({"type": "offer", "sdp": pc.localDescription.sdp})
    return web.json_response({"sessionId": f"s{n}", "offerSDP": offer})


async def milestone_patch(request):
    if request.headers.get("Authorization") != "Bearer tok-1":
        return web.Response(status=401)
    pc = pcs.get(int(request.match_info["id"].removeprefix("s")))
    if pc is None:
        return web.Response(status=404)
    answer_sdp = json.loads((await request.json())["answerSDP"])
    assert answer_sdp["type"] == "answer"
    await pc.setRemoteDescription(RTCSessionDescription(answer_sdp["sdp"], "answer"))
    stats["milestone_answers"] += 1
    return web.json_response({"sessionId": request.match_info["id"]})


async def get_stats(request):
    return web.json_response(stats)


async def main():
    app = web.Application()
    app.router.add_post("/whep", whep)
    app.router.add_delete("/whep/{id}", whep_delete)
    app.router.add_post("/json", json_offer)
    app.router.add_get("/api/ws", go2rtc_ws)
    app.router.add_get("/kinesis", kinesis)
    app.router.add_get("/wyze/{cam}", wyze)
    app.router.add_get("/openipc", openipc)
    app.router.add_get("/switchbot", kinesis)
    app.router.add_post("/creality", creality)
    app.router.add_post("/ms/IDP/connect/token", milestone_token)
    app.router.add_post("/ms/REST/v1/WebRTC/Session", milestone_session)
    app.router.add_patch("/ms/REST/v1/WebRTC/Session/{id}", milestone_patch)
    app.router.add_get("/stats", get_stats)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
