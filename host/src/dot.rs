//! `/api/streams.dot`: the stream graph for Graphviz.

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn render(streams: &Value) -> String {
    let mut out = String::from("digraph {\n");
    let Some(map) = streams.as_object() else {
        out.push('}');
        return out;
    };
    for (name, s) in map {
        let sid = format!("stream_{}", esc(name));
        out.push_str(&format!(
            "  \"{sid}\" [shape=box, label=\"{}\"];\n",
            esc(name)
        ));
        for p in s["producers"].as_array().into_iter().flatten() {
            let label = p["url"].as_str().unwrap_or("");
            let pid = format!("producer_{}_{}", esc(name), esc(label));
            let mut text = esc(label);
            if let Some(m) = p["medias"].as_array() {
                for x in m {
                    text.push_str("\\n");
                    text.push_str(&esc(x.as_str().unwrap_or("")));
                }
            }
            out.push_str(&format!(
                "  \"{pid}\" [label=\"{text}\"];\n  \"{pid}\" -> \"{sid}\";\n"
            ));
        }
        for c in s["consumers"].as_array().into_iter().flatten() {
            let cid = format!("consumer_{}", c["id"]);
            let label = format!(
                "{} {}",
                c["format_name"].as_str().unwrap_or(""),
                c["remote_addr"].as_str().unwrap_or("")
            );
            out.push_str(&format!(
                "  \"{cid}\" [label=\"{}\"];\n  \"{sid}\" -> \"{cid}\";\n",
                esc(label.trim())
            ));
        }
    }
    out.push('}');
    out
}
