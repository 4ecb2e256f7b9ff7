"""A fake ONVIF camera for end-to-end tests (Python standard library only).

It answers WS-Discovery probes on a UDP socket and the device and media
services' SOAP calls over HTTP, both on 127.0.0.1, and checks each call's
WS-Security UsernameToken digest the way cameras do (a wrong one gets
Hikvision's `ter:NotAuthorized` fault with HTTP 400):

    dev = OnvifFake(user="admin", password="secret", profiles=[
        Profile("Profile_1", "mainStream", "rtsp://127.0.0.1:PORT/cam", 640, 360),
        Profile("Profile_2", "subStream", "rtsp://127.0.0.1:PORT2/cam", 320, 180)])
    dev.start()
    dev.url        # onvif://admin:secret@127.0.0.1:HTTP_PORT
    dev.udp_port   # for onvif.discovery
    dev.calls      # [(operation, authorized)], in order
    dev.clock_offset = 7200   # its clock two hours ahead of ours
    dev.stop()

Its XAddrs name an unreachable address (192.0.2.1, TEST-NET-1) with the
right paths, as cameras behind NAT do: a client must use only their paths.
"""

import base64
import datetime
import hashlib
import re
import socket
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port, free_udp_port

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
ENV_OPEN = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"'
    ' xmlns:tt="http://www.onvif.org/ver10/schema"'
    ' xmlns:tds="http://www.onvif.org/ver10/device/wsdl"'
    ' xmlns:trt="http://www.onvif.org/ver10/media/wsdl"'
    ' xmlns:ter="http://www.onvif.org/ver10/error"><env:Body>'
)
ENV_CLOSE = "</env:Body></env:Envelope>"
NOT_AUTHORIZED = (
    "<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode>"
    "<env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason>"
    '<env:Text xml:lang="en">The action requested requires authorization and the sender'
    " is not authorized</env:Text></env:Reason></env:Fault>"
)
# Where the fake says its services are: only the paths are right.
FAR = "http://192.0.2.1"


@dataclass
class Profile:
    token: str
    name: str
    uri: str
    width: int
    height: int


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class OnvifFake:
    def __init__(self, user="admin", password="secret", profiles=(), name="FakeCam",
                 model="FC-1", snapshot_uri=None, media=True):
        self.user, self.password = user, password
        self.profiles = list(profiles)
        self.name, self.model = name, model
        self.snapshot_uri = snapshot_uri
        # False: neither GetCapabilities nor GetServices names a media service.
        self.media = media
        # Seconds the camera's clock is ahead of ours: a UsernameToken's
        # Created more than 5 minutes off its clock is refused.
        self.clock_offset = 0
        # Also ask for HTTP Digest (RFC 2617, no qop) with a 401, as newer
        # Hikvision firmware does.
        self.http_digest = False
        self.digest_nonce = "6f6e7669662d66616b65"
        self.calls = []
        self.probes = 0
        self.lock = threading.Lock()
        self.http = None
        self.udp = None

    @property
    def port(self):
        return self.http.server_address[1]

    @property
    def udp_port(self):
        return self.udp.getsockname()[1]

    @property
    def url(self):
        cred = urllib.parse.quote(self.user, safe="") + ":" + urllib.parse.quote(self.password, safe="")
        return f"onvif://{cred}@127.0.0.1:{self.port}"

    def with_password(self, password):
        return f"onvif://{urllib.parse.quote(self.user, safe='')}:{password}@127.0.0.1:{self.port}"

    def operations(self):
        with self.lock:
            return [op for op, _ in self.calls]

    # --- SOAP ------------------------------------------------------------

    def authorized(self, envelope):
        token = envelope.find(".//wsse:UsernameToken", NS)
        if token is None:
            return False
        user = token.findtext("wsse:Username", "", NS)
        digest = token.findtext("wsse:Password", "", NS)
        nonce = token.findtext("wsse:Nonce", "", NS)
        created = token.findtext("wsu:Created", "", NS)
        try:
            when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
            raw_nonce = base64.b64decode(nonce, validate=True)
        except ValueError:
            return False
        if abs((self.now() - when).total_seconds()) > 300:
            return False
        want = base64.b64encode(
            hashlib.sha1(raw_nonce + created.encode() + self.password.encode()).digest()).decode()
        return user == self.user and digest == want

    def now(self):
        return (datetime.datetime.now(datetime.timezone.utc)
                + datetime.timedelta(seconds=self.clock_offset))

    def answer(self, op, body, host):
        if op == "GetSystemDateAndTime":
            t = self.now()
            return ("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                    "<tt:DateTimeType>Manual</tt:DateTimeType><tt:UTCDateTime>"
                    f"<tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
                    f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
                    f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date>"
                    "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")
        if op == "GetCapabilities":
            media = (f"<tt:Media><tt:XAddr>{FAR}/onvif/Media</tt:XAddr><tt:StreamingCapabilities>"
                     "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
                     if self.media else "")
            return ("<tds:GetCapabilitiesResponse><tds:Capabilities>"
                    f"<tt:Device><tt:XAddr>{FAR}/onvif/device_service</tt:XAddr></tt:Device>"
                    f"{media}</tds:Capabilities></tds:GetCapabilitiesResponse>")
        if op == "GetServices":
            services = [("http://www.onvif.org/ver10/device/wsdl", "/onvif/device_service")]
            if self.media:
                services.append(("http://www.onvif.org/ver10/media/wsdl", "/onvif/Media"))
            return "<tds:GetServicesResponse>" + "".join(
                f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{FAR}{path}</tds:XAddr>"
                "</tds:Service>" for ns, path in services) + "</tds:GetServicesResponse>"
        if op == "GetDeviceInformation":
            return (f"<tds:GetDeviceInformationResponse><tds:Manufacturer>{esc(self.name)}"
                    f"</tds:Manufacturer><tds:Model>{esc(self.model)}</tds:Model>"
                    "<tds:FirmwareVersion>1.0</tds:FirmwareVersion></tds:GetDeviceInformationResponse>")
        if op == "GetProfiles":
            return "<trt:GetProfilesResponse>" + "".join(
                f'<trt:Profiles token="{esc(p.token)}" fixed="true"><tt:Name>{esc(p.name)}</tt:Name>'
                f'<tt:VideoEncoderConfiguration token="enc{i}"><tt:Encoding>H264</tt:Encoding>'
                f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height>"
                "</tt:Resolution></tt:VideoEncoderConfiguration></trt:Profiles>"
                for i, p in enumerate(self.profiles)) + "</trt:GetProfilesResponse>"
        if op == "GetServiceCapabilities":
            snap = "true" if self.snapshot_uri else "false"
            return (f'<trt:GetServiceCapabilitiesResponse><trt:Capabilities SnapshotUri="{snap}"/>'
                    "</trt:GetServiceCapabilitiesResponse>")
        if op in ("GetStreamUri", "GetSnapshotUri"):
            token = (body.findtext(".//{http://www.onvif.org/ver10/media/wsdl}ProfileToken") or "").strip()
            p = next((p for p in self.profiles if p.token == token), None)
            if p is None:
                return None
            uri = p.uri if op == "GetStreamUri" else self.snapshot_uri
            # Indented on a line of its own, as Dahua does.
            return (f"<trt:{op}Response><trt:MediaUri><tt:Uri>\n      {esc(uri)}</tt:Uri>"
                    "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
                    f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{op}Response>")
        return None

    def digest_ok(self, header, method, path):
        if not header or not header.startswith("Digest "):
            return False
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
        md5 = lambda x: hashlib.md5(x.encode()).hexdigest()  # noqa: E731
        ha1 = md5(f"{self.user}:onvif:{self.password}")
        ha2 = md5(f"{method}:{path}")
        return (p.get("username") == self.user and p.get("nonce") == self.digest_nonce
                and p.get("uri") == path and p.get("response") == md5(f"{ha1}:{self.digest_nonce}:{ha2}"))

    def handle(self, data, host):
        try:
            envelope = ET.fromstring(data)
        except ET.ParseError:
            return 400, ENV_OPEN + "<env:Fault><env:Reason><env:Text>bad XML</env:Text></env:Reason></env:Fault>" + ENV_CLOSE
        body = envelope.find("s:Body", NS)
        first = list(body)[0] if body is not None and len(body) else None
        op = re.sub(r"^\{.*\}", "", first.tag) if first is not None else ""
        # GetSystemDateAndTime needs no credentials (ONVIF Core §5.9.4.3).
        ok = op == "GetSystemDateAndTime" or self.authorized(envelope)
        with self.lock:
            self.calls.append((op, ok))
        if not ok:
            return 400, ENV_OPEN + NOT_AUTHORIZED + ENV_CLOSE
        inner = self.answer(op, first, host)
        if inner is None:
            return 500, (ENV_OPEN + "<env:Fault><env:Code><env:Value>env:Receiver</env:Value>"
                         "<env:Subcode><env:Value>ter:ActionNotSupported</env:Value></env:Subcode>"
                         "</env:Code><env:Reason><env:Text>not supported</env:Text></env:Reason>"
                         "</env:Fault>" + ENV_CLOSE)
        return 200, ENV_OPEN + inner + ENV_CLOSE

    # --- WS-Discovery ----------------------------------------------------

    def probe_match(self, probe):
        m = re.search(rb"MessageID>\s*([^<\s]+)\s*<", probe)
        relates = m.group(1).decode() if m else ""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"'
            ' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
            ' xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"'
            ' xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><SOAP-ENV:Header>'
            f"<wsa:RelatesTo>{esc(relates)}</wsa:RelatesTo>"
            "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>"
            "</SOAP-ENV:Header><SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch>"
            f"<wsa:EndpointReference><wsa:Address>urn:uuid:fa4e0000-0000-4000-8000-{self.port:012d}"
            "</wsa:Address></wsa:EndpointReference>"
            "<d:Types>dn:NetworkVideoTransmitter</d:Types>"
            "<d:Scopes>onvif://www.onvif.org/type/video_encoder "
            f"onvif://www.onvif.org/name/{urllib.parse.quote(self.name)} "
            f"onvif://www.onvif.org/hardware/{urllib.parse.quote(self.model)}</d:Scopes>"
            # An unusable IPv6 address first, as cameras list every interface.
            f"<d:XAddrs>http://[fe80::1]:{self.port}/onvif/device_service "
            f"http://127.0.0.1:{self.port}/onvif/device_service</d:XAddrs>"
            "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>"
            "</SOAP-ENV:Body></SOAP-ENV:Envelope>"
        ).encode()

    def _udp_loop(self):
        while True:
            try:
                data, addr = self.udp.recvfrom(65536)
            except OSError:
                return
            if b"discovery/Probe" not in data:
                continue
            with self.lock:
                self.probes += 1
            try:
                self.udp.sendto(self.probe_match(data), addr)
            except OSError:
                pass

    # --- lifecycle -------------------------------------------------------

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n)
                if fake.http_digest and not fake.digest_ok(
                        self.headers.get("Authorization"), "POST", self.path):
                    with fake.lock:
                        fake.calls.append(("HTTP 401", False))
                    self.send_response(401)
                    self.send_header("WWW-Authenticate",
                                     f'Digest realm="onvif", nonce="{fake.digest_nonce}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, text = fake.handle(data, self.headers.get("Host", ""))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", free_udp_port()))
        threading.Thread(target=self._udp_loop, daemon=True).start()
        return self

    def stop(self):
        if self.http:
            self.http.shutdown()
            self.http.server_close()
        if self.udp:
            self.udp.close()
