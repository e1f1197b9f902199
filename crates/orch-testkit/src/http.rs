//! The loopback HTTP/1.1 server under the agents' API stand-ins: one request per
//! connection, read whole (with a length or chunked), answered by a handler on a
//! thread of its own; dropped, it stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the handler sees it.
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
}

/// The handler's answer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A 200 with `body` of `content_type`.
    pub(crate) fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }
}

/// A listening server; dropped, it stops.
pub(crate) struct Server {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Listens on a loopback port, answering each request with `handler`.
pub(crate) fn listen(handler: impl Fn(Request) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let stop = Arc::new(AtomicBool::new(false));
    let (handler, sp) = (Arc::new(handler), stop.clone());
    std::thread::spawn(move || {
        while !sp.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let h = handler.clone();
                    std::thread::spawn(move || {
                        let _ = exchange(conn, &*h);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Server { url, stop }
}

/// One exchange; the connection closes after it.
fn exchange(conn: TcpStream, handler: &dyn Fn(Request) -> Reply) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let (mut len, mut chunked) = (0usize, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let body = if chunked {
        read_chunked(&mut r)?
    } else {
        let mut b = vec![0; len];
        r.read_exact(&mut b)?;
        b
    };
    let reply = handler(Request { method, path, body });
    let reason = match reply.status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\nrequest-id: req_standin\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut w = conn;
    w.write_all(head.as_bytes())?;
    w.write_all(&reply.body)?;
    w.flush()
}

/// A chunked request body (Bun's fetch sends one).
fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size)?;
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if n == 0 {
            let mut end = String::new();
            r.read_line(&mut end)?;
            return Ok(body);
        }
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk[..n]);
    }
}

/// Server-sent events: each `(event, data)`, or data alone when the event is empty.
pub(crate) fn sse(events: &[(&str, serde_json::Value)]) -> String {
    events
        .iter()
        .map(|(e, d)| match *e {
            "" => format!("data: {d}\n\n"),
            e => format!("event: {e}\ndata: {d}\n\n"),
        })
        .collect()
}

/// An API stand-in's server, with the requests its handler recorded; dropped, it
/// stops.
pub struct StandIn {
    /// Where it listens: `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<Mutex<Vec<serde_json::Value>>>,
    _server: Server,
}

impl StandIn {
    /// Listens, answering with `answer`, which records what it wants to.
    pub(crate) fn start(answer: fn(Request, &Mutex<Vec<serde_json::Value>>) -> Reply) -> StandIn {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let server = listen(move |r| answer(r, &seen));
        StandIn {
            url: server.url.clone(),
            requests,
            _server: server,
        }
    }

    /// The requests recorded so far, as sent.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.requests.lock().expect("never poisoned").clone()
    }
}
