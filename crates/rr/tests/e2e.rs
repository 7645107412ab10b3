//! The end-to-end tests, one module per area, linked into one test binary:
//! every separate binary links all of rr and its drivers again, which cost
//! minutes of linking and gigabytes of disk per run.

#[macro_use]
mod support;

mod browser_e2e;
mod builder_e2e;
mod config_errors_e2e;
mod http_e2e;
mod http_stream_e2e;
mod jobs_amqp_e2e;
mod jobs_boltdb_e2e;
mod jobs_durability_e2e;
mod jobs_e2e;
mod jobs_nats_e2e;
mod kv_e2e;
mod observability_e2e;
mod on_init_e2e;
mod pool_faults_e2e;
mod relays_e2e;
mod rpc_e2e;
mod schedules_cluster_e2e;
mod schedules_control_e2e;
mod schedules_e2e;
mod schedules_recovery_e2e;
mod security_e2e;
mod ticker_e2e;
mod worker_faults_e2e;
