//! The container: orders plugins by their dependencies and runs their lifecycle.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rr_config::Config;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{ContainerError, PluginError};
use crate::management::PluginDirectory;
use crate::plugin::{InitContext, Plugin, ServeContext, Services, SharedPlugin, Status};

/// Holds the registered plugins and drives init → serve → stop.
pub struct Container {
    config: Arc<Config>,
    registered: Vec<Box<dyn Plugin>>,
    /// Enabled plugins in dependency (serve) order.
    enabled: Vec<SharedPlugin>,
    failures_tx: mpsc::UnboundedSender<(&'static str, PluginError)>,
    failures_rx: mpsc::UnboundedReceiver<(&'static str, PluginError)>,
}

impl Container {
    /// A container over a loaded configuration.
    pub fn new(config: Config) -> Container {
        let (failures_tx, failures_rx) = mpsc::unbounded_channel();
        Container {
            config: Arc::new(config),
            registered: Vec::new(),
            enabled: Vec::new(),
            failures_tx,
            failures_rx,
        }
    }

    /// Adds a plugin. Registration order breaks ties between plugins of equal weight.
    pub fn register(&mut self, plugin: Box<dyn Plugin>) -> Result<(), ContainerError> {
        if self.registered.iter().any(|p| p.name() == plugin.name()) {
            return Err(ContainerError::Duplicate(plugin.name()));
        }
        self.registered.push(plugin);
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Initialises every plugin in dependency order. A plugin that reports
    /// [`Status::Disabled`] is left out; an error stops everything.
    pub async fn init(&mut self) -> Result<(), ContainerError> {
        let order = dependency_order(&self.registered)?;
        let mut plugins: Vec<Option<Box<dyn Plugin>>> = std::mem::take(&mut self.registered)
            .into_iter()
            .map(Some)
            .collect();
        let mut services = Services::default();
        // The container's own service: the enabled plugins, for management
        // plugins (informer, resetter, status, metrics).
        let directory = Arc::new(PluginDirectory::default());
        services.offer_builtin(Arc::clone(&directory));
        for plugin in plugins.iter().flatten() {
            for key in plugin.provides() {
                services.providers.insert(key.id, plugin.name());
            }
        }
        for index in order {
            let Some(mut plugin) = plugins[index].take() else {
                continue;
            };
            let name = plugin.name();
            let mut ctx = InitContext {
                plugin: name,
                config: &self.config,
                services: &mut services,
            };
            match plugin.init(&mut ctx).await {
                Ok(Status::Enabled) => {
                    tracing::debug!(target: "container", plugin = name, "plugin initialised");
                    let plugin: SharedPlugin = Arc::from(plugin);
                    directory.add(Arc::clone(&plugin));
                    self.enabled.push(plugin);
                }
                Ok(Status::Disabled) => {
                    tracing::debug!(target: "container", plugin = name, "plugin disabled");
                    for key in plugin.provides() {
                        services.unavailable.insert(key.id, name);
                    }
                }
                Err(source) => {
                    return Err(ContainerError::Init {
                        plugin: name,
                        source,
                    })
                }
            }
        }
        if self.enabled.is_empty() {
            return Err(ContainerError::NothingToServe);
        }
        Ok(())
    }

    /// Serves every enabled plugin in dependency order.
    pub async fn serve(&mut self) -> Result<(), ContainerError> {
        for plugin in &self.enabled {
            let ctx = ServeContext {
                plugin: plugin.name(),
                failures: self.failures_tx.clone(),
            };
            plugin
                .serve(ctx)
                .await
                .map_err(|source| ContainerError::Serve {
                    plugin: plugin.name(),
                    source,
                })?;
            tracing::debug!(target: "container", plugin = plugin.name(), "plugin serving");
        }
        Ok(())
    }

    /// Waits for the first fatal error a serving plugin reports.
    pub async fn next_failure(&mut self) -> Option<(&'static str, PluginError)> {
        self.failures_rx.recv().await
    }

    /// Stops every enabled plugin in reverse order, all within `grace`.
    pub async fn stop(&self, grace: Duration) -> Result<(), ContainerError> {
        let deadline = Instant::now() + grace;
        let mut problems = Vec::new();
        for plugin in self.enabled.iter().rev() {
            match tokio::time::timeout_at(deadline, plugin.stop()).await {
                Ok(Ok(())) => {
                    tracing::debug!(target: "container", plugin = plugin.name(), "plugin stopped")
                }
                Ok(Err(err)) => problems.push(format!("{}: {err}", plugin.name())),
                Err(_) => problems.push(format!(
                    "{}: did not stop within the grace period ({grace:?})",
                    plugin.name()
                )),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ContainerError::Stop(problems.join("; ")))
        }
    }

    /// The enabled plugins, in serve order.
    pub fn plugins(&self) -> &[SharedPlugin] {
        &self.enabled
    }

    /// Resets the named plugin's workers.
    pub async fn reset(&self, name: &str) -> Result<(), ContainerError> {
        let plugin = self
            .enabled
            .iter()
            .find(|p| p.name() == name && p.can_reset())
            .ok_or_else(|| ContainerError::UnknownPlugin(name.to_owned()))?;
        plugin
            .reset()
            .await
            .map_err(|source| ContainerError::Reset {
                plugin: name.to_owned(),
                source,
            })
    }
}

/// Kahn's algorithm: providers before their users; among the plugins free to
/// go, the heaviest first, then the earliest registered.
fn dependency_order(plugins: &[Box<dyn Plugin>]) -> Result<Vec<usize>, ContainerError> {
    let mut provider_of = HashMap::new();
    for (index, plugin) in plugins.iter().enumerate() {
        for key in plugin.provides() {
            provider_of.entry(key.id).or_insert(index);
        }
    }
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); plugins.len()];
    let mut waiting_on = vec![0usize; plugins.len()];
    for (index, plugin) in plugins.iter().enumerate() {
        for key in plugin.requires() {
            if let Some(&provider) = provider_of.get(&key.id) {
                if provider != index {
                    users[provider].push(index);
                    waiting_on[index] += 1;
                }
            }
        }
    }
    let mut ready: BinaryHeap<(u32, std::cmp::Reverse<usize>)> = plugins
        .iter()
        .enumerate()
        .filter(|(i, _)| waiting_on[*i] == 0)
        .map(|(i, p)| (p.weight(), std::cmp::Reverse(i)))
        .collect();
    let mut order = Vec::with_capacity(plugins.len());
    while let Some((_, std::cmp::Reverse(index))) = ready.pop() {
        order.push(index);
        for &user in &users[index] {
            waiting_on[user] -= 1;
            if waiting_on[user] == 0 {
                ready.push((plugins[user].weight(), std::cmp::Reverse(user)));
            }
        }
    }
    if order.len() < plugins.len() {
        let stuck: Vec<&str> = (0..plugins.len())
            .filter(|i| waiting_on[*i] > 0)
            .map(|i| plugins[i].name())
            .collect();
        return Err(ContainerError::Cycle(stuck.join(", ")));
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::ServiceKey;
    use async_trait::async_trait;
    use std::sync::Mutex;

    type Journal = Arc<Mutex<Vec<String>>>;

    #[derive(Clone)]
    struct Greeting(&'static str);

    struct Provider {
        journal: Journal,
    }

    #[async_trait]
    impl Plugin for Provider {
        fn name(&self) -> &'static str {
            "provider"
        }
        fn provides(&self) -> Vec<ServiceKey> {
            vec![ServiceKey::of::<Greeting>()]
        }
        async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
            self.journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push("init provider".into());
            if !ctx.is_configured() {
                return Ok(Status::Disabled);
            }
            ctx.provide(Greeting("hello"));
            Ok(Status::Enabled)
        }
        async fn stop(&self) -> Result<(), PluginError> {
            self.journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push("stop provider".into());
            Ok(())
        }
    }

    struct User {
        journal: Journal,
        weight: u32,
    }

    #[async_trait]
    impl Plugin for User {
        fn name(&self) -> &'static str {
            "user"
        }
        fn weight(&self) -> u32 {
            self.weight
        }
        fn requires(&self) -> Vec<ServiceKey> {
            vec![ServiceKey::of::<Greeting>()]
        }
        async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
            if !ctx.is_configured() {
                return Ok(Status::Disabled);
            }
            let greeting: Greeting = ctx.require()?;
            self.journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("init user with {}", greeting.0));
            Ok(Status::Enabled)
        }
        async fn serve(&self, _ctx: ServeContext) -> Result<(), PluginError> {
            self.journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push("serve user".into());
            Ok(())
        }
        async fn stop(&self) -> Result<(), PluginError> {
            self.journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push("stop user".into());
            Ok(())
        }
    }

    fn container(yaml: &str, journal: &Journal, user_weight: u32) -> Container {
        let config = Config::from_yaml_str_with_env(yaml, &[], &|_| None).expect("valid config");
        let mut container = Container::new(config);
        // Registered user-first and heavier: the dependency must still win.
        container
            .register(Box::new(User {
                journal: Arc::clone(journal),
                weight: user_weight,
            }))
            .expect("unique");
        container
            .register(Box::new(Provider {
                journal: Arc::clone(journal),
            }))
            .expect("unique");
        container
    }

    #[tokio::test]
    async fn providers_init_first_and_stop_last() {
        let journal = Journal::default();
        let mut container = container("version: '3'\nprovider: {}\nuser: {}\n", &journal, 100);
        container.init().await.expect("init");
        container.serve().await.expect("serve");
        container.stop(Duration::from_secs(1)).await.expect("stop");
        let journal = journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(
            journal,
            [
                "init provider",
                "init user with hello",
                "serve user",
                "stop user",
                "stop provider"
            ]
        );
    }

    #[tokio::test]
    async fn a_plugin_without_its_section_is_disabled_not_an_error() {
        let journal = Journal::default();
        let mut container = container("version: '3'\nprovider: {}\n", &journal, 1);
        container.init().await.expect("init");
        let names: Vec<&str> = container.plugins().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["provider"]);
    }

    #[tokio::test]
    async fn a_missing_provider_is_named_in_the_error() {
        let journal = Journal::default();
        let mut container = container("version: '3'\nuser: {}\n", &journal, 1);
        let err = container.init().await.expect_err("provider disabled");
        let text = err.to_string();
        assert!(text.contains("`provider` plugin, is disabled"), "{text}");
        assert!(text.starts_with("user:"), "{text}");
    }

    #[tokio::test]
    async fn nothing_enabled_is_an_error() {
        let journal = Journal::default();
        let mut container = container("version: '3'\n", &journal, 1);
        assert!(matches!(
            container.init().await,
            Err(ContainerError::NothingToServe)
        ));
    }

    struct Slow;

    #[async_trait]
    impl Plugin for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        async fn init(&mut self, _ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
            Ok(Status::Enabled)
        }
        async fn stop(&self) -> Result<(), PluginError> {
            std::future::pending::<()>().await;
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stop_is_bounded_by_the_grace_period() {
        let config =
            Config::from_yaml_str_with_env("version: '3'\n", &[], &|_| None).expect("config");
        let mut container = Container::new(config);
        container.register(Box::new(Slow)).expect("unique");
        container.init().await.expect("init");
        let err = container
            .stop(Duration::from_secs(30))
            .await
            .expect_err("times out");
        assert!(
            err.to_string()
                .contains("slow: did not stop within the grace period"),
            "{err}"
        );
    }
}
