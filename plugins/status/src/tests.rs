use std::sync::Mutex;

use rr_config::Config;
use rr_plugin::Container;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A plugin answering fixed probes.
struct Fake {
    name: &'static str,
    health: Option<u16>,
    ready: Option<u16>,
}

#[async_trait]
impl Plugin for Fake {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn init(&mut self, _ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        Ok(Status::Enabled)
    }
    async fn health(&self) -> Option<Health> {
        self.health.map(|code| Health { code })
    }
    async fn ready(&self) -> Option<Health> {
        self.ready.map(|code| Health { code })
    }
}

/// Takes the directory out of the container.
struct Grab(Arc<Mutex<Option<Arc<PluginDirectory>>>>);

#[async_trait]
impl Plugin for Grab {
    fn name(&self) -> &'static str {
        "grab"
    }
    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        *self.0.lock().expect("lock") = Some(ctx.require::<Arc<PluginDirectory>>()?);
        Ok(Status::Enabled)
    }
}

async fn directory(fakes: Vec<Fake>) -> Arc<PluginDirectory> {
    let config = Config::from_yaml_str("version: '3'\n", &[]).expect("config");
    let mut container = Container::new(config);
    let slot = Arc::new(Mutex::new(None));
    container
        .register(Box::new(Grab(Arc::clone(&slot))))
        .expect("register");
    for fake in fakes {
        container.register(Box::new(fake)).expect("register");
    }
    container.init().await.expect("init");
    let directory = slot.lock().expect("lock").take().expect("grabbed");
    directory
}

fn fakes() -> Vec<Fake> {
    vec![
        Fake {
            name: "good",
            health: Some(200),
            ready: Some(200),
        },
        Fake {
            name: "busy",
            health: Some(200),
            ready: Some(503),
        },
        Fake {
            name: "teapot",
            health: Some(418),
            ready: None,
        },
    ]
}

fn reports(reply: &Reply) -> Vec<Report> {
    serde_json::from_str(&reply.body).expect("a JSON array of reports")
}

#[tokio::test]
async fn named_plugins_are_asked_and_the_worst_decides_the_code() {
    let checker = Checker::new(directory(fakes()).await, 501);
    let reply = checker
        .handle("GET", "/health", Some("plugin=good&plugin=busy"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(
        reports(&reply),
        vec![
            Report {
                plugin_name: "good".into(),
                error_message: String::new(),
                status_code: 200
            },
            Report {
                plugin_name: "busy".into(),
                error_message: String::new(),
                status_code: 200
            },
        ]
    );
    let reply = checker
        .handle("GET", "/ready", Some("plugin=good&plugin=busy"))
        .await;
    assert_eq!(reply.status, 501);
    assert_eq!(
        reports(&reply)[1],
        Report {
            plugin_name: "busy".into(),
            error_message: "internal server error, see logs".into(),
            status_code: 501
        }
    );
    assert_eq!(
        r#"[{"plugin_name":"good","error_message":"","status_code":200}]"#,
        checker
            .handle("GET", "/ready", Some("plugin=good"))
            .await
            .body
    );
}

#[tokio::test]
async fn unknown_and_hookless_plugins_are_skipped() {
    let checker = Checker::new(directory(fakes()).await, 503);
    let reply = checker.handle("GET", "/health", Some("plugin=nope")).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "[]"));
    // `grab` has no hooks; `teapot` has no ready hook.
    let reply = checker
        .handle("GET", "/ready", Some("plugin=grab&plugin=teapot"))
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "[]"));
}

#[tokio::test]
async fn without_a_plugin_parameter_every_plugin_with_the_hook_is_asked() {
    let checker = Checker::new(directory(fakes()).await, 503);
    let reply = checker.handle("GET", "/health", None).await;
    assert_eq!(reply.status, 200);
    let names: Vec<(String, u16, String)> = reports(&reply)
        .into_iter()
        .map(|r| (r.plugin_name, r.status_code, r.error_message))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&("teapot".into(), 418, "unexpected status code".into())));
    let reply = checker.handle("GET", "/ready", None).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reports(&reply).len(), 2);
}

#[tokio::test]
async fn other_paths_are_404_and_shutdown_answers_like_roadrunner() {
    let checker = Checker::new(directory(fakes()).await, 503);
    assert_eq!(checker.handle("GET", "/", None).await.status, 404);
    assert_eq!(checker.handle("GET", "/metrics", None).await.status, 404);
    assert_eq!(checker.handle("POST", "/health", None).await.status, 405);
    checker.shutting_down();
    let reply = checker.handle("GET", "/health", Some("plugin=good")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "service is shutting down\n")
    );
    assert_eq!(
        checker
            .handle("GET", "/ready", Some("plugin=good"))
            .await
            .status,
        503
    );
}

async fn init_status(yaml: &str) -> Result<Status, PluginError> {
    let config = Config::from_yaml_str(yaml, &[]).expect("config");
    let mut container = Container::new(config);
    container
        .register(Box::new(StatusPlugin::default()))
        .expect("register");
    match container.init().await {
        Ok(()) => Ok(Status::Enabled),
        Err(rr_plugin::ContainerError::NothingToServe) => Ok(Status::Disabled),
        Err(rr_plugin::ContainerError::Init { source, .. }) => Err(source),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn config_is_roadrunners() {
    assert_eq!(
        init_status("version: '3'\n").await.ok(),
        Some(Status::Disabled)
    );
    let err = init_status("version: '3'\nstatus:\n  unavailable_status_code: 501\n")
        .await
        .expect_err("no address");
    assert!(
        err.to_string().contains("`status.address` is required"),
        "{err}"
    );
    assert_eq!(
        init_status("version: '3'\nstatus:\n  address: 127.0.0.1:0\n")
            .await
            .ok(),
        Some(Status::Enabled)
    );
    let err = init_status("version: '3'\nstatus:\n  address: x\n  unavailable_status_code: 5000\n")
        .await
        .expect_err("bad code");
    assert!(err.to_string().contains("unavailable_status_code"), "{err}");
}

#[tokio::test]
async fn bind_errors_name_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let err = http::bind(&address, "status.address")
        .await
        .expect_err("taken");
    assert!(err.to_string().contains("`status.address`"), "{err}");
}

#[tokio::test]
async fn the_server_answers_http_and_stops() {
    let listener = http::bind("127.0.0.1:0", "status.address")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let checker = Arc::new(Checker::new(directory(fakes()).await, 503));
    let handler: http::Handler = Arc::new(move |method, path, query| {
        let checker = Arc::clone(&checker);
        Box::pin(async move { checker.handle(&method, &path, query.as_deref()).await })
    });
    let server = http::HttpServer::start(listener, handler);
    let get = |target: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    };
    let response = get("/ready?plugin=busy").await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.ends_with(r#"[{"plugin_name":"busy","error_message":"internal server error, see logs","status_code":503}]"#), "{response}");
    assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    server.stop().await;
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

/// A jobs plugin with two pipelines, one of them on a broker that is down.
struct FakeJobs;

#[async_trait]
impl JobsReporter for FakeJobs {
    async fn pipeline_states(&self) -> Vec<rr_plugin::PipelineState> {
        vec![
            rr_plugin::PipelineState {
                pipeline: "emails".into(),
                priority: 10,
                ready: true,
                queue: "emails".into(),
                active: 3,
                delayed: 1,
                reserved: 0,
                driver: "memory".into(),
                error_message: String::new(),
            },
            rr_plugin::PipelineState {
                pipeline: "orders".into(),
                driver: "amqp".into(),
                error_message: "connection refused".into(),
                ..Default::default()
            },
        ]
    }
}

#[tokio::test]
async fn jobs_lists_every_pipeline_with_roadrunners_field_names() {
    let checker = Checker::new(directory(fakes()).await, 501).with_jobs(Some(Arc::new(FakeJobs)));
    let reply = checker.handle("GET", "/jobs", None).await;
    assert_eq!(
        (reply.status, reply.content_type),
        (200, "application/json")
    );
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("json");
    assert_eq!(
        body,
        serde_json::json!([
            {"pipeline": "emails", "priority": 10, "ready": true, "queue": "emails",
             "active": 3, "delayed": 1, "reserved": 0, "driver": "memory", "error_message": ""},
            {"pipeline": "orders", "priority": 0, "ready": false, "queue": "",
             "active": 0, "delayed": 0, "reserved": 0, "driver": "amqp",
             "error_message": "connection refused"},
        ])
    );
    checker.shutting_down();
    let reply = checker.handle("GET", "/jobs", None).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "service is shutting down\n")
    );
}

#[tokio::test]
async fn jobs_without_a_jobs_plugin_is_unavailable() {
    let checker = Checker::new(directory(fakes()).await, 501);
    let reply = checker.handle("GET", "/jobs", None).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (501, "jobs plugin not found\n")
    );
}
