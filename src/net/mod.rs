//! A small HTTP transport: the one seam between protocol code (the Ollama client, later the Hub
//! client) and a platform's HTTP stack.
//!
//! Request bodies stream from a reader with a known length, so multi-gigabyte uploads never sit in
//! memory; responses are read as a stream (NDJSON status lines one at a time). Any HTTP status is a
//! response, not an error: the protocol code decides what a status means. Errors are transport
//! failures (connection refused, timeout), as `std::io::Error` so their kind survives.

#[cfg(feature = "net-native")]
mod native;
#[cfg(feature = "net-native")]
pub use native::NativeTransport;

use std::io::{self, BufRead, Read};

/// HTTP methods the protocol code uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
}

/// A request body.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// A small body held in memory (JSON).
    Bytes(Vec<u8>),
    /// A body streamed from `reader`, exactly `len` bytes (sent with that Content-Length).
    Reader {
        /// Where the bytes come from.
        reader: &'a mut dyn Read,
        /// How many bytes it yields.
        len: u64,
    },
}

/// An HTTP request.
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The absolute URL.
    pub url: String,
    /// Extra headers (name, value).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body<'a>,
}

impl<'a> Request<'a> {
    /// A request without headers or body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// Sets a JSON body and its content type.
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.headers
            .push(("content-type".into(), "application/json".into()));
        self.body = Body::Bytes(value.to_string().into_bytes());
        self
    }

    /// Sets a streamed body of `len` bytes.
    pub fn stream(mut self, reader: &'a mut dyn Read, len: u64) -> Self {
        self.headers
            .push(("content-type".into(), "application/octet-stream".into()));
        self.body = Body::Reader { reader, len };
        self
    }
}

/// An HTTP response whose body is read as a stream.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Box<dyn BufRead>,
}

impl Response {
    /// Reads the body as text, at most `limit` bytes (error bodies, small JSON).
    pub fn text(self, limit: u64) -> io::Result<String> {
        let mut buf = Vec::new();
        self.body.take(limit).read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// Sends HTTP requests. Implementations: [`NativeTransport`] (with the `net-native` feature); the
/// browser build brings a `fetch`-based one; tests use scripted ones.
pub trait HttpTransport {
    /// Sends `request` and returns the response, whatever its status.
    fn send(&self, request: Request<'_>) -> io::Result<Response>;
}
