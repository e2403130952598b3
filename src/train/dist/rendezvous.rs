//! torchrun's ranks have no MPI to pass NCCL's unique id: rank 0 hands its 128 bytes to each of
//! the others over one TCP connection at `MASTER_ADDR`, as PyTorch's own store does. Nothing else
//! crosses this socket.
//!
//! torchrun's agent already serves its own store on `MASTER_PORT` when it sets
//! `TORCHELASTIC_USE_AGENT_STORE=True` (its usual setting): the id is then served on the next
//! port, `MASTER_PORT + 1`.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long a rank waits for the others to arrive (they may still be loading).
const WAIT: Duration = Duration::from_secs(300);

/// The port the id is served on, given torchrun's `MASTER_PORT` and whether its agent holds it.
pub fn port(master_port: u16, agent_store: bool) -> Result<u16> {
    if !agent_store {
        return Ok(master_port);
    }
    master_port.checked_add(1).ok_or_else(|| {
        Error::Invalid(
            "MASTER_PORT = 65535 leaves no port after torchrun's store for NCCL's id; pick a lower one".into(),
        )
    })
}

/// Rank 0: serves `id` to `world − 1` ranks, then returns.
pub fn serve(port: u16, world: usize, id: &[u8; 128]) -> Result<()> {
    let l = TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
        Error::Invalid(format!(
            "rank 0 cannot listen on port {port} to hand out NCCL's id ({e}): choose a free MASTER_PORT"
        ))
    })?;
    l.set_nonblocking(true).map_err(io("the id listener"))?;
    let start = Instant::now();
    let mut served = 0;
    while served + 1 < world {
        match l.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).map_err(io("an id connection"))?;
                s.write_all(id).map_err(io("sending NCCL's id"))?;
                served += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "rank 0 handed NCCL's id to {served} of {} ranks in {} s, then gave up ({e}): the others cannot \
                     reach port {port} of this machine (a firewall?) or did not start",
                    world - 1,
                    WAIT.as_secs()
                )));
            }
        }
    }
    Ok(())
}

/// Any other rank: fetches the id from rank 0 at `addr:port`, retrying until rank 0 listens.
pub fn fetch(addr: &str, port: u16) -> Result<[u8; 128]> {
    let start = Instant::now();
    loop {
        let tried = (addr, port).to_socket_addrs().map_err(|e| {
            Error::Invalid(format!("MASTER_ADDR = {addr:?} does not resolve ({e}): set it to rank 0's address"))
        })?;
        let mut last = None;
        for a in tried {
            match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(mut s) => {
                    let mut id = [0u8; 128];
                    s.set_read_timeout(Some(WAIT)).map_err(io("the id connection"))?;
                    s.read_exact(&mut id).map_err(io("receiving NCCL's id from rank 0"))?;
                    return Ok(id);
                }
                Err(e) => last = Some(e),
            }
        }
        if start.elapsed() > WAIT {
            return Err(Error::Invalid(format!(
                "no answer from rank 0 at {addr}:{port} for NCCL's id in {} s ({}): check MASTER_ADDR, and that \
                 rank 0 started",
                WAIT.as_secs(),
                last.map_or("no address".to_string(), |e| e.to_string())
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Invalid(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_zero_hands_its_id_to_every_other_rank() {
        // A free port from the system, released for `serve` to take.
        let port = TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
        let mut id = [0u8; 128];
        id.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7) as u8);
        let server = std::thread::spawn(move || serve(port, 3, &id));
        let got: Vec<[u8; 128]> = (0..2)
            .map(|_| std::thread::spawn(move || fetch("127.0.0.1", port).unwrap()))
            .map(|h| h.join().unwrap())
            .collect();
        server.join().unwrap().unwrap();
        assert!(got.iter().all(|g| g == &id));
        assert_eq!(super::port(29500, true).unwrap(), 29501);
        assert_eq!(super::port(29500, false).unwrap(), 29500);
        assert!(super::port(65535, true).is_err());
        assert!(fetch("no.such.host.invalid", port).unwrap_err().to_string().contains("MASTER_ADDR"));
    }
}
