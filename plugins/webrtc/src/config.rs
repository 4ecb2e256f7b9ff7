//! The `webrtc:` config section, go2rtc's shape: `listen` (`:8555`, TCP and
//! UDP; a `/udp` or `/tcp` suffix keeps one; `""` picks a free port),
//! `candidates` (IPs, `host:port`, `stun:PORT`), `ice_servers` (STUN/TURN)
//! and `filters` (which discovered addresses are advertised).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};

use rtc::crypto::{self, SignatureScheme};
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use serde_json::Value;

pub const KEYS: &[&str] = &["listen", "candidates", "ice_servers", "filters"];

/// One STUN/TURN server, as go2rtc and `RTCIceServer` write it (`urls`
/// may be one string or a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// go2rtc's `webrtc.filters`. `None` = no filter of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Host addresses (discovered or bound) that may be advertised.
    pub candidates: Option<Vec<String>>,
    /// Advertise loopback addresses of an unspecified `listen`.
    pub loopback: bool,
    /// Interfaces whose addresses an unspecified `listen` advertises.
    pub interfaces: Option<Vec<String>>,
    /// Addresses an unspecified `listen` advertises.
    pub ips: Option<Vec<String>>,
    /// `udp4`, `udp6`, `tcp4`, `tcp6`.
    pub networks: Option<Vec<String>>,
    /// `[min, max]`: the port range an empty `listen` port is taken from.
    pub udp_ports: Option<(u16, u16)>,
}

pub struct Config {
    pub listen: String,
    pub candidates: Vec<String>,
    pub ice_servers: Vec<IceServer>,
    pub filters: Filters,
}

/// go2rtc's default: two public STUN servers, asked only for `stun:`
/// candidates.
fn default_ice_servers() -> Vec<IceServer> {
    vec![IceServer {
        urls: vec![
            "stun:stun.cloudflare.com:3478".into(),
            "stun:stun.l.google.com:19302".into(),
        ],
        username: String::new(),
        credential: String::new(),
    }]
}

fn strings(v: Option<&Value>, key: &str) -> Result<Option<Vec<String>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| match c {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("webrtc.{key}: expected strings, got {other}")),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(format!("webrtc.{key}: expected a list, got {other}")),
    }
}

impl IceServer {
    pub fn list_from_json(v: &Value) -> Result<Vec<IceServer>, String> {
        let Value::Array(a) = v else {
            return Err(format!("webrtc.ice_servers: expected a list, got {v}"));
        };
        a.iter()
            .map(|s| {
                let urls = strings(s.get("urls"), "ice_servers.urls")?.unwrap_or_default();
                let text = |k: &str| match s.get(k) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(t)) => Ok(t.clone()),
                    Some(other) => Err(format!(
                        "webrtc.ice_servers.{k}: expected a string, got {other}"
                    )),
                };
                Ok(IceServer {
                    urls,
                    username: text("username")?,
                    credential: text("credential")?,
                })
            })
            .collect()
    }

    /// `host:port` of every `stun:` url (`stuns:` is TLS, which a Binding
    /// request over UDP cannot use).
    pub fn stun_servers(list: &[IceServer]) -> Vec<String> {
        list.iter()
            .flat_map(|s| &s.urls)
            .filter_map(|u| u.strip_prefix("stun:"))
            .map(|hp| {
                let hp = hp.split('?').next().unwrap_or_default();
                if hp.rsplit_once(':').is_some_and(|(h, p)| {
                    !h.ends_with(':') && p.parse::<u16>().is_ok() && !hp.ends_with(']')
                }) {
                    hp.to_string()
                } else {
                    format!("{hp}:3478")
                }
            })
            .collect()
    }
}

impl Filters {
    fn from_json(v: Option<&Value>) -> Result<Filters, String> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(Filters::default());
        };
        if !v.is_object() {
            return Err(format!("webrtc.filters: expected a map, got {v}"));
        }
        let loopback = match v.get("loopback") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "webrtc.filters.loopback: expected true/false, got {other}"
                ))
            }
        };
        let udp_ports = match strings(v.get("udp_ports"), "filters.udp_ports")? {
            None => None,
            Some(p) => {
                let ports: Vec<u16> = p.iter().filter_map(|x| x.parse().ok()).collect();
                match ports[..] {
                    [min, max] if min <= max && min > 0 => Some((min, max)),
                    _ => {
                        return Err(format!(
                            "webrtc.filters.udp_ports: expected [min, max], got {p:?}"
                        ))
                    }
                }
            }
        };
        Ok(Filters {
            candidates: strings(v.get("candidates"), "filters.candidates")?,
            loopback,
            interfaces: strings(v.get("interfaces"), "filters.interfaces")?,
            ips: strings(v.get("ips"), "filters.ips")?,
            networks: strings(v.get("networks"), "filters.networks")?,
            udp_ports,
        })
    }

    /// Whether `network` (`udp4`, `tcp6`…) may be used.
    pub fn network(&self, network: &str) -> bool {
        self.networks
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == network))
    }
}

impl Config {
    pub fn from_json(v: &Value) -> Result<Config, String> {
        let listen = match v.get("listen") {
            None | Some(Value::Null) => ":8555".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => format!(":{n}"),
            Some(other) => return Err(format!("webrtc.listen: expected a string, got {other}")),
        };
        let candidates = strings(v.get("candidates"), "candidates")?.unwrap_or_default();
        let ice_servers = match v.get("ice_servers") {
            None | Some(Value::Null) => default_ice_servers(),
            Some(list) => IceServer::list_from_json(list)?,
        };
        Ok(Config {
            listen,
            candidates,
            ice_servers,
            filters: Filters::from_json(v.get("filters"))?,
        })
    }

    /// Which of UDP and TCP `listen` asks for (go2rtc's `/udp`, `/tcp`
    /// suffix; none = both).
    pub fn transports(&self) -> (bool, bool) {
        match self.listen.split_once('/').map(|(_, n)| n.trim()) {
            Some("udp") => (true, false),
            Some("tcp") => (false, true),
            _ => (true, true),
        }
    }
}

/// `:8555`, `127.0.0.1:8555`, `[::]:8555`, `:8555/udp` (go2rtc's suffix).
pub fn listen_addr(listen: &str) -> Result<SocketAddr, String> {
    let addr = listen.split('/').next().unwrap_or_default().trim();
    let addr = if addr.is_empty() { ":0" } else { addr };
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    full.parse()
        .map_err(|e| format!("webrtc.listen {listen:?}: {e}"))
}

/// The UDP socket, and the TCP listener on the same port (unless `listen`
/// says `/udp` or `/tcp`). A free port (`listen: ""` or port 0) is taken
/// from `filters.udp_ports` when given: the first whose UDP side (TCP for
/// a `/tcp` listen) is free; a taken TCP side next to a free UDP one only
/// turns ICE-TCP off.
pub fn bind(cfg: &Config) -> Result<(Option<StdUdpSocket>, Option<std::net::TcpListener>), String> {
    let addr = listen_addr(&cfg.listen)?;
    let (udp, tcp) = cfg.transports();
    let ports: Vec<u16> = match (addr.port(), cfg.filters.udp_ports) {
        (0, Some((min, max))) => (min..=max).collect(),
        (p, _) => vec![p],
    };
    let mut last = String::from("no port to try");
    for port in ports {
        let mut a = addr;
        a.set_port(port);
        let u = if udp {
            match StdUdpSocket::bind(a) {
                Ok(s) => Some(s),
                Err(e) => {
                    last = format!("udp {a}: {e}");
                    continue;
                }
            }
        } else {
            None
        };
        // A port picked by the kernel for UDP is tried for TCP too.
        if let Some(s) = &u {
            a = s.local_addr().map_err(|e| e.to_string())?;
        }
        let t = if tcp {
            match std::net::TcpListener::bind(a) {
                Ok(l) => Some(l),
                Err(e) if u.is_some() => {
                    // UDP carries WebRTC; TCP is the fallback some networks
                    // need, so a taken TCP port is not fatal.
                    tracing::warn!("webrtc: listen tcp {a}: {e} (ICE-TCP off)");
                    None
                }
                Err(e) => {
                    last = format!("tcp {a}: {e}");
                    continue;
                }
            }
        } else {
            None
        };
        for s in u.iter() {
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
        }
        for l in t.iter() {
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
        }
        return Ok((u, t));
    }
    Err(last)
}

/// One candidate of ours. `base` is set for a `stun:` address: the local
/// address its datagrams arrive on (its `raddr`). `relay`: an address a
/// TURN server allocated for us (turn.rs), UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cand {
    pub addr: SocketAddr,
    pub tcp: bool,
    pub base: Option<SocketAddr>,
    pub relay: bool,
}

/// A local interface address, as `getifaddrs` lists it.
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub ip: IpAddr,
    pub up: bool,
    pub loopback: bool,
}

/// 172.16.0.0/12: Docker's bridges (docker0 172.17/16, user networks
/// 172.18+/16, Home Assistant's hassio 172.30.32/23).
fn docker_range(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 172 && (16..32).contains(&v4.octets()[1]))
}

/// Bridge and veth interfaces of Docker, Podman, libvirt and Home Assistant.
fn docker_interface(name: &str) -> bool {
    name == "docker0"
        || name == "hassio"
        || name.starts_with("br-")
        || name.starts_with("veth")
        || name.starts_with("virbr")
        || name.starts_with("cni")
        || name.starts_with("podman")
}

/// The addresses an unspecified `listen` advertises, go2rtc's rules: up
/// interfaces, loopback only with `filters.loopback`, `filters.interfaces`
/// and `filters.ips` when given; otherwise never a Docker/VM bridge
/// interface, and no 172.16.0.0/12 address unless nothing else is left
/// (camrouter itself in a bridged container). IPv6 link-local addresses
/// need a scope browsers do not have, so they are skipped.
pub fn discovered(ifaces: &[Iface], f: &Filters) -> Vec<IpAddr> {
    let listed = |list: &Option<Vec<String>>, v: &str| {
        list.as_ref().is_none_or(|l| l.iter().any(|x| x == v))
    };
    let usable: Vec<&Iface> = ifaces
        .iter()
        .filter(|i| i.up && (f.loopback || !(i.loopback || i.ip.is_loopback())))
        .filter(|i| !matches!(i.ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80))
        .filter(|i| listed(&f.interfaces, &i.name) && listed(&f.ips, &i.ip.to_string()))
        .filter(|i| f.interfaces.is_some() || !docker_interface(&i.name))
        .collect();
    let no_docker: Vec<IpAddr> = usable
        .iter()
        .filter(|i| f.ips.is_some() || !docker_range(i.ip))
        .map(|i| i.ip)
        .collect();
    let out = if no_docker.iter().any(|ip| !ip.is_loopback()) || no_docker.len() == usable.len() {
        no_docker
    } else {
        usable.iter().map(|i| i.ip).collect()
    };
    let mut seen = HashSet::new();
    out.into_iter().filter(|ip| seen.insert(*ip)).collect()
}

/// Every address of every interface (`getifaddrs(3)`).
pub fn interfaces() -> Vec<Iface> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and then
    // free once; each `ifa_addr` is checked for null and read by its family.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let ip = match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::from(sin6.sin6_addr.s6_addr)
                }
                _ => continue,
            };
            let flags = ifa.ifa_flags;
            out.push(Iface {
                name: std::ffi::CStr::from_ptr(ifa.ifa_name)
                    .to_string_lossy()
                    .into_owned(),
                ip,
                up: flags & libc::IFF_UP as u32 != 0,
                loopback: flags & libc::IFF_LOOPBACK as u32 != 0,
            });
        }
        libc::freeifaddrs(head);
    }
    out
}

/// A `stun:PORT` entry: the public address a STUN server sees, with PORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunEntry {
    pub port: u16,
    pub tcp: bool,
}

/// The candidates every answer carries, before `stun:` entries are known.
pub struct Plan {
    pub fixed: Vec<Cand>,
    pub stun: Vec<StunEntry>,
    /// `name:port` entries (and whether for TCP), resolved in the
    /// background with the STUN rounds, so a dynamic DNS name follows its
    /// address and one that does not resolve at start is not lost.
    pub names: Vec<(String, bool)>,
}

/// Our candidates: the host addresses (the bound address, or those
/// [`discovered`] for an unspecified one) passed through `filters.candidates`
/// and `filters.networks`, for UDP and for TCP (passive) as listening;
/// then the configured `candidates` as given (go2rtc does not filter those):
/// `IP` (the listen port), `host:port` (resolved now) and `stun:PORT`.
pub fn plan(
    cfg: &Config,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    ifaces: &[Iface],
) -> Plan {
    let mut fixed: Vec<Cand> = Vec::new();
    let mut push = |c: Cand| {
        if !fixed.contains(&c) {
            fixed.push(c);
        }
    };
    let net = |ip: &IpAddr, tcp: bool| {
        let n = match (tcp, ip.is_ipv4()) {
            (false, true) => "udp4",
            (false, false) => "udp6",
            (true, true) => "tcp4",
            (true, false) => "tcp6",
        };
        cfg.filters.network(n)
    };
    for (local, tcp) in [(udp, false), (tcp, true)] {
        let Some(local) = local else { continue };
        let ips = if local.ip().is_unspecified() {
            discovered(ifaces, &cfg.filters)
                .into_iter()
                .filter(|ip| local.is_ipv6() || ip.is_ipv4())
                .collect()
        } else {
            vec![local.ip()]
        };
        for ip in ips {
            let allowed = cfg
                .filters
                .candidates
                .as_ref()
                .is_none_or(|l| l.iter().any(|c| *c == ip.to_string()));
            if allowed && net(&ip, tcp) {
                push(Cand {
                    addr: SocketAddr::new(ip, local.port()),
                    tcp,
                    base: None,
                    relay: false,
                });
            }
        }
    }
    let mut stun = Vec::new();
    let mut names = Vec::new();
    let transports: Vec<(Option<SocketAddr>, bool)> = vec![(udp, false), (tcp, true)];
    for c in &cfg.candidates {
        let c = c.trim();
        for (local, tcp) in transports.iter().filter_map(|(l, t)| l.map(|l| (l, *t))) {
            if let Some(port) = c.strip_prefix("stun:") {
                match port.parse::<u16>() {
                    Ok(port) if port > 0 => stun.push(StunEntry { port, tcp }),
                    _ => tracing::warn!("webrtc: candidate {c}: expected stun:PORT"),
                }
                continue;
            }
            if let Ok(ip) = c.parse::<IpAddr>() {
                push(Cand {
                    addr: SocketAddr::new(ip, local.port()),
                    tcp,
                    base: None,
                    relay: false,
                });
                continue;
            }
            match c.parse::<SocketAddr>() {
                Ok(a) => push(Cand {
                    addr: a,
                    tcp,
                    base: None,
                    relay: false,
                }),
                Err(_)
                    if c.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                    }) =>
                {
                    names.push((c.to_string(), tcp))
                }
                Err(_) => {
                    tracing::warn!("webrtc: candidate {c}: expected IP, host:port or stun:PORT")
                }
            }
        }
    }
    if fixed.is_empty() && stun.is_empty() && names.is_empty() {
        tracing::warn!(
            "webrtc: no candidate to advertise (see webrtc.filters and webrtc.candidates)"
        );
    }
    Plan { fixed, stun, names }
}

impl Plan {
    /// The candidates of an answer, with `public` the address STUN
    /// reported and `base` the local address we asked from.
    pub fn current(
        &self,
        public: Option<(IpAddr, IpAddr)>,
        resolved: &[Cand],
        udp_port: u16,
        tcp_port: u16,
    ) -> Vec<Cand> {
        let mut out = self.fixed.clone();
        for c in resolved {
            if !out.iter().any(|o| o.addr == c.addr && o.tcp == c.tcp) {
                out.push(*c);
            }
        }
        if let Some((ip, local)) = public {
            for s in &self.stun {
                let base = SocketAddr::new(local, if s.tcp { tcp_port } else { udp_port });
                let c = Cand {
                    addr: SocketAddr::new(ip, s.port),
                    tcp: s.tcp,
                    base: Some(base),
                    relay: false,
                };
                if !out.iter().any(|o| o.addr == c.addr && o.tcp == c.tcp) {
                    out.push(c);
                }
            }
        }
        out
    }
}

/// One DTLS certificate for every peer: generating one per peer would cost a
/// key pair each, and browsers only check that the fingerprint in the
/// answer matches.
pub fn certificate() -> Result<RTCCertificate, String> {
    let provider = crypto::default_provider().map_err(|e| format!("webrtc: crypto: {e}"))?;
    let params = CertificateParams::new(vec!["camrouter".to_owned()])
        .map_err(|e| format!("webrtc: certificate: {e}"))?;
    RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)
        .map_err(|e| format!("webrtc: certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listen_forms() {
        assert_eq!(listen_addr(":8555").unwrap().to_string(), "0.0.0.0:8555");
        assert_eq!(listen_addr(":8555/udp").unwrap().port(), 8555);
        assert_eq!(
            listen_addr("127.0.0.1:9000").unwrap().to_string(),
            "127.0.0.1:9000"
        );
        assert_eq!(listen_addr("").unwrap().port(), 0);
        assert!(listen_addr("nonsense").is_err());
        let c = |l: &str| {
            Config::from_json(&json!({ "listen": l }))
                .unwrap()
                .transports()
        };
        assert_eq!(c(":8555"), (true, true));
        assert_eq!(c(":8555/udp"), (true, false));
        assert_eq!(c(":8555/tcp"), (false, true));
    }

    #[test]
    fn empty_listen_port_comes_from_udp_ports() {
        // Two neighbouring free ports, the first then taken for TCP only.
        let (a, b) = loop {
            let u = StdUdpSocket::bind("127.0.0.1:0").unwrap();
            let p = u.local_addr().unwrap().port();
            drop(u);
            if p < u16::MAX
                && StdUdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            {
                break (p, p + 1);
            }
        };
        let cfg = |listen: &str| {
            Config::from_json(&json!({"listen": listen, "filters": {"udp_ports": [a, b]}})).unwrap()
        };
        let (u, t) = bind(&cfg("127.0.0.1:0")).unwrap();
        assert_eq!(u.unwrap().local_addr().unwrap().port(), a);
        assert_eq!(t.unwrap().local_addr().unwrap().port(), a);
        // TCP-only listen: a port whose TCP side is taken is skipped.
        let held = std::net::TcpListener::bind(("127.0.0.1", a)).unwrap();
        let (u, t) = bind(&cfg("127.0.0.1:0/tcp")).unwrap();
        assert!(u.is_none());
        assert_eq!(t.unwrap().local_addr().unwrap().port(), b);
        drop(held);
        // A fixed port ignores the range.
        let (u, _) = bind(&cfg(&format!("127.0.0.1:{b}/udp"))).unwrap();
        assert_eq!(u.unwrap().local_addr().unwrap().port(), b);
    }

    fn strs(c: &[Cand]) -> Vec<String> {
        c.iter()
            .map(|c| format!("{}{}", if c.tcp { "tcp " } else { "" }, c.addr))
            .collect()
    }

    #[test]
    fn candidates_of_a_bound_address_and_config() {
        let cfg = Config::from_json(
            &json!({"candidates": ["10.1.2.3", "192.168.1.5:30000", "stun:8555"]}),
        )
        .unwrap();
        let p = plan(&cfg, Some("127.0.0.1:8555".parse().unwrap()), None, &[]);
        assert_eq!(
            strs(&p.fixed),
            ["127.0.0.1:8555", "10.1.2.3:8555", "192.168.1.5:30000"]
        );
        assert_eq!(
            p.stun,
            [StunEntry {
                port: 8555,
                tcp: false
            }]
        );
        let now = p.current(
            Some((
                "203.0.113.7".parse().unwrap(),
                "192.168.1.2".parse().unwrap(),
            )),
            &[],
            8555,
            0,
        );
        let last = now.last().unwrap();
        assert_eq!(last.addr.to_string(), "203.0.113.7:8555");
        assert_eq!(last.base.unwrap().to_string(), "192.168.1.2:8555");
        assert_eq!(p.current(None, &[], 8555, 0).len(), 3, "no STUN answer yet");
        let named =
            Config::from_json(&json!({"candidates": ["cam.example.org:30000", "bad:port", "x"]}))
                .unwrap();
        let p = plan(&named, Some("127.0.0.1:8555".parse().unwrap()), None, &[]);
        assert_eq!(p.names, [("cam.example.org:30000".to_string(), false)]);
        assert_eq!(strs(&p.fixed), ["127.0.0.1:8555"]);
    }

    #[test]
    fn tcp_listener_gets_passive_candidates_too() {
        let cfg = Config::from_json(&json!({"candidates": ["10.1.2.3:9000"]})).unwrap();
        let a: SocketAddr = "127.0.0.1:8555".parse().unwrap();
        let p = plan(&cfg, Some(a), Some(a), &[]);
        assert_eq!(
            strs(&p.fixed),
            [
                "127.0.0.1:8555",
                "tcp 127.0.0.1:8555",
                "10.1.2.3:9000",
                "tcp 10.1.2.3:9000"
            ]
        );
        let only_tcp = Config::from_json(&json!({"filters": {"networks": ["tcp4"]}})).unwrap();
        assert_eq!(
            strs(&plan(&only_tcp, Some(a), Some(a), &[]).fixed),
            ["tcp 127.0.0.1:8555"]
        );
    }

    fn iface(name: &str, ip: &str) -> Iface {
        let ip: IpAddr = ip.parse().unwrap();
        Iface {
            name: name.into(),
            ip,
            up: true,
            loopback: ip.is_loopback(),
        }
    }

    #[test]
    fn discovery_skips_docker_loopback_and_link_local() {
        let ifaces = [
            iface("lo", "127.0.0.1"),
            iface("lo", "::1"),
            iface("eth0", "192.168.1.10"),
            iface("eth0", "fe80::1"),
            iface("eth0", "2001:db8::10"),
            iface("docker0", "172.17.0.1"),
            iface("br-1a2b3c", "172.18.0.1"),
            iface("hassio", "172.30.32.1"),
            iface("wg0", "172.20.5.5"),
        ];
        let ips = |f: Filters| -> Vec<String> {
            discovered(&ifaces, &f)
                .iter()
                .map(|i| i.to_string())
                .collect()
        };
        assert_eq!(ips(Filters::default()), ["192.168.1.10", "2001:db8::10"]);
        let lo = Filters {
            loopback: true,
            ..Filters::default()
        };
        assert_eq!(
            ips(lo),
            ["127.0.0.1", "::1", "192.168.1.10", "2001:db8::10"]
        );
        // Asked for by name or address: given, Docker range or not.
        let by_name = Filters {
            interfaces: Some(vec!["docker0".into()]),
            ..Filters::default()
        };
        assert_eq!(ips(by_name), ["172.17.0.1"]);
        let by_ip = Filters {
            ips: Some(vec!["172.20.5.5".into()]),
            ..Filters::default()
        };
        assert_eq!(ips(by_ip), ["172.20.5.5"]);
        // Inside a bridged container its own 172.17.0.x is all there is.
        let inside = [iface("lo", "127.0.0.1"), iface("eth0", "172.17.0.2")];
        assert_eq!(
            discovered(&inside, &Filters::default()),
            ["172.17.0.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn unspecified_listen_with_filters() {
        let ifaces = [
            iface("lo", "127.0.0.1"),
            iface("eth0", "192.168.1.10"),
            iface("eth1", "10.0.0.5"),
            iface("docker0", "172.17.0.1"),
        ];
        let any: SocketAddr = "0.0.0.0:8555".parse().unwrap();
        let cfg = Config::from_json(&json!({})).unwrap();
        assert_eq!(
            strs(&plan(&cfg, Some(any), None, &ifaces).fixed),
            ["192.168.1.10:8555", "10.0.0.5:8555"]
        );
        let cfg = Config::from_json(&json!({"filters": {"candidates": ["10.0.0.5"]}})).unwrap();
        assert_eq!(
            strs(&plan(&cfg, Some(any), None, &ifaces).fixed),
            ["10.0.0.5:8555"]
        );
        // `candidates: []` leaves only the configured ones.
        let cfg = Config::from_json(
            &json!({"candidates": ["203.0.113.1:443"], "filters": {"candidates": []}}),
        )
        .unwrap();
        assert_eq!(
            strs(&plan(&cfg, Some(any), None, &ifaces).fixed),
            ["203.0.113.1:443"]
        );
    }

    #[test]
    fn ice_servers_and_filters_parse() {
        let cfg = Config::from_json(&json!({
            "ice_servers": [
                {"urls": "stun:127.0.0.1:3479"},
                {"urls": ["turn:127.0.0.1:3479?transport=udp", "stun:stun.example"], "username": "u", "credential": "p"}
            ],
            "filters": {"loopback": true, "udp_ports": [50000, 50100], "networks": ["udp4"]}
        }))
        .unwrap();
        assert_eq!(cfg.ice_servers.len(), 2);
        assert_eq!(cfg.ice_servers[1].username, "u");
        assert_eq!(
            IceServer::stun_servers(&cfg.ice_servers),
            ["127.0.0.1:3479", "stun.example:3478"]
        );
        assert!(cfg.filters.loopback);
        assert_eq!(cfg.filters.udp_ports, Some((50000, 50100)));
        assert!(cfg.filters.network("udp4") && !cfg.filters.network("tcp4"));
        // go2rtc's defaults when not given; `[]` removes them.
        let d = Config::from_json(&json!({})).unwrap();
        assert_eq!(IceServer::stun_servers(&d.ice_servers).len(), 2);
        let none = Config::from_json(&json!({"ice_servers": []})).unwrap();
        assert!(none.ice_servers.is_empty());
        for bad in [
            json!({"ice_servers": "stun:x"}),
            json!({"filters": {"udp_ports": [5]}}),
            json!({"filters": {"loopback": "yes"}}),
            json!({"candidates": [{"a": 1}]}),
        ] {
            assert!(Config::from_json(&bad).is_err(), "{bad}");
        }
    }
}
