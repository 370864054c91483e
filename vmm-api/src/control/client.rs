//! The one client of a VMM's `control.sock` (feature `client`): connect, write one request line, read one
//! answer line, all within a timeout. The VMM answers from its own thread, independent of the guest, so a
//! VMM that does not answer in time is stuck or gone.
//!
//! The portal uses it as it is (async); synchronous tests and benchmarks use [`Client::exchange_blocking`],
//! which runs the same exchange on a private runtime.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{Request, Response, Status, MAX_RESPONSE_LINE};
use crate::run_dir::RunDir;

/// How long an exchange may take unless the client is told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an exchange with a VMM failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Invalid control request")]
    BadRequest(#[source] serde_json::Error),
    #[error("Failed to reach the VMM control socket")]
    Connect(#[source] std::io::Error),
    #[error("The VMM control socket failed")]
    Io(#[source] std::io::Error),
    #[error("The VMM did not answer in time")]
    Timeout,
    #[error("The VMM closed the connection without answering")]
    NoAnswer,
    #[error("The VMM sent an invalid answer")]
    Invalid(#[source] serde_json::Error),
    #[error("The VMM refused: {0}")]
    Refused(String),
    #[error("The VMM answered {request} with a {answer} answer")]
    Unexpected {
        request: &'static str,
        answer: &'static str,
    },
    #[error("Failed to start a runtime for a blocking request")]
    Runtime(#[source] std::io::Error),
}

/// A VMM's control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// The client of the socket at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The client of the VMM of a run directory.
    pub fn of(dir: &RunDir) -> Self {
        Self::new(dir.control())
    }

    /// Replaces the timeout of each exchange.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One exchange: the VMM's answer, a refusal (`Response::Error`) included.
    pub async fn exchange(&self, request: &Request) -> Result<Response, ClientError> {
        let mut line = serde_json::to_vec(request).map_err(ClientError::BadRequest)?;
        line.push(b'\n');
        tokio::time::timeout(self.timeout, self.exchange_line(&line))
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn exchange_line(&self, line: &[u8]) -> Result<Response, ClientError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(ClientError::Connect)?;
        let (read, mut write) = stream.into_split();
        write.write_all(line).await.map_err(ClientError::Io)?;
        let mut answer = Vec::new();
        BufReader::new(read)
            .take(MAX_RESPONSE_LINE as u64)
            .read_until(b'\n', &mut answer)
            .await
            .map_err(ClientError::Io)?;
        if answer.is_empty() {
            return Err(ClientError::NoAnswer);
        }
        serde_json::from_slice(&answer).map_err(ClientError::Invalid)
    }

    /// One exchange; a refusal is `ClientError::Refused`.
    pub async fn request(&self, request: &Request) -> Result<Response, ClientError> {
        self.exchange(request)
            .await?
            .accepted()
            .map_err(ClientError::Refused)
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        match self.request(&Request::Status).await? {
            Response::Status { status, .. } => Ok(*status),
            other => Err(unexpected("status", &other)),
        }
    }

    /// The last 64 KiB of the guest's serial output.
    pub async fn console_log(&self) -> Result<String, ClientError> {
        match self.request(&Request::ConsoleLog).await? {
            Response::ConsoleLog { data, .. } => Ok(data),
            other => Err(unexpected("console-log", &other)),
        }
    }

    /// [`Client::exchange`] for synchronous callers (tests, benchmarks), inside a runtime or not: the
    /// exchange runs on a private single-threaded runtime, on a thread of its own when the caller is
    /// already inside one (a runtime cannot block inside another).
    pub fn exchange_blocking(&self, request: &Request) -> Result<Response, ClientError> {
        block_on(self.exchange(request))
    }
}

fn unexpected(request: &'static str, answer: &Response) -> ClientError {
    ClientError::Unexpected {
        request,
        answer: answer.kind(),
    }
}

fn block_on<T: Send>(
    exchange: impl Future<Output = Result<T, ClientError>> + Send,
) -> Result<T, ClientError> {
    let run = move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?
            .block_on(exchange)
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|s| {
        s.spawn(run)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use tokio::net::UnixListener;

    use super::*;
    use crate::control::RunState;

    /// A fake VMM at `socket` that answers the first line of one connection with `answer` (`None`: it
    /// closes the connection), and returns the line it read.
    fn fake_vmm(socket: PathBuf, answer: Option<&'static str>) -> (Client, tokio::task::JoinHandle<String>) {
        let listener = UnixListener::bind(&socket).unwrap();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            if let Some(a) = answer {
                write.write_all(a.as_bytes()).await.unwrap();
            }
            line
        });
        (Client::new(socket), task)
    }

    #[tokio::test]
    async fn one_request_line_gets_one_typed_answer() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::new(dir.path());
        let (client, vmm) = fake_vmm(run_dir.control(), Some("{\"ok\":true,\"state\":\"paused\"}\n"));
        assert_eq!(client, Client::of(&run_dir));
        let answer = client.request(&Request::Pause).await.unwrap();
        assert_eq!(answer, Response::state(RunState::Paused));
        assert_eq!(vmm.await.unwrap(), "{\"cmd\":\"pause\"}\n");
    }

    #[tokio::test]
    async fn refusals_are_answers_to_exchange_and_errors_to_request() {
        let dir = tempfile::tempdir().unwrap();
        let refusal = Some("{\"ok\":false,\"error\":\"no framebuffer\"}\n");
        let (client, _vmm) = fake_vmm(dir.path().join("a.sock"), refusal);
        let answer = client.exchange(&Request::ConsoleLog).await.unwrap();
        assert_eq!(answer, Response::error("no framebuffer"));
        let (client, _vmm) = fake_vmm(dir.path().join("b.sock"), refusal);
        let err = client.console_log().await.unwrap_err();
        assert_eq!(err.to_string(), "The VMM refused: no framebuffer");
    }

    #[tokio::test]
    async fn a_silent_closed_or_garbled_vmm_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("silent.sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        let silent = Client::new(&socket).with_timeout(Duration::from_millis(100));
        assert!(matches!(
            silent.exchange(&Request::Status).await,
            Err(ClientError::Timeout)
        ));
        let (closing, _vmm) = fake_vmm(dir.path().join("closing.sock"), None);
        assert!(matches!(
            closing.exchange(&Request::Status).await,
            Err(ClientError::NoAnswer)
        ));
        let (garbled, _vmm) = fake_vmm(dir.path().join("garbled.sock"), Some("not json\n"));
        assert!(matches!(
            garbled.exchange(&Request::Status).await,
            Err(ClientError::Invalid(_))
        ));
        let nobody = Client::new(dir.path().join("nobody.sock"));
        assert!(matches!(
            nobody.exchange(&Request::Status).await,
            Err(ClientError::Connect(_))
        ));
    }

    #[tokio::test]
    async fn a_status_request_wants_a_status_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (client, _vmm) = fake_vmm(dir.path().join("c.sock"), Some("{\"ok\":true}\n"));
        let err = client.status().await.unwrap_err();
        assert_eq!(err.to_string(), "The VMM answered status with a done answer");
    }

    #[test]
    fn blocking_exchanges_work_inside_and_outside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(crate::run_dir::CONTROL_SOCKET);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let vmm = std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let mut line = String::new();
                std::io::BufReader::new(&stream).read_line(&mut line).unwrap();
                stream.write_all(b"{\"ok\":true}\n").unwrap();
            }
        });
        let client = Client::new(&socket);
        assert_eq!(
            client.exchange_blocking(&Request::Status).unwrap(),
            Response::done()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let inside = rt.block_on(async { client.exchange_blocking(&Request::Status) });
        assert_eq!(inside.unwrap(), Response::done());
        vmm.join().unwrap();
    }
}
