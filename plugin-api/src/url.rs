//! Percent-decoding for the URLs and query strings in source URLs and HTTP
//! requests, lenient like go2rtc's users expect: a `%` not followed by two hex
//! digits is kept as it is, and bytes that do not decode to UTF-8 become U+FFFD.

/// Decodes a URL path or userinfo part: `%XX` escapes only, `+` stays `+`
/// (Go's `url.PathUnescape`, without its errors).
pub fn percent_decode(s: &str) -> String {
    decode(s, false)
}

/// Decodes a query key or value: `%XX` escapes, and `+` is a space (Go's
/// `url.QueryUnescape`, without its errors).
pub fn query_decode(s: &str) -> String {
    decode(s, true)
}

/// `a=1&b&c=x%20y`: the pairs in order, each side decoded with [`query_decode`],
/// like Go's `url.ParseQuery` but ordered; empty pieces are skipped, a key without
/// `=` has an empty value, and repeated keys stay repeated.
pub fn query_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (query_decode(k), query_decode(v))
        })
        .collect()
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        for f in [percent_decode, query_decode] {
            assert_eq!(f("a%20b"), "a b");
            assert_eq!(f("%41%4a%4A"), "AJJ");
            assert_eq!(f("%E2%82%AC"), "€");
            assert_eq!(f("€%20"), "€ ");
            assert_eq!(f(""), "");
        }
    }

    #[test]
    fn malformed_escapes_stay() {
        for f in [percent_decode, query_decode] {
            assert_eq!(f("%"), "%");
            assert_eq!(f("%4"), "%4");
            assert_eq!(f("c%2"), "c%2");
            assert_eq!(f("%zz"), "%zz");
            assert_eq!(f("%%41"), "%A");
            assert_eq!(f("%4%41"), "%4A");
            // A sign is not a hex digit (u8::from_str_radix would take "+5").
            assert_eq!(f("%-5"), "%-5");
            assert_eq!(f("%é"), "%é");
        }
        assert_eq!(percent_decode("%+5"), "%+5");
        assert_eq!(query_decode("%+5"), "% 5");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        for f in [percent_decode, query_decode] {
            assert_eq!(f("a%FFb"), "a\u{FFFD}b");
            assert_eq!(f("%E2%82"), "\u{FFFD}");
        }
    }

    #[test]
    fn plus_only_in_queries() {
        assert_eq!(percent_decode("a+b%2B"), "a+b+");
        assert_eq!(query_decode("a+b%2B"), "a b+");
        assert_eq!(query_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }

    #[test]
    fn pairs() {
        assert_eq!(
            query_pairs("video&size=720&&x=a%3Db&src=a+b&src=c=d"),
            vec![
                ("video".into(), "".into()),
                ("size".into(), "720".into()),
                ("x".into(), "a=b".into()),
                ("src".into(), "a b".into()),
                ("src".into(), "c=d".into()),
            ]
        );
        assert_eq!(query_pairs("a%26b=1"), vec![("a&b".into(), "1".into())]);
        assert!(query_pairs("").is_empty());
    }
}
