//! TCP connect probe: a completed three-way handshake is up; the
//! connection is closed at once (no payload, like a Kubernetes `tcpSocket`
//! probe).

use tokio::net::TcpStream;

use crate::ProbeError;

/// Connects to `host:port` (names resolved on every probe, so a moved
/// backend is followed) and closes the connection.
pub async fn probe_tcp(host: &str, port: u16) -> Result<(), ProbeError> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(ProbeError::Connect)?;
    drop(stream);
    Ok(())
}
