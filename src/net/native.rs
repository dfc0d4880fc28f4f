//! The native [`HttpTransport`]: blocking `ureq`, plain HTTP (a local Ollama server does not
//! speak TLS; `https://` URLs fail with a clear error from ureq).

use super::{Body, HttpTransport, Method, Request, Response};
use std::io::{self, BufReader};
use std::time::Duration;
use ureq::{Agent, SendBody};

/// Blocking HTTP over `ureq`.
pub struct NativeTransport {
    agent: Agent,
}

impl Default for NativeTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeTransport {
    /// A transport with a short connect timeout and no overall timeout (uploads and model
    /// creation can take minutes).
    pub fn new() -> Self {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        NativeTransport { agent }
    }
}

impl HttpTransport for NativeTransport {
    fn send(&self, request: Request<'_>) -> io::Result<Response> {
        let Request {
            method,
            url,
            headers,
            body,
        } = request;
        let result = match method {
            Method::Get | Method::Head => {
                let mut req = if method == Method::Get {
                    self.agent.get(&url)
                } else {
                    self.agent.head(&url)
                };
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                req.call()
            }
            Method::Post => {
                let mut req = self.agent.post(&url);
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                match body {
                    Body::Empty => req.send_empty(),
                    Body::Bytes(bytes) => req.send(&bytes[..]),
                    Body::Reader { reader, len } => req
                        .header("content-length", len.to_string())
                        .send(SendBody::from_reader(reader)),
                }
            }
        };
        let response = result.map_err(io_error)?;
        let status = response.status().as_u16();
        let reader = response.into_body().into_reader();
        Ok(Response {
            status,
            body: Box::new(BufReader::new(reader)),
        })
    }
}

/// Keeps the error kinds callers act on (refused, unreachable, timed out).
fn io_error(e: ureq::Error) -> io::Error {
    match e {
        ureq::Error::Io(e) => e,
        ureq::Error::ConnectionFailed => io::Error::new(io::ErrorKind::ConnectionRefused, e),
        ureq::Error::HostNotFound => io::Error::new(io::ErrorKind::NotFound, e),
        ureq::Error::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, e),
        e => io::Error::other(e),
    }
}
