"""Ways to reach the API as Home Assistant and browsers do: unix socket with
auth, TLS, and the /api/ws WebSocket."""

import asyncio
import base64
import json
import ssl
import subprocess

import aiohttp
from go2rtc_client import Go2RtcRestClient

from conftest import FFMPEG_H264

HA_MODULES = '["api","exec","ffmpeg","http","mjpeg","onvif","rtmp","rtsp","srtp","webrtc","ws"]'


def test_home_assistant_config_over_unix_socket(server_factory, tmp_path):
    """The config Home Assistant writes: no TCP, a unix socket, Basic auth
    required even locally, its module list and path allowlist."""
    sock = tmp_path / "go2rtc.sock"
    cfg = f"""app:
  modules: {HA_MODULES}
api:
  listen: ""
  unix_listen: "{sock}"
  allow_paths: ["/", "/api", "/api/frame.jpeg", "/api/schemes", "/api/streams", "/api/webrtc", "/api/ws"]
  local_auth: true
  username: hauser
  password: hapass
exec:
  allow_paths: [ffmpeg]
streams:
  cam: {FFMPEG_H264}
"""
    s = server_factory(cfg).start()
    assert f"INF [api] listen addr={sock}" in s.output()

    async def flow(headers):
        conn = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
            client = Go2RtcRestClient(session, "http://localhost:11984/")
            await client.validate_server_version()
            return await client.streams.list()

    try:
        asyncio.run(flow({}))
        raise AssertionError("local_auth: the socket must require auth")
    except Exception as e:
        cause = repr(e.__cause__ or e)
        assert "401" in cause and "Unauthorized" in cause, cause
    auth = {"Authorization": "Basic " + base64.b64encode(b"hauser:hapass").decode()}
    streams = asyncio.run(flow(auth))
    assert streams["cam"].producers[0].url == FFMPEG_H264

    async def probe_and_config():
        conn = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=conn, headers=auth) as session:
            async with session.get("http://localhost/api/streams?src=cam&video") as r:
                body = await r.json()
            async with session.get("http://localhost/api/config") as r2:
                status = r2.status
            return body, status

    body, config_status = asyncio.run(probe_and_config())
    assert body["producers"][0]["medias"] == ["video, recvonly, H264"]
    assert config_status == 403, "not in HA's allow_paths"


def test_tls_listen(server_factory, tmp_path):
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )
    from conftest import free_port

    tls_port = free_port()
    # The key as a path, the certificate inline as PEM text: both are accepted.
    pem = crt.read_text().replace("\n", "\n    ")
    cfg = f"api:\n  listen: 127.0.0.1:{{port}}\n  tls_listen: 127.0.0.1:{tls_port}\n  tls_key: {key}\n  tls_cert: |\n    {pem}\n"
    s = server_factory(cfg).start()
    ctx = ssl.create_default_context(cafile=str(crt))
    ctx.check_hostname = False
    import urllib.request

    with urllib.request.urlopen(f"https://127.0.0.1:{tls_port}/api", context=ctx, timeout=10) as r:
        info = json.loads(r.read())
    assert info["version"].startswith("1.9.")
    # A plain-HTTP client on the TLS port gets no API answer.
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{tls_port}/api", timeout=5).read()
        raise AssertionError("plain HTTP must not be served on the TLS port")
    except AssertionError:
        raise
    except Exception:
        pass


def test_websocket_routes_by_type(server_factory, panicky_plugin_dir):
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\n", plugin_dirs=[panicky_plugin_dir]).start()

    async def flow():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(s.url.replace("http", "ws") + "/api/ws?src=cam") as ws:
                await ws.send_str(json.dumps({"type": "test/echo", "value": "hi"}))
                echo = json.loads((await ws.receive(timeout=10)).data)
                await ws.send_str(json.dumps({"type": "nobody/handles", "value": 1}))
                unknown = json.loads((await ws.receive(timeout=10)).data)
                await ws.send_str("not json")
                bad = json.loads((await ws.receive(timeout=10)).data)
                # A panic in the plugin is contained; the socket stays usable.
                await ws.send_str(json.dumps({"type": "test/panic"}))
                await ws.send_str(json.dumps({"type": "test/echo", "value": "again"}))
                try:
                    after = json.loads((await ws.receive(timeout=3)).data)
                except asyncio.TimeoutError:
                    after = None
                return echo, unknown, bad, after

    echo, unknown, bad, after = asyncio.run(flow())
    assert echo == {"type": "test/echo", "value": "hi", "query": "src=cam"}
    assert unknown["type"] == "error" and "nobody/handles" in unknown["value"]
    assert bad["type"] == "error"
    # The plugin object is marked failed after its panic: it answers nothing
    # more, but the host and the socket live on.
    assert after is None
    assert s.request("GET", "/api")[0] == 200
    assert "panic in ws_message" in s.output()
