//! ICE servers of a WHIP session: the STUN and TURN URIs (RFC 7064, RFC 7065)
//! that a WHIP server lists in `Link: <…>; rel="ice-server"` headers
//! (RFC 9725, section 4.6), read from those headers and turned into the
//! URIs webrtcbin takes.

use crate::config::Secret;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::net::Ipv6Addr;
use tracing::{trace, warn};

/// Port of `stun:` and `turn:` URIs without one (RFC 8489, RFC 8656).
const DEFAULT_PORT: u16 = 3478;

/// Port of `turns:` URIs without one.
const DEFAULT_TLS_PORT: u16 = 5349;

/// The relation type of a Link that names an ICE server.
const ICE_SERVER_REL: &str = "ice-server";

/// Characters percent-encoded in the userinfo of a webrtcbin TURN URI: all
/// but RFC 3986's unreserved ones, so `:`, `@` and `/` cannot end a field.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One STUN or TURN server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServer {
    /// As given: "stun:host:port", "turn:host:port?transport=udp",
    /// "turns:host:port?transport=tcp".
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<Secret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Stun,
    Turn,
    Turns,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Self::Stun => "stun",
            Self::Turn => "turn",
            Self::Turns => "turns",
        }
    }
}

/// The parts of a `stun:`, `turn:` or `turns:` URI.
#[derive(Debug, PartialEq, Eq)]
struct IceUri<'a> {
    scheme: Scheme,
    /// A name, an IPv4 address, or an IPv6 address in brackets.
    host: &'a str,
    port: u16,
    /// `udp` or `tcp`, lowercase; only TURN URIs carry it.
    transport: Option<String>,
}

impl IceServer {
    /// Parses a `stun:`/`turn:`/`turns:` URI (RFC 7064/7065), with optional
    /// credentials. TURN servers need both a username and a credential,
    /// because webrtcbin drops a TURN server without them. The error text
    /// names the value (with any userinfo redacted) and what is wrong.
    pub fn parse(
        url: &str,
        username: Option<String>,
        credential: Option<Secret>,
    ) -> Result<Self, String> {
        let url = url.trim();
        let uri =
            parse_uri(url).map_err(|reason| format!("ICE server '{}': {reason}", redact(url)))?;
        if uri.scheme != Scheme::Stun && (username.is_none() || credential.is_none()) {
            return Err(format!(
                "ICE server '{url}': a TURN server needs both a username and a credential"
            ));
        }
        Ok(Self {
            url: url.to_string(),
            username,
            credential,
        })
    }

    /// Returns the form webrtcbin takes: "stun://host:port" for `stun-server`, and
    /// "turn://user:pass@host:port?transport=udp" / "turns://…" for
    /// `add-turn-server`, user and password percent-encoded. The port is
    /// always written, the scheme's default when the URL has none. Returns
    /// a Secret because it carries the credential.
    pub fn webrtcbin_uri(&self) -> Secret {
        let Ok(uri) = parse_uri(&self.url) else {
            // Only a value built without `parse` gets here; webrtcbin then
            // rejects the URI and names it in its own error.
            return Secret::new("ICE server URI", self.url.replacen(':', "://", 1));
        };
        let scheme = uri.scheme.name();
        let address = format!("{}:{}", uri.host, uri.port);
        if uri.scheme == Scheme::Stun {
            return Secret::new("ICE server URI", format!("{scheme}://{address}"));
        }

        let encode = |value: &str| utf8_percent_encode(value, USERINFO).to_string();
        let user = encode(self.username.as_deref().unwrap_or(""));
        let password = encode(self.credential.as_ref().map_or("", Secret::expose));
        let query = match &uri.transport {
            Some(transport) => format!("?transport={transport}"),
            None => String::new(),
        };
        Secret::new(
            "TURN server URI",
            format!("{scheme}://{user}:{password}@{address}{query}"),
        )
    }

    pub fn is_turn(&self) -> bool {
        parse_scheme(&self.url).is_some_and(|(scheme, _)| scheme != Scheme::Stun)
    }

    /// For logs: the URL without credentials.
    pub fn describe(&self) -> String {
        redact(&self.url)
    }
}

/// Returns `url` with anything between the scheme and an `@` replaced, so
/// a URI that carries userinfo against RFC 7065 can still be logged.
fn redact(url: &str) -> String {
    match (url.split_once(':'), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}:<redacted>{}", &url[at..]),
        _ => url.to_string(),
    }
}

fn parse_scheme(url: &str) -> Option<(Scheme, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "stun" => Scheme::Stun,
        "turn" => Scheme::Turn,
        "turns" => Scheme::Turns,
        _ => return None,
    };
    Some((scheme, rest))
}

fn parse_uri(url: &str) -> Result<IceUri<'_>, String> {
    let (scheme, rest) = parse_scheme(url)
        .ok_or("the scheme is not stun:, turn: or turns: (stuns: is not supported by webrtcbin)")?;
    if rest.starts_with("//") {
        return Err(format!(
            "write '{}:host:port' without '//' (RFC 7064 and RFC 7065)",
            scheme.name()
        ));
    }
    if rest.contains('@') {
        return Err(
            "the URI carries credentials; they belong in the username and \
                    credential parameters"
                .into(),
        );
    }

    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    let (host, port) = split_host_port(authority)?;
    let default_port = match scheme {
        Scheme::Turns => DEFAULT_TLS_PORT,
        Scheme::Stun | Scheme::Turn => DEFAULT_PORT,
    };
    let transport = match query {
        None => None,
        Some(_) if scheme == Scheme::Stun => {
            return Err("a stun: URI takes no query".into());
        }
        Some(query) => Some(parse_transport(query)?),
    };
    Ok(IceUri {
        scheme,
        host,
        port: port.unwrap_or(default_port),
        transport,
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or("the IPv6 address has no closing ']'")?;
        let address = &authority[1..end];
        address
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("'{address}' is not an IPv6 address"))?;
        let after = &authority[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected '{after}' after the IPv6 address")),
        };
        (&authority[..=end], port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };

    if host.is_empty() {
        return Err("the host is missing".into());
    }
    let is_host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
    if !host.starts_with('[') {
        if let Some(bad) = host.chars().find(|&c| !is_host_char(c)) {
            return Err(format!("the host contains '{bad}'"));
        }
    }
    let port = match port {
        None => None,
        Some(text) => Some(
            text.parse::<u16>()
                .ok()
                .filter(|&port| port != 0)
                .ok_or_else(|| format!("port '{text}' is not a number from 1 to 65535"))?,
        ),
    };
    Ok((host, port))
}

fn parse_transport(query: &str) -> Result<String, String> {
    let value = query
        .strip_prefix("transport=")
        .ok_or_else(|| format!("the query '{query}' is not 'transport=udp' or 'transport=tcp'"))?
        .to_ascii_lowercase();
    if value != "udp" && value != "tcp" {
        return Err(format!("transport '{value}' is not udp or tcp"));
    }
    Ok(value)
}

/// Reads every `rel="ice-server"` entry from the values of all `Link`
/// headers of a response, in RFC 8288 syntax. Links may come in several
/// headers or comma-joined in one, with parameters quoted or not. Quoted
/// credentials may contain `;` and `,`, and `rel` may list several types
/// ("ice-server other"). Links with other relation types are ignored. A malformed entry,
/// or a `credential-type` other than `password`, is skipped with a warning
/// that never shows the credential.
pub fn parse_link_headers<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<IceServer> {
    let mut servers = Vec::new();
    for value in values {
        let mut cursor = Cursor::new(value);
        while cursor.skip_to_link() {
            match cursor.link() {
                Ok(link) => servers.extend(ice_server(&link)),
                Err(reason) => {
                    warn!(
                        entry = cursor.entry_number,
                        "skipping a malformed Link header entry: {reason}"
                    );
                    cursor.skip_past_link();
                }
            }
        }
    }
    servers
}

/// One link-value: its target and its parameters, names lowercased.
struct Link<'a> {
    target: &'a str,
    params: Vec<(String, Option<String>)>,
}

impl Link<'_> {
    /// Returns the first value of parameter `name`, because RFC 8288 ignores
    /// later ones.
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(candidate, _)| candidate == name)
            .and_then(|(_, value)| value.as_deref())
    }
}

fn ice_server(link: &Link<'_>) -> Option<IceServer> {
    let target = redact(link.target);
    let rel = link.param("rel").unwrap_or("");
    let is_ice_server = rel
        .split_ascii_whitespace()
        .any(|relation| relation.eq_ignore_ascii_case(ICE_SERVER_REL));
    if !is_ice_server {
        trace!(target = %target, rel, "ignoring a Link that is not an ICE server");
        return None;
    }

    if let Some(kind) = link.param("credential-type") {
        if !kind.eq_ignore_ascii_case("password") {
            warn!(
                url = %target,
                "skipping an ICE server with credential-type '{kind}': only 'password' is supported"
            );
            return None;
        }
    }
    let username = link.param("username").map(str::to_string);
    let credential = link
        .param("credential")
        .map(|value| Secret::new("TURN credential", value));
    match IceServer::parse(link.target, username, credential) {
        Ok(server) => Some(server),
        Err(reason) => {
            warn!("skipping an ICE server from a Link header: {reason}");
            None
        }
    }
}

/// A position in one `Link` header value.
struct Cursor<'a> {
    text: &'a str,
    position: usize,
    /// 1-based index of the link-value being read, for warnings.
    entry_number: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            position: 0,
            entry_number: 0,
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn advance(&mut self, c: char) {
        self.position += c.len_utf8();
    }

    fn skip_whitespace(&mut self) {
        while let Some(c) = self.peek().filter(|&c| c == ' ' || c == '\t') {
            self.advance(c);
        }
    }

    /// Skips whitespace and empty list elements; returns whether a link
    /// follows.
    fn skip_to_link(&mut self) -> bool {
        while let Some(c) = self.peek().filter(|&c| matches!(c, ' ' | '\t' | ',')) {
            self.advance(c);
        }
        if self.position < self.text.len() {
            self.entry_number += 1;
            true
        } else {
            false
        }
    }

    /// Moves past the next comma outside quotes and angle brackets, after
    /// a malformed entry.
    fn skip_past_link(&mut self) {
        let mut in_quotes = false;
        let mut in_target = false;
        let mut escaped = false;
        while let Some(c) = self.peek() {
            self.advance(c);
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' if !in_target => in_quotes = !in_quotes,
                '<' if !in_quotes => in_target = true,
                '>' if !in_quotes => in_target = false,
                ',' if !in_quotes && !in_target => return,
                _ => {}
            }
        }
    }

    /// Reads `<target>` and its `; name[=value]` parameters, up to the next
    /// comma or the end.
    fn link(&mut self) -> Result<Link<'a>, String> {
        if self.peek() != Some('<') {
            return Err("it does not start with '<'".into());
        }
        let Some(length) = self.rest()[1..].find('>') else {
            self.position = self.text.len();
            return Err("the '<' has no closing '>'".into());
        };
        let target = &self.rest()[1..=length];
        self.position += length + 2;

        let mut params = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                None | Some(',') => return Ok(Link { target, params }),
                Some(';') => {
                    self.advance(';');
                    params.push(self.param()?);
                }
                Some(other) => {
                    return Err(format!("unexpected '{other}' where ';' or ',' belongs"));
                }
            }
        }
    }

    fn param(&mut self) -> Result<(String, Option<String>), String> {
        self.skip_whitespace();
        let name = self.token().to_ascii_lowercase();
        if name.is_empty() {
            return Err("a parameter has no name".into());
        }
        self.skip_whitespace();
        if self.peek() != Some('=') {
            return Ok((name, None));
        }
        self.advance('=');
        self.skip_whitespace();
        let value = if self.peek() == Some('"') {
            self.quoted_string()
                .ok_or_else(|| format!("the quoted value of '{name}' has no closing '\"'"))?
        } else {
            self.unquoted_value().to_string()
        };
        Ok((name, Some(value)))
    }

    /// Reads an RFC 9110 token.
    fn token(&mut self) -> &'a str {
        let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let start = self.position;
        while let Some(c) = self.peek().filter(|&c| is_tchar(c)) {
            self.advance(c);
        }
        &self.text[start..self.position]
    }

    /// Reads an unquoted value up to `;`, `,` or whitespace. RFC 8288 allows
    /// only a token here; servers also send `/`, `:` and `=` unquoted.
    fn unquoted_value(&mut self) -> &'a str {
        let start = self.position;
        while let Some(c) = self
            .peek()
            .filter(|&c| !matches!(c, ';' | ',' | ' ' | '\t'))
        {
            self.advance(c);
        }
        &self.text[start..self.position]
    }

    /// Reads a quoted-string with its backslash escapes; `None` when it
    /// does not end.
    fn quoted_string(&mut self) -> Option<String> {
        self.advance('"');
        let mut value = String::new();
        while let Some(c) = self.peek() {
            self.advance(c);
            match c {
                '"' => return Some(value),
                '\\' => {
                    let escaped = self.peek()?;
                    self.advance(escaped);
                    value.push(escaped);
                }
                _ => value.push(c),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
