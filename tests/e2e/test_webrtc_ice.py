"""WebRTC candidates and transports: `stun:` candidates answered by coturn,
a session relayed through coturn's TURN, ICE-TCP on the listen port
(headless Chromium), and garbage on the UDP and TCP ports."""

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from camera import camera_factory  # noqa: F401
from conftest import ROOT, free_port, free_udp_port, terminate, wait_until
from test_webrtc import Viewer, run, signal, webrtc_consumers

TURN_USER, TURN_PASS = "camrouter", "s3cret-turn"


def candidates_of(sdp):
    """The RTP component's candidates (webrtc-rs also lists component 2,
    unused with rtcp-mux)."""
    return [line[2:] for line in sdp.splitlines()
            if line.startswith("a=candidate:") and line.split()[1] == "1"]


@pytest.fixture
def coturn(tmp_path):
    """coturn (Debian's turnserver) in the foreground on 127.0.0.1: STUN, and
    TURN with one long-term user; loopback peers allowed, since camrouter is
    on 127.0.0.1 too. Killed by PID."""
    exe = shutil.which("turnserver")
    if not exe:
        pytest.skip("coturn is not installed (tests/run.sh installs it)")
    port = free_udp_port()
    while True:
        try:
            with socket.socket() as t:
                t.bind(("127.0.0.1", port))
            break
        except OSError:
            port = free_udp_port()
    log = open(tmp_path / "coturn.log", "w+")
    proc = subprocess.Popen(
        [exe, "-n", "--listening-ip", "127.0.0.1", "--listening-port", str(port),
         "--relay-ip", "127.0.0.1", "--min-port", "49152", "--max-port", "65535",
         "--lt-cred-mech", "--user", f"{TURN_USER}:{TURN_PASS}", "--realm", "camrouter",
         "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
         "--no-stun-backward-compatibility", "--log-file", "stdout", "--simple-log",
         "--pidfile", str(tmp_path / "coturn.pid"), "--userdb", str(tmp_path / "turndb"),
         "--no-software-attribute"],
        stdout=log, stderr=subprocess.STDOUT,
    )

    def output():
        log.flush()
        return (tmp_path / "coturn.log").read_text()

    def answers():
        """A Binding request gets a success answer."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            req = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)
            try:
                s.sendto(req, ("127.0.0.1", port))
                return s.recv(1500)[:2] == b"\x01\x01"
            except OSError:
                return False
    try:
        assert wait_until(answers, 15), output()
        yield type("Coturn", (), {"port": port, "proc": proc, "output": staticmethod(output)})
    finally:
        terminate(proc)
        log.close()


def start(server_factory, cam, webrtc):
    return server_factory(
        f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n"
        f"log:\n  level: debug\nwebrtc:\n  listen: 127.0.0.1:{{webrtc}}\n{webrtc}"
    ).start()


def test_stun_candidate_is_the_address_coturn_reports(server_factory, camera_factory, coturn):
    """`candidates: [stun:PORT]` asks the STUN server in `ice_servers`
    (coturn) and the answer carries what it saw (127.0.0.1) with PORT as a
    server-reflexive candidate whose base is our listen address; with
    `filters: candidates: []` it is the only UDP candidate, and aiortc plays
    through it."""
    cam = camera_factory(audio="none", size="320x240")
    mapped = free_port()
    s = start(server_factory, cam,
              f"  candidates: [\"stun:{mapped}\"]\n"
              f"  ice_servers:\n    - urls: [\"stun:127.0.0.1:{coturn.port}\"]\n")

    async def go():
        async with aiohttp.ClientSession() as session:
            v = Viewer()
            answer, _ = await signal(s, "json", (await prepared(v.pc)), session)
            cands = candidates_of(answer)
            srflx = [c for c in cands if " typ srflx" in c and " udp " in c]
            assert len(srflx) == 1, cands
            assert f" 127.0.0.1 {mapped} typ srflx raddr 127.0.0.1 rport {s.webrtc_port}" in srflx[0], srflx
            hosts = [c for c in cands if " typ host" in c and " udp " in c]
            assert [h.split()[4:6] for h in hosts] == [["127.0.0.1", str(s.webrtc_port)]], cands
            await v.pc.close()
    run(go())
    assert "public address from STUN" in s.output()
    s.stop()

    # The srflx candidate alone (its port our real one) carries a session.
    s = start(server_factory, cam,
              f"  candidates: [\"stun:{{webrtc}}\"]\n"
              f"  ice_servers:\n    - urls: [\"stun:127.0.0.1:{coturn.port}\"]\n"
              f"  filters:\n    candidates: []\n    networks: [udp4]\n")

    async def only_srflx():
        async with aiohttp.ClientSession() as session:
            v = Viewer()
            await v.pc.setLocalDescription(await v.pc.createOffer())
            answer, _ = await signal(s, "json", v.pc.localDescription.sdp, session)
            # UDP: the srflx one only (a stun: entry is advertised for TCP
            # too, as a passive host candidate).
            cands = [c for c in candidates_of(answer) if " udp " in c]
            assert len(cands) == 1 and " typ srflx " in cands[0], cands
            await v.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            assert await v.wait(video=10, audio=0), v.video
            assert v.size == (320, 240)
            await v.close()
    run(only_srflx())


async def prepared(pc):
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


def test_relayed_session_through_coturn(server_factory, camera_factory, coturn):
    """aiortc with only its TURN relay candidate (relay policy, and its host
    candidates cut from the offer) views the camera: every packet goes
    through coturn, and the video decodes at the camera's size."""
    cam = camera_factory(audio="none", size="320x240")
    s = start(server_factory, cam, "")
    turn = f"turn:127.0.0.1:{coturn.port}?transport=udp"

    async def go():
        async with aiohttp.ClientSession() as session:
            v = Viewer()
            await v.pc.close()
            v.pc = RTCPeerConnection(RTCConfiguration(
                iceServers=[RTCIceServer(urls=[turn], username=TURN_USER, credential=TURN_PASS)],
                iceTransportPolicy=RTCIceTransportPolicy.RELAY))
            v.pc.addTransceiver("video", direction="recvonly")
            v.pc.addTransceiver("audio", direction="recvonly")
            v.pc.on("track", v.on_track)
            offer = await prepared(v.pc)
            lines = [ln for ln in offer.split("\r\n")
                     if not (ln.startswith("a=candidate:") and " typ relay" not in ln)]
            offer = "\r\n".join(lines)
            relays = candidates_of(offer)
            assert relays and all(" typ relay " in c for c in relays), relays
            answer, _ = await signal(s, "json", offer, session)
            await v.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            assert await v.wait(video=10, audio=0), (v.video, coturn.output()[-2000:])
            assert v.size == (320, 240)
            ice = v.pc.getTransceivers()[0].receiver.transport.transport._connection
            pair = ice._nominated[1]
            assert pair.local_candidate.type == "relay", pair
            assert len(webrtc_consumers(s)) == 1
            await v.close()
    run(go())


def relay_only_viewer(turn):
    """An aiortc viewer that reaches nothing but coturn: relay policy, and
    its host candidates cut from the offer."""
    v = Viewer()
    v.pc = RTCPeerConnection(RTCConfiguration(
        iceServers=[RTCIceServer(urls=[turn], username=TURN_USER, credential=TURN_PASS)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY))
    v.pc.addTransceiver("video", direction="recvonly")
    v.pc.addTransceiver("audio", direction="recvonly")
    v.pc.on("track", v.on_track)
    return v


def relay_offer(sdp):
    lines = [ln for ln in sdp.split("\r\n")
             if not (ln.startswith("a=candidate:") and " typ relay" not in ln)]
    return "\r\n".join(lines)


async def ha_offer(s, session, offer, ice_servers):
    """Home Assistant's go2rtc-client sends the offer with its ice_servers."""
    from go2rtc_client.ws import Go2RtcWsClient, WebRTCAnswer, WebRTCOffer
    from webrtc_models import RTCIceServer as HaIceServer
    client = Go2RtcWsClient(session, s.url, source="cam")
    got = asyncio.get_running_loop().create_future()

    def on_message(msg):
        if isinstance(msg, WebRTCAnswer) and not got.done():
            got.set_result(msg.sdp)
        elif not got.done() and type(msg).__name__ == "WsError":
            got.set_exception(AssertionError(msg))
    client.subscribe(on_message)
    servers = [HaIceServer(urls=u, username=n, credential=c) for u, n, c in ice_servers]
    await client.send(WebRTCOffer(offer, ice_servers=servers))
    return await asyncio.wait_for(got, 30), client


@pytest.mark.parametrize("given", ["config", "home-assistant"])
def test_our_own_relay_carries_a_viewer_that_reaches_only_coturn(
        server_factory, camera_factory, coturn, given):
    """camrouter advertises no host candidate (`filters: candidates: []`)
    and allocates a relay on coturn, from `webrtc.ice_servers` or from the
    `ice_servers` Home Assistant's offer brings; a viewer that reaches only
    coturn plays through it (relay to relay, both on coturn), and the
    allocation is released (Refresh, lifetime 0) when the viewer goes."""
    cam = camera_factory(audio="none", size="320x240")
    turn = f"turn:127.0.0.1:{coturn.port}?transport=udp"
    ice = "" if given == "home-assistant" else (
        f"  ice_servers:\n    - urls: [\"{turn}\"]\n"
        f"      username: {TURN_USER}\n      credential: {TURN_PASS}\n")
    s = start(server_factory, cam,
              "  filters:\n    candidates: []\n    networks: [udp4]\n" + ice)

    async def go():
        async with aiohttp.ClientSession() as session:
            v = relay_only_viewer(turn)
            offer = relay_offer(await prepared(v.pc))
            if given == "home-assistant":
                answer, client = await ha_offer(
                    s, session, offer, [([turn], TURN_USER, TURN_PASS)])
            else:
                answer, location = await signal(s, "whep", offer, session)
            cands = candidates_of(answer)
            # Our only candidate: a relayed address on coturn (its relay
            # ports, never our listen port).
            assert len(cands) == 1 and " udp " in cands[0] and " typ relay " in cands[0], cands
            ip, port = cands[0].split()[4:6]
            assert ip == "127.0.0.1" and int(port) != s.webrtc_port and int(port) >= 49152, cands
            await v.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            assert await v.wait(video=10, audio=0), (v.video, s.output()[-3000:])
            assert v.size == (320, 240)
            ice_conn = v.pc.getTransceivers()[0].receiver.transport.transport._connection
            pair = ice_conn._nominated[1]
            assert pair.local_candidate.type == "relay", pair
            assert pair.remote_candidate.type == "relay", pair
            assert pair.remote_candidate.port == int(port), pair
            assert len(webrtc_consumers(s)) == 1
            if given == "config":
                async with session.delete(f"{s.url}/api/{location}") as r:
                    assert r.status == 200
            await v.close()
    run(go())
    assert "TURN relay allocated" in s.output()
    # The WHEP DELETE (Home Assistant: the viewer's silence, 7 s) ends the
    # peer and with it our allocation, which coturn confirms.
    assert wait_until(lambda: "TURN allocation released" in s.output(), 20), s.output()[-3000:]
    assert "did not confirm the release" not in s.output()
    assert wait_until(lambda: not webrtc_consumers(s), 10)


def test_wrong_turn_credentials_are_logged_and_host_candidates_play(
        server_factory, camera_factory, coturn):
    """A TURN server that refuses our credentials gets one clear warning;
    the answer goes without a relay candidate and the viewer plays over our
    host candidate."""
    cam = camera_factory(audio="none", size="320x240")
    turn = f"turn:127.0.0.1:{coturn.port}"
    s = start(server_factory, cam,
              f"  ice_servers:\n    - urls: [\"{turn}\"]\n"
              f"      username: {TURN_USER}\n      credential: not-the-password\n")

    async def go():
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                v = Viewer()
                await v.pc.setLocalDescription(await v.pc.createOffer())
                answer, _ = await signal(s, "json", v.pc.localDescription.sdp, session)
                cands = candidates_of(answer)
                assert not [c for c in cands if " typ relay " in c], cands
                assert [c for c in cands if " typ host" in c and " udp " in c], cands
                await v.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
                assert await v.wait(video=10, audio=0), v.video
                assert v.size == (320, 240)
                await v.close()
    run(go())
    refused = [ln for ln in s.output().splitlines() if "TURN server refused our allocation" in ln]
    # One line for both viewers: the second is not made to wait for a
    # server that just refused us.
    assert len(refused) == 1, refused
    assert "401" in refused[0] and turn in refused[0], refused
    assert TURN_PASS not in s.output() and "not-the-password" not in s.output()


def test_second_address_of_a_wildcard_socket_answers_from_itself(server_factory, camera_factory):
    """Listening on every address, camrouter advertises 127.0.0.1, the
    machine's own address and (configured) 127.0.0.2, all on the one
    socket. A connectivity check sent to 127.0.0.2 from 127.0.0.1 must be
    answered from 127.0.0.2 (ICE fails a check answered from another
    address, RFC 8445 §7.2.5.2.1; the kernel alone would answer from
    127.0.0.1): camrouter reads each datagram's destination (IP_PKTINFO)
    rather than guessing which of its addresses it came to, and sends from
    that candidate's address. A viewer then plays."""
    from aioice import stun
    cam = camera_factory(audio="none", size="320x240")
    s = server_factory(
        f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n"
        "webrtc:\n  listen: \":{webrtc}/udp\"\n"
        "  candidates: [127.0.0.2]\n  filters:\n    loopback: true\n    networks: [udp4]\n").start()

    async def go():
        async with aiohttp.ClientSession() as session:
            v = Viewer()
            await v.pc.setLocalDescription(await v.pc.createOffer())
            offer = v.pc.localDescription.sdp
            answer, _ = await signal(s, "json", offer, session)
            hosts = [c.split()[4] for c in candidates_of(answer)]
            assert "127.0.0.1" in hosts and "127.0.0.2" in hosts and len(hosts) >= 3, hosts
            # The viewer's own ICE credentials, our check as it would send it.
            field = lambda sdp, k: re.search(rf"a={k}:(\S+)", sdp).group(1)  # noqa: E731
            req = stun.Message(message_method=stun.Method.BINDING,
                               message_class=stun.Class.REQUEST)
            req.attributes["USERNAME"] = f"{field(answer, 'ice-ufrag')}:{field(offer, 'ice-ufrag')}"
            req.attributes["PRIORITY"] = 1853824767
            req.attributes["ICE-CONTROLLING"] = 1
            req.add_message_integrity(field(answer, "ice-pwd").encode())
            req.add_fingerprint()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", 0))
                u.settimeout(5)
                to = ("127.0.0.2", s.webrtc_port)
                u.sendto(bytes(req), to)
                data, frm = u.recvfrom(1500)
                resp = stun.parse_message(data)
                assert resp.transaction_id == req.transaction_id
                assert resp.message_class == stun.Class.RESPONSE, resp
                assert frm == to, f"answered from {frm}, not {to}"
                assert resp.attributes["XOR-MAPPED-ADDRESS"] == u.getsockname()
            await v.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            assert await v.wait(video=10, audio=0), v.video
            assert v.size == (320, 240)
            await v.close()
    run(go())


def chromium(s, tmp_path, page="webrtc-tcp.html"):
    r = subprocess.run(
        ["node", str(ROOT / "tests/browser/visit.mjs"), f"{s.url}/{page}?src=cam"],
        capture_output=True, text=True, timeout=90,
    )
    assert r.returncode == 0, r.stderr + s.output()[-3000:]
    return json.loads(r.stdout)


@pytest.mark.parametrize("webrtc", [
    "  listen: 127.0.0.1:{webrtc}\n  filters:\n    networks: [tcp4]\n",
    "  listen: 127.0.0.1:{webrtc}/tcp\n",
], ids=["filters-tcp4", "listen-tcp-only"])
def test_chromium_plays_over_ice_tcp(server_factory, camera_factory, tmp_path, webrtc):
    """With only TCP candidates advertised (`filters: networks: [tcp4]`, or
    no UDP socket at all with `listen: …/tcp`) Chromium cannot send us UDP:
    it connects to the passive TCP candidate on the listen port, and the
    stream plays over RFC 4571 framing."""
    cam = camera_factory(audio="opus", size="640x360")
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(ROOT / "tests/browser/webrtc-tcp.html", www / "webrtc-tcp.html")
    s = server_factory(
        f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n  static_dir: {www}\n"
        "webrtc:\n" + webrtc
    ).start()
    seen = chromium(s, tmp_path)
    cands = candidates_of(seen.pop("answer", ""))
    print("\nchromium:", seen, cands)
    assert cands and all(" tcp " in c and "tcptype passive" in c for c in cands), cands
    assert seen["errors"] == [], seen
    assert seen["protocol"] == "tcp", seen
    assert seen["remotePort"] == s.webrtc_port, seen
    assert (seen["width"], seen["height"]) == (640, 360), seen
    assert seen["currentTime"] > 1.0, seen
    if "/tcp" in webrtc:
        assert "listen tcp" in s.output() and "listen udp" not in s.output()


def test_garbage_on_udp_and_tcp_then_a_viewer_plays(server_factory, camera_factory):
    """Malformed STUN/DTLS/RTP datagrams to the UDP port and garbage
    connections to the TCP port (random bytes, a huge frame length never
    completed, a frame that names no peer) are dropped; the process lives
    and a new viewer then plays."""
    cam = camera_factory(audio="none", size="320x240")
    s = start(server_factory, cam, "")
    port = s.webrtc_port
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stun_no_peer = (b"\x00\x01\x00\x0c\x21\x12\xa4\x42" + os.urandom(12)
                    + b"\x00\x06\x00\x08nobody:x")
    junk = [b"", b"\x00", stun_no_peer, stun_no_peer[:-3], b"\x16\xfe\xfd" + os.urandom(80),
            b"\x80\x60" + os.urandom(200), b"\xff" * 1400]
    for i in range(500):
        udp.sendto(junk[i % len(junk)], ("127.0.0.1", port))
    udp.close()
    conns = []
    opened = time.time()
    for payload in [os.urandom(3000), b"\xff\xff" + b"x" * 100,
                    len(stun_no_peer).to_bytes(2, "big") + stun_no_peer, b"\x00\x00" * 50]:
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(payload)
        conns.append(c)
    # The one naming no peer is closed by the server at once; the one that
    # sends only empty frames (no datagram at all) after 10 s.
    named, empty = conns[2], conns[3]
    named.settimeout(10)
    assert named.recv(100) == b"", "the server closes a connection whose frame names no peer"
    empty.settimeout(25)
    assert empty.recv(100) == b"", "a connection that sends no frame is closed"
    # A lower bound only: the server's 10 s start after our connect.
    assert time.time() - opened > 9.5, "not before its 10 s"
    for c in conns:
        c.close()
    assert s.proc.poll() is None

    async def go():
        async with aiohttp.ClientSession() as session:
            v = Viewer()
            await v.connect(s, "json", session)
            assert await v.wait(video=10, audio=0), v.video
            assert v.size == (320, 240)
            await v.close()
    run(go())
    assert s.proc.poll() is None
    # The counters say so (logged at most every 10 s).
    assert wait_until(lambda: re.search(r"dropped so far.* tcp_closed=[1-9]\d* unknown=[1-9]",
                                        s.output()), 20), s.output()[-2000:]
