//! What a sent message may point at. The OneBot program fetches media URLs
//! and reads `file://` paths itself, so a URL in a message is a request made
//! with the account's machine's rights. The policy:
//!
//! * a wasm bot cannot name local files at all;
//! * a WebSocket client may send `file://` paths inside `media_dir` (none by
//!   default); botbridge reads the file itself and sends it as `base64:`;
//! * `http(s)` URLs whose host is, or resolves to, a loopback, private,
//!   link-local or otherwise internal address are refused unless the host is
//!   in `media_hosts`. A name that does not resolve here is let through (the
//!   upstream will not reach it either).
//!
//! The same check covers URLs inside unknown segments (`Other`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::bridge::CallerKind;
use crate::schema::{Element, ErrorCode, NestedImage, OpError};

/// How long a media host's name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Folder whose files clients may send as `file://` media; None: no files.
    pub dir: Option<PathBuf>,
    /// Hosts (`name` or `name:port`) allowed even though they are internal.
    pub allowed_hosts: Vec<String>,
    /// Largest file read from `dir`, bytes.
    pub max_bytes: u64,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        Self { dir: None, allowed_hosts: Vec::new(), max_bytes: 20 << 20 }
    }
}

fn bad(message: impl Into<String>) -> OpError {
    OpError::new(ErrorCode::BadMessage, message)
}

impl MediaPolicy {
    /// Checks every media URL in `elements` for a caller of `kind`, turning
    /// permitted `file://` URLs into `base64:` data.
    pub async fn vet(&self, kind: CallerKind, elements: &mut [Element]) -> Result<(), OpError> {
        for element in elements {
            match element {
                Element::Image { url, .. } | Element::FlashImage { image: NestedImage { url, .. } } => {
                    if !["file://", "http://", "https://", "base64:"].iter().any(|p| url.starts_with(p)) {
                        return Err(bad("an image url must start with file://, http://, https:// or base64:"));
                    }
                    self.vet_url(kind, url).await?;
                }
                Element::Other { data, .. } => self.vet_value(kind, data).await?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Every string in an unknown segment's data that is a file or web URL.
    async fn vet_value(&self, kind: CallerKind, data: &mut Value) -> Result<(), OpError> {
        let mut stack = vec![data];
        while let Some(value) = stack.pop() {
            match value {
                Value::String(s) => {
                    let lower = s.trim_start().to_ascii_lowercase();
                    if ["file:", "http://", "https://"].iter().any(|p| lower.starts_with(p)) {
                        self.vet_url(kind, s).await?;
                    }
                }
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => stack.extend(map.values_mut()),
                _ => {}
            }
        }
        Ok(())
    }

    async fn vet_url(&self, kind: CallerKind, url: &mut String) -> Result<(), OpError> {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("file:") {
            *url = self.read_file(kind, url).await?;
            return Ok(());
        }
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return self.check_host(url).await;
        }
        Ok(())
    }

    async fn read_file(&self, kind: CallerKind, url: &str) -> Result<String, OpError> {
        if kind == CallerKind::WasmBot {
            return Err(bad("a wasm bot cannot send local files (file:// URLs)"));
        }
        let Some(dir) = self.dir.clone() else {
            return Err(bad("file:// media is off: set `media_dir` in the config to allow a folder"));
        };
        let parsed = url::Url::parse(url.trim()).map_err(|e| bad(format!("bad file URL: {e}")))?;
        let path = parsed.to_file_path().map_err(|()| bad("bad file URL: not a local absolute path"))?;
        let limit = self.max_bytes;
        let read = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, OpError> {
            let folder = std::fs::canonicalize(&dir).map_err(|e| bad(format!("media_dir: {e}")))?;
            let relative = path
                .strip_prefix(&folder)
                .or_else(|_| path.strip_prefix(&dir))
                .map_err(|_| bad("the file is outside media_dir"))?;
            let name = relative.to_str().ok_or_else(|| bad("the file name is not UTF-8"))?;
            match crate::wasm::folder::read(&folder, name, limit) {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(bad("no such file in media_dir")),
                Err(e) => Err(bad(crate::error_chain(&e))),
            }
        });
        let bytes = read.await.map_err(|e| OpError::new(ErrorCode::Internal, e.to_string()))??;
        Ok(format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
    }

    async fn check_host(&self, url: &str) -> Result<(), OpError> {
        let parsed = url::Url::parse(url.trim()).map_err(|e| bad(format!("bad media URL: {e}")))?;
        let Some(host) = parsed.host() else { return Err(bad("a media URL needs a host")) };
        let port = parsed.port_or_known_default().unwrap_or(80);
        let name = match &host {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        let listed = self.allowed_hosts.iter().any(|h| {
            let h = h.trim_start_matches('[').replace(']', "");
            h.eq_ignore_ascii_case(&name) || h.eq_ignore_ascii_case(&format!("{name}:{port}"))
        });
        if listed {
            return Ok(());
        }
        let refuse = |ip: IpAddr| {
            bad(format!("media URL host {name} is an internal address ({ip}); list it in `media_hosts` to allow it"))
        };
        let addrs: Vec<IpAddr> = match host {
            url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
            url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
            url::Host::Domain(domain) => {
                match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((domain, port))).await {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    _ => Vec::new(),
                }
            }
        };
        match addrs.into_iter().find(|ip| is_internal(*ip)) {
            Some(ip) => Err(refuse(ip)),
            None => Ok(()),
        }
    }
}

/// Loopback, private, link-local, shared, unspecified, broadcast, multicast,
/// documentation or reserved addresses: nothing a public media URL points at,
/// and nothing a bot's HTTP request may reach unless it lists the address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared (CGNAT)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64: any IPv4 address
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
