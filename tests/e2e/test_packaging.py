"""Debian packages (packaging/deb/build.sh) built from the debug build, unpacked
into a throwaway root and run from there; the Dockerfile's install steps
replayed against a throwaway dpkg root."""

import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FFMPEG_H264, ROOT, TARGET, free_port

BUILD = ROOT / "packaging" / "deb" / "build.sh"
DOCKERFILE = ROOT / "packaging" / "docker" / "Dockerfile"


def workspace():
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)["packages"]


def plugin_modules():
    """Every cdylib named camrouter_plugin_<module> in the workspace."""
    return sorted(
        t["name"].removeprefix("camrouter_plugin_")
        for p in workspace()
        for t in p["targets"]
        if "cdylib" in t["kind"] and t["name"].startswith("camrouter_plugin_")
    )


def api_abi():
    v = next(p["version"] for p in workspace() if p["name"] == "camrouter-plugin-api")
    major, minor, _ = v.split(".")
    return v, (f"0.{minor}" if major == "0" else major)


def abi_layout():
    """The exact ABI name: 0.N and a digest of the contract's source."""
    _, abi = api_abi()
    return f"{abi}-{hashlib.sha256((ROOT / 'plugin-api/src/abi.rs').read_bytes()).hexdigest()[:8]}"


def field(deb, name):
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """build.sh's packages of the debug build (tests/run.sh built it)."""
    assert (TARGET / "camrouter").exists(), "build the workspace first (cargo build --workspace)"
    out = tmp_path_factory.mktemp("debian")
    r = subprocess.run(
        [str(BUILD), "--profile", "dev", "--no-build", "--compress", "gzip", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    found = {p.name.split("_")[0]: p for p in out.glob("*.deb")}
    assert found, r.stdout + r.stderr
    return found


@pytest.fixture(scope="module")
def unpacked(debs, tmp_path_factory):
    """Every package unpacked into one throwaway root, as dpkg would lay it out."""
    root = tmp_path_factory.mktemp("root")
    for deb in debs.values():
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root


def start_from(server_factory, root, config, args=()):
    """The unpacked host, with the unpacked default config under the test's."""
    s = server_factory(config)
    s.args = ["-c", str(root / "etc/camrouter/camrouter.yaml"), "-c", str(s.config_path), *args]
    s.binary = root / "usr/bin/camrouter"
    return s


def ffprobe_rtsp(url):
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["streams"][0]


def test_one_package_per_workspace_plugin(debs):
    modules = plugin_modules()
    assert {"exec", "rtsp"} <= set(modules)
    assert set(debs) == {"camrouter", "camrouter-plugins-all"} | {f"camrouter-plugin-{m}" for m in modules}
    for m in modules:
        files = subprocess.run(
            ["dpkg-deb", "-c", str(debs[f"camrouter-plugin-{m}"])], capture_output=True, text=True, check=True
        ).stdout
        sos = re.findall(r"\./(\S+\.so)\b", files)
        assert sos == [f"usr/lib/camrouter/plugins/libcamrouter_plugin_{m}.so"], files
        # Readable by the service user, writable by root only (the loader refuses others).
        assert re.search(rf"-rw-r--r-- root/root .* \./usr/lib/camrouter/plugins/libcamrouter_plugin_{m}\.so", files)


def test_abi_relations(debs):
    version, abi = api_abi()
    assert abi == "0.2", version
    exact = abi_layout()
    assert field(debs["camrouter"], "Provides") == f"camrouter-abi-{abi}, camrouter-abi-{exact}"
    for name, deb in debs.items():
        if name.startswith("camrouter-plugin-"):
            depends = [d.strip() for d in field(deb, "Depends").split(",")]
            assert f"camrouter-abi-{abi}" in depends and f"camrouter-abi-{exact}" in depends, name
    all_deps = field(debs["camrouter-plugins-all"], "Depends")
    for name in debs:
        if name != "camrouter-plugins-all":
            assert f"{name} (= {field(debs['camrouter'], 'Version')})" in all_deps
    # Relations a plugin adds in its Cargo.toml ([package.metadata.deb]).
    assert field(debs["camrouter-plugin-ffmpeg"], "Recommends") == "ffmpeg"
    assert "/etc/camrouter/camrouter.yaml" in subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", str(debs["camrouter"])], capture_output=True, check=True
    ).stdout.decode("latin-1"), "the config is a conffile"


def dpkg_root(tmp_path, base_packages):
    """An empty dpkg database in which `base_packages` count as installed
    (their records copied from this machine's)."""
    root = tmp_path / "dpkgroot"
    for d in ("info", "updates", "triggers"):
        (root / "var/lib/dpkg" / d).mkdir(parents=True)
    (root / "var/lib/dpkg/available").touch()
    status = subprocess.run(
        ["dpkg-query", "-s", *base_packages], capture_output=True, text=True, check=True
    ).stdout
    (root / "var/lib/dpkg/status").write_text(status)
    return root


def dpkg(root, *args):
    return subprocess.run(
        ["dpkg", f"--root={root}", "--force-not-root", "--log=/dev/null", *args],
        capture_output=True, text=True,
    )


def core_providing(debs, tmp_path, old, new):
    """The same core package with `old` replaced by `new` in its Provides."""
    other = tmp_path / f"core-{new}"
    subprocess.run(["dpkg-deb", "-R", str(debs["camrouter"]), str(other)], check=True)
    control = other / "DEBIAN/control"
    text = control.read_text()
    assert old in text
    control.write_text(text.replace(old, new))
    deb = tmp_path / f"core-{new}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(other), str(deb)],
                   check=True, capture_output=True)
    return deb


def test_a_plugin_cannot_be_installed_beside_a_core_of_another_abi(debs, tmp_path):
    _, abi = api_abi()
    exact = abi_layout()
    plugin = debs["camrouter-plugin-rtsp"]
    base = ["libc6", "libgcc-s1", "adduser"]
    # A core of the ABI before this one, and one of this 0.N with other
    # types (a method added within 0.N: the loader refuses plugins built before it).
    for i, (core, missing) in enumerate([
        (core_providing(debs, tmp_path, f"camrouter-abi-{abi}", "camrouter-abi-0.1"), f"camrouter-abi-{abi}"),
        (core_providing(debs, tmp_path, f"camrouter-abi-{exact}", f"camrouter-abi-{abi}-00000000"),
         f"camrouter-abi-{exact}"),
    ]):
        root = dpkg_root(tmp_path / f"a{i}", base)
        assert dpkg(root, "--unpack", str(core), str(plugin)).returncode == 0
        r = dpkg(root, "--simulate", "--configure", "-a")
        assert f"camrouter-plugin-rtsp depends on {missing}" in r.stderr, r.stderr
        assert "dependency problems" in r.stderr

    root = dpkg_root(tmp_path / "b", base)
    assert dpkg(root, "--unpack", str(debs["camrouter"]), str(plugin)).returncode == 0
    r = dpkg(root, "--simulate", "--configure", "-a")
    assert r.returncode == 0 and "dependency problems" not in r.stderr, r.stderr


def test_unpacked_core_rtsp_exec_stream_a_camera(server_factory, unpacked):
    """No --plugins: /usr/bin/camrouter finds the packages' plugins in
    /usr/lib/camrouter/plugins of its own root."""
    s = start_from(
        server_factory, unpacked,
        f"app:\n  modules: [api, rtsp, exec]\nstreams:\n  cam: {FFMPEG_H264}\napi:\n  listen: 127.0.0.1:{{port}}\n",
    ).start()
    maps = Path(f"/proc/{s.proc.pid}/maps").read_text()
    plugin_dir = unpacked / "usr/lib/camrouter/plugins"
    for m in ("rtsp", "exec"):
        assert str(plugin_dir / f"libcamrouter_plugin_{m}.so") in maps
    assert str(TARGET) not in maps, "nothing from the build tree"
    assert "libcamrouter_plugin_mp4" not in maps, "installed but not listed: not loaded"
    schemes = s.get_json("/api/schemes")
    assert {"exec", "rtsp"} <= set(schemes) and "echo" not in schemes, schemes
    v = ffprobe_rtsp(f"{s.rtsp_url}/cam")
    assert (v["codec_name"], v["width"]) == ("h264", 640)


def test_every_plugin_package_loads_from_where_it_lands(server_factory, unpacked):
    modules = plugin_modules()
    s = start_from(
        server_factory, unpacked,
        f"app:\n  modules: [api, {', '.join(modules)}]\napi:\n  listen: 127.0.0.1:{{port}}\n",
    ).start()
    maps = Path(f"/proc/{s.proc.pid}/maps").read_text()
    for m in modules:
        assert str(unpacked / f"usr/lib/camrouter/plugins/libcamrouter_plugin_{m}.so") in maps, m
    assert "plugin refused" not in s.output()
    assert "module not found" not in s.output()


def test_plugin_of_another_abi_is_refused_in_one_line(server_factory, unpacked, tmp_path):
    version, _ = api_abi()
    # A copy of the unpacked tree, so the other tests' plugin dir stays as packaged.
    root = tmp_path / "root"
    shutil.copytree(unpacked, root, symlinks=True)
    old = root / "usr/lib/camrouter/plugins/libcamrouter_plugin_oldabi.so"
    shutil.copy(TARGET / "liboldabi_test_plugin.so", old)
    os.chmod(old, 0o644)
    s = start_from(
        server_factory, root,
        "app:\n  modules: [api, exec, oldabi]\napi:\n  listen: 127.0.0.1:{port}\n",
    ).start()
    refused = [l for l in s.output().splitlines() if "plugin refused" in l]
    assert len(refused) == 1, refused
    line = refused[0]
    assert str(old) in line
    assert f"built for plugin-api 0.1.0, this host has {version}: rebuild the plugin" in line, line
    assert s.get_json("/api/schemes") == ["exec"], "the host runs on without it"


def test_lintian_reports_no_errors(debs):
    assert shutil.which("lintian"), "tests/run.sh installs lintian"
    r = subprocess.run(
        ["lintian", "--fail-on", "error", *map(str, debs.values())],
        capture_output=True, text=True, timeout=600,
    )
    errors = [l for l in r.stdout.splitlines() if l.startswith("E:")]
    assert r.returncode == 0 and not errors, r.stdout + r.stderr


def dockerfile_steps():
    """The packages the Dockerfile installs (its .deb globs and apt names) and its CMD."""
    text = DOCKERFILE.read_text()
    run = next(b for b in re.split(r"\n(?=[A-Z]+ )", text) if "apt-get install" in b)
    words = shlex.split(run.replace("\\\n", " "))
    install = words[words.index("install") + 1 : words.index("&&", words.index("install"))]
    names = [w for w in install if not w.startswith("-")]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    return [n for n in names if n.endswith(".deb")], [n for n in names if not n.endswith(".deb")], cmd


def test_dockerfile_install_and_command(debs, tmp_path, server_factory):
    """The Dockerfile's install and CMD without a container engine: its .deb
    files unpacked by dpkg into a throwaway root whose database holds this
    machine's base packages, its dependencies satisfied, its command run
    from that root (listening on 127.0.0.1 as every test here)."""
    globs, apt_names, cmd = dockerfile_steps()
    files = []
    for g in globs:
        hit = [d for d in debs.values() if fnmatch.fnmatch(d.name, Path(g).name)]
        assert len(hit) == 1, (g, list(debs))
        files.append(hit[0])
    # libstdc++6 is in debian:bookworm-slim (apt needs it); the exec plugin
    # links it through openh264 (Y4M sources encoded to H.264).
    root = dpkg_root(tmp_path, ["libc6", "libgcc-s1", "libstdc++6", "adduser", *apt_names])
    r = dpkg(root, "--unpack", *map(str, files))
    assert r.returncode == 0, r.stderr
    r = dpkg(root, "--simulate", "--configure", "-a")
    assert r.returncode == 0 and "dependency problems" not in r.stderr, r.stderr
    # What configuring does besides the maintainer scripts (which would need
    # a whole system in the root: adduser, systemd): a new conffile takes its
    # place.
    for new in root.rglob("*.dpkg-new"):
        new.rename(new.with_suffix(""))
    assert cmd[0] == "camrouter"
    args = []
    for a in cmd[1:]:
        if a.startswith("/"):
            a = str(root) + a
        args.append(a)
    port, rtsp = free_port(), free_port()
    args = [a.replace("api.listen=:1984", f"api.listen=127.0.0.1:{port}")
             .replace("rtsp.listen=:8554", f"rtsp.listen=127.0.0.1:{rtsp}") for a in args]
    assert f"api.listen=127.0.0.1:{port}" in args and f"rtsp.listen=127.0.0.1:{rtsp}" in args
    s = server_factory("")
    s.port, s.url = port, f"http://127.0.0.1:{port}"
    s.rtsp_url = f"rtsp://127.0.0.1:{rtsp}"
    s.args = [*args, "-c", f"streams.cam={FFMPEG_H264}"]
    s.binary = root / "usr/bin/camrouter"
    s.start()
    assert set(s.get_json("/api/schemes")) >= {"exec", "ffmpeg", "rtsp"}
    v = ffprobe_rtsp(f"{s.rtsp_url}/cam")
    assert (v["codec_name"], v["width"]) == ("h264", 640)


def test_bundled_artifact_is_stripped_and_self_contained(tmp_path, server_factory):
    """packaging/bundled.sh with the bundled profile tests/run.sh builds (the
    release artifact is the same with the bundled-release profile)."""
    r = subprocess.run(
        [str(ROOT / "packaging" / "bundled.sh"), "--profile", "bundled"],
        capture_output=True, text=True, timeout=1800,
    )
    assert r.returncode == 0, r.stderr
    path, size, _ = r.stdout.strip().splitlines()[-1].split()
    art = Path(path)
    assert art.stat().st_size == int(size)
    sections = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True, check=True).stdout
    assert ".symtab" not in sections and ".debug_info" not in sections
    assert subprocess.run(["sha256sum", "-c", art.name + ".sha256"], cwd=art.parent,
                          capture_output=True).returncode == 0
    # Alone in an empty dir, it still has the first-party modules.
    lone = tmp_path / "alone" / "camrouter"
    lone.parent.mkdir()
    shutil.copy(art, lone)
    out = subprocess.run([str(lone), "-v"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("camrouter version ")
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\n")
    s.binary = lone
    s.start()
    assert {"exec", "echo", "expr", "ffmpeg", "rtsp"} <= set(s.get_json("/api/schemes"))
    assert "libcamrouter_plugin_" not in Path(f"/proc/{s.proc.pid}/maps").read_text()
