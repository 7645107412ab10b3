//! Lanes: one single-threaded runtime per core, each owning some workers.
//!
//! A worker round trip is a ping-pong between one server thread and one PHP
//! process. It is fastest when the server thread sleeps right after writing
//! the request: the kernel then runs PHP on the same CPU and wakes the thread
//! there when the reply arrives, with no cross-CPU wake-up. A work-stealing
//! runtime breaks that pairing (its threads pick up other work and wake each
//! other), which on a 2-core VM costs more than half the throughput. So the
//! server runs one current-thread runtime per lane, every worker belongs to
//! one lane, and its IO runs only there. A caller on the same lane does the
//! round trip inline; a caller elsewhere hands it to the worker's lane.
//!
//! Lanes are installed once per process ([`Lanes::install`]), one per core.
//! A pool either spreads its workers over those (several workers per lane
//! when it has more workers than cores) or adds lanes until it has one per
//! worker ([`Lanes::ensure`]); see [`LanePlacement`](crate::LanePlacement).
//! An idle lane is a sleeping thread, so spare lanes cost little. Without lanes (unit tests,
//! embedders with their own runtime) the pool runs every worker on the
//! caller's runtime, as a plain tokio program would.

use std::cell::Cell;
use std::future::Future;
use std::sync::{Mutex, OnceLock, RwLock};

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

static LANES: OnceLock<Lanes> = OnceLock::new();

thread_local! {
    static CURRENT_LANE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The lanes of this process.
#[derive(Debug)]
pub struct Lanes {
    /// Lanes installed at start, one per core.
    cores: usize,
    handles: RwLock<Vec<Handle>>,
    /// Dropping these ends the lane threads (lane 0 is the main thread's).
    stops: Mutex<Vec<oneshot::Sender<()>>>,
}

impl Lanes {
    /// Starts `count` lanes (at least one) and installs them for this
    /// process. Lane 0 is the returned runtime, to be driven by the calling
    /// thread with `block_on`; the others get a thread each. Fails if lanes
    /// are already installed.
    pub fn install(count: usize) -> std::io::Result<Runtime> {
        let main = Builder::new_current_thread().enable_all().build()?;
        let lanes = Lanes {
            cores: count.max(1),
            handles: RwLock::new(vec![main.handle().clone()]),
            stops: Mutex::new(Vec::new()),
        };
        LANES
            .set(lanes)
            .map_err(|_| std::io::Error::other("lanes are already installed"))?;
        CURRENT_LANE.with(|c| c.set(Some(0)));
        if let Some(lanes) = Lanes::get() {
            lanes.ensure(count)?;
        }
        Ok(main)
    }

    /// The installed lanes, if any.
    pub fn get() -> Option<&'static Lanes> {
        LANES.get()
    }

    /// Adds lanes until there are at least `count`.
    pub fn ensure(&self, count: usize) -> std::io::Result<()> {
        let mut handles = self.handles.write().unwrap_or_else(|p| p.into_inner());
        while handles.len() < count {
            let lane = handles.len();
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("rr-lane-{lane}"))
                .spawn(move || {
                    CURRENT_LANE.with(|c| c.set(Some(lane)));
                    runtime.block_on(async {
                        let _ = stop_rx.await;
                    });
                })?;
            handles.push(handle);
            self.stops
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(stop_tx);
        }
        Ok(())
    }

    /// How many lanes were installed at start (one per core).
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// How many lanes there are.
    pub fn count(&self) -> usize {
        self.handles.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The runtime handle of lane `lane` (modulo the lane count).
    pub fn handle(&self, lane: usize) -> Handle {
        let handles = self.handles.read().unwrap_or_else(|p| p.into_inner());
        handles[lane % handles.len()].clone()
    }

    /// Runs `future` on lane `lane` and waits for its output.
    pub async fn run_on<F>(&self, lane: usize, future: F) -> Result<F::Output, LaneGone>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle(lane).spawn(future).await.map_err(|_| LaneGone)
    }
}

/// The lane a task was handed to ended before the task did.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the lane running this work has stopped")]
pub struct LaneGone;

/// The lane the calling thread drives, when lanes are installed.
pub fn current_lane() -> Option<usize> {
    CURRENT_LANE.with(Cell::get)
}
