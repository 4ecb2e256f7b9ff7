"""RTSP over WebSocket in front of a TCP RTSP camera, as Axis and Dahua
cameras offer it: binary WebSocket messages carry the RTSP byte stream.
Usage: ws_bridge.py LISTEN_PORT CAMERA_PORT [USER:PASS]"""

import asyncio
import base64
import sys

from websockets.asyncio.server import serve
from websockets.http11 import Response
from websockets.datastructures import Headers

listen, camera = int(sys.argv[1]), int(sys.argv[2])
creds = sys.argv[3] if len(sys.argv) > 3 else None


def check_auth(connection, request):
    if creds is None:
        return None
    want = "Basic " + base64.b64encode(creds.encode()).decode()
    if request.headers.get("Authorization") != want:
        return Response(401, "Unauthorized", Headers([("WWW-Authenticate", 'Basic realm="cam"')]), b"")
    return None


async def handler(ws):
    print("WS CONNECT", flush=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", camera)

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
    async with serve(handler, "127.0.0.1", listen, subprotocols=["binary"], process_request=check_auth):
        print("READY", flush=True)
        await asyncio.Future()


asyncio.run(main())
