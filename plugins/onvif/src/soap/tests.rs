//! Answers in the shapes real cameras send (`testdata/<brand>_<what>.xml`).

use super::*;

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn capabilities_give_the_media_service() {
    let doc = read(&data("hikvision_capabilities.xml")).unwrap();
    assert_eq!(
        media_xaddr_from_capabilities(&doc).as_deref(),
        Some("http://192.168.1.64/onvif/Media")
    );
}

#[test]
fn services_give_the_ver10_media_service_not_media2() {
    // Default namespace, no prefixes; Media2 listed before Media.
    let doc = read(&data("reolink_services.xml")).unwrap();
    assert_eq!(
        media_xaddr_from_services(&doc).as_deref(),
        Some("http://192.168.1.20:8000/onvif/media_service")
    );
    let caps = read(&data("hikvision_capabilities.xml")).unwrap();
    assert_eq!(media_xaddr_from_services(&caps), None);
}

#[test]
fn profiles_with_tokens_and_resolutions() {
    let doc = read(&data("hikvision_profiles.xml")).unwrap();
    let p = profiles(&doc);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].token, "Profile_1");
    assert_eq!(p[0].name, "mainStream");
    assert_eq!(p[0].describe(), "H264 2560x1440");
    assert_eq!(
        (p[1].token.as_str(), p[1].width, p[1].height),
        ("Profile_2", 640, 480)
    );
    assert_eq!(pick_profile(&p, "").unwrap().token, "Profile_1");
    assert_eq!(pick_profile(&p, "Profile_2").unwrap().token, "Profile_2");
    // go2rtc's index form.
    assert_eq!(pick_profile(&p, "1").unwrap().token, "Profile_2");
    assert_eq!(
        pick_profile(&p, "Profile_9"),
        Err(SoapError::NoSuchProfile(
            "Profile_9".into(),
            "Profile_1, Profile_2".into()
        ))
    );
    assert_eq!(pick_profile(&[], ""), Err(SoapError::NoProfiles));
}

#[test]
fn stream_uris_trimmed_and_unescaped() {
    let doc = read(&data("dahua_stream_uri.xml")).unwrap();
    assert_eq!(
        media_uri(&doc, "GetStreamUri").unwrap(),
        "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif"
    );
    let doc = read(&data("unknown_prefixes_stream_uri.xml")).unwrap();
    assert_eq!(
        media_uri(&doc, "GetStreamUri").unwrap(),
        "rtsp://192.168.5.53:8090/profile1=r"
    );
    let empty = read(b"<Envelope><Body><GetStreamUriResponse/></Body></Envelope>").unwrap();
    assert_eq!(
        media_uri(&empty, "GetStreamUri"),
        Err(SoapError::NoUri("GetStreamUri"))
    );
}

#[test]
fn faults_unauthorized_or_not() {
    for f in ["hikvision_not_authorized.xml", "dahua_fault_text.xml"] {
        let e = read(&data(f)).unwrap_err();
        assert!(matches!(e, SoapError::Unauthorized(_)), "{f}: {e:?}");
        // The host retries these slowly: its list of lasting failures has
        // "unauthorized" and "password".
        assert!(e.to_string().contains("unauthorized"), "{e}");
    }
    let e = read(&data("hikvision_not_authorized.xml")).unwrap_err();
    assert!(e.to_string().contains("NotAuthorized"), "{e}");
    let e = read(&data("soap11_fault.xml")).unwrap_err();
    assert_eq!(
        e,
        SoapError::Fault("Client: Method 'GetCapabilities' not implemented".into())
    );
}

#[test]
fn password_digest_matches_the_spec_example() {
    // WS-Security UsernameToken Profile 1.0 §3.1's formula, checked
    // against `printf 'N0nce2026-12-02T07:00:00.000Zpass' | sha1sum | xxd -r -p | base64`.
    assert_eq!(
        password_digest(b"N0nce", "2026-12-02T07:00:00.000Z", "pass"),
        "Fjq3evEEWUyqd1JfwPT9EWdhCzk="
    );
    let env = envelope(
        GET_PROFILES,
        Some(("ad<min", "pass")),
        b"N0nce",
        "2026-12-02T07:00:00.000Z",
    );
    let doc = crate::xml::parse(env.as_bytes()).unwrap();
    assert_eq!(doc.find_value("Username"), Some("ad<min"));
    assert_eq!(
        doc.find_value("Password"),
        Some("Fjq3evEEWUyqd1JfwPT9EWdhCzk=")
    );
    assert_eq!(doc.find_value("Nonce"), Some("TjBuY2U="));
    assert!(doc.find("GetProfiles").is_some());
    assert!(!envelope(GET_PROFILES, None, b"", "").contains("Security"));
}

#[test]
fn rfc3339_dates() {
    use std::time::Duration;
    assert_eq!(rfc3339(Duration::from_secs(0)), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        rfc3339(Duration::from_millis(1_796_194_501_123)),
        "2026-12-02T06:55:01.123Z"
    );
    assert_eq!(
        rfc3339(Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00.000Z"
    );
}

#[test]
fn snapshot_capability() {
    let doc = read(br#"<Envelope><Body><GetServiceCapabilitiesResponse><Capabilities SnapshotUri="true" Rotation="false"/></GetServiceCapabilitiesResponse></Body></Envelope>"#).unwrap();
    assert!(snapshot_capable(&doc));
    let doc = read(b"<Envelope><Body><GetServiceCapabilitiesResponse><Capabilities/></GetServiceCapabilitiesResponse></Body></Envelope>").unwrap();
    assert!(!snapshot_capable(&doc));
}

#[test]
fn device_clock_from_system_date_and_time() {
    let doc = read(br#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>CST-8:00:00</tt:TZ></tt:TimeZone><tt:UTCDateTime><tt:Time><tt:Hour>6</tt:Hour><tt:Minute>55</tt:Minute><tt:Second>1</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year><tt:Month>12</tt:Month><tt:Day>2</tt:Day></tt:Date></tt:UTCDateTime><tt:LocalDateTime><tt:Time><tt:Hour>14</tt:Hour><tt:Minute>55</tt:Minute><tt:Second>1</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year><tt:Month>12</tt:Month><tt:Day>2</tt:Day></tt:Date></tt:LocalDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></env:Body></env:Envelope>"#).unwrap();
    assert_eq!(device_clock(&doc), Some(1_796_194_501));
    assert_eq!(
        rfc3339(std::time::Duration::from_secs(device_clock(&doc).unwrap())),
        "2026-12-02T06:55:01.000Z"
    );
    let bad = read(b"<Envelope><Body><UTCDateTime><Time><Hour>25</Hour><Minute>0</Minute><Second>0</Second></Time><Date><Year>2026</Year><Month>1</Month><Day>1</Day></Date></UTCDateTime></Body></Envelope>").unwrap();
    assert_eq!(device_clock(&bad), None);
    assert_eq!(device_clock(&read(b"<Envelope/>").unwrap()), None);
}
