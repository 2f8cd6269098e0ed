//! A capturing HTTP/1.1 receiver on 127.0.0.1: records every request (method, path,
//! headers, body; `content-length` or chunked) and answers it with the next queued
//! answer, then with a fallback status that the test can change.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The request method.
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// Lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Captured {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// What the receiver answers and what it has seen.
#[derive(Default)]
struct State {
    /// Answers for the next requests, in order.
    answers: VecDeque<(u16, String)>,
    /// The answer once `answers` is used up.
    fallback: (u16, String),
    requests: Vec<Captured>,
    /// How many requests [`Receiver::next`] has handed out.
    taken: usize,
}

/// The receiver's state and the signal that a request arrived.
type Shared = Arc<(Mutex<State>, Condvar)>;

/// An HTTP/1.1 receiver on 127.0.0.1, serving each connection on its own thread until
/// the test ends.
pub struct Receiver {
    addr: SocketAddr,
    shared: Shared,
}

impl Receiver {
    /// Answers each request with the next of `answers` (status, body), then 200 `ok`.
    pub fn start(answers: &[(u16, &str)]) -> Self {
        Self::serve(
            answers.iter().map(|(s, b)| (*s, b.to_string())).collect(),
            (200, "ok".into()),
        )
    }

    /// Answers every request with `status` and an empty body (see [`Receiver::set_status`]).
    pub fn with_status(status: u16) -> Self {
        Self::serve(VecDeque::new(), (status, String::new()))
    }

    fn serve(answers: VecDeque<(u16, String)>, fallback: (u16, String)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared: Shared = Arc::new((
            Mutex::new(State {
                answers,
                fallback,
                ..State::default()
            }),
            Condvar::new(),
        ));
        let state = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = state.clone();
                std::thread::spawn(move || handle(stream, &state));
            }
        });
        Self { addr, shared }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:<port>`, as a host grant names it.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`: the outbound grant that lets a plugin reach this
    /// plain-http receiver (a grant without `http://` allows https only).
    pub fn grant(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers later requests (once the queued answers are used up) with `status`.
    pub fn set_status(&self, status: u16) {
        self.state().fallback.0 = status;
    }

    /// Every request so far, in the order they were read.
    pub fn requests(&self) -> Vec<Captured> {
        self.state().requests.clone()
    }

    /// The next request not yet handed out by `next`, waiting up to 10 s for it.
    pub fn next(&self) -> Captured {
        let (lock, arrived) = &*self.shared;
        let state = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, _) = arrived
            .wait_timeout_while(state, Duration::from_secs(10), |s| {
                s.requests.len() <= s.taken
            })
            .unwrap_or_else(|e| e.into_inner());
        let request = state
            .requests
            .get(state.taken)
            .cloned()
            .expect("the receiver got a request");
        state.taken += 1;
        request
    }

    /// The next request not yet handed out by `next`, if it has arrived already.
    pub fn try_next(&self) -> Option<Captured> {
        let mut state = self.state();
        let request = state.requests.get(state.taken).cloned()?;
        state.taken += 1;
        Some(request)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads one request from `stream`, records it and answers it; a connection that does
/// not carry a whole request is dropped unanswered.
fn handle(stream: TcpStream, shared: &Shared) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let (status, body) = {
        let (lock, arrived) = &**shared;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        let answer = match state.answers.pop_front() {
            Some(answer) => answer,
            None => state.fallback.clone(),
        };
        state.requests.push(request);
        arrived.notify_all();
        answer
    };
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn read_request(stream: &TcpStream) -> Option<Captured> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(length) = find("content-length") {
        body.resize(length.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(Captured {
        method,
        path,
        headers,
        body,
    })
}
