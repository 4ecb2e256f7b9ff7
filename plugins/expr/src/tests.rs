//! Evaluation tests against a tiny HTTP/1.1 server on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

use super::*;
use crate::script::translate;

fn run(src: &str) -> Result<String, String> {
    eval(src, &Arc::new(AtomicBool::new(false)), RUN_TIMEOUT)
}

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let log = log.clone();
                thread::spawn(move || handle(conn, &log));
            }
        });
        Server { base, seen }
    }

    /// The script with `BASE` replaced by this server's `http://127.0.0.1:port`.
    fn script(&self, s: &str) -> String {
        s.replace("BASE", &self.base)
    }

    fn requests(&self, path: &str) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .cloned()
            .collect()
    }
}

fn handle(mut conn: TcpStream, log: &Mutex<Vec<Seen>>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let seen = Seen {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&buf[head_end..]).into_owned(),
    };
    log.lock().unwrap().push(seen.clone());
    let host = seen.header("host").unwrap_or_default().to_string();
    let (status, extra, body): (&str, String, String) =
        match seen.path.split('?').next().unwrap_or_default() {
            "/text" => ("200 OK", String::new(), "hello".into()),
            "/json" => (
                "200 OK",
                "Content-Type: application/json\r\n".into(),
                r#"{"data":{"URL":"rtsp://cam/1"},"results":[{"server":{"domain":"srv"},"number":7,"token_l":"tk"}]}"#.into(),
            ),
            "/echo" => {
                let h: serde_json::Map<String, serde_json::Value> = seen
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into()))
                    .collect();
                let v = serde_json::json!({
                    "method": seen.method, "path": seen.path, "body": seen.body, "headers": h,
                });
                ("200 OK", String::new(), v.to_string())
            }
            "/login" => (
                "302 Found",
                "Set-Cookie: sid=s3cret; Path=/; HttpOnly\r\nLocation: /home\r\n".into(),
                String::new(),
            ),
            "/home" => (
                "200 OK",
                String::new(),
                seen.header("cookie").unwrap_or("no cookie").to_string(),
            ),
            "/page" => (
                "200 OK",
                String::new(),
                format!("<html><a href=\"http://{host}/hls/main.m3u8\">x</a> http://other.m3u8</html>"),
            ),
            "/hls/main.m3u8" => (
                "200 OK",
                String::new(),
                "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nGEAR1/Prog.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\ngear1/prog_index.m3u8\n".into(),
            ),
            "/slow" => {
                thread::sleep(Duration::from_millis(800));
                ("200 OK", String::new(), "rtsp://slow/1".into())
            }
            _ => ("404 Not Found", String::new(), "nope".into()),
        };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
}

// ---- pre-pass ----

#[test]
fn prepass_strings_and_comments() {
    assert_eq!(
        translate(r#"'it\'s "q"' + "a'b" + `raw\n"x"`"#).unwrap(),
        r#""it's \"q\"" + "a'b" + "raw\\n\"x\"""#
    );
    // Escapes: Go's are converted, unknown ones keep the backslash.
    assert_eq!(translate(r"'\t\x41\u00e9\101\d'").unwrap(), r#""\tAéA\\d""#);
    // Quotes and braces in comments are left alone.
    assert_eq!(
        translate("// it's {a: 1}\nlet x = 1; /* 'q' { */ x").unwrap(),
        "// it's {a: 1}\nlet x = 1; /* 'q' { */ x"
    );
    assert!(translate("'open").unwrap_err().contains("unterminated"));
    assert!(translate("let x = (1;").is_err());
}

#[test]
fn prepass_maps_var_and_words() {
    assert_eq!(
        translate("var r = fetch(u, {method: 'POST', 'json': {a: [1, 2,], 3: nil},});").unwrap(),
        r#"let r = fetch(u, #{"method": "POST", "json": #{"a": [1, 2], "3": ()}});"#
    );
    assert_eq!(
        translate("f({method, headers})").unwrap(),
        r#"f(#{"method": method, "headers": headers})"#
    );
    assert_eq!(
        translate("a and not b or c not in d").unwrap(),
        "a && ! b || c !in d"
    );
    assert_eq!(
        translate("x.type + x.default + x?.match + x.json().y").unwrap(),
        r#"x.type + x["default"] + x?["match"] + x.json().y"#
    );
    assert_eq!(
        translate("match(s, 'a')[0]").unwrap(),
        r#"regex_match(s, "a")[0]"#
    );
    // Rhai blocks pass through.
    assert_eq!(
        translate("if x { 1 } else { 2 }; loop { break; }").unwrap(),
        "if x { 1 } else { 2 }; loop { break; }"
    );
}

#[test]
fn prepass_slices_and_ternaries() {
    assert_eq!(translate("s[:n]").unwrap(), "s.slice(0,n)");
    assert_eq!(translate("s[a:]").unwrap(), "s.slice(a,())");
    assert_eq!(translate("f(x)[1:2][0]").unwrap(), "f(x).slice(1,2)[0]");
    assert_eq!(
        translate("[1, 2][a ? 0 : 1]").unwrap(),
        "[1, 2][ if a  { 0  } else { 1 }]"
    );
    assert_eq!(translate("s[m[0]:len(s)]").unwrap(), "s.slice(m[0],len(s))");
    assert_eq!(translate("x in [1, 2]").unwrap(), "x in [1, 2]");
    assert_eq!(
        translate("let v = a ? b : c ? d : e; v").unwrap(),
        "let v = if  a  { b  } else { if  c  { d  } else { e } }; v"
    );
    assert_eq!(
        translate("f(a ? {k: 1} : 2, 3)").unwrap(),
        r#"f( if a  { #{"k": 1}  } else { 2 }, 3)"#
    );
}

#[test]
fn go2rtc_readme_fetch_examples_compile() {
    for src in [
        "var r = fetch('https://example.org/products.json');",
        "var r = fetch('https://example.org/post', {\n    method: 'POST',\n    \
         // Content-Type: application/json will be set automatically\n    json: {username: 'example'}\n});",
        "var r = fetch('https://example.org/post', {\n    method: 'POST',\n    \
         // Content-Type: application/x-www-form-urlencoded will be set automatically\n    \
         data: {username: 'example', password: 'password'}\n});",
        "let r = fetch(u, {method}); r.ok + r.status + r.text + r.json() + r.headers",
    ] {
        assert_eq!(engine::check(src), Ok(()), "{src}");
    }
}

#[test]
fn prepass_never_panics() {
    const PIECES: &[&str] = &[
        "a", "1", "1.5", "'s'", "\"d\"", "`r`", "'\\", "\"", "{", "}", "[", "]", "(", ")", ":",
        "?", "?.", "??", ",", ";", ".", "=", "==", "not", "in", "var", "match", "nil", "contains",
        "#{", "//c\n", "/*", "*/", " ", "\n", "é", "\\x4", "'\\u12'", "'\\777'",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let mut src = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        for k in 0..(seed % 12) {
            src.push_str(PIECES[((seed >> (k * 5)) as usize) % PIECES.len()]);
        }
        let _ = translate(&src);
    }
}

// ---- evaluation ----

#[test]
fn language_basics() {
    assert_eq!(
        run("let url1 = 'http://h/a/b/index.m3u8'; url1[:lastIndexOf(url1, \"/\")+1] + 'x.m3u8'")
            .unwrap(),
        "http://h/a/b/x.m3u8"
    );
    assert_eq!(
        run("let s = 'abcdef'; s[1:3] + s[4:] + s[-2:] + s[:-5] + string(indexOf(s, 'cd'))")
            .unwrap(),
        "bcefefa2"
    );
    assert_eq!(
        run("let p = split('a,b,c', ','); join(p[1:], '-') + '|' + trim('  x ') + upper('y') + lower('Z') + replace('aa', 'a', 'b')")
            .unwrap(),
        "b-c|xYzbb"
    );
    assert_eq!(
        run("let n = 2; var s = n == 1 ? 'one' : n == 2 ? 'two' : 'many'; s").unwrap(),
        "two"
    );
    assert_eq!(
        run("('abc' contains 'b' and 'abc' startsWith 'a' and 'abc' endsWith 'c' and 'abc' matches '^a.c$') ? 'yes' : 'no'")
            .unwrap(),
        "yes"
    );
    // Rhai's own contains (method and function) still works.
    assert_eq!(
        run("('abc'.contains('b') && contains([1, 2], 2) && {a: 1}.contains('a')) ? 'yes' : 'no'")
            .unwrap(),
        "yes"
    );
    assert_eq!(
        run("toJSON({a: [1, 'x', nil, true]})").unwrap(),
        r#"{"a":[1,"x",null,true]}"#
    );
    assert_eq!(
        run("fromJSON('{\"a\": {\"b\": 5}}').a.b + ''").unwrap(),
        "5"
    );
}

#[test]
fn match_groups_and_flags() {
    assert_eq!(
        run(r#"let m = match('Cam=Front ID=42', 'id=(\d+)', 'i'); m[0] + '|' + m[1]"#).unwrap(),
        "ID=42|42"
    );
    assert_eq!(
        run(r#"match("a\nb.m3u8\nc", "^[a-z.0-9]+\\.m3u8$", "m")[0]"#).unwrap(),
        "b.m3u8"
    );
    assert_eq!(run(r#"match("a\nb", "a.b", "s")[0]"#).unwrap(), "a\nb");
    assert_eq!(
        run("match('abc', 'x') == nil ? 'none' : 'some'").unwrap(),
        "none"
    );
    // An unmatched optional group is "".
    assert_eq!(
        run("let m = match('ab', 'a(x)?b'); len(m) + m[1]").unwrap(),
        "2"
    );
    assert!(run("match('abc', '(')[0]").unwrap_err().contains("match:"));
    assert!(run("match('abc', 'x')[0]").is_err());
}

#[test]
fn errors_are_clear() {
    assert_eq!(run("''").unwrap_err(), "result is empty");
    assert_eq!(run("1 + 2").unwrap_err(), "result is empty");
    assert_eq!(run("let x = 'a'; nil").unwrap_err(), "result is empty");
    let e = run("let x = ;\n'a'").unwrap_err();
    assert!(
        e.starts_with("syntax error: ") && e.contains("line 1"),
        "{e}"
    );
    let e = run("let s = 'unterminated").unwrap_err();
    assert!(e.starts_with("syntax error: unterminated string"), "{e}");
    let e = run("nosuch(1)").unwrap_err();
    assert!(e.contains("nosuch"), "{e}");
}

#[test]
fn scripts_cannot_run_forever() {
    let e = run("loop {}").unwrap_err();
    assert!(e.contains("Too many operations"), "{e}");
    let e = run("let x = 0; while true { x += 1; } 'a'").unwrap_err();
    assert!(e.contains("Too many operations"), "{e}");
    let e = run("fn f(n) { f(n + 1) } f(0)").unwrap_err();
    assert!(
        e.to_lowercase().contains("stack overflow") || e.contains("call"),
        "{e}"
    );
    // A stop flag aborts at the next operation.
    let e = eval("loop {}", &Arc::new(AtomicBool::new(true)), RUN_TIMEOUT).unwrap_err();
    assert_eq!(e, "stopped");
}

#[test]
fn fetch_text_status_and_headers() {
    let s = Server::start();
    assert_eq!(run(&s.script("fetch('BASE/text').text")).unwrap(), "hello");
    assert_eq!(
        run(&s.script("let r = fetch('BASE/nope'); r.status + ' ' + r.ok + ' ' + r.text")).unwrap(),
        "404 Not Found false nope"
    );
    assert_eq!(
        run(&s.script(
            "let r = fetch('BASE/json'); r.status + ' ' + r.ok + ' ' + r.headers['content-type']"
        ))
        .unwrap(),
        "200 OK true application/json"
    );
}

#[test]
fn fetch_json_with_headers_domru_shape() {
    let s = Server::start();
    let script = s.script(
        "\nlet camera   = 'c1';\nlet token    = 't0k';\nlet operator = '7';\n\n\
         fetch('BASE/json?cam=' + camera, {\n  headers: {\n    'Authorization': 'Bearer ' + token,\n    \
         'User-Agent': 'Google sdkgphone64x8664 | Android 14',\n    'Operator': operator\n  }\n}).json().data.URL\n",
    );
    assert_eq!(run(&script).unwrap(), "rtsp://cam/1");
    let r = &s.requests("/json")[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/json?cam=c1");
    assert_eq!(r.header("authorization"), Some("Bearer t0k"));
    assert_eq!(
        r.header("user-agent"),
        Some("Google sdkgphone64x8664 | Android 14")
    );
    assert_eq!(r.header("operator"), Some("7"));
}

#[test]
fn fetch_post_form_and_json_ufanet_shape() {
    let s = Server::start();
    let script = s.script(
        "let username = 'u s';\nlet password = 'p&w';\nlet cameraid = 'cam9';\n\n\
         let r1 = fetch('BASE/login', {\n  method: 'POST',\n  data: {username: username, password: password}\n});\n\
         let r2 = fetch('BASE/json', {\n  method: 'POST',\n  \
         json: {'fields': ['token_l', 'server'], 'token_l_ttl': 3600, 'numbers': [cameraid]},\n}).json().results[0];\n\n\
         'rtsp://' + r2.server.domain + '/' + r2.number + '?token=' + r2.token_l + '&home=' + r1.text",
    );
    // The login's redirect was followed as GET with the cookie it set.
    assert_eq!(
        run(&script).unwrap(),
        "rtsp://srv/7?token=tk&home=sid=s3cret"
    );
    let login = &s.requests("/login")[0];
    assert_eq!(login.method, "POST");
    assert_eq!(
        login.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(login.body, "password=p%26w&username=u+s");
    let home = &s.requests("/home")[0];
    assert_eq!(home.method, "GET");
    assert_eq!(home.body, "");
    let post = &s.requests("/json")[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.header("content-type"), Some("application/json"));
    // The cookie is shared by later fetches of the same evaluation.
    assert_eq!(post.header("cookie"), Some("sid=s3cret"));
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"fields": ["token_l", "server"], "token_l_ttl": 3600, "numbers": ["cam9"]})
    );
    // A new evaluation starts without cookies.
    assert_eq!(
        run(&s.script("fetch('BASE/home').text")).unwrap(),
        "no cookie"
    );
}

#[test]
fn fetch_params_body_and_method() {
    let s = Server::start();
    let out = run(&s.script(
        "let r = fetch('BASE/echo', {method: 'put', params: {b: 'x y', a: 1}, body: 'raw', \
         headers: {'Content-Type': 'text/plain'}}).json(); r.method + ' ' + r.path + ' ' + r.body + ' ' + r.headers['content-type']",
    ))
    .unwrap();
    assert_eq!(out, "PUT /echo?a=1&b=x+y raw text/plain");
    // params append to an existing query; an explicit Content-Type wins over json's.
    let out = run(&s.script(
        "let r = fetch('BASE/echo?z=0', {params: {q: '&'}, json: [1], headers: {'content-type': 'application/x'}}).json(); \
         r.method + ' ' + r.path + ' ' + r.body + ' ' + r.headers['content-type']",
    ))
    .unwrap();
    assert_eq!(out, "GET /echo?z=0&q=%26 [1] application/x");
}

#[test]
fn basic_auth_from_userinfo_dahua_shape() {
    let s = Server::start();
    let hostport = s.base.trim_start_matches("http://").to_string();
    let script = format!(
        "\nlet host = 'admin:pass%21word@{hostport}';\n\n\
         var r = fetch('http://' + host + '/echo?action=setConfig&Encode[0].MainFormat[0].Audio.Compression=G.711A');\n\n\
         'rtsp://' + host + '/cam/realmonitor?channel=1&subtype=0&unicast=true&proto=Onvif'\n"
    );
    assert_eq!(
        run(&script).unwrap(),
        format!("rtsp://admin:pass%21word@{hostport}/cam/realmonitor?channel=1&subtype=0&unicast=true&proto=Onvif")
    );
    let r = &s.requests("/echo")[0];
    // base64("admin:pass!word")
    assert_eq!(
        r.header("authorization"),
        Some("Basic YWRtaW46cGFzcyF3b3Jk")
    );
    assert_eq!(r.header("host"), Some(hostport.as_str()));
    assert!(r.path.starts_with("/echo?action=setConfig&Encode[0]"));
}

#[test]
fn apple_hls_example_shape() {
    let s = Server::start();
    let script = s.script(
        "\nlet html1 = fetch(\"BASE/page\").text;\nlet url1 = match(html1, \"http.+?m3u8\")[0];\n\n\
         let html2 = fetch(url1).text;\nlet url2 = match(html2, \"^[a-z0-1/_]+\\\\.m3u8$\", \"m\")[0];\n\n\
         let url3 = url1[:lastIndexOf(url1, \"/\")+1] + url2;\n\n\"ffmpeg:\" + url3 + \"#video=copy\"\n",
    );
    assert_eq!(
        run(&script).unwrap(),
        s.script("ffmpeg:BASE/hls/gear1/prog_index.m3u8#video=copy")
    );
}

#[test]
fn fetch_errors_hide_the_password() {
    // Port 1 on loopback: connection refused.
    let e = run("fetch('http://user:secret@127.0.0.1:1/x').text").unwrap_err();
    assert!(e.contains("127.0.0.1:1/x") && !e.contains("secret"), "{e}");
    let e = run("fetch('ftp://127.0.0.1/x').text").unwrap_err();
    assert!(e.contains("unsupported protocol scheme"), "{e}");
}

#[test]
fn start_reports_unless_stopped() {
    let s = Server::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let script = s.script("fetch('BASE/slow').text");

    let (tx, rx) = mpsc::channel();
    let _kept = start(rt.handle(), script.clone(), RUN_TIMEOUT, move |r| {
        tx.send(r).unwrap()
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        Ok("rtsp://slow/1".to_string())
    );

    let (tx, rx) = mpsc::channel();
    let stopped = start(rt.handle(), script, RUN_TIMEOUT, move |r| {
        tx.send(r).unwrap()
    });
    stopped.stop();
    // Whether the script was aborted or its fetch finished, nothing is reported.
    assert!(rx.recv_timeout(Duration::from_secs(2)).is_err());

    let (tx, rx) = mpsc::channel();
    let _e = start(rt.handle(), "''".into(), RUN_TIMEOUT, move |r| {
        tx.send(r).unwrap()
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        Err("result is empty".to_string())
    );
}

#[test]
fn stop_from_inside_the_report_does_not_deadlock() {
    // The host's `closed` stops the source synchronously, on the reporting thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let slot: Arc<std::sync::OnceLock<Running>> = Arc::new(std::sync::OnceLock::new());
    let (tx, rx) = mpsc::channel();
    let s2 = slot.clone();
    let running = start(rt.handle(), "''".into(), RUN_TIMEOUT, move |r| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s2.get().is_none() && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if let Some(r) = s2.get() {
            r.stop();
        }
        tx.send(r).unwrap();
    });
    assert!(slot.set(running).is_ok());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        Err("result is empty".to_string())
    );
    // Stopping again from another thread returns at once too.
    slot.get().unwrap().stop();
}
