//! Worker states, numbered as RoadRunner exposes them over RPC.

use std::fmt;

/// The state of one worker. The numbers are RoadRunner's (`status` in
/// `informer.Workers`), so management clients read them unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WorkerStatus {
    /// Spawned, handshake not finished.
    Inactive = 0,
    /// Idle, waiting for work.
    Ready = 1,
    /// Executing a payload.
    Working = 2,
    /// Must not take more work; stopped when released.
    Invalid = 3,
    /// A stop was requested, waiting for the process to exit.
    Stopping = 4,
    /// The process exited.
    Stopped = 5,
    /// Stopped on purpose (reset or destroy); not replaced.
    Destroyed = 6,
    /// Executed its `max_jobs`; recycled.
    MaxJobsReached = 7,
    /// Failed a round trip and was killed.
    Errored = 8,
    /// Idle longer than `supervisor.idle_ttl`.
    IdleTtlReached = 9,
    /// Older than `supervisor.ttl`.
    TtlReached = 10,
    /// Resident memory above `supervisor.max_worker_memory`.
    MaxMemoryReached = 11,
    /// Killed because one exec ran past `supervisor.exec_ttl`.
    ExecTtlReached = 12,
}

impl WorkerStatus {
    const ALL: [WorkerStatus; 13] = [
        WorkerStatus::Inactive,
        WorkerStatus::Ready,
        WorkerStatus::Working,
        WorkerStatus::Invalid,
        WorkerStatus::Stopping,
        WorkerStatus::Stopped,
        WorkerStatus::Destroyed,
        WorkerStatus::MaxJobsReached,
        WorkerStatus::Errored,
        WorkerStatus::IdleTtlReached,
        WorkerStatus::TtlReached,
        WorkerStatus::MaxMemoryReached,
        WorkerStatus::ExecTtlReached,
    ];

    /// The state for a RoadRunner status number, if it is one.
    pub fn from_u8(value: u8) -> Option<WorkerStatus> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// RoadRunner's name for the state (`statusStr` over RPC).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Inactive => "inactive",
            WorkerStatus::Ready => "ready",
            WorkerStatus::Working => "working",
            WorkerStatus::Invalid => "invalid",
            WorkerStatus::Stopping => "stopping",
            WorkerStatus::Stopped => "stopped",
            WorkerStatus::Destroyed => "destroyed",
            WorkerStatus::MaxJobsReached => "maxJobsReached",
            WorkerStatus::Errored => "errored",
            WorkerStatus::IdleTtlReached => "idleTTLReached",
            WorkerStatus::TtlReached => "ttlReached",
            WorkerStatus::MaxMemoryReached => "maxMemoryReached",
            WorkerStatus::ExecTtlReached => "execTTLReached",
        }
    }
}

impl fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_match_roadrunner() {
        for status in WorkerStatus::ALL {
            assert_eq!(WorkerStatus::from_u8(status as u8), Some(status));
        }
        assert_eq!(WorkerStatus::ExecTtlReached as u8, 12);
        assert_eq!(WorkerStatus::from_u8(13), None);
    }
}
