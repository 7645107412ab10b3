//! The `jobs` RPC service: RoadRunner's `jobs.v1` methods over protobuf
//! (what the official PHP client sends).
//!
//! | method | argument → reply |
//! |---|---|
//! | `Push` | `PushRequest` → `Empty` |
//! | `PushBatch` | `PushBatchRequest` → `Empty` (stops at the first failure) |
//! | `Pause`, `Resume` | `Pipelines` → `Empty` |
//! | `List` | `Empty` → `Pipelines` |
//! | `Declare` | `DeclareRequest` → `Empty` |
//! | `Destroy` | `Pipelines` → `Pipelines` |
//! | `Stat` | `Empty` → `Stats` |

use std::sync::Arc;

use bytes::Bytes;
use rr_plugin::{async_trait, RpcService};

use crate::core::Core;
use crate::proto::{DeclareRequest, Pipelines, PushBatchRequest, PushRequest, Stats};

/// goridge's protobuf codec flag.
pub const CODEC_PROTO: u8 = 0x80;

/// The service.
pub struct JobsService {
    core: Arc<Core>,
}

impl JobsService {
    /// A service over `core`.
    pub fn new(core: Arc<Core>) -> JobsService {
        JobsService { core }
    }

    /// Handles `method` with a protobuf `body`; the protobuf reply.
    pub async fn call_proto(&self, method: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let decode = |e: crate::proto::ProtoError| format!("jobs.{method}: {e}");
        match method {
            "Push" => {
                let request = PushRequest::decode(body).map_err(decode)?;
                self.core.push(request.job).await?;
                Ok(Vec::new())
            }
            "PushBatch" => {
                let request = PushBatchRequest::decode(body).map_err(decode)?;
                for job in request.jobs {
                    self.core.push(Some(job)).await?;
                }
                Ok(Vec::new())
            }
            "Pause" => {
                let request = Pipelines::decode(body).map_err(decode)?;
                self.core.pause(&request.pipelines).await?;
                Ok(Vec::new())
            }
            "Resume" => {
                let request = Pipelines::decode(body).map_err(decode)?;
                self.core.resume(&request.pipelines).await?;
                Ok(Vec::new())
            }
            "List" => Ok(Pipelines {
                pipelines: self.core.list(),
            }
            .encode()),
            "Declare" => {
                let request = DeclareRequest::decode(body).map_err(decode)?;
                self.core.declare(request.pipeline).await?;
                Ok(Vec::new())
            }
            "Destroy" => {
                let request = Pipelines::decode(body).map_err(decode)?;
                let pipelines = self.core.destroy(&request.pipelines).await?;
                Ok(Pipelines { pipelines }.encode())
            }
            "Stat" => Ok(Stats {
                stats: self.core.stat().await?,
            }
            .encode()),
            _ => Err(format!("rpc: can't find method jobs.{method}")),
        }
    }
}

#[async_trait]
impl RpcService for JobsService {
    async fn call(&self, method: &str, codec: u8, body: Bytes) -> Result<Bytes, String> {
        if codec & CODEC_PROTO == 0 {
            return Err(format!(
                "codec 0x{codec:02x} is not supported by the jobs service; use protobuf (0x80) with the jobs.v1 messages"
            ));
        }
        self.call_proto(method, &body).await.map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::proto::{Job, Options};

    fn service() -> JobsService {
        let core = Arc::new(Core::new(100, &["a".to_owned()], Duration::from_secs(5)));
        JobsService::new(core)
    }

    fn push(pipeline: &str, id: &str) -> Vec<u8> {
        PushRequest {
            job: Some(Job {
                job: "n".into(),
                id: id.into(),
                payload: b"x".to_vec(),
                options: Some(Options {
                    pipeline: pipeline.into(),
                    ..Options::default()
                }),
                ..Job::default()
            }),
        }
        .encode()
    }

    #[tokio::test]
    async fn declare_push_list_stat_destroy() {
        let s = service();
        let declare = |name: &str| DeclareRequest {
            pipeline: [("driver", "memory"), ("name", name), ("priority", "3")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        s.call_proto("Declare", &declare("a").encode())
            .await
            .expect("declare");
        let err = s
            .call_proto("Declare", &declare("a").encode())
            .await
            .expect_err("exists");
        assert_eq!(err, "pipeline already exists, name: a, driver: memory");
        let err = s
            .call_proto(
                "Declare",
                &DeclareRequest {
                    pipeline: [("name".to_owned(), "b".to_owned())].into(),
                }
                .encode(),
            )
            .await
            .expect_err("no driver");
        assert_eq!(
            err,
            "no associated driver with the pipeline, pipeline name: b"
        );
        s.call_proto("Push", &push("a", "1")).await.expect("push");
        assert_eq!(
            s.call_proto("Push", &push("zzz", "1")).await,
            Err("no such pipeline, requested: zzz".to_owned())
        );
        assert_eq!(
            s.call_proto("Push", &push("a", "")).await,
            Err("empty ID field not allowed".to_owned())
        );
        assert_eq!(
            s.call_proto("Push", &[]).await,
            Err("job is required".to_owned())
        );
        let list =
            Pipelines::decode(&s.call_proto("List", &[]).await.expect("list")).expect("decode");
        assert_eq!(list.pipelines, ["a"]);
        let stats = Stats::decode(&s.call_proto("Stat", &[]).await.expect("stat")).expect("decode");
        assert_eq!(stats.stats[0].priority, 3);
        assert!(stats.stats[0].ready, "a is in consume");
        let names = Pipelines {
            pipelines: vec!["a".into()],
        };
        let destroyed = s
            .call_proto("Destroy", &names.encode())
            .await
            .expect("destroy");
        assert_eq!(Pipelines::decode(&destroyed).expect("decode"), names);
        assert!(s.call_proto("Pause", &names.encode()).await.is_err());
        assert!(s
            .call("List", 0x08, Bytes::new())
            .await
            .is_err_and(|e| e.contains("use protobuf")));
    }
}
