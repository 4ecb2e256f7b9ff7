//! ProbeMatches as cameras send them (`testdata/probe_*.xml`).

use super::*;

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn several_xaddrs_pick_the_routable_ipv4_one() {
    let from: IpAddr = "192.168.1.64".parse().unwrap();
    let f = matches(&data("probe_matches_several_xaddrs.xml"), from);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].xaddr, "http://192.168.1.64/onvif/device_service");
    assert_eq!(
        f[0].endpoint,
        "urn:uuid:a1b2c3d4-1dd2-11b2-a105-F0000000A1B2"
    );
    assert_eq!(f[0].name, "HIKVISION DS-2CD2143G2-I");
    assert_eq!(f[0].hardware, "DS-2CD2143G2-I");
    let s = source(&f[0]).unwrap();
    assert_eq!(s["url"], "onvif://user:pass@192.168.1.64");
    assert_eq!(s["name"], "192.168.1.64");
    assert_eq!(s["info"], "HIKVISION DS-2CD2143G2-I DS-2CD2143G2-I");
    // Answered from another address (a second interface): still IPv4, not
    // the link-local one.
    let f = matches(
        &data("probe_matches_several_xaddrs.xml"),
        "10.0.0.9".parse().unwrap(),
    );
    assert_eq!(f[0].xaddr, "http://192.168.1.64/onvif/device_service");
}

#[test]
fn bind_address_becomes_the_sender() {
    let f = matches(
        &data("probe_match_bind_address.xml"),
        "10.1.2.3".parse().unwrap(),
    );
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].xaddr, "http://10.1.2.3:8080/onvif/device_service");
    assert_eq!(
        source(&f[0]).unwrap()["url"],
        "onvif://user:pass@10.1.2.3:8080"
    );
}

#[test]
fn printers_and_garbage_are_not_cameras() {
    let from: IpAddr = "192.168.1.30".parse().unwrap();
    assert!(matches(&data("probe_match_printer.xml"), from).is_empty());
    assert!(matches(b"\x00\xffnot xml", from).is_empty());
    assert!(matches(b"", from).is_empty());
}

#[test]
fn a_nonstandard_device_path_is_kept() {
    let f = Found {
        xaddr: "http://127.0.0.1:8899/onvif/device".into(),
        endpoint: "x".into(),
        name: String::new(),
        hardware: String::new(),
    };
    let s = source(&f).unwrap();
    assert_eq!(s["url"], "onvif://user:pass@127.0.0.1:8899/onvif/device");
    assert_eq!(s["info"], "");
}

#[test]
fn probe_is_xml_with_a_fresh_message_id() {
    let id = uuid();
    assert_eq!(id.len(), 36);
    assert_ne!(id, uuid());
    let doc = crate::xml::parse(probe(&id).as_bytes()).unwrap();
    assert_eq!(
        doc.find_value("MessageID"),
        Some(format!("urn:uuid:{id}").as_str())
    );
    assert!(doc.find("Probe").is_some());
}

#[tokio::test]
async fn discover_on_loopback_lists_each_device_once() {
    // A fake device on 127.0.0.1 that answers every probe twice.
    let dev = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = dev.local_addr().unwrap();
    let answer = String::from_utf8(data("probe_match_bind_address.xml")).unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = dev.recv_from(&mut buf).await {
            assert!(String::from_utf8_lossy(&buf[..n]).contains("discovery/Probe"));
            for _ in 0..2 {
                let _ = dev.send_to(answer.as_bytes(), from).await;
            }
        }
    });
    let found = discover(&[addr], Duration::from_millis(500)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].xaddr, "http://127.0.0.1:8080/onvif/device_service");
}
