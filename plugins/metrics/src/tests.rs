use std::sync::Mutex as StdMutex;

use prometheus_parse::{Scrape, Value};
use rr_plugin::{Container, HistogramSample};
use rr_pool::{WorkerInfo, WorkerStatus};

use super::*;

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{metric} is not a plain sample: {other:?}"),
        })
}

/// A plugin with two workers and its own metrics.
struct Pooled;

#[async_trait]
impl Plugin for Pooled {
    fn name(&self) -> &'static str {
        "ticker"
    }
    async fn init(&mut self, _ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        Ok(Status::Enabled)
    }
    fn workers(&self) -> Option<Vec<WorkerInfo>> {
        let worker = |pid, status, num_execs| WorkerInfo {
            pid,
            status,
            num_execs,
            created: std::time::SystemTime::now(),
            memory_bytes: 1024 * u64::from(pid),
        };
        Some(vec![
            worker(10, WorkerStatus::Ready, 3),
            worker(11, WorkerStatus::Working, 4),
        ])
    }
    fn metrics(&self) -> Vec<MetricFamily> {
        vec![
            MetricFamily {
                name: "rr_ticker_ticks_sent_total".into(),
                help: "Ticks \\ sent\nreally.".into(),
                kind: MetricKind::Counter(vec![(Vec::new(), 7.0)]),
            },
            MetricFamily {
                name: "rr_ticker_tick_duration_seconds".into(),
                help: "Durations.".into(),
                kind: MetricKind::Histogram(vec![(
                    Vec::new(),
                    HistogramSample {
                        buckets: vec![(0.001, 1), (0.01, 5)],
                        sum: 0.03,
                        count: 7,
                    },
                )]),
            },
            MetricFamily {
                name: "bad name".into(),
                help: String::new(),
                kind: MetricKind::Gauge(vec![(Vec::new(), 1.0)]),
            },
            MetricFamily {
                name: "rr_workers_total".into(),
                help: "a duplicate".into(),
                kind: MetricKind::Gauge(vec![(Vec::new(), 1.0)]),
            },
        ]
    }
}

struct Grab(Arc<StdMutex<Option<Arc<PluginDirectory>>>>);

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

async fn plugins() -> Vec<SharedPlugin> {
    let config = rr_config::Config::from_yaml_str("version: '3'\n", &[]).expect("config");
    let mut container = Container::new(config);
    let slot = Arc::new(StdMutex::new(None));
    container
        .register(Box::new(Grab(Arc::clone(&slot))))
        .expect("register");
    container.register(Box::new(Pooled)).expect("register");
    container.init().await.expect("init");
    let directory = slot.lock().expect("lock").take().expect("grabbed");
    directory.all()
}

fn rpc(service: &MetricsRpc, method: &str, body: &str) -> Result<String, String> {
    service
        .call_json(method, body.as_bytes())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[tokio::test]
async fn the_exposition_parses_and_carries_pools_plugins_and_the_app() {
    let app = Arc::new(AppMetrics::default());
    let service = MetricsRpc::new(Arc::clone(&app));
    rpc(&service, "Declare", r#"{"name":"orders","collector":{"namespace":"app","type":"counter","help":"Orders.","labels":["kind"]}}"#).expect("declare");
    rpc(
        &service,
        "Declare",
        r#"{"name":"latency","collector":{"type":"histogram","help":"L.","buckets":[0.1,1]}}"#,
    )
    .expect("declare");
    rpc(
        &service,
        "Declare",
        r#"{"name":"size","collector":{"type":"summary","labels":["q"]}}"#,
    )
    .expect("declare");
    rpc(
        &service,
        "Add",
        r#"{"name":"orders","value":2,"labels":["a \"b\"\\c"]}"#,
    )
    .expect("add");
    rpc(
        &service,
        "Add",
        r#"{"name":"orders","value":1.5,"labels":["plain"]}"#,
    )
    .expect("add");
    for v in [0.05, 0.5, 5.0] {
        rpc(
            &service,
            "Observe",
            &format!(r#"{{"name":"latency","value":{v}}}"#),
        )
        .expect("observe");
    }
    rpc(
        &service,
        "Observe",
        r#"{"name":"size","value":3,"labels":["x"]}"#,
    )
    .expect("observe");

    let text = render(&plugins().await, &app);
    let scrape = parse(&text);
    assert_eq!(
        value(&scrape, "rr_workers_total", &[("plugin", "ticker")]),
        Some(2.0),
        "{text}"
    );
    for (state, n) in [("ready", 1.0), ("working", 1.0), ("invalid", 0.0)] {
        assert_eq!(
            value(
                &scrape,
                "rr_workers_by_state",
                &[("plugin", "ticker"), ("state", state)]
            ),
            Some(n)
        );
    }
    assert_eq!(
        value(&scrape, "rr_worker_memory_bytes", &[("pid", "11")]),
        Some(11264.0)
    );
    assert_eq!(
        value(&scrape, "rr_worker_execs_total", &[("pid", "10")]),
        Some(3.0)
    );
    assert_eq!(value(&scrape, "rr_ticker_ticks_sent_total", &[]), Some(7.0));
    assert_eq!(
        value(&scrape, "app_orders", &[("kind", "plain")]),
        Some(1.5)
    );
    assert!(
        text.contains("app_orders{kind=\"a \\\"b\\\"\\\\c\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("# HELP rr_ticker_ticks_sent_total Ticks \\\\ sent\\nreally.\n"),
        "{text}"
    );
    assert!(
        !text.contains("bad name") && !text.contains("a duplicate"),
        "{text}"
    );

    let histogram = |name: &str| {
        scrape
            .samples
            .iter()
            .find_map(|s| match (&s.value, s.metric == name) {
                (Value::Histogram(h), true) => Some(h.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no histogram {name}\n{text}"))
    };
    let ticks = histogram("rr_ticker_tick_duration_seconds");
    let counts: Vec<(f64, f64)> = ticks.iter().map(|b| (b.less_than, b.count)).collect();
    assert_eq!(counts, [(0.001, 1.0), (0.01, 5.0), (f64::INFINITY, 7.0)]);
    assert_eq!(
        value(&scrape, "rr_ticker_tick_duration_seconds_count", &[]),
        Some(7.0)
    );
    let latency = histogram("latency");
    let counts: Vec<(f64, f64)> = latency.iter().map(|b| (b.less_than, b.count)).collect();
    assert_eq!(counts, [(0.1, 1.0), (1.0, 2.0), (f64::INFINITY, 3.0)]);
    assert_eq!(value(&scrape, "latency_sum", &[]), Some(5.55));
    assert_eq!(value(&scrape, "size_count", &[("q", "x")]), Some(1.0));
    assert!(text.contains("# TYPE size summary\n"), "{text}");
}

#[tokio::test]
async fn rpc_follows_roadrunners_semantics_and_errors() {
    let app = Arc::new(AppMetrics::default());
    let service = MetricsRpc::new(Arc::clone(&app));
    let call = |m: &str, b: &str| rpc(&service, m, b);
    assert_eq!(
        call(
            "Declare",
            r#"{"name":"g","collector":{"type":"gauge","labels":["a","b"]}}"#
        ),
        Ok("true".into())
    );
    assert_eq!(
        call("Declare", r#"{"name":"c","collector":{"type":"counter"}}"#),
        Ok("true".into())
    );
    assert_eq!(
        call("Declare", r#"{"name":"c","collector":{"type":"counter"}}"#),
        Err("tried to register existing collector with the name `c`".into())
    );
    assert_eq!(
        call("Declare", r#"{"name":"x","collector":{"type":"meter"}}"#),
        Err("unknown collector type meter".into())
    );
    assert!(call("Declare", r#"{"name":"9x","collector":{"type":"gauge"}}"#).is_err());
    assert!(call(
        "Declare",
        r#"{"name":"h","collector":{"type":"histogram","labels":["le"]}}"#
    )
    .is_err());
    assert!(call(
        "Declare",
        r#"{"name":"h","collector":{"type":"histogram","buckets":[2,1]}}"#
    )
    .is_err());
    assert_eq!(
        call("Set", r#"{"name":"g","value":5,"labels":["x","y"]}"#),
        Ok("true".into())
    );
    assert_eq!(
        call("Sub", r#"{"name":"g","value":2,"labels":["x","y"]}"#),
        Ok("true".into())
    );
    assert_eq!(
        call("Add", r#"{"name":"g","value":0.5,"labels":["x","y"]}"#),
        Ok("true".into())
    );
    assert_eq!(
        call("Set", r#"{"name":"g","value":1}"#),
        Err("required labels for collector g".into())
    );
    assert_eq!(
        call("Set", r#"{"name":"g","value":1,"labels":["x"]}"#),
        Err(r#"inconsistent label cardinality: expected 2 label values but got 1 in ["x"]"#.into())
    );
    assert_eq!(
        call("Add", r#"{"name":"nope","value":1}"#),
        Err("undefined collector nope, try first Declare the desired collector".into())
    );
    assert_eq!(
        call("Sub", r#"{"name":"c","value":1}"#),
        Err("collector `c` does not support method `Sub`".into())
    );
    assert_eq!(
        call("Observe", r#"{"name":"c","value":1}"#),
        Err("collector `c` does not support method `Observe`".into())
    );
    assert_eq!(
        call("Add", r#"{"name":"c","value":-1}"#),
        Err("counter cannot decrease in value".into())
    );
    assert_eq!(call("Add", r#"{"Name":"c","Value":3}"#), Ok("true".into()));
    assert!(call("Add", "not json")
        .expect_err("bad json")
        .contains("invalid JSON"));
    assert!(call("Frobnicate", "{}").is_err());

    let text = render(&[], &app);
    let scrape = parse(&text);
    assert_eq!(
        value(&scrape, "g", &[("a", "x"), ("b", "y")]),
        Some(3.5),
        "{text}"
    );
    assert_eq!(value(&scrape, "c", &[]), Some(3.0));

    assert_eq!(call("Unregister", r#""c""#), Ok("true".into()));
    assert_eq!(
        call("Unregister", r#""c""#),
        Err("undefined collector c".into())
    );
    assert!(!render(&[], &app).contains("# TYPE c "));

    let err = service
        .call("Add", 0x20, Bytes::from_static(b"{}"))
        .await
        .expect_err("gob");
    assert!(err.contains("use JSON"), "{err}");
    assert_eq!(
        service
            .call(
                "Set",
                CODEC_JSON,
                Bytes::from_static(br#"{"name":"g","value":1,"labels":["p","q"]}"#)
            )
            .await,
        Ok(Bytes::from_static(b"true"))
    );
}

#[test]
fn a_declared_plain_collector_is_exposed_at_zero_and_values_format_like_go() {
    let app = AppMetrics::default();
    let spec = CollectorSpec {
        kind: "gauge".into(),
        namespace: "app".into(),
        subsystem: "queue".into(),
        ..CollectorSpec::default()
    };
    app.declare("depth", &spec).expect("declare");
    assert!(render(&[], &app).contains("\napp_queue_depth 0\n"));
    assert_eq!(exposition::format_value(f64::INFINITY), "+Inf");
    assert_eq!(exposition::format_value(f64::NAN), "NaN");
    assert_eq!(exposition::format_value(0.25), "0.25");
    assert!(exposition::valid_metric_name("a:b_c1") && !exposition::valid_metric_name("1a"));
    assert!(!exposition::valid_label_name("__x") && exposition::valid_label_name("_x"));
}

async fn init_metrics(yaml: &str) -> Result<(), String> {
    let config = rr_config::Config::from_yaml_str(yaml, &[]).expect("config");
    let mut container = Container::new(config);
    container
        .register(Box::new(MetricsPlugin::default()))
        .expect("register");
    container.init().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn config_declares_collectors_and_names_bad_keys() {
    assert!(
        init_metrics("version: '3'\n").await.is_err(),
        "disabled: nothing to serve"
    );
    init_metrics("version: '3'\nmetrics:\n  collect:\n    app_x:\n      type: histogram\n      buckets: [1, 2]\n").await.expect("valid");
    let err = init_metrics("version: '3'\nmetrics:\n  collect:\n    app_x:\n      type: meter\n")
        .await
        .expect_err("bad type");
    assert!(
        err.contains("`metrics.collect.app_x`: unknown collector type meter"),
        "{err}"
    );
}

#[tokio::test]
async fn bind_errors_name_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let err = http::bind(&address, "metrics.address")
        .await
        .expect_err("taken");
    assert!(err.to_string().contains("`metrics.address`"), "{err}");
}
