//! `rr build -c plugins.toml -o DIR`: a custom rr binary with the plugins a
//! TOML file lists (Velox's `vx build` for rr).
//!
//! It generates a small Cargo project whose `main` is
//! `rr::run_versioned(vec![Box::new(<crate>::<Type>::default()), ...], ...)`,
//! checks with `cargo metadata` that every plugin is built against the
//! `rr-plugin` this rr provides, runs `cargo build --release`, copies the
//! binary to `DIR/rr` and smoke-tests `DIR/rr --version`.
//!
//! ```toml
//! [rr]
//! version = "2026.11.0-custom"   # what --version shows (optional)
//! # path = "../rr"               # rr's source; default: this rr's checkout
//! # git = "https://...", tag = "v0.1.0"
//! [build]
//! args = ["--locked"]            # extra cargo build arguments (optional)
//! [plugins]
//! logs = {}                      # built-ins by name
//! server = {}
//! heartbeat = { path = "examples/plugins/heartbeat", crate = "rr-heartbeat", type = "HeartbeatPlugin" }
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// The built-in plugins: TOML name, package, directory in the rr source,
/// and the expression that makes one.
pub const BUILTINS: &[(&str, &str, &str, &str)] = &[
    (
        "logs",
        "rr-logger",
        "plugins/logger",
        "rr_logger::LoggerPlugin",
    ),
    (
        "rpc",
        "rr-rpc",
        "plugins/rpc",
        "rr_rpc::RpcPlugin::default()",
    ),
    (
        "metrics",
        "rr-metrics",
        "plugins/metrics",
        "rr_metrics::MetricsPlugin::default()",
    ),
    (
        "status",
        "rr-status",
        "plugins/status",
        "rr_status::StatusPlugin::default()",
    ),
    (
        "server",
        "rr-server",
        "plugins/server",
        "rr_server::ServerPlugin::default()",
    ),
    (
        "ticker",
        "rr-ticker",
        "plugins/ticker",
        "rr_ticker::TickerPlugin::default()",
    ),
    ("kv", "rr-kv", "plugins/kv", "rr_kv::KvPlugin::default()"),
    (
        "jobs",
        "rr-jobs",
        "plugins/jobs",
        "rr_jobs::JobsPlugin::default()",
    ),
    (
        "http",
        "rr-http",
        "plugins/http",
        "rr_http::HttpPlugin::default()",
    ),
];

/// Name of the generated package and of its binary in the target directory
/// (not `rr`, so the stock binary in a shared target directory survives).
const GENERATED: &str = "rr-custom-build";

/// The whole TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `[rr]`: rr's source and the version string.
    #[serde(default)]
    pub rr: RrSection,
    /// `[build]`: cargo arguments.
    #[serde(default)]
    pub build: BuildSection,
    /// `[plugins]`: name → source, in file order.
    #[serde(default)]
    pub plugins: toml::Table,
}

/// `[rr]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrSection {
    /// Shown by `--version` of the built binary.
    pub version: Option<String>,
    /// rr's source checkout.
    pub path: Option<PathBuf>,
    /// rr's git repository.
    pub git: Option<String>,
    /// Git tag.
    pub tag: Option<String>,
    /// Git branch.
    pub branch: Option<String>,
    /// Git revision.
    pub rev: Option<String>,
}

/// `[build]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// Extra arguments for `cargo build --release`.
    #[serde(default)]
    pub args: Vec<String>,
}

/// One entry of `[plugins]` for a third-party plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginEntry {
    path: Option<PathBuf>,
    git: Option<String>,
    tag: Option<String>,
    branch: Option<String>,
    rev: Option<String>,
    version: Option<String>,
    #[serde(rename = "crate")]
    krate: Option<String>,
    #[serde(rename = "type")]
    ty: Option<String>,
}

/// A plugin to compile in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The key in `[plugins]`.
    pub name: String,
    /// The package name.
    pub package: String,
    /// The dependency line's value in the generated Cargo.toml.
    pub dependency: String,
    /// The Rust expression that makes the plugin.
    pub constructor: String,
    /// Where the package's manifest is, for a local path plugin.
    pub manifest: Option<PathBuf>,
    /// Built-in (part of rr).
    pub builtin: bool,
}

/// Where rr's own crates come from.
#[derive(Debug, Clone)]
enum RrSource {
    Path(PathBuf),
    Git(String),
}

impl RrSource {
    /// The dependency value for the package in `dir` of the rr source.
    fn dependency(&self, dir: &str) -> String {
        match self {
            RrSource::Path(root) => format!("{{ path = {} }}", quote(&root.join(dir))),
            RrSource::Git(spec) => format!("{{ {spec} }}"),
        }
    }
}

/// The rr checkout this binary was built from.
pub fn default_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `rr build`.
pub fn build(spec_path: &Path, out_dir: &Path) -> Result<ExitCode> {
    let text = std::fs::read_to_string(spec_path)
        .with_context(|| format!("cannot read the plugins file {}", spec_path.display()))?;
    let spec: Spec = toml::from_str(&text).map_err(|e| {
        anyhow!(
            "invalid plugins file {}: {}",
            spec_path.display(),
            e.message()
        )
    })?;
    let base = std::path::absolute(spec_path)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (source, source_root) = rr_source(&spec.rr, &base)?;
    let plugins = resolve_plugins(&spec.plugins, &base, &source)?;
    if plugins.is_empty() {
        bail!("[plugins] lists no plugin; add at least `logs = {{}}` and `server = {{}}`");
    }

    let project = tempfile::Builder::new()
        .prefix("rr-build-")
        .tempdir()
        .context("cannot create the build directory")?;
    write_project(
        project.path(),
        &spec,
        &source,
        source_root.as_deref(),
        &plugins,
    )?;
    let manifest = project.path().join("Cargo.toml");

    check_plugin_api(&manifest, &plugins)?;

    let target_dir = target_dir(source_root.as_deref());
    eprintln!(
        "rr build: {} plugin(s): {}; cargo target dir {}",
        plugins.len(),
        plugins
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        target_dir.display()
    );
    let mut cargo = Command::new(cargo_program());
    cargo
        .args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .args(&spec.build.args)
        .env("CARGO_TARGET_DIR", &target_dir);
    run_cargo(cargo, &plugins).context("building the binary failed")?;

    let built = target_dir.join("release").join(GENERATED);
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let binary = out_dir.join("rr");
    // Replace rather than overwrite: a running rr keeps its old file.
    let staging = out_dir.join(".rr.new");
    std::fs::copy(&built, &staging)
        .with_context(|| format!("cannot copy {} to {}", built.display(), staging.display()))?;
    std::fs::rename(&staging, &binary)
        .with_context(|| format!("cannot write {}", binary.display()))?;

    // Velox does the same: the binary must at least start.
    let output = Command::new(std::path::absolute(&binary)?)
        .arg("--version")
        .output()
        .with_context(|| format!("the built binary {} does not start", binary.display()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        bail!(
            "the built binary {} failed `--version`: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    eprintln!("rr build: wrote {}", binary.display());
    println!("{version}");
    Ok(ExitCode::SUCCESS)
}

/// The build cache: `$CARGO_TARGET_DIR`, else the `target` directory of
/// the rr checkout (so what `cargo build --release -p rr` compiled is
/// reused; the generated binary has its own name there), else a directory
/// in the system's temp dir.
fn target_dir(source_root: Option<&Path>) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let checkout = source_root.map_or_else(default_source, Path::to_path_buf);
    if checkout.join("crates/rr/Cargo.toml").is_file() {
        return checkout.join("target");
    }
    std::env::temp_dir().join("rr-build-target")
}

/// The cargo to run: `$CARGO` (set when rr itself runs under cargo) or `cargo`.
fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// `[rr]` → the source of rr's crates, and its local root when it has one.
fn rr_source(rr: &RrSection, base: &Path) -> Result<(RrSource, Option<PathBuf>)> {
    match (&rr.path, &rr.git) {
        (Some(_), Some(_)) => bail!("[rr] takes `path` or `git`, not both"),
        (None, Some(git)) => Ok((
            RrSource::Git(git_spec(
                git,
                rr.tag.as_deref(),
                rr.branch.as_deref(),
                rr.rev.as_deref(),
            )?),
            None,
        )),
        (path, None) => {
            if rr.tag.is_some() || rr.branch.is_some() || rr.rev.is_some() {
                bail!("[rr] `tag`, `branch` and `rev` need `git`");
            }
            let root = match path {
                Some(path) => base.join(path),
                None => default_source(),
            };
            let root = root
                .canonicalize()
                .map_err(|_| anyhow!("the rr source {} does not exist", root.display()))?;
            if !root.join("crates/rr/Cargo.toml").is_file() {
                bail!(
                    "{} is not an rr checkout (no crates/rr/Cargo.toml)",
                    root.display()
                );
            }
            Ok((RrSource::Path(root.clone()), Some(root)))
        }
    }
}

/// `git = "...", tag = "..."` for a dependency line.
fn git_spec(
    git: &str,
    tag: Option<&str>,
    branch: Option<&str>,
    rev: Option<&str>,
) -> Result<String> {
    let refs: Vec<(&str, &str)> = [("tag", tag), ("branch", branch), ("rev", rev)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    if refs.len() > 1 {
        bail!("give at most one of `tag`, `branch`, `rev` with `git = {git:?}`");
    }
    let mut spec = format!("git = {}", toml_str(git));
    if let Some((key, value)) = refs.first() {
        spec.push_str(&format!(", {key} = {}", toml_str(value)));
    }
    Ok(spec)
}

/// `[plugins]` → the plugins to compile in, in file order.
fn resolve_plugins(table: &toml::Table, base: &Path, source: &RrSource) -> Result<Vec<Resolved>> {
    let mut resolved = Vec::new();
    for (name, value) in table {
        let entry: PluginEntry = value
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("plugin {name}: {}", e.message()))?;
        let has_source = entry.path.is_some() || entry.git.is_some() || entry.version.is_some();
        if !has_source {
            let Some((_, package, dir, constructor)) =
                BUILTINS.iter().find(|(builtin, ..)| builtin == name)
            else {
                bail!(
                    "unknown plugin `{name}`: it is not a built-in ({}), and a third-party plugin needs `path`, `git` or `version`, plus `crate` and `type`",
                    builtin_names().join(", ")
                );
            };
            if entry.krate.is_some() || entry.ty.is_some() {
                bail!("plugin {name}: `crate` and `type` need `path`, `git` or `version`");
            }
            resolved.push(Resolved {
                name: name.clone(),
                package: (*package).to_owned(),
                dependency: source.dependency(dir),
                constructor: (*constructor).to_owned(),
                manifest: None,
                builtin: true,
            });
            continue;
        }
        let (Some(package), Some(ty)) = (&entry.krate, &entry.ty) else {
            bail!(
                "plugin {name}: a third-party plugin needs `crate` (its package name) and `type` (its plugin type, e.g. `HeartbeatPlugin`)"
            );
        };
        if !is_package_name(package) {
            bail!("plugin {name}: `crate = {package:?}` is not a package name");
        }
        if !is_type_path(ty) {
            bail!("plugin {name}: `type = {ty:?}` is not a Rust type path");
        }
        let sources = [
            entry.path.is_some(),
            entry.git.is_some(),
            entry.version.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            bail!("plugin {name}: give one of `path`, `git`, `version`");
        }
        let (dependency, manifest) = if let Some(path) = &entry.path {
            let dir = base.join(path);
            let dir = dir
                .canonicalize()
                .map_err(|_| anyhow!("plugin {name}: path {} does not exist", dir.display()))?;
            let manifest = dir.join("Cargo.toml");
            if !manifest.is_file() {
                bail!("plugin {name}: path {} has no Cargo.toml", dir.display());
            }
            (format!("{{ path = {} }}", quote(&dir)), Some(manifest))
        } else if let Some(git) = &entry.git {
            let spec = git_spec(
                git,
                entry.tag.as_deref(),
                entry.branch.as_deref(),
                entry.rev.as_deref(),
            )
            .map_err(|e| anyhow!("plugin {name}: {e}"))?;
            (format!("{{ {spec} }}"), None)
        } else {
            if entry.tag.is_some() || entry.branch.is_some() || entry.rev.is_some() {
                bail!("plugin {name}: `tag`, `branch` and `rev` need `git`");
            }
            let version = entry.version.as_deref().unwrap_or_default();
            (format!("{{ version = {} }}", toml_str(version)), None)
        };
        resolved.push(Resolved {
            name: name.clone(),
            package: package.clone(),
            dependency,
            constructor: format!(
                "<{}::{} as ::core::default::Default>::default()",
                package.replace('-', "_"),
                ty
            ),
            manifest,
            builtin: false,
        });
    }
    Ok(resolved)
}

/// The known built-in names.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(name, ..)| *name).collect()
}

fn is_package_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_type_path(ty: &str) -> bool {
    !ty.is_empty()
        && ty.split("::").all(|segment| {
            segment
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A TOML basic string.
fn toml_str(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

fn quote(path: &Path) -> String {
    toml_str(&path.to_string_lossy())
}

/// Writes Cargo.toml, Cargo.lock (rr's, so versions match its tests) and
/// src/main.rs.
fn write_project(
    dir: &Path,
    spec: &Spec,
    source: &RrSource,
    source_root: Option<&Path>,
    plugins: &[Resolved],
) -> Result<()> {
    let mut manifest = format!(
        "# Generated by `rr build`; do not edit.\n[package]\nname = \"{GENERATED}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[[bin]]\nname = \"{GENERATED}\"\npath = \"src/main.rs\"\n\n[dependencies]\nrr = {}\n",
        source.dependency("crates/rr")
    );
    let mut seen = BTreeMap::new();
    for plugin in plugins {
        if let Some(other) = seen.insert(plugin.package.clone(), plugin.name.clone()) {
            bail!(
                "plugins {other} and {} are the same package {}",
                plugin.name,
                plugin.package
            );
        }
        manifest.push_str(&format!("{} = {}\n", plugin.package, plugin.dependency));
    }
    // The release profile of rr's own workspace, so a shared target
    // directory reuses what `cargo build --release` compiled.
    let profile = source_root
        .and_then(|root| std::fs::read_to_string(root.join("Cargo.toml")).ok())
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("profile").and_then(|p| p.get("release")).cloned());
    manifest.push_str("\n[profile.release]\n");
    match profile {
        Some(toml::Value::Table(release)) => manifest.push_str(&release.to_string()),
        _ => manifest.push_str("lto = \"thin\"\ncodegen-units = 4\n"),
    }
    manifest.push_str("\n[workspace]\n");
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    if let Some(root) = source_root {
        let lock = root.join("Cargo.lock");
        if lock.is_file() {
            std::fs::copy(&lock, dir.join("Cargo.lock"))?;
        }
    }

    let version = match spec.rr.version.as_deref() {
        Some(v) => format!("Some({v:?})"),
        None => "option_env!(\"RR_BUILD_VERSION\")".to_owned(),
    };
    let mut main = String::from(
        "//! Generated by `rr build`; do not edit.\n\nfn main() -> std::process::ExitCode {\n    rr::run_versioned(\n        vec![\n",
    );
    for plugin in plugins {
        main.push_str(&format!("            Box::new({}),\n", plugin.constructor));
    }
    main.push_str(&format!("        ],\n        {version},\n    )\n}}\n"));
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(dir.join("src/main.rs"), main)?;
    Ok(())
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    resolve: Resolve,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    manifest_path: PathBuf,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Deserialize)]
struct NodeDep {
    pkg: String,
    name: String,
}

/// Resolves the generated project with `cargo metadata` and checks that
/// every third-party plugin uses the `rr-plugin` that rr itself uses.
fn check_plugin_api(manifest: &Path, plugins: &[Resolved]) -> Result<()> {
    let mut cargo = Command::new(cargo_program());
    cargo
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest);
    let stdout = run_cargo(cargo, plugins).context("cannot resolve the plugins")?;
    let metadata: Metadata =
        serde_json::from_slice(&stdout).context("cannot read cargo metadata's output")?;
    let package = |id: &str| metadata.packages.iter().find(|p| p.id == id);
    let api_of = |id: &str| -> Option<&Package> {
        let node = metadata.resolve.nodes.iter().find(|n| n.id == id)?;
        let dep = node.deps.iter().find(|d| d.name == "rr_plugin")?;
        package(&dep.pkg)
    };
    let rr = metadata
        .packages
        .iter()
        .find(|p| p.name == "rr")
        .ok_or_else(|| anyhow!("the rr package is missing from the resolved project"))?;
    let provided =
        api_of(&rr.id).ok_or_else(|| anyhow!("rr {} does not depend on rr-plugin", rr.version))?;
    for plugin in plugins.iter().filter(|p| !p.builtin) {
        let candidates: Vec<&Package> = metadata
            .packages
            .iter()
            .filter(|p| p.name == plugin.package)
            .filter(|p| {
                plugin
                    .manifest
                    .as_ref()
                    .is_none_or(|m| p.manifest_path.canonicalize().ok().as_ref() == Some(m))
            })
            .collect();
        let Some(found) = candidates.first() else {
            bail!(
                "plugin {}: its source has no package named `{}` (check `crate`)",
                plugin.name,
                plugin.package
            );
        };
        let Some(api) = api_of(&found.id) else {
            bail!(
                "plugin {}: package {} does not depend on rr-plugin, so it cannot be an rr plugin",
                plugin.name,
                plugin.package
            );
        };
        if api.id != provided.id {
            bail!(
                "plugin {} is built against rr-plugin {}, this rr provides {}",
                plugin.name,
                api.version,
                provided.version
            );
        }
    }
    Ok(())
}

/// Runs cargo with its stderr passed through; returns its stdout. On
/// failure the error is cargo's first `error` line, naming the plugin
/// whose package or source it mentions.
fn run_cargo(mut cargo: Command, plugins: &[Resolved]) -> Result<Vec<u8>> {
    let mut child = cargo
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", cargo_program().display()))?;
    let stderr = child.stderr.take().context("cargo's stderr")?;
    let relay = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            lines.push(line);
        }
        lines
    });
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_end(&mut out, &mut stdout)?;
    }
    let status = child.wait()?;
    let lines = relay.join().unwrap_or_default();
    if status.success() {
        return Ok(stdout);
    }
    Err(anyhow!(summarise(&lines, plugins)))
}

/// One line out of cargo's failure.
fn summarise(lines: &[String], plugins: &[Resolved]) -> String {
    let errors: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("error"))
        .collect();
    let mut text = errors
        .first()
        .map(|l| l.trim_start_matches("error: ").to_owned())
        .unwrap_or_else(|| "cargo failed (see its output above)".to_owned());
    // "... as a dependency of package `rr-custom-build v0.0.0 (/tmp/...)`"
    // names the generated project, which means nothing to the user.
    if let Some(cut) = text.find(" as a dependency of package") {
        text.truncate(cut);
    }
    // The last "Caused by:" is the root cause ("failed to resolve address").
    if let Some(cause) = lines
        .iter()
        .rposition(|l| l.trim() == "Caused by:")
        .and_then(|at| lines.get(at + 1))
    {
        let cause = cause.trim();
        if !cause.is_empty() && !text.contains(cause) {
            text.push_str(": ");
            text.push_str(cause);
        }
    }
    let all = lines.join("\n");
    let culprit = plugins.iter().filter(|p| !p.builtin).find(|p| {
        all.contains(&p.package)
            || all.contains(&p.package.replace('-', "_"))
            || source_hint(p).is_some_and(|hint| all.contains(&hint))
    });
    match culprit {
        Some(plugin) => format!("plugin {} ({}): {text}", plugin.name, plugin.dependency),
        None => text,
    }
}

/// The URL or path a plugin's dependency names.
fn source_hint(plugin: &Resolved) -> Option<String> {
    let start = plugin.dependency.find('"')? + 1;
    let rest = &plugin.dependency[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> RrSource {
        RrSource::Path(PathBuf::from("/rr"))
    }

    fn resolve(text: &str) -> Result<Vec<Resolved>> {
        let spec: Spec = toml::from_str(text).expect("valid toml");
        resolve_plugins(&spec.plugins, Path::new("/nonexistent"), &source())
    }

    #[test]
    fn built_ins_resolve_in_file_order() {
        let plugins = resolve("[plugins]\nserver = {}\nlogs = {}\n").expect("valid");
        let names: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["server", "logs"]);
        assert_eq!(plugins[1].dependency, "{ path = \"/rr/plugins/logger\" }");
    }

    #[test]
    fn an_unknown_name_lists_the_built_ins() {
        let err = resolve("[plugins]\ngrpc = {}\n").expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("unknown plugin `grpc`"), "{text}");
        assert!(
            text.contains("logs, rpc, metrics, status, server, ticker"),
            "{text}"
        );
    }

    #[test]
    fn third_party_plugins_need_crate_and_type() {
        let err = resolve("[plugins]\nhb = { version = \"1\" }\n").expect_err("no crate");
        assert!(err.to_string().contains("needs `crate`"), "{err}");
        let ok = resolve("[plugins]\nhb = { git = \"https://x.invalid/hb\", tag = \"v1\", crate = \"rr-hb\", type = \"Hb\" }\n")
            .expect("valid");
        assert_eq!(
            ok[0].dependency,
            "{ git = \"https://x.invalid/hb\", tag = \"v1\" }"
        );
        assert_eq!(
            ok[0].constructor,
            "<rr_hb::Hb as ::core::default::Default>::default()"
        );
    }

    #[test]
    fn code_cannot_be_injected_through_type() {
        let err =
            resolve("[plugins]\nhb = { version = \"1\", crate = \"x\", type = \"X); evil(\" }\n")
                .expect_err("bad type");
        assert!(err.to_string().contains("not a Rust type path"), "{err}");
    }

    #[test]
    fn a_summary_names_the_plugin_it_is_about() {
        let plugins = resolve("[plugins]\nhb = { git = \"https://x.invalid/hb\", crate = \"rr-hb\", type = \"Hb\" }\n")
            .expect("valid");
        let lines: Vec<String> = [
            "    Updating git repository `https://x.invalid/hb`",
            "error: failed to get `rr-hb` as a dependency of package `rr-custom-build`",
            "",
            "Caused by:",
            "  failed to load source for dependency `rr-hb`",
            "",
            "Caused by:",
            "  failed to resolve address for x.invalid: Name or service not known",
        ]
        .map(String::from)
        .to_vec();
        let text = summarise(&lines, &plugins);
        assert!(text.starts_with("plugin hb ("), "{text}");
        assert!(
            text.ends_with("failed to get `rr-hb`: failed to resolve address for x.invalid: Name or service not known"),
            "{text}"
        );
    }
}
