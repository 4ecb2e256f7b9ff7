//! Which of our addresses a datagram came to, and sending from the one a
//! candidate names, on the one UDP socket bound to every address
//! (`IP_PKTINFO` / `IPV6_RECVPKTINFO`, Linux).
//!
//! A socket bound to `0.0.0.0` does not say which local address a datagram
//! arrived on, and the kernel picks the source of what we send by route:
//! a peer that checks our second address (another interface, or a
//! configured one) would have its answers from the first, and ICE takes
//! them for another candidate. The destination each datagram carries in
//! its control message names the local candidate exactly, and a send
//! names its source the same way.

use std::collections::HashSet;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// At most this many local addresses remembered (one per interface
/// address; datagrams can only arrive on ours).
const MAX_LOCAL: usize = 64;

/// Control buffer for one `in6_pktinfo` (the larger), aligned for `cmsghdr`.
pub(crate) type Control = [u64; 8];

/// The socket's packet-info state.
#[derive(Default)]
pub struct PktInfo {
    on: bool,
    v6: bool,
    /// Destinations datagrams arrived at: addresses that are surely ours,
    /// so that sending from them cannot fail (a configured candidate may
    /// be a NAT's public address, which is not).
    local: HashSet<IpAddr>,
}

impl PktInfo {
    /// Turns packet info on for a socket bound to every address; one bound
    /// to a single address needs none (that address is the only one).
    pub fn enable(socket: &UdpSocket) -> PktInfo {
        let Ok(local) = socket.local_addr() else {
            return PktInfo::default();
        };
        if !local.ip().is_unspecified() {
            return PktInfo::default();
        }
        let fd = socket.as_raw_fd();
        let on: libc::c_int = 1;
        let set = |level, name| {
            // SAFETY: `fd` is the socket's open descriptor and `on` an int
            // that outlives the call.
            unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    (&on as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                ) == 0
            }
        };
        let v6 = local.is_ipv6();
        let ok = if v6 {
            // A dual-stack socket's IPv4 datagrams report IP_PKTINFO.
            let _ = set(libc::IPPROTO_IP, libc::IP_PKTINFO);
            set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
        } else {
            set(libc::IPPROTO_IP, libc::IP_PKTINFO)
        };
        if !ok {
            tracing::debug!(
                "webrtc: packet info unavailable ({}); local addresses are guessed",
                io::Error::last_os_error()
            );
        }
        PktInfo {
            on: ok,
            v6,
            local: HashSet::new(),
        }
    }

    /// One datagram: its length, sender and the local address it came to
    /// (`None` when packet info is off or absent).
    pub async fn recv(
        &mut self,
        socket: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
        if !self.on {
            let (n, from) = socket.recv_from(buf).await?;
            return Ok((n, from, None));
        }
        let fd = socket.as_raw_fd();
        let got = socket
            .async_io(Interest::READABLE, || recv_once(fd, buf))
            .await?;
        if let Some(ip) = got.2 {
            if self.local.len() < MAX_LOCAL {
                self.local.insert(ip);
            }
        }
        Ok(got)
    }

    /// Sends `data` to `to` from `from`'s address when it is one of ours
    /// the socket received on; otherwise as the kernel routes it. (The loop
    /// sends through batch.rs with [`Self::source`]; this is the rule's
    /// test.)
    #[cfg(test)]
    pub fn try_send(
        &self,
        socket: &UdpSocket,
        data: &[u8],
        to: SocketAddr,
        from: SocketAddr,
    ) -> io::Result<usize> {
        let Some(src) = self.source(to, from) else {
            return socket.try_send_to(data, to);
        };
        let fd = socket.as_raw_fd();
        socket.try_io(Interest::WRITABLE, || send_once(fd, data, to, src))
    }

    /// The source address a datagram to `to` from our `from` must name
    /// (`try_send`'s rule), or `None` to let the kernel route it.
    pub fn source(&self, to: SocketAddr, from: SocketAddr) -> Option<IpAddr> {
        let src = from.ip();
        let same_family = src.is_ipv4() == to.is_ipv4() && to.is_ipv6() == self.v6;
        (self.on && same_family && self.local.contains(&src)).then_some(src)
    }
}

fn recv_once(fd: i32, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    // SAFETY: every pointer in `msg` points into locals (`name`, `iov`,
    // `control`) or `buf`, all alive across the call, with their true
    // lengths; the control messages are read within `msg_controllen` by the
    // CMSG macros and copied out unaligned.
    unsafe {
        let mut name: libc::sockaddr_storage = zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control: Control = [0; 8];
        let mut msg: libc::msghdr = zeroed();
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<Control>() as _;
        let n = libc::recvmsg(fd, &mut msg, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let from = sockaddr(&name).ok_or_else(|| io::Error::other("unknown address family"))?;
        let mut dst = None;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, typ) = ((*c).cmsg_level, (*c).cmsg_type);
            if level == libc::IPPROTO_IP && typ == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            } else if level == libc::IPPROTO_IPV6 && typ == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                dst = Some(match ip.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(ip),
                });
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        Ok((n as usize, from, dst))
    }
}

#[cfg(test)]
fn send_once(fd: i32, data: &[u8], to: SocketAddr, src: IpAddr) -> io::Result<usize> {
    // SAFETY: as in `recv_once`: `msg` points into locals and `data`, alive
    // across the call; the one control message is written inside `control`
    // through the CMSG macros, with `msg_controllen` its exact space.
    unsafe {
        let (mut name, namelen) = to_sockaddr(to);
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut control: Control = [0; 8];
        let mut msg: libc::msghdr = zeroed();
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = namelen;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        set_source(&mut msg, src);
        let n = libc::sendmsg(fd, &msg, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Writes the control message that makes `src` a send's source address.
///
/// # Safety
/// `msg.msg_control` points at a [`Control`] that outlives the send.
pub(crate) unsafe fn set_source(msg: &mut libc::msghdr, src: IpAddr) {
    // SAFETY: the control buffer holds `CMSG_SPACE` of either pktinfo (the
    // caller's promise), written through the CMSG macros.
    unsafe {
        match src {
            IpAddr::V4(v4) => {
                let len = size_of::<libc::in_pktinfo>() as u32;
                msg.msg_controllen = libc::CMSG_SPACE(len) as _;
                let c = libc::CMSG_FIRSTHDR(msg);
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(len) as _;
                let mut info: libc::in_pktinfo = zeroed();
                info.ipi_spec_dst.s_addr = u32::from(v4).to_be();
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
            }
            IpAddr::V6(v6) => {
                let len = size_of::<libc::in6_pktinfo>() as u32;
                msg.msg_controllen = libc::CMSG_SPACE(len) as _;
                let c = libc::CMSG_FIRSTHDR(msg);
                (*c).cmsg_level = libc::IPPROTO_IPV6;
                (*c).cmsg_type = libc::IPV6_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(len) as _;
                let mut info: libc::in6_pktinfo = zeroed();
                info.ipi6_addr.s6_addr = v6.octets();
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
            }
        }
    }
}

fn sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    // SAFETY: the family field says which of the two layouts the storage
    // (large and aligned enough for both) holds.
    unsafe {
        match i32::from(s.ss_family) {
            libc::AF_INET => {
                let a = &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let a = &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// `a` as the kernel reads it, and its length.
pub(crate) fn to_sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid, and each arm writes
    // the layout its family names, which fits in the storage.
    unsafe {
        let mut s: libc::sockaddr_storage = zeroed();
        match a {
            SocketAddr::V4(v4) => {
                let p = (&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*p).sin_family = libc::AF_INET as libc::sa_family_t;
                (*p).sin_port = v4.port().to_be();
                (*p).sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                (s, size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            SocketAddr::V6(v6) => {
                let p = (&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*p).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*p).sin6_port = v6.port().to_be();
                (*p).sin6_addr.s6_addr = v6.ip().octets();
                (*p).sin6_flowinfo = v6.flowinfo();
                (*p).sin6_scope_id = v6.scope_id();
                (s, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket on every address: a datagram to 127.0.0.2 says so, and the
    /// answer sent "from" 127.0.0.2 arrives from 127.0.0.2 (the kernel
    /// would pick 127.0.0.1 for a peer on 127.0.0.1).
    #[tokio::test]
    async fn destination_read_and_source_set() {
        let server = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let mut info = PktInfo::enable(&server);
        assert!(info.on);
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to2 = SocketAddr::from(([127, 0, 0, 2], port));
        peer.send_to(b"hello", to2).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from, dst) = info.recv(&server, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, peer.local_addr().unwrap());
        assert_eq!(dst, Some(IpAddr::from([127, 0, 0, 2])));
        info.try_send(&server, b"back", from, to2).unwrap();
        let (n, back_from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"back");
        assert_eq!(back_from, to2, "sent from the address it came to");
        // An address never seen as a destination (not surely ours) is not
        // forced as the source.
        let not_ours = SocketAddr::from(([203, 0, 113, 1], port));
        info.try_send(&server, b"routed", from, not_ours).unwrap();
        let (_, routed_from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(routed_from.ip(), IpAddr::from([127, 0, 0, 1]));
    }

    #[tokio::test]
    async fn a_socket_on_one_address_needs_none() {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let info = PktInfo::enable(&s);
        assert!(!info.on);
    }
}
