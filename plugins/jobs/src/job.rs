//! A job inside the server, what the worker receives for it, and the
//! handle a driver gives to acknowledge it.

use std::sync::Arc;

use bytes::Bytes;
use rr_plugin::async_trait;
use serde::Serialize;

use crate::driver::DriverError;
use crate::proto::{self, Headers};

/// A job as drivers and pollers handle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id (the producer's UUID).
    pub id: String,
    /// Its name (usually the PHP class).
    pub name: String,
    /// The payload, sent to the worker unchanged.
    pub payload: Bytes,
    /// Headers (name → values).
    pub headers: Headers,
    /// The pipeline it belongs to.
    pub pipeline: String,
    /// Lower runs first.
    pub priority: i64,
    /// Seconds to wait before it is delivered.
    pub delay: i64,
    /// Ack on receipt, before the worker runs.
    pub auto_ack: bool,
}

impl Job {
    /// A job from the RPC message; `priority` 0 becomes `pipeline_priority`.
    pub fn from_proto(job: proto::Job, pipeline_priority: i64) -> Job {
        let options = job.options.unwrap_or_default();
        Job {
            id: job.id,
            name: job.job,
            payload: Bytes::from(job.payload),
            headers: job.headers,
            pipeline: options.pipeline,
            priority: if options.priority == 0 {
                pipeline_priority
            } else {
                options.priority
            },
            delay: options.delay.max(0),
            auto_ack: options.auto_ack,
        }
    }
}

/// The context JSON sent with a job: `id`, `job`, `driver`, `headers`
/// (`null` when there are none, like Go's nil map), `pipeline`, and
/// `queue` for drivers that have one.
pub fn context(job: &Job, driver: &str, queue: Option<&str>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Context<'a> {
        id: &'a str,
        job: &'a str,
        driver: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        queue: Option<&'a str>,
        headers: Option<&'a Headers>,
        pipeline: &'a str,
    }
    let context = Context {
        id: &job.id,
        job: &job.name,
        driver,
        queue,
        headers: (!job.headers.is_empty()).then_some(&job.headers),
        pipeline: &job.pipeline,
    };
    // Serializing strings and string maps cannot fail.
    serde_json::to_vec(&context).unwrap_or_default()
}

/// How a delivered job is settled with its driver.
#[async_trait]
pub trait Acknowledger: Send + Sync {
    /// Done: remove it.
    async fn ack(&self, job: &Job) -> Result<(), DriverError>;
    /// Failed: drop it, or deliver it again after `delay` seconds.
    async fn nack(&self, job: &Job, requeue: bool, delay: i64) -> Result<(), DriverError>;
    /// Deliver it again after `delay` seconds with `headers` merged in.
    async fn requeue(&self, job: Job, headers: Headers, delay: i64) -> Result<(), DriverError>;
    /// Whether its pipeline was stopped or destroyed since delivery.
    fn is_stopped(&self) -> bool;
}

/// A job handed from a driver to the pollers.
pub struct Delivery {
    /// The job.
    pub job: Job,
    /// The driver's name (`memory`, `beanstalk`, ...).
    pub driver: &'static str,
    /// The broker queue, for drivers that have one.
    pub queue: Option<String>,
    /// Settles it.
    pub ack: Arc<dyn Acknowledger>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("job", &self.job)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_has_roadrunners_keys() {
        let mut job = Job {
            id: "1".into(),
            name: "App\\Ping".into(),
            payload: Bytes::new(),
            headers: Headers::new(),
            pipeline: "p".into(),
            priority: 10,
            delay: 0,
            auto_ack: false,
        };
        assert_eq!(
            String::from_utf8(context(&job, "memory", None)).expect("utf8"),
            r#"{"id":"1","job":"App\\Ping","driver":"memory","headers":null,"pipeline":"p"}"#
        );
        job.headers.insert("a".into(), vec!["b".into()]);
        assert_eq!(
            String::from_utf8(context(&job, "beanstalk", Some("tube"))).expect("utf8"),
            r#"{"id":"1","job":"App\\Ping","driver":"beanstalk","queue":"tube","headers":{"a":["b"]},"pipeline":"p"}"#
        );
    }
}
