"""RTSP over WebSocket in front of a TCP RTSP camera, as Axis and Dahua
cameras offer it: binary WebSocket messages carry the RTSP byte stream.

Usage: ws_bridge.py LISTEN_PORT CAMERA_PORT [USER:PASS] [--auth basic|digest]
                    [--tls CERT KEY]

With USER:PASS the upgrade needs credentials: Basic (the default) or Digest
(MD5, qop=auth; a Basic attempt is answered with the Digest challenge, like a
Digest-only camera). --tls serves wss://. Each upgrade attempt prints one
`AUTH ...` line, each bridged connection `WS CONNECT`."""

import argparse
import asyncio
import base64
import hashlib
import re
import secrets
import ssl

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

ap = argparse.ArgumentParser()
ap.add_argument("listen", type=int)
ap.add_argument("camera", type=int)
ap.add_argument("creds", nargs="?")
ap.add_argument("--auth", choices=["basic", "digest"], default="basic")
ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
args = ap.parse_args()

REALM = "cam"
NONCE = secrets.token_hex(16)


def md5(*parts):
    return hashlib.md5(":".join(parts).encode()).hexdigest()


def digest_ok(value, path):
    """RFC 2617 check of a `Digest ...` Authorization for GET `path`."""
    p = {k: q or t for k, q, t in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', value)}
    user, password = args.creds.split(":", 1)
    if p.get("username") != user or p.get("realm") != REALM or p.get("nonce") != NONCE:
        return False
    if p.get("uri") != path:
        return False
    ha1, ha2 = md5(user, REALM, password), md5("GET", p["uri"])
    if p.get("qop") == "auth":
        want = md5(ha1, NONCE, p.get("nc", ""), p.get("cnonce", ""), "auth", ha2)
    else:
        want = md5(ha1, NONCE, ha2)
    return secrets.compare_digest(p.get("response", ""), want)


def unauthorized(challenge):
    return Response(401, "Unauthorized", Headers([("WWW-Authenticate", challenge)]), b"")


def check_auth(connection, request):
    if args.creds is None:
        return None
    got = request.headers.get("Authorization", "")
    scheme = got.split(" ", 1)[0] or "none"
    if args.auth == "basic":
        ok = got == "Basic " + base64.b64encode(args.creds.encode()).decode()
        challenge = f'Basic realm="{REALM}"'
    else:
        ok = scheme == "Digest" and digest_ok(got, request.path)
        challenge = f'Digest realm="{REALM}", nonce="{NONCE}", qop="auth"'
    print(f"AUTH {scheme} {'ok' if ok else 'refused'}", flush=True)
    return None if ok else unauthorized(challenge)


async def handler(ws):
    print("WS CONNECT", flush=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", args.camera)

    async def up():
        async for msg in ws:
            writer.write(msg if isinstance(msg, bytes) else msg.encode())
            await writer.drain()
        writer.close()

    async def down():
        while data := await reader.read(65536):
            await ws.send(data)
        await ws.close()

    await asyncio.gather(up(), down(), return_exceptions=True)


async def main():
    tls = None
    if args.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*args.tls)
    async with serve(handler, "127.0.0.1", args.listen, subprotocols=["binary"],
                     process_request=check_auth, ssl=tls):
        print("READY", flush=True)
        await asyncio.Future()


asyncio.run(main())
