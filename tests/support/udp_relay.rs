//! A UDP relay on 127.0.0.1 that drops and delays datagrams in both
//! directions, in place of netem, which this kernel lacks. Drops come from
//! a seeded generator, so a run can be repeated packet for packet as far
//! as the peers send the same datagrams.
//!
//! ```text
//! client ─► listen socket ─► drop? ─► delay ─► upstream socket ─► server
//! client ◄─ delay ◄─ drop? ◄─ upstream socket ◄─ server
//! ```

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a blocked receive looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// The largest datagram relayed; SRT's are at most 1500 bytes.
const MAX_DATAGRAM_BYTES: usize = 65_536;

/// What happens to each datagram, the same in both directions.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// The share of datagrams dropped, from 0 to 1.
    pub loss: f64,
    pub delay: Duration,
    pub seed: u64,
}

/// Datagrams that crossed or were dropped, per direction.
#[derive(Debug, Default)]
pub struct Counters {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct UdpRelay {
    /// The port clients send to.
    pub port: u16,
    pub to_server: Arc<Counters>,
    pub to_client: Arc<Counters>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpRelay {
    /// Starts relaying between a client that sends to `port` and the
    /// server at `server`.
    pub fn start(server: SocketAddr, impairment: Impairment) -> Self {
        let listen = UdpSocket::bind("127.0.0.1:0").unwrap();
        let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
        upstream.connect(server).unwrap();
        for socket in [&listen, &upstream] {
            socket.set_read_timeout(Some(POLL)).unwrap();
        }
        let port = listen.local_addr().unwrap().port();
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let to_server = Arc::new(Counters::default());
        let to_client = Arc::new(Counters::default());

        let forward = Direction {
            from: listen.try_clone().unwrap(),
            to: upstream.try_clone().unwrap(),
            destination: Destination::Connected,
            client: client.clone(),
            counters: to_server.clone(),
            rng: StdRng::seed_from_u64(impairment.seed),
        };
        let back = Direction {
            from: upstream,
            to: listen,
            destination: Destination::Client,
            client,
            counters: to_client.clone(),
            rng: StdRng::seed_from_u64(impairment.seed.wrapping_add(1)),
        };
        let threads = [forward, back]
            .into_iter()
            .flat_map(|direction| direction.spawn(impairment, stop.clone()))
            .collect();
        Self {
            port,
            to_server,
            to_client,
            stop,
            threads,
        }
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Where a direction sends: the connected server, or the last client seen.
#[derive(Clone, Copy)]
enum Destination {
    Connected,
    Client,
}

struct Direction {
    from: UdpSocket,
    to: UdpSocket,
    destination: Destination,
    client: Arc<Mutex<Option<SocketAddr>>>,
    counters: Arc<Counters>,
    rng: StdRng,
}

impl Direction {
    /// Starts this direction's receiving thread and its delayed sender.
    fn spawn(mut self, impairment: Impairment, stop: Arc<AtomicBool>) -> [JoinHandle<()>; 2] {
        let (queue, delayed) = mpsc::channel::<(Instant, Vec<u8>)>();
        let to = self.to.try_clone().unwrap();
        let destination = self.destination;
        let client = self.client.clone();
        let sender = std::thread::spawn(move || {
            for (due, datagram) in delayed {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let _ = match destination {
                    Destination::Connected => to.send(&datagram),
                    Destination::Client => match *client.lock().unwrap() {
                        Some(address) => to.send_to(&datagram, address),
                        None => continue,
                    },
                };
            }
        });
        let receiver = std::thread::spawn(move || {
            let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES];
            while !stop.load(Ordering::Acquire) {
                let Ok((length, address)) = self.from.recv_from(&mut buffer) else {
                    continue;
                };
                if let Destination::Connected = self.destination {
                    *self.client.lock().unwrap() = Some(address);
                }
                if self.rng.random_bool(impairment.loss) {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                let due = Instant::now() + impairment.delay;
                if queue.send((due, buffer[..length].to_vec())).is_err() {
                    break;
                }
            }
        });
        [receiver, sender]
    }
}
