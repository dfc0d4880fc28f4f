//! The Ollama REST client for creating a model from local files: upload the GGUF (and adapter)
//! as blobs, then `POST /api/create` with the Modelfile's pieces and follow its NDJSON status
//! stream. Works over any [`HttpTransport`]; blobs are read through [`ReadAt`] in chunks, so a
//! many-GB GGUF is hashed and uploaded without being held in memory.

use super::Modelfile;
use crate::error::{Error, Result};
use crate::io::{InputFile, ReadAt};
use crate::net::{HttpTransport, Method, Request, Response};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, BufRead, Read};

/// Where a local Ollama server listens unless told otherwise.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// Bytes read per step when hashing or uploading.
const CHUNK: usize = 1 << 20;

/// A blob digest, `sha256:<64 hex digits>`, as Ollama names blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest(String);

impl Digest {
    /// From the 32 raw bytes of a SHA-256.
    pub fn from_sha256(bytes: [u8; 32]) -> Self {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest(format!("sha256:{hex}"))
    }

    /// Hashes `source`, reporting bytes done after each chunk.
    pub fn of<R: ReadAt + ?Sized>(source: &R, mut progress: impl FnMut(u64)) -> io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut reader = ChunkReader::new(source);
        let mut buf = vec![0; CHUNK];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(Digest::from_sha256(hasher.finalize().into()));
            }
            hasher.update(&buf[..n]);
            progress(reader.pos);
        }
    }

    /// The `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file to upload: the GGUF or the adapter GGUF.
#[derive(Clone)]
pub struct Blob {
    /// Its file name, as the Modelfile names it (`model-Q4_K_M.gguf`).
    pub name: String,
    /// Its bytes.
    pub file: InputFile,
    /// Its digest when already known (the GGUF writer hashes while writing); computed otherwise.
    pub digest: Option<Digest>,
}

/// A model to create on the server.
pub struct PushRequest<'a> {
    /// The Ollama model name, `[namespace/]model[:tag]`.
    pub name: &'a str,
    /// Template, system prompt and parameters.
    pub modelfile: &'a Modelfile,
    /// The GGUF the Modelfile's `FROM` names.
    pub model: Blob,
    /// The LoRA GGUF the Modelfile's `ADAPTER` names.
    pub adapter: Option<Blob>,
}

/// What a push is doing, for progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<'a> {
    /// Hashing a file: bytes done of total.
    Hashing {
        /// The file.
        file: &'a str,
        /// Bytes hashed.
        done: u64,
        /// File size.
        total: u64,
    },
    /// The server already has this file.
    AlreadyUploaded {
        /// The file.
        file: &'a str,
    },
    /// Uploading a file: bytes sent of total.
    Uploading {
        /// The file.
        file: &'a str,
        /// Bytes sent.
        done: u64,
        /// File size.
        total: u64,
    },
    /// A status line of the server while it creates the model (`parsing GGUF`, `success`).
    Server {
        /// The status text.
        status: &'a str,
        /// Bytes done, when the step reports them.
        completed: Option<u64>,
        /// Bytes in total, when the step reports them.
        total: Option<u64>,
    },
}

/// A client for one Ollama server.
pub struct OllamaClient<T> {
    base: String,
    transport: T,
}

impl<T: HttpTransport> OllamaClient<T> {
    /// A client for `host`, read the way Ollama reads `OLLAMA_HOST`: `host`, `host:port` or a URL;
    /// port 11434 unless a scheme says otherwise.
    pub fn new(host: &str, transport: T) -> Result<Self> {
        Ok(OllamaClient {
            base: normalize_host(host)?,
            transport,
        })
    }

    /// The server's base URL.
    pub fn host(&self) -> &str {
        &self.base
    }

    /// The server's version; also the cheap check that a server is there at all.
    pub fn version(&self) -> Result<String> {
        let response = self.send(Request::new(Method::Get, self.url("/api/version")))?;
        let body = self.expect_ok(response, "asking for its version")?;
        let value: Value = serde_json::from_str(&body)
            .map_err(|e| Error::usage(format!("{} did not answer like Ollama: {e}", self.base)))?;
        Ok(value["version"].as_str().unwrap_or_default().to_string())
    }

    /// Whether the server already holds the blob `digest`.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("/api/blobs/{digest}"));
        let response = self.send(Request::new(Method::Head, url))?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => self.expect_ok(response, "checking a blob").map(|_| true),
        }
    }

    /// Uploads `len` bytes from `body` as the blob `digest`; the server verifies the digest.
    pub fn upload_blob(&self, digest: &Digest, body: &mut dyn Read, len: u64) -> Result<()> {
        let url = self.url(&format!("/api/blobs/{digest}"));
        let response = self.send(Request::new(Method::Post, url).stream(body, len))?;
        self.expect_ok(response, "receiving a blob").map(drop)
    }

    /// `POST /api/create` with `request` (`stream` is set), passing every status line to
    /// `progress`; fails on an `error` line or a stream that ends without `success`.
    pub fn create(
        &self,
        request: &Map<String, Value>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let mut body = request.clone();
        body.insert("stream".into(), true.into());
        let response = self
            .send(Request::new(Method::Post, self.url("/api/create")).json(&Value::Object(body)))?;
        if response.status != 200 {
            return self.expect_ok(response, "creating the model").map(drop);
        }
        let mut success = false;
        for line in response.body.lines() {
            let line = line.map_err(|e| Error::io(self.url("/api/create"), e))?;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&line).map_err(|e| {
                Error::usage(format!(
                    "Ollama sent an unreadable status line `{line}`: {e}"
                ))
            })?;
            if let Some(message) = value.get("error").and_then(Value::as_str) {
                return Err(server_error("creating the model", message));
            }
            let status = value["status"].as_str().unwrap_or_default();
            success |= status == "success";
            progress(Progress::Server {
                status,
                completed: value["completed"].as_u64(),
                total: value["total"].as_u64(),
            });
        }
        if success {
            Ok(())
        } else {
            Err(Error::usage(
                "Ollama ended the create stream without reporting success; see the server log",
            ))
        }
    }

    /// Creates the model `request.name` from the Modelfile and its files: checks the name and the
    /// server, hashes and uploads what the server lacks, then creates.
    pub fn push(&self, request: &PushRequest, progress: &mut dyn FnMut(Progress)) -> Result<()> {
        validate_model_name(request.name)?;
        self.version()?;
        let mut files = Map::new();
        let mut adapters = Map::new();
        for (blob, map) in std::iter::once((&request.model, &mut files))
            .chain(request.adapter.as_ref().map(|a| (a, &mut adapters)))
        {
            let digest = self.upload(blob, progress)?;
            map.insert(blob.name.clone(), digest.as_str().into());
        }
        let mf = request.modelfile;
        let mut body = Map::new();
        body.insert("model".into(), request.name.into());
        body.insert("files".into(), files.into());
        if !adapters.is_empty() {
            body.insert("adapters".into(), adapters.into());
        }
        if let Some(t) = &mf.template {
            body.insert("template".into(), t.as_str().into());
        }
        if let Some(s) = &mf.system {
            body.insert("system".into(), s.as_str().into());
        }
        let parameters = mf.parameters_json();
        if !parameters.is_empty() {
            body.insert("parameters".into(), parameters.into());
        }
        self.create(&body, progress)
    }

    /// Makes sure the server has `blob`, returning its digest.
    fn upload(&self, blob: &Blob, progress: &mut dyn FnMut(Progress)) -> Result<Digest> {
        let file = blob.name.as_str();
        let data = &*blob.file.data;
        let total = data.len();
        let digest = match &blob.digest {
            Some(d) => d.clone(),
            None => Digest::of(data, |done| {
                progress(Progress::Hashing { file, done, total })
            })
            .map_err(|e| Error::io(&blob.file.path, e))?,
        };
        if self.has_blob(&digest)? {
            progress(Progress::AlreadyUploaded { file });
            return Ok(digest);
        }
        let mut reader = ChunkReader::new(data);
        let mut counted = Counted {
            inner: &mut reader,
            done: 0,
            report: &mut |done| progress(Progress::Uploading { file, done, total }),
        };
        self.upload_blob(&digest, &mut counted, total)
            .map_err(|e| match e {
                Error::Usage { message } if message.contains("digest mismatch") => {
                    Error::usage(format!(
                "{message}: {} changed while it was being uploaded, or its digest is stale; \
                 push again",
                blob.file.path
            ))
                }
                e => e,
            })?;
        Ok(digest)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, request: Request<'_>) -> Result<Response> {
        let url = request.url.clone();
        self.transport.send(request).map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::NotFound
            | io::ErrorKind::TimedOut
            | io::ErrorKind::AddrNotAvailable => Error::usage(format!(
                "cannot reach Ollama at {} ({e}): is Ollama running? Start it with `ollama serve` \
                 or pass --ollama-host",
                self.base
            )),
            _ => Error::io(url, e),
        })
    }

    /// The body of a 2xx response, or the server's error as ours.
    fn expect_ok(&self, response: Response, doing: &str) -> Result<String> {
        let status = response.status;
        let body = response
            .text(1 << 20)
            .map_err(|e| Error::io(&self.base, e))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}: {}", body.trim()));
        Err(server_error(doing, &message))
    }
}

fn server_error(doing: &str, message: &str) -> Error {
    let hint = if message.contains("invalid model name") {
        " (names are [namespace/]model[:tag] with letters, digits, `_`, `-` and `.`)"
    } else {
        ""
    };
    Error::usage(format!("Ollama refused {doing}: {message}{hint}"))
}

/// Creates `request` on the Ollama server at `host` with the native HTTP client.
#[cfg(feature = "net-native")]
pub fn push_native(
    host: &str,
    request: &PushRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    OllamaClient::new(host, crate::net::NativeTransport::new())?.push(request, progress)
}

/// The base URL for `host`, as Ollama's own clients read `OLLAMA_HOST`.
fn normalize_host(host: &str) -> Result<String> {
    let host = host.trim().trim_end_matches('/');
    let (scheme, rest, default_port) = match host.split_once("://") {
        None => ("http", host, "11434"),
        Some(("http", rest)) => ("http", rest, "80"),
        Some(("https", rest)) => ("https", rest, "443"),
        Some((other, _)) => {
            return Err(Error::usage(format!(
                "Ollama host `{host}`: unsupported scheme `{other}` (use http:// or https://)"
            )))
        }
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if hostport.is_empty() {
        return Err(Error::usage(format!("Ollama host `{host}` names no host")));
    }
    // A port is present when the text after the last ':' is digits and not inside an IPv6 [].
    let has_port = hostport.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (!h.contains(':') || h.ends_with(']'))
    });
    let port = if has_port {
        String::new()
    } else {
        format!(":{default_port}")
    };
    Ok(format!("{scheme}://{hostport}{port}{path}"))
}

/// Checks a model name the way Ollama's server parses names for create:
/// `[host/][namespace/]model[:tag]`, each part of letters, digits, `_`, `-`, `.` (no `.` in the
/// namespace, never two dots in a row), at most 128 characters.
pub fn validate_model_name(name: &str) -> Result<()> {
    let fail = |why: &str| {
        Err(Error::usage(format!(
            "`{name}` is not a valid Ollama model name: {why} (use [namespace/]model[:tag], e.g. \
             `me/llama-3-ft:q4_k_m`)"
        )))
    };
    let s = name
        .strip_prefix("http://")
        .or_else(|| name.strip_prefix("https://"))
        .unwrap_or(name);
    if s.is_empty() || s.len() > 128 {
        return fail("it must have 1 to 128 characters");
    }
    if s.contains("..") {
        return fail("it has two dots in a row");
    }
    if s.contains(['+', '@']) {
        return fail("builds (`+`) and digests (`@`) are not part of a name to create");
    }
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() > 3 {
        return fail("it has more than host/namespace/model");
    }
    let (last, path) = parts.split_last().expect("split yields one part");
    let (model, tag) = match last.split_once(':') {
        Some((m, t)) => (m, Some(t)),
        None => (*last, None),
    };
    let valid = |part: &str, dots: bool| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dots && b == b'.'))
    };
    if !valid(model, true) || tag.is_some_and(|t| !valid(t, true)) {
        return fail("the model and tag may only hold letters, digits, `_`, `-` and `.`");
    }
    let namespace_ok = match path {
        [] => true,
        [ns] => valid(ns, false),
        [host, ns] => valid(host, true) && valid(ns, false),
        _ => false,
    };
    if !namespace_ok {
        return fail("the namespace may only hold letters, digits, `_` and `-`");
    }
    Ok(())
}

/// Sequential reads over a [`ReadAt`], one chunk at a time.
struct ChunkReader<'a, R: ?Sized> {
    source: &'a R,
    pos: u64,
}

impl<'a, R: ReadAt + ?Sized> ChunkReader<'a, R> {
    fn new(source: &'a R) -> Self {
        ChunkReader { source, pos: 0 }
    }
}

impl<R: ReadAt + ?Sized> Read for ChunkReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.source.len() - self.pos;
        let n = buf
            .len()
            .min(CHUNK)
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        self.source.read_exact_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A reader that reports how many bytes went through.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    done: u64,
    report: &'a mut dyn FnMut(u64),
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.report)(self.done);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_read_like_ollama_host() {
        let n = |h| normalize_host(h).unwrap();
        assert_eq!(n("127.0.0.1"), "http://127.0.0.1:11434");
        assert_eq!(n("localhost:8080"), "http://localhost:8080");
        assert_eq!(n("http://example.com/"), "http://example.com:80");
        assert_eq!(
            n("https://example.com/ollama"),
            "https://example.com:443/ollama"
        );
        assert_eq!(n("[::1]:11434"), "http://[::1]:11434");
        assert_eq!(n("[::1]"), "http://[::1]:11434");
        assert!(normalize_host("ftp://x").is_err());
    }

    #[test]
    fn model_names() {
        for ok in [
            "llama3",
            "me/llama-3-ft:q4_k_m",
            "registry.example.com/me/m:1.0",
            "Model_1",
        ] {
            assert!(validate_model_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a..b",
            "me.x/model",
            "a/b/c/d",
            "m:",
            ":t",
            "m+Q4",
            "m@sha256-x",
            "ü",
        ] {
            assert!(validate_model_name(bad).is_err(), "{bad}");
        }
        assert!(validate_model_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn digest_of_known_bytes() {
        let d = Digest::of(&b"abc"[..], |_| {}).unwrap();
        assert_eq!(
            d.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
