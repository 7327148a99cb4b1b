//! Plain HTTP/1.1 over a TCP socket, for what reqwest will not do: a request
//! without any `Accept` header, chunked bodies of a chosen shape, and bodies
//! the server may refuse before reading them (413), where the response must
//! still be read although the upload was cut short.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::http::snippet;
use crate::server::TestServer;

/// How the body is framed.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// `Content-Length: n`.
    Length,
    /// `Transfer-Encoding: chunked` with chunks of this size.
    Chunked(usize),
}

/// A parsed response.
#[derive(Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for (k, v) in &self.headers {
            write!(f, "\n  {k}: {v}")?;
        }
        write!(
            f,
            "\n  [{} byte body] {}",
            self.body.len(),
            snippet(&self.body, 1500)
        )
    }
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn media_type(&self) -> String {
        self.header("content-type")
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default()
    }
}

/// A raw request: method, target (path + query, relative to the FHIR base
/// or absolute path starting with `/`), headers, body.
#[must_use]
pub struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<(Vec<u8>, Framing)>,
}

impl RawRequest {
    pub fn new(method: &str, path: &str) -> RawRequest {
        let target = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/fhir/{path}")
        };
        RawRequest {
            method: method.to_string(),
            target,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> RawRequest {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: Vec<u8>, framing: Framing) -> RawRequest {
        self.body = Some((body, framing));
        self
    }

    /// Sends the request on a fresh connection (`Connection: close`) and
    /// reads the whole response. The body is written from another thread so
    /// an early answer is read even when the server stops reading.
    pub fn send(self, server: &TestServer) -> Result<RawResponse, String> {
        let mut stream = TcpStream::connect(&server.bind)
            .map_err(|e| format!("cannot connect to {}: {e}", server.bind))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|e| e.to_string())?;
        let host = server
            .public_base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
            self.method, self.target
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            head.push_str(&format!("Authorization: Bearer {}\r\n", server.token()));
        }
        let mut wire = Vec::new();
        match &self.body {
            None => {}
            Some((body, Framing::Length)) => {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()))
            }
            Some((_, Framing::Chunked(_))) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        wire.extend_from_slice(head.as_bytes());
        let mut chunks: Vec<Vec<u8>> = vec![wire];
        match self.body {
            None => {}
            Some((body, Framing::Length)) => chunks.push(body),
            Some((body, Framing::Chunked(size))) => {
                for piece in body.chunks(size.max(1)) {
                    let mut c = format!("{:x}\r\n", piece.len()).into_bytes();
                    c.extend_from_slice(piece);
                    c.extend_from_slice(b"\r\n");
                    chunks.push(c);
                }
                chunks.push(b"0\r\n\r\n".to_vec());
            }
        }
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        let write_thread = std::thread::spawn(move || {
            for c in chunks {
                if writer.write_all(&c).is_err() {
                    return;
                }
            }
            let _ = writer.flush();
        });
        let mut received = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let read_error = loop {
            match stream.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e),
            }
        };
        let _ = stream.shutdown(Shutdown::Both);
        let _ = write_thread.join();
        parse_response(&received).map_err(|e| match read_error {
            Some(re) => format!("{e} (reading failed: {re})"),
            None => e,
        })
    }
}

fn parse_response(data: &[u8]) -> Result<RawResponse, String> {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete response head in {} bytes", data.len()))?;
    let head = String::from_utf8_lossy(&data[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &data[end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body =
        if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            dechunk(rest)?
        } else if let Some(len) = find("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad Content-Length {len:?}"))?;
            if rest.len() < len {
                return Err(format!(
                    "the body was cut short: {} of {len} bytes",
                    rest.len()
                ));
            }
            rest[..len].to_vec()
        } else {
            rest.to_vec()
        };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line is cut short")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("a chunk is cut short".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
