"""Home Assistant's own client library (go2rtc-client) against camrouter."""

import asyncio

import aiohttp
from go2rtc_client import Go2RtcRestClient

from conftest import FFMPEG_H264


def test_ha_client(server_factory, panicky_plugin_dir):
    s = server_factory(
        f"streams:\n  cam: {FFMPEG_H264}\napi:\n  listen: 127.0.0.1:{{port}}\n",
        plugin_dirs=[panicky_plugin_dir],
    ).start()

    async def flow():
        async with aiohttp.ClientSession() as session:
            client = Go2RtcRestClient(session, s.url + "/")
            await client.validate_server_version()
            # Sources of a scheme a loaded plugin serves (the test plugin's).
            await client.streams.add("door", ["panic:one", "panic:two"])
            streams = await client.streams.list()
            schemes = await client.schemes.list()
            await client.preload.enable("cam")
            preloads = await client.preload.list()
            await client.preload.disable("cam")
            after = await client.preload.list()
            return streams, schemes, preloads, after

    streams, schemes, preloads, after = asyncio.run(flow())
    assert [p.url for p in streams["door"].producers] == ["panic:one", "panic:two"]
    assert streams["cam"].producers[0].url == FFMPEG_H264
    assert {"exec", "echo", "panic"} <= set(schemes)
    assert "cam" in preloads and preloads["cam"].query == "video&audio"
    assert "cam" not in after
