//! The `kv` RPC service: `kv.Has`, `kv.Set`, `kv.MGet`, `kv.MExpire`,
//! `kv.TTL`, `kv.Delete`, `kv.Clear`, each taking a `kv.v1.Request` and
//! answering a `kv.v1.Response`, in protobuf (what PHP clients send) or
//! JSON, answered in the codec of the call.
//!
//! Errors read like RoadRunner's: `no storage provided`, `no such storage:
//! <name>`, and driver failures as `rpc_<op>: <driver>_<op>: <message>`
//! (PHP's official client looks for `_plugin_ttl` to report a driver
//! without TTL support).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rr_plugin::{async_trait, RpcService};

use crate::proto::{ProtoItem, Request, Response};
use crate::storage::{check_keys, format_timeout, parse_timeout, Item, KvError, Storage};

/// goridge's protobuf codec flag.
const CODEC_PROTO: u8 = 0x80;
/// goridge's JSON codec flag.
const CODEC_JSON: u8 = 0x08;

/// The storages by name.
pub type Storages = HashMap<String, Arc<dyn Storage>>;

/// The service registered as `kv`.
pub struct KvService {
    storages: Arc<Storages>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    Proto,
    Json,
}

impl KvService {
    /// A service over `storages`.
    pub fn new(storages: Arc<Storages>) -> KvService {
        KvService { storages }
    }

    fn storage(&self, name: &str) -> Result<&Arc<dyn Storage>, String> {
        if name.is_empty() {
            return Err("no storage provided".to_owned());
        }
        self.storages
            .get(name)
            .ok_or_else(|| format!("no such storage: {name}"))
    }

    /// Runs one method on a decoded request.
    pub async fn handle(&self, method: &str, request: Request) -> Result<Response, String> {
        let op = match method {
            "Has" => "has",
            "Set" => "set",
            "MGet" => "mget",
            "MExpire" => "mexpire",
            "TTL" => "ttl",
            "Delete" => "delete",
            "Clear" => "clear",
            _ => return Err(format!("rpc: can't find method kv.{method}")),
        };
        let storage = self.storage(&request.storage)?;
        run(storage.as_ref(), op, request.items)
            .await
            .map_err(|e| format!("rpc_{op}: {}_{op}: {e}", storage.op_prefix()))
    }
}

fn keys_of(items: &[ProtoItem]) -> Vec<String> {
    items.iter().map(|i| i.key.clone()).collect()
}

fn to_items(items: Vec<ProtoItem>, need_timeout: bool) -> Result<Vec<Item>, KvError> {
    if items.is_empty() {
        return Err(KvError::NoKeys);
    }
    items
        .into_iter()
        .map(|i| {
            if need_timeout && (i.timeout.is_empty() || i.key.trim().is_empty()) {
                return Err(KvError::NoTimeout);
            }
            if i.key.trim().is_empty() {
                return Err(KvError::EmptyKey);
            }
            Ok(Item {
                expires: parse_timeout(&i.timeout)?,
                key: i.key,
                value: i.value,
            })
        })
        .collect()
}

async fn run(storage: &dyn Storage, op: &str, items: Vec<ProtoItem>) -> Result<Response, KvError> {
    let mut response = Response::default();
    match op {
        "has" => {
            let keys = keys_of(&items);
            check_keys(&keys)?;
            response.items = storage
                .has(&keys)
                .await?
                .into_iter()
                .map(|key| ProtoItem {
                    key,
                    ..Default::default()
                })
                .collect();
        }
        "mget" => {
            let keys = keys_of(&items);
            check_keys(&keys)?;
            response.items = storage
                .mget(&keys)
                .await?
                .into_iter()
                .map(|(key, value)| ProtoItem {
                    key,
                    value,
                    ..Default::default()
                })
                .collect();
        }
        "ttl" => {
            let keys = keys_of(&items);
            check_keys(&keys)?;
            response.items = storage
                .ttl(&keys)
                .await?
                .into_iter()
                .map(|(key, at)| ProtoItem {
                    key,
                    timeout: at.map(format_timeout).unwrap_or_default(),
                    ..Default::default()
                })
                .collect();
        }
        "delete" => {
            let keys = keys_of(&items);
            check_keys(&keys)?;
            storage.delete(&keys).await?;
        }
        "set" => storage.set(to_items(items, false)?).await?,
        "mexpire" => storage.mexpire(to_items(items, true)?).await?,
        _ => storage.clear().await?,
    }
    Ok(response)
}

#[async_trait]
impl RpcService for KvService {
    async fn call(&self, method: &str, codec: u8, body: Bytes) -> Result<Bytes, String> {
        let codec = if codec & CODEC_PROTO != 0 {
            Codec::Proto
        } else if codec & CODEC_JSON != 0 {
            Codec::Json
        } else {
            return Err(format!(
                "the kv service speaks protobuf (0x80) or JSON (0x08); the call's codec flags are 0x{codec:02x}"
            ));
        };
        let request = match codec {
            Codec::Proto => Request::decode(&body).map_err(|e| e.to_string())?,
            Codec::Json => {
                serde_json::from_slice(&body).map_err(|e| format!("json decode: {e}"))?
            }
        };
        let response = self.handle(method, request).await?;
        Ok(match codec {
            Codec::Proto => Bytes::from(response.encode()),
            Codec::Json => Bytes::from(serde_json::to_vec(&response).map_err(|e| e.to_string())?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;
    use crate::storage::system_clock;

    fn service() -> KvService {
        let mut storages: Storages = HashMap::new();
        storages.insert("mem".into(), Arc::new(MemoryStorage::new(system_clock())));
        KvService::new(Arc::new(storages))
    }

    fn req(storage: &str, items: &[(&str, &str, &str)]) -> Request {
        Request {
            storage: storage.into(),
            items: items
                .iter()
                .map(|(k, v, t)| ProtoItem {
                    key: (*k).into(),
                    value: v.as_bytes().to_vec(),
                    timeout: (*t).into(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn storage_lookup_errors_are_roadrunners() {
        let s = service();
        assert_eq!(
            s.handle("Has", req("", &[("a", "", "")]))
                .await
                .expect_err("must fail"),
            "no storage provided"
        );
        assert_eq!(
            s.handle("Has", req("nope", &[("a", "", "")]))
                .await
                .expect_err("must fail"),
            "no such storage: nope"
        );
        assert_eq!(
            s.handle("Get", req("mem", &[]))
                .await
                .expect_err("must fail"),
            "rpc: can't find method kv.Get"
        );
    }

    #[tokio::test]
    async fn driver_errors_name_both_ops() {
        let s = service();
        assert_eq!(
            s.handle("MGet", req("mem", &[]))
                .await
                .expect_err("must fail"),
            "rpc_mget: in_memory_plugin_mget: should provide at least 1 key"
        );
        assert_eq!(
            s.handle("MExpire", req("mem", &[("a", "", "")]))
                .await
                .expect_err("must fail"),
            "rpc_mexpire: in_memory_plugin_mexpire: should set timeout and at least one key"
        );
        let err = s
            .handle("Set", req("mem", &[("a", "v", "soon")]))
            .await
            .expect_err("must fail");
        assert!(
            err.starts_with("rpc_set: in_memory_plugin_set: parsing time \"soon\""),
            "{err}"
        );
    }

    #[tokio::test]
    async fn proto_and_json_calls_answer_in_their_codec() {
        let s = service();
        let set = req("mem", &[("k", "v", "2999-01-01T00:00:00Z")]);
        s.call("Set", CODEC_PROTO, Bytes::from(set.encode()))
            .await
            .expect("must succeed");
        let out = s
            .call(
                "TTL",
                CODEC_PROTO,
                Bytes::from(req("mem", &[("k", "", ""), ("x", "", "")]).encode()),
            )
            .await
            .expect("must succeed");
        let resp = Response::decode(&out).expect("must succeed");
        assert_eq!(resp.items.len(), 1);
        assert_eq!(resp.items[0].timeout, "2999-01-01T00:00:00Z");
        let out = s
            .call(
                "MGet",
                CODEC_JSON,
                Bytes::from(r#"{"storage":"mem","items":[{"key":"k"}]}"#),
            )
            .await
            .expect("must succeed");
        assert_eq!(&out[..], br#"{"items":[{"key":"k","value":"dg=="}]}"#);
        let err = s
            .call("Has", 0x04, Bytes::new())
            .await
            .expect_err("must fail");
        assert!(err.contains("protobuf"), "{err}");
    }
}
