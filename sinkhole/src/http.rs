//! A minimal HTTP/1.x responder: read one request head (bounded size and time), answer, close.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::BlockInfo;

/// Largest request head read; anything longer is answered with 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// What was read from the client.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Head {
    /// The request line parsed as `METHOD target HTTP/x.y`.
    pub valid: bool,
    /// The method was HEAD (no body in the answer).
    pub head_only: bool,
    /// The head did not end within `MAX_HEAD` bytes.
    pub oversized: bool,
    /// Nothing at all arrived (timeout or immediate close).
    pub empty: bool,
    /// Host header (or the authority of an absolute-form target), normalized.
    pub host: Option<String>,
}

/// Read the request head: until an empty line, `MAX_HEAD` bytes, EOF, an error or `timeout`.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, timeout: Duration) -> Head {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + timeout;
    let mut complete = false;
    loop {
        if find_head_end(&buf).is_some() {
            complete = true;
            break;
        }
        if buf.len() >= MAX_HEAD {
            break;
        }
        let want = chunk.len().min(MAX_HEAD - buf.len());
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut head = parse_head(&buf);
    head.oversized = !complete && buf.len() >= MAX_HEAD;
    head
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(i + 4);
    }
    buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// Parse what arrived (possibly truncated: only complete lines are used for headers).
pub(crate) fn parse_head(buf: &[u8]) -> Head {
    let mut head = Head {
        empty: buf.is_empty(),
        ..Head::default()
    };
    let end = find_head_end(buf).unwrap_or(buf.len());
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(request_line) = lines.next() else {
        return head;
    };
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let mut absolute_host = None;
    if let (Some(method), Some(target), Some(version), None) =
        (method, target, version, parts.next())
    {
        head.valid = !method.is_empty()
            && method.bytes().all(|b| b.is_ascii_uppercase())
            && !target.is_empty()
            && version.starts_with("HTTP/1.");
        head.head_only = method == "HEAD";
        if let Some(rest) = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"))
        {
            absolute_host = normalize_host(rest.split(['/', '?', '#']).next().unwrap_or(""));
        }
    }
    // A truncated last line is not trusted.
    let complete_lines = if find_head_end(buf).is_some() {
        usize::MAX
    } else {
        text.matches('\n').count().saturating_sub(1)
    };
    for line in lines.take(complete_lines) {
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("host") {
                head.host = normalize_host(value);
                break;
            }
        }
    }
    if head.host.is_none() {
        head.host = absolute_host;
    }
    head
}

/// `Host` value -> name without port, lower case, no trailing dot; `None` if empty or not a
/// plausible host (only visible ASCII, at most 255 bytes).
pub(crate) fn normalize_host(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.rsplit_once('@').map_or(v, |(_, h)| h); // userinfo in absolute targets
    let host = if let Some(rest) = v.strip_prefix('[') {
        // [IPv6]:port
        rest.split_once(']').map(|(h, _)| h)?
    } else if v.matches(':').count() == 1 {
        v.split_once(':').map(|(h, _)| h).unwrap_or(v)
    } else {
        v
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty()
        || host.len() > 255
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    {
        return None;
    }
    Some(host)
}

/// Write the answer for `head` and shut the connection down (best effort, within `timeout`).
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    head: &Head,
    info: Option<&BlockInfo>,
    client: SocketAddr,
    timeout: Duration,
) {
    if head.empty {
        return;
    }
    let (status, body) = if head.oversized {
        (
            "431 Request Header Fields Too Large",
            "request head too large\n".to_string(),
        )
    } else if !head.valid {
        ("400 Bad Request", "bad request\n".to_string())
    } else {
        ("200 OK", block_page(info, head.host.as_deref(), client))
    };
    let ctype = if status.starts_with("200") {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'none'\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head.head_only {
        out.push_str(&body);
    }
    let _ = tokio::time::timeout(timeout, async {
        stream.write_all(out.as_bytes()).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
}

/// The block page: which name, why, for which client. Everything escaped, no external assets.
pub fn block_page(info: Option<&BlockInfo>, host: Option<&str>, client: SocketAddr) -> String {
    let client = escape(&client.ip().to_canonical().to_string());
    let mut p = String::with_capacity(1024);
    p.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Blocked by dnsward</title></head>\n<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\n");
    match info {
        Some(b) => {
            p.push_str(&format!(
                "<h1>dnsward blocked {}</h1>\n<p>Category: <b>{}</b></p>\n<p>Reason: {}</p>\n",
                escape(&b.name),
                escape(&b.category),
                escape(&b.reason)
            ));
            if let Some(h) = host.filter(|h| *h != b.name) {
                p.push_str(&format!("<p>Requested host: {}</p>\n", escape(h)));
            }
        }
        None => {
            match host {
                Some(h) => p.push_str(&format!("<h1>dnsward blocked {}</h1>\n", escape(h))),
                None => p.push_str("<h1>dnsward blocked this name</h1>\n"),
            }
            p.push_str("<p>This address is a dnsward sinkhole; no recent block for this client was found.</p>\n");
        }
    }
    p.push_str(&format!(
        "<p>Client: {client}</p>\n<p>If this name should not be blocked, ask the administrator of this network's DNS resolver.</p>\n</body></html>\n"
    ));
    p
}

/// HTML-escape text (element content and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host() {
        let h =
            parse_head(b"GET / HTTP/1.1\r\nUser-Agent: x\r\nhOsT:  C2.Evil.Example.:8080 \r\n\r\n");
        assert!(h.valid);
        assert_eq!(h.host.as_deref(), Some("c2.evil.example"));
        let h = parse_head(b"GET http://abs.example:81/x HTTP/1.0\n\n");
        assert_eq!(h.host.as_deref(), Some("abs.example"));
        let h = parse_head(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
        assert_eq!(h.host.as_deref(), Some("::1"));
        let h = parse_head(b"GET / HTTP/1.1\r\nHost: <script>\r\n\r\n");
        assert_eq!(h.host, None);
        // Truncated last line not used.
        let h = parse_head(b"GET / HTTP/1.1\r\nHost: trunc");
        assert_eq!(h.host, None);
        let h = parse_head(b"\x16\x03\x01\x00\xff garbage");
        assert!(!h.valid);
        assert!(!parse_head(b"").valid);
    }

    #[test]
    fn page_is_escaped() {
        let info = BlockInfo {
            name: "<b>x".into(),
            category: "a&b".into(),
            reason: "\"q\"".into(),
        };
        let p = block_page(Some(&info), None, "10.0.0.1:5".parse().unwrap());
        assert!(p.contains("dnsward blocked &lt;b&gt;x"));
        assert!(p.contains("a&amp;b") && p.contains("&quot;q&quot;") && p.contains("10.0.0.1"));
    }
}
