//! A fault-injecting HTTP proxy on 127.0.0.1, between the AWS SDK and moto.
//!
//! Each request is matched against [`Rule`]s (method and a piece of the path and query);
//! the `skip`-th to `skip + times - 1`-th match of a rule gets its [`Fault`], every other
//! request is forwarded as it is. One request per connection: the proxy forwards with
//! `Connection: close` and answers with it, so it never has to frame a keep-alive stream.
//!
//! Bounded in time: every connection ends by itself after [`CONNECTION_LIMIT`], the
//! proxy stops accepting after [`PROXY_LIMIT`], and dropping the [`FaultProxy`] stops it
//! and every connection at once (the test stops it by letting it go out of scope).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The longest one proxied connection lives, hanging ones included.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(60);
/// The longest the proxy accepts connections.
pub const PROXY_LIMIT: Duration = Duration::from_secs(300);
/// Request heads larger than this are refused.
const MAX_HEAD: usize = 64 * 1024;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forward the request, let the server act on it, then close the connection without
    /// a byte of the response: a lost response.
    DropResponse,
    /// Read the request and never answer (until the client gives up or the limit).
    Hang,
    /// Answer with this HTTP status and an S3-style error body, forwarding nothing.
    Status(u16),
    /// Forward, send the response head and the first `after` bytes of the body, then
    /// pause for `pause` before the rest.
    StallBody {
        /// Body bytes sent before the pause.
        after: usize,
        /// How long the pause lasts.
        pause: Duration,
    },
}

/// Which requests get a fault, and which of the matching ones.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The HTTP method, such as `PUT`.
    pub method: &'static str,
    /// A piece of the request target (path and query), such as `/state/processed/`; for
    /// a JSON-protocol call (DynamoDB) the target ends with `#` and its `X-Amz-Target`,
    /// such as `#DynamoDB_20120810.PutItem`.
    pub target_contains: String,
    /// Matching requests let through before the fault applies.
    pub skip: usize,
    /// How many matching requests get the fault.
    pub times: usize,
    /// The fault.
    pub fault: Fault,
}

impl Rule {
    /// `fault` for the first matching request only.
    pub fn once(method: &'static str, target_contains: &str, fault: Fault) -> Rule {
        Rule {
            method,
            target_contains: target_contains.to_string(),
            skip: 0,
            times: 1,
            fault,
        }
    }

    /// `fault` for every matching request.
    pub fn always(method: &'static str, target_contains: &str, fault: Fault) -> Rule {
        Rule {
            times: usize::MAX,
            ..Rule::once(method, target_contains, fault)
        }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The request target.
    pub target: String,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct State {
    rules: Vec<(Rule, usize)>,
    seen: Vec<Seen>,
}

impl State {
    fn decide(&mut self, method: &str, target: &str) -> Option<Fault> {
        let mut fault = None;
        for (rule, matched) in &mut self.rules {
            if rule.method != method || !target.contains(&rule.target_contains) {
                continue;
            }
            let n = *matched;
            *matched += 1;
            if fault.is_none() && n >= rule.skip && n - rule.skip < rule.times {
                fault = Some(rule.fault.clone());
            }
        }
        self.seen.push(Seen {
            method: method.to_string(),
            target: target.to_string(),
            fault: fault.clone(),
        });
        fault
    }
}

/// A running proxy; dropping it stops it.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, to give the SDK as its endpoint.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`) with `rules`.
    pub async fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            rules: rules.into_iter().map(|r| (r, 0)).collect(),
            seen: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            // Dropping the set (when this task ends or is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            let accept = async {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let (state, upstream) = (Arc::clone(&shared), upstream.clone());
                    connections.spawn(async move {
                        let _ = tokio::time::timeout(
                            CONNECTION_LIMIT,
                            serve(client, &upstream, &state),
                        )
                        .await;
                    });
                    while connections.try_join_next().is_some() {}
                }
            };
            let _ = tokio::time::timeout(PROXY_LIMIT, accept).await;
        });
        FaultProxy {
            endpoint,
            state,
            task,
        }
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests got a fault.
    pub fn faults(&self) -> usize {
        self.seen().iter().filter(|s| s.fault.is_some()).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request read from the client: its head (rewritten for forwarding) and its body.
struct Request {
    method: String,
    target: String,
    head: Vec<u8>,
    body: Vec<u8>,
    expects_continue: bool,
}

async fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let mut buffered = Vec::new();
    let Some(head_end) = read_head(&mut client, &mut buffered).await? else {
        return Ok(());
    };
    let mut request = parse_head(&buffered[..head_end])?;
    if request.expects_continue {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let rest = buffered.split_off(head_end);
    request.body = read_body(&mut client, &request.head, rest).await?;
    let fault = state
        .lock()
        .map_err(|_| std::io::ErrorKind::Other)?
        .decide(&request.method, &request.target);
    match fault {
        Some(Fault::Hang) => {
            // Wait for the client to give up; the connection limit ends it otherwise.
            let mut sink = [0u8; 1024];
            while client.read(&mut sink).await? > 0 {}
            Ok(())
        }
        Some(Fault::Status(code)) => {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>injected by the test proxy</Message></Error>",
                if code == 503 {
                    "SlowDown"
                } else {
                    "InternalError"
                }
            );
            let answer = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            client.shutdown().await
        }
        Some(Fault::DropResponse) => {
            let mut server = forward(upstream, &request).await?;
            let mut sink = Vec::new();
            server.read_to_end(&mut sink).await?;
            // Closing with nothing sent: the server acted, the client never hears of it.
            Ok(())
        }
        Some(Fault::StallBody { after, pause }) => {
            let server = forward(upstream, &request).await?;
            relay(server, &mut client, Some((after, pause))).await
        }
        None => {
            let server = forward(upstream, &request).await?;
            relay(server, &mut client, None).await
        }
    }
}

/// Reads until the end of the head; `None` when the client closed first.
async fn read_head(
    client: &mut TcpStream,
    buffered: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(at) = find(buffered, b"\r\n\r\n") {
            return Ok(Some(at + 4));
        }
        if buffered.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffered.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The request line and headers, with `Connection`, `Keep-Alive` and `Expect` replaced
/// by `Connection: close`.
fn parse_head(raw: &[u8]) -> std::io::Result<Request> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut head = format!("{request_line}\r\n");
    let mut expects_continue = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match name.as_str() {
            "connection" | "keep-alive" => {}
            "expect" => expects_continue = line.to_ascii_lowercase().contains("100-continue"),
            _ => {
                head.push_str(line);
                head.push_str("\r\n");
            }
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    let target = match header(&text, "x-amz-target") {
        Some(operation) => format!("{target}#{operation}"),
        None => target,
    };
    Ok(Request {
        method,
        target,
        head: head.into_bytes(),
        body: Vec::new(),
        expects_continue,
    })
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The body, framed by `Content-Length` or chunked (kept chunked, as it is forwarded).
async fn read_body(
    client: &mut TcpStream,
    head: &[u8],
    mut body: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let head = String::from_utf8_lossy(head);
    let mut chunk = [0u8; 64 * 1024];
    if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !chunked_complete(&body) {
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        return Ok(body);
    }
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

/// True once `body` holds a whole chunked body: the last chunk and the trailers.
fn chunked_complete(body: &[u8]) -> bool {
    let mut at = 0;
    loop {
        let Some(line_end) = find(&body[at..], b"\r\n") else {
            return false;
        };
        let size_text = String::from_utf8_lossy(&body[at..at + line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            return false;
        };
        at += line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            return find(&body[at..], b"\r\n\r\n").is_some() || body[at..].starts_with(b"\r\n");
        }
        at += size + 2;
        if at > body.len() {
            return false;
        }
    }
}

async fn forward(upstream: &str, request: &Request) -> std::io::Result<TcpStream> {
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&request.head).await?;
    server.write_all(&request.body).await?;
    Ok(server)
}

/// Copies the server's answer to the client (the head with `Connection: close`), with an
/// optional pause part-way through the body.
async fn relay(
    mut server: TcpStream,
    client: &mut TcpStream,
    stall: Option<(usize, Duration)>,
) -> std::io::Result<()> {
    let mut buffered = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buffered, b"\r\n\r\n") {
            break at + 4;
        }
        if read_some(&mut server, &mut buffered).await? == 0 {
            client.write_all(&buffered).await?;
            return client.shutdown().await;
        }
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).to_string();
    let mut rewritten = String::new();
    for line in head.trim_end().split("\r\n") {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name != "connection" && name != "keep-alive" {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    client.write_all(rewritten.as_bytes()).await?;
    let mut pending = buffered.split_off(head_end);
    let mut sent = 0usize;
    let mut stall = stall;
    loop {
        if let Some((after, pause)) = stall
            && sent + pending.len() >= after
        {
            let first = after.saturating_sub(sent);
            client.write_all(&pending[..first]).await?;
            client.flush().await?;
            tokio::time::sleep(pause).await;
            pending.drain(..first);
            stall = None;
        }
        client.write_all(&pending).await?;
        sent += pending.len();
        pending.clear();
        if read_some(&mut server, &mut pending).await? == 0 {
            break;
        }
    }
    client.shutdown().await
}

async fn read_some(
    stream: &mut (impl AsyncRead + Unpin),
    into: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 64 * 1024];
    let n = stream.read(&mut chunk).await?;
    into.extend_from_slice(&chunk[..n]);
    Ok(n)
}
