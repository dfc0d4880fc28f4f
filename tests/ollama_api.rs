//! The Ollama client against a stand-in server on 127.0.0.1 that follows Ollama's published API
//! (docs/api.md, server/routes.go): `HEAD`/`POST /api/blobs/sha256:<hex>` with digest
//! verification, `POST /api/create` answering NDJSON status lines, errors as `{"error": ...}`.

use llm_export::io::{InputFile, ReadAt};
use llm_export::net::NativeTransport;
use llm_export::ollama::{
    modelfile, Blob, Digest, Modelfile, ModelfileSpec, OllamaClient, Progress, PushRequest,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the stand-in server saw.
#[derive(Default)]
struct Seen {
    requests: Vec<String>,
    blobs: HashSet<String>,
    creates: Vec<Value>,
}

/// How the stand-in server answers `/api/create`.
#[derive(Clone, Copy)]
enum CreateAnswer {
    Succeed,
    /// An error line in the middle of the stream, as Ollama sends for a bad GGUF.
    FailMidStream,
    /// A 400 before streaming, as Ollama sends for a name its parser refuses.
    RejectName,
}

struct Server {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

fn server(answer: CreateAnswer) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            handle(stream, &shared, answer);
        }
    });
    Server { url, seen }
}

fn handle(stream: TcpStream, seen: &Mutex<Seen>, answer: CreateAnswer) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let length: u64 = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = reader.take(length);
    seen.lock()
        .unwrap()
        .requests
        .push(format!("{method} {path}"));
    let mut out = stream;
    let digest_ok = |d: &str| {
        d.strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/api/version") => reply(&mut out, 200, &json!({"version": "0.0.0-test"})),
        ("HEAD", p) if p.starts_with("/api/blobs/") => {
            let digest = &p["/api/blobs/".len()..];
            let status = if seen.lock().unwrap().blobs.contains(digest) {
                200
            } else {
                404
            };
            reply_empty(&mut out, status);
        }
        ("POST", p) if p.starts_with("/api/blobs/") => {
            let digest = p["/api/blobs/".len()..].to_string();
            if !digest_ok(&digest) {
                return reply(&mut out, 400, &json!({"error": "invalid digest format"}));
            }
            // Hash as the bytes arrive, like Ollama's NewLayer.
            let mut hasher = Sha256::new();
            let mut buf = vec![0; 1 << 16];
            loop {
                let n = body.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            let got = format!("sha256:{:x}", hasher.finalize());
            if got != digest {
                let msg = format!("digest mismatch, expected {digest:?}, got {got:?}");
                return reply(&mut out, 400, &json!({"error": msg}));
            }
            seen.lock().unwrap().blobs.insert(digest);
            reply_empty(&mut out, 201);
        }
        ("POST", "/api/create") => {
            let mut text = String::new();
            body.read_to_string(&mut text).unwrap();
            let request: Value = serde_json::from_str(&text).unwrap();
            seen.lock().unwrap().creates.push(request.clone());
            if let CreateAnswer::RejectName = answer {
                return reply(&mut out, 400, &json!({"error": "invalid model name"}));
            }
            let missing = request["files"]
                .as_object()
                .unwrap()
                .values()
                .any(|d| !seen.lock().unwrap().blobs.contains(d.as_str().unwrap()));
            let mut lines = vec![json!({"status": "parsing GGUF"})];
            if missing {
                lines.push(json!({"error": "open blob: no such file or directory"}));
            } else if let CreateAnswer::FailMidStream = answer {
                lines.push(json!({"error": "invalid file magic"}));
            } else {
                lines.push(json!({"status": "using existing layer sha256:00"}));
                lines.push(json!({"status": "writing manifest"}));
                lines.push(json!({"status": "success"}));
            }
            stream_lines(&mut out, &lines);
        }
        _ => reply(&mut out, 404, &json!({"error": "not found"})),
    }
}

fn reply(out: &mut TcpStream, status: u16, body: &Value) {
    let body = body.to_string();
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn reply_empty(out: &mut TcpStream, status: u16) {
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// NDJSON in HTTP chunks that split lines, as a streaming Go server may.
fn stream_lines(out: &mut TcpStream, lines: &[Value]) {
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    for piece in text.as_bytes().chunks(7) {
        let _ = write!(out, "{:x}\r\n", piece.len());
        let _ = out.write_all(piece);
        let _ = write!(out, "\r\n");
    }
    let _ = write!(out, "0\r\n\r\n");
}

/// File bytes computed on the fly: a big GGUF stand-in that is never held in memory.
struct Pattern(u64);

impl ReadAt for Pattern {
    fn len(&self) -> u64 {
        self.0
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            let at = offset + i as u64;
            *b = (at ^ (at >> 9)) as u8;
        }
        Ok(())
    }
}

struct Bytes(Vec<u8>);

impl ReadAt for Bytes {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0[..].read_exact_at(offset, buf)
    }
}

fn blob(name: &str, data: Arc<dyn ReadAt>) -> Blob {
    Blob {
        name: name.into(),
        file: InputFile {
            path: format!("out/{name}"),
            data,
        },
        digest: None,
    }
}

fn chatml_modelfile(adapter: Option<&str>) -> Modelfile {
    modelfile(&ModelfileSpec {
        gguf_file: "model-Q4_K_M.gguf".into(),
        adapter_file: adapter.map(str::to_string),
        chat_template: Some(
            "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are helpful.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}".into(),
        ),
        bos_token: None,
        eos_token: Some("<|im_end|>".into()),
    })
    .unwrap()
}

fn client(url: &str) -> OllamaClient<NativeTransport> {
    OllamaClient::new(url, NativeTransport::new()).unwrap()
}

#[test]
fn push_uploads_missing_blobs_then_creates() {
    let srv = server(CreateAnswer::Succeed);
    let mf = chatml_modelfile(None);
    let size = 24 << 20;
    let request = PushRequest {
        name: "me/tiny-ft:q4_k_m",
        modelfile: &mf,
        model: blob("model-Q4_K_M.gguf", Arc::new(Pattern(size))),
        adapter: None,
    };
    let mut events = Vec::new();
    client(&srv.url)
        .push(&request, &mut |p| events.push(format!("{p:?}")))
        .unwrap();

    // The digest the server verified is the SHA-256 of the bytes.
    let digest = Digest::of(&Pattern(size), |_| {}).unwrap();
    let seen = srv.seen.lock().unwrap();
    let blob_path = format!("/api/blobs/{digest}");
    assert_eq!(
        seen.requests,
        [
            "GET /api/version".to_string(),
            format!("HEAD {blob_path}"),
            format!("POST {blob_path}"),
            "POST /api/create".into()
        ]
    );
    let create = &seen.creates[0];
    assert_eq!(create["model"], "me/tiny-ft:q4_k_m");
    assert_eq!(
        create["files"],
        json!({"model-Q4_K_M.gguf": digest.as_str()})
    );
    assert_eq!(create["stream"], true);
    assert_eq!(create["template"], mf.template.as_deref().unwrap());
    assert_eq!(create["system"], "You are helpful.");
    assert_eq!(
        create["parameters"],
        json!({"stop": ["<|im_start|>", "<|im_end|>"]})
    );
    assert!(create.get("adapters").is_none());

    assert!(events
        .iter()
        .any(|e| e.contains("Hashing") && e.contains(&format!("done: {size}"))));
    assert!(events
        .iter()
        .any(|e| e.contains("Uploading") && e.contains(&format!("done: {size}"))));
    assert_eq!(
        events.last().unwrap(),
        &format!(
            "{:?}",
            Progress::Server {
                status: "success",
                completed: None,
                total: None
            }
        )
    );
}

#[test]
fn push_skips_blobs_the_server_has_and_sends_adapters() {
    let srv = server(CreateAnswer::Succeed);
    let mf = chatml_modelfile(Some("lora.gguf"));
    let model: Arc<dyn ReadAt> = Arc::new(Bytes(b"GGUF model bytes".to_vec()));
    let adapter: Arc<dyn ReadAt> = Arc::new(Bytes(b"GGUF adapter bytes".to_vec()));
    let push = |events: &mut Vec<String>| {
        let request = PushRequest {
            name: "tiny",
            modelfile: &mf,
            model: blob("model-Q4_K_M.gguf", model.clone()),
            adapter: Some(blob("lora.gguf", adapter.clone())),
        };
        client(&srv.url).push(&request, &mut |p| events.push(format!("{p:?}")))
    };
    push(&mut Vec::new()).unwrap();
    let mut events = Vec::new();
    push(&mut events).unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.contains("AlreadyUploaded"))
            .count(),
        2
    );
    let seen = srv.seen.lock().unwrap();
    assert_eq!(
        seen.requests
            .iter()
            .filter(|r| r.starts_with("POST /api/blobs"))
            .count(),
        2
    );
    let adapter_digest = Digest::of(&*adapter, |_| {}).unwrap();
    assert_eq!(
        seen.creates[1]["adapters"],
        json!({"lora.gguf": adapter_digest.as_str()})
    );
}

#[test]
fn a_stale_digest_is_refused_by_the_server() {
    let srv = server(CreateAnswer::Succeed);
    let mf = chatml_modelfile(None);
    let mut model = blob("model.gguf", Arc::new(Bytes(b"real bytes".to_vec())));
    model.digest = Some(Digest::of(&Bytes(b"other bytes".to_vec()), |_| {}).unwrap());
    let request = PushRequest {
        name: "tiny",
        modelfile: &mf,
        model,
        adapter: None,
    };
    let err = client(&srv.url)
        .push(&request, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains("out/model.gguf"), "{err}");
    assert!(srv.seen.lock().unwrap().creates.is_empty());
}

#[test]
fn bad_names_fail_before_any_request_and_server_refusals_are_shown() {
    let srv = server(CreateAnswer::RejectName);
    let mf = chatml_modelfile(None);
    let data: Arc<dyn ReadAt> = Arc::new(Bytes(b"x".to_vec()));
    let request = |name| PushRequest {
        name,
        modelfile: &mf,
        model: blob("m.gguf", data.clone()),
        adapter: None,
    };
    let err = client(&srv.url)
        .push(&request("not a name!"), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid Ollama model name"), "{err}");
    assert!(srv.seen.lock().unwrap().requests.is_empty());

    let err = client(&srv.url)
        .push(&request("fine-locally"), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid model name"), "{err}");
}

#[test]
fn an_error_line_in_the_stream_fails_the_push() {
    let srv = server(CreateAnswer::FailMidStream);
    let mf = chatml_modelfile(None);
    let request = PushRequest {
        name: "tiny",
        modelfile: &mf,
        model: blob("m.gguf", Arc::new(Bytes(b"not a gguf".to_vec()))),
        adapter: None,
    };
    let mut statuses = Vec::new();
    let err = client(&srv.url)
        .push(&request, &mut |p| {
            if let Progress::Server { status, .. } = p {
                statuses.push(status.to_string());
            }
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid file magic"), "{err}");
    assert_eq!(statuses, ["parsing GGUF"]);
}

#[test]
fn no_server_means_a_clear_message() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("127.0.0.1:{port}"));
    let err = c.version().unwrap_err().to_string();
    assert!(err.contains("is Ollama running?"), "{err}");
    assert!(
        err.contains("ollama serve") && err.contains("--ollama-host"),
        "{err}"
    );
}
