//! The plugins of the stock `rr` binary, in one place (RoadRunner's
//! `container/plugins.go`); `rr build` makes binaries with fewer or more. The order breaks ties between plugins of equal
//! weight that do not depend on each other.

use rr_plugin::Plugin;

/// A fresh instance of every plugin this binary ships.
pub fn all() -> Vec<Box<dyn Plugin>> {
    vec![
        Box::new(rr_logger::LoggerPlugin),
        Box::new(rr_rpc::RpcPlugin::default()),
        Box::new(rr_metrics::MetricsPlugin::default()),
        Box::new(rr_status::StatusPlugin::default()),
        Box::new(rr_server::ServerPlugin::default()),
        Box::new(rr_ticker::TickerPlugin::default()),
        Box::new(rr_kv::KvPlugin::default()),
        Box::new(rr_http::HttpPlugin::default()),
        Box::new(rr_jobs::JobsPlugin::default()),
    ]
}

/// The names of the plugins the stock binary ships.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name()).collect()
}
