//! The byte stream under RTMP: TCP, or for RTMPS TLS from the first byte
//! (not STARTTLS), verified against the web PKI roots plus an optional CA
//! file, with the host name checked.
//!
//! Certificate and host name failures are reported apart from network
//! failures, because retrying cannot fix them.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_rustls::TlsConnector;

/// A connected byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Connection = Box<dyn Io>;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot use --ca-file {}: {reason}", .path.display())]
    CaFile { path: PathBuf, reason: String },

    #[error(
        "'{host}' cannot be checked against a TLS certificate: give a DNS name or an IP address"
    )]
    ServerName { host: String },

    #[error("cannot resolve the RTMP host '{host}': {reason}: check the host name and DNS")]
    Resolve { host: String, reason: String },

    #[error(
        "no RTMP server answered at {peer} within {timeout_ms} ms: check the host, port and \
         firewall"
    )]
    ConnectTimeout { peer: String, timeout_ms: u64 },

    #[error("cannot connect to the RTMP server at {peer}: {reason}: check the host and port")]
    Connect { peer: String, reason: String },

    #[error("TLS: {problem} at {peer}: {hint}")]
    Certificate {
        peer: String,
        problem: String,
        hint: &'static str,
    },

    #[error(
        "TLS handshake with {peer} failed ({reason}): check that the port serves RTMPS (TLS \
         from the first byte, usually port 1936)"
    )]
    Handshake { peer: String, reason: String },

    #[error(
        "TLS handshake with {peer} took over {timeout_ms} ms: check that the port serves RTMPS \
         (TLS from the first byte, usually port 1936)"
    )]
    HandshakeTimeout { peer: String, timeout_ms: u64 },
}

impl TransportError {
    /// Returns whether retrying cannot help: a certificate that is not
    /// trusted or not valid for the host name.
    pub fn is_certificate(&self) -> bool {
        matches!(self, Self::Certificate { .. })
    }

    /// Returns whether the settings are wrong, found before dialing.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::CaFile { .. } | Self::ServerName { .. })
    }
}

/// Builds the TLS client configuration: web PKI roots plus every
/// certificate in `ca_file` (PEM), TLS 1.2 or 1.3, ring as the provider.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TransportError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for certificate in read_ca_file(path)? {
            roots
                .add(certificate)
                .map_err(|error| TransportError::CaFile {
                    path: path.to_path_buf(),
                    reason: format!("a certificate in it is invalid ({error})"),
                })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TransportError::Handshake {
            peer: "(none)".to_string(),
            reason: error.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let ca_error = |reason: String| TransportError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path)
        .map_err(|error| ca_error(format!("{error}: check the path and its permissions")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ca_error(format!("it is not a PEM certificate bundle ({error})")))?;
    if certificates.is_empty() {
        return Err(ca_error(
            "it contains no '-----BEGIN CERTIFICATE-----' block: give the CA certificate in PEM \
             form"
                .to_string(),
        ));
    }
    Ok(certificates)
}

/// Returns the name the certificate must carry for `host`.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TransportError> {
    ServerName::try_from(host.to_string()).map_err(|_| TransportError::ServerName {
        host: host.to_string(),
    })
}

/// Connects to `host:port` (`peer` names it in messages), then runs the TLS
/// handshake when `tls` is given. Each step gets `step_timeout`.
pub async fn connect(
    host: &str,
    port: u16,
    peer: &str,
    tls: Option<Arc<ClientConfig>>,
    step_timeout: Duration,
) -> Result<Connection, TransportError> {
    let tcp = connect_tcp(host, port, peer, step_timeout).await?;
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };

    let name = server_name(host)?;
    let handshake = TlsConnector::from(config).connect(name, tcp);
    match timeout(step_timeout, handshake).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(error)) => Err(tls_error(host, peer, &error)),
        Err(_) => Err(TransportError::HandshakeTimeout {
            peer: peer.to_string(),
            timeout_ms: step_timeout.as_millis() as u64,
        }),
    }
}

async fn connect_tcp(
    host: &str,
    port: u16,
    peer: &str,
    step_timeout: Duration,
) -> Result<TcpStream, TransportError> {
    let deadline = Instant::now() + step_timeout;
    let timed_out = || TransportError::ConnectTimeout {
        peer: peer.to_string(),
        timeout_ms: step_timeout.as_millis() as u64,
    };
    let addresses: Vec<SocketAddr> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addresses)) => addresses.collect(),
            Ok(Err(error)) => {
                return Err(TransportError::Resolve {
                    host: host.to_string(),
                    reason: error.to_string(),
                })
            }
            Err(_) => return Err(timed_out()),
        };

    let mut last_error: Option<io::Error> = None;
    for address in addresses {
        match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                // RTMP messages are small and latency matters more than packet count.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(error)) => last_error = Some(error),
            Err(_) => return Err(timed_out()),
        }
    }
    Err(TransportError::Connect {
        peer: peer.to_string(),
        reason: last_error.map_or("the name has no address".to_string(), |error| {
            connect_reason(&error)
        }),
    })
}

fn connect_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        _ => error.to_string(),
    }
}

fn tls_error(host: &str, peer: &str, error: &io::Error) -> TransportError {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        let reason = match error.kind() {
            io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
            _ => error.to_string(),
        };
        return TransportError::Handshake {
            peer: peer.to_string(),
            reason,
        };
    };
    use rustls::CertificateError as Certificate;
    let rustls::Error::InvalidCertificate(certificate) = tls else {
        return TransportError::Handshake {
            peer: peer.to_string(),
            reason: tls.to_string(),
        };
    };
    let (problem, hint) = match certificate {
        Certificate::UnknownIssuer | Certificate::BadSignature => (
            format!("the server's certificate is not trusted ({tls})"),
            "for a deployment with a private CA, give that CA's certificate (PEM) with --ca-file",
        ),
        Certificate::NotValidForName | Certificate::NotValidForNameContext { .. } => (
            format!("the server's certificate is not valid for host name '{host}' ({tls})"),
            "connect with a host name the certificate lists; --ca-file does not change which \
             names a certificate is valid for",
        ),
        Certificate::Expired
        | Certificate::ExpiredContext { .. }
        | Certificate::NotValidYet
        | Certificate::NotValidYetContext { .. } => (
            format!("the server's certificate is outside its validity period ({tls})"),
            "check this machine's clock, or have the server's certificate renewed",
        ),
        _ => (
            format!("the server's certificate was rejected ({tls})"),
            "check the server's certificate chain; for a private CA, give its certificate with \
             --ca-file",
        ),
    };
    TransportError::Certificate {
        peer: peer.to_string(),
        problem,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = tls_config(Some(&missing)).unwrap_err().to_string();
        assert!(error.starts_with(&format!("cannot use --ca-file {}", missing.display())));
        assert!(error.contains("check the path"), "{error}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = tls_config(Some(&empty)).unwrap_err().to_string();
        assert!(
            error.contains("no '-----BEGIN CERTIFICATE-----' block"),
            "{error}"
        );
    }

    #[test]
    fn config_without_ca_file_has_web_roots() {
        assert!(tls_config(None).is_ok());
    }

    #[test]
    fn server_names_accept_dns_and_ip() {
        assert!(server_name("edge.example.com").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("::1").is_ok());
        assert!(server_name("bad name!").is_err());
    }

    #[test]
    fn certificate_errors_are_classified() {
        let wrap = |error: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, error);
        let cases = [
            (
                rustls::CertificateError::UnknownIssuer,
                "the server's certificate is not trusted",
                "--ca-file",
            ),
            (
                rustls::CertificateError::NotValidForName,
                "not valid for host name 'edge'",
                "connect with a host name the certificate lists",
            ),
            (
                rustls::CertificateError::Expired,
                "outside its validity period",
                "clock",
            ),
        ];
        for (certificate, problem, hint) in cases {
            let error = tls_error(
                "edge",
                "edge:1936",
                &wrap(rustls::Error::InvalidCertificate(certificate)),
            );
            assert!(error.is_certificate(), "{error:?}");
            let text = error.to_string();
            assert!(text.starts_with("TLS: "), "{text}");
            assert!(text.contains(problem), "{text}");
            assert!(text.contains(hint), "{text}");
            assert!(text.contains("at edge:1936"), "{text}");
        }

        let eof = tls_error("edge", "edge:1936", &io::ErrorKind::UnexpectedEof.into());
        assert!(!eof.is_certificate());
        assert!(eof.to_string().contains("the server closed the connection"));
    }
}
