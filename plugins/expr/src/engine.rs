//! Evaluation: the Rhai engine with go2rtc's functions, limits and stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, FLOAT, INT};

use crate::fetch::{self, Request, Response, Session};
use crate::script;

/// The longest a script may run, fetches included.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Enough for any URL-building script; `loop {}` hits it in milliseconds.
const MAX_OPERATIONS: u64 = 1_000_000;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Evaluates an `expr:` script (without the `expr:` prefix) and returns the
/// URL it computes. `stop` aborts a running script.
pub fn eval(source: &str, stop: &Arc<AtomicBool>, timeout: Duration) -> Result<String, String> {
    let code = script::translate(source).map_err(|e| format!("syntax error: {e}"))?;
    let deadline = Instant::now() + timeout;
    let engine = new_engine(Arc::new(Session::new()), stop.clone(), deadline);
    let ast = engine
        .compile(&code)
        .map_err(|e| format!("syntax error: {e}"))?;
    let result = engine.eval_ast::<Dynamic>(&ast);
    if stop.load(Ordering::Relaxed) {
        return Err("stopped".into());
    }
    let value = result.map_err(|e| match *e {
        EvalAltResult::ErrorTerminated(..) => format!("timeout after {}s", timeout.as_secs()),
        // Errors of our functions (fetch, match...) without "Runtime error: ".
        EvalAltResult::ErrorRuntime(v, pos) if !pos.is_none() => format!("{v} ({pos})"),
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        e => e.to_string(),
    })?;
    match value.into_immutable_string() {
        Ok(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err("result is empty".into()),
    }
}

/// Translates and compiles a script without running it.
pub fn check(source: &str) -> Result<(), String> {
    let code = script::translate(source).map_err(|e| format!("syntax error: {e}"))?;
    let engine = new_engine(
        Arc::new(Session::new()),
        Arc::new(AtomicBool::new(false)),
        Instant::now(),
    );
    engine
        .compile(&code)
        .map(drop)
        .map_err(|e| format!("syntax error: {e}"))
}

fn new_engine(session: Arc<Session>, stop: Arc<AtomicBool>, deadline: Instant) -> Engine {
    let mut e = Engine::new();
    e.set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(32 * 1024 * 1024)
        .set_max_array_size(100_000)
        .set_max_map_size(100_000)
        .on_progress(move |_| {
            (stop.load(Ordering::Relaxed) || Instant::now() >= deadline).then_some(Dynamic::UNIT)
        })
        .on_print(|s| tracing::info!(target: "camrouter_expr", "{s}"))
        .on_debug(|s, _, pos| tracing::debug!(target: "camrouter_expr", "{pos:?}: {s}"));

    // expr-lang's infix word operators, at the precedence of `in`.
    // (`contains` is renamed by the pre-pass: see script.rs.)
    for op in ["contains_op", "startsWith", "endsWith", "matches"] {
        e.register_custom_operator(op, 110)
            .expect("custom operator");
    }
    e.register_fn("contains_op", |s: &str, sub: &str| s.contains(sub))
        .register_fn("startsWith", |s: &str, p: &str| s.starts_with(p))
        .register_fn("endsWith", |s: &str, p: &str| s.ends_with(p))
        .register_fn("matches", |s: &str, re: &str| -> Res<bool> {
            Ok(regex(re, "")?.is_match(s))
        });

    // fetch
    e.register_type_with_name::<Response>("Response")
        .register_get("ok", |r: &mut Response| r.ok)
        .register_get("status", |r: &mut Response| r.status.clone())
        .register_get("text", |r: &mut Response| r.text.clone())
        .register_get("headers", |r: &mut Response| {
            r.headers
                .iter()
                .map(|(k, v)| (k.into(), Dynamic::from(v.clone())))
                .collect::<Map>()
        })
        .register_fn("json", |r: &mut Response| from_json_text(&r.text))
        .register_fn("to_string", |r: &mut Response| r.text.clone());
    let s = session.clone();
    e.register_fn("fetch", move |url: &str| -> Res<Response> {
        s.fetch(Request {
            method: "GET".into(),
            url: url.into(),
            ..Default::default()
        })
        .map_err(Into::into)
    });
    e.register_fn("fetch", move |url: &str, options: Map| -> Res<Response> {
        session.fetch(request(url, &options)?).map_err(Into::into)
    });

    // match
    e.register_fn("regex_match", |s: &str, re: &str| regex_match(s, re, ""))
        .register_fn("regex_match", regex_match);

    // Strings (expr-lang's builtins; indexes count characters).
    e.register_fn("indexOf", |s: &str, sub: &str| index_of(s, s.find(sub)))
        .register_fn("lastIndexOf", |s: &str, sub: &str| {
            index_of(s, s.rfind(sub))
        })
        .register_fn("split", |s: &str, sep: &str| -> Array {
            s.split(sep).map(|p| Dynamic::from(p.to_string())).collect()
        })
        .register_fn("split", |s: &str, sep: &str, n: INT| -> Array {
            if n < 0 {
                return s.split(sep).map(|p| Dynamic::from(p.to_string())).collect();
            }
            s.splitn(n as usize, sep)
                .map(|p| Dynamic::from(p.to_string()))
                .collect()
        })
        .register_fn("trim", |s: &str| s.trim().to_string())
        .register_fn("trim", |s: &str, cut: &str| {
            s.trim_matches(|c| cut.contains(c)).to_string()
        })
        .register_fn("trimPrefix", |s: &str, p: &str| {
            s.strip_prefix(p).unwrap_or(s).to_string()
        })
        .register_fn("trimSuffix", |s: &str, p: &str| {
            s.strip_suffix(p).unwrap_or(s).to_string()
        })
        .register_fn("hasPrefix", |s: &str, p: &str| s.starts_with(p))
        .register_fn("hasSuffix", |s: &str, p: &str| s.ends_with(p))
        .register_fn("upper", |s: &str| s.to_uppercase())
        .register_fn("lower", |s: &str| s.to_lowercase())
        .register_fn("replace", |s: &str, from: &str, to: &str| {
            s.replace(from, to)
        })
        .register_fn("join", |a: Array, sep: &str| {
            a.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(sep)
        })
        .register_fn("join", |a: Array| {
            a.iter().map(|v| v.to_string()).collect::<String>()
        })
        .register_fn("slice", |s: &str, a: INT, b: INT| slice_str(s, a, Some(b)))
        .register_fn("slice", |s: &str, a: INT, _: ()| slice_str(s, a, None))
        .register_fn("slice", |v: Array, a: INT, b: INT| {
            slice_array(v, a, Some(b))
        })
        .register_fn("slice", |v: Array, a: INT, _: ()| slice_array(v, a, None))
        .register_fn("string", |v: Dynamic| v.to_string())
        .register_fn("int", to_int)
        .register_fn("float", to_float)
        .register_fn("toJSON", |v: Dynamic| to_json(&v).to_string())
        .register_fn("fromJSON", |s: &str| from_json_text(s))
        .register_fn("toBase64", |s: &str| {
            base64::engine::general_purpose::STANDARD.encode(s)
        })
        .register_fn("fromBase64", |s: &str| -> Res<String> {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| format!("fromBase64: {e}"))?;
            Ok(String::from_utf8_lossy(&b).into_owned())
        })
        .register_fn("env", |name: &str| std::env::var(name).unwrap_or_default());
    e
}

fn regex(re: &str, flags: &str) -> Res<regex::Regex> {
    let pattern = if flags.is_empty() {
        re.to_string()
    } else {
        format!("(?{flags}){re}")
    };
    regex::Regex::new(&pattern).map_err(|e| format!("match: {e}").into())
}

/// go2rtc's `match(str, re[, flags])`: the match and its groups, or `()`.
fn regex_match(s: &str, re: &str, flags: &str) -> Res<Dynamic> {
    let re = regex(re, flags)?;
    Ok(match re.captures(s) {
        Some(c) => Dynamic::from_array(
            c.iter()
                .map(|m| Dynamic::from(m.map_or("", |m| m.as_str()).to_string()))
                .collect(),
        ),
        None => Dynamic::UNIT,
    })
}

fn index_of(s: &str, byte: Option<usize>) -> INT {
    byte.map_or(-1, |b| s[..b].chars().count() as INT)
}

/// Bounds of `[a:b]` over `len` items: negative counts from the end,
/// out-of-range is clamped.
fn bounds(len: usize, a: INT, b: Option<INT>) -> (usize, usize) {
    let fix = |i: INT| -> usize {
        let i = if i < 0 { i + len as INT } else { i };
        i.clamp(0, len as INT) as usize
    };
    let start = fix(a);
    let end = b.map_or(len, fix);
    (start, end.max(start))
}

fn slice_str(s: &str, a: INT, b: Option<INT>) -> String {
    let (start, end) = bounds(s.chars().count(), a, b);
    s.chars().skip(start).take(end - start).collect()
}

fn slice_array(v: Array, a: INT, b: Option<INT>) -> Array {
    let (start, end) = bounds(v.len(), a, b);
    v[start..end].to_vec()
}

fn to_int(v: Dynamic) -> Res<INT> {
    if let Ok(i) = v.as_int() {
        return Ok(i);
    }
    if let Ok(f) = v.as_float() {
        return Ok(f as INT);
    }
    let s = v.to_string();
    s.trim()
        .parse::<INT>()
        .map_err(|_| format!("int: cannot convert {s:?}").into())
}

fn to_float(v: Dynamic) -> Res<FLOAT> {
    if let Ok(f) = v.as_float() {
        return Ok(f);
    }
    if let Ok(i) = v.as_int() {
        return Ok(i as FLOAT);
    }
    let s = v.to_string();
    s.trim()
        .parse::<FLOAT>()
        .map_err(|_| format!("float: cannot convert {s:?}").into())
}

/// Builds a fetch request from go2rtc's options map.
fn request(url: &str, options: &Map) -> Res<Request> {
    let text = |v: &Dynamic| v.to_string();
    let pairs = |key: &str| -> Res<Option<Vec<(String, String)>>> {
        match options.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => {
                let m = v
                    .read_lock::<Map>()
                    .ok_or_else(|| format!("fetch: {key} must be a map"))?;
                Ok(Some(
                    m.iter().map(|(k, v)| (k.to_string(), text(v))).collect(),
                ))
            }
        }
    };
    let mut req = Request {
        method: options
            .get("method")
            .map(text)
            .unwrap_or_else(|| "GET".into()),
        url: url.to_string(),
        headers: pairs("headers")?.unwrap_or_default(),
        ..Default::default()
    };
    if let Some(params) = pairs("params")? {
        let sep = if url.contains('?') { '&' } else { '?' };
        req.url = format!("{url}{sep}{}", fetch::form_encode(&params));
    }
    if let Some(v) = options.get("json") {
        req.body = Some(to_json(v).to_string().into_bytes());
        req.content_type = Some("application/json");
    } else if let Some(data) = pairs("data")? {
        req.body = Some(fetch::form_encode(&data).into_bytes());
        req.content_type = Some("application/x-www-form-urlencoded");
    } else if let Some(b) = options.get("body") {
        req.body = Some(text(b).into_bytes());
    }
    Ok(req)
}

/// A script value as JSON.
pub fn to_json(v: &Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if v.is_unit() {
        Value::Null
    } else if let Ok(b) = v.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = v.as_int() {
        Value::from(i)
    } else if let Ok(f) = v.as_float() {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if let Some(a) = v.read_lock::<Array>() {
        Value::Array(a.iter().map(to_json).collect())
    } else if let Some(m) = v.read_lock::<Map>() {
        Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
    } else if let Some(s) = v.read_lock::<ImmutableString>() {
        Value::String(s.to_string())
    } else {
        Value::String(v.to_string())
    }
}

/// Parsed JSON as a script value; invalid JSON is `()`, as in go2rtc.
pub fn from_json_text(text: &str) -> Dynamic {
    serde_json::from_str::<serde_json::Value>(text).map_or(Dynamic::UNIT, |v| from_json(&v))
}

fn from_json(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from(i as INT),
            None => Dynamic::from(n.as_f64().unwrap_or_default() as FLOAT),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from_array(a.iter().map(from_json).collect()),
        Value::Object(o) => Dynamic::from_map(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), from_json(v)))
                .collect(),
        ),
    }
}
