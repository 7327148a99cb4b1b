//! A client's own web server publishing its JWK Set, for backend clients
//! registered with `--jwks-uri`: a plain HTTP/1.1 server on loopback that
//! answers every GET with one set and counts the fetches.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

/// A running JWK Set host; it serves until the test binary exits.
pub struct JwksHost {
    /// Where the set is published.
    pub url: String,
    fetches: Arc<AtomicUsize>,
}

impl JwksHost {
    /// Starts publishing `jwks` at `http://127.0.0.1:PORT/.well-known/jwks.json`.
    pub fn serve(jwks: Value) -> JwksHost {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let body = jwks.to_string();
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                // The request line and headers, up to the blank line.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    &stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        JwksHost {
            url: format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
            fetches,
        }
    }

    /// How many times the set was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
