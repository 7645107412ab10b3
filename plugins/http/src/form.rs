//! PHP bracket-syntax form trees (`a[b][]=1`), built the way RoadRunner's
//! `handler/parse.go` builds them, for urlencoded fields and multipart files.
//!
//! Rules: `a[b][c]=1` nests objects; `a[]=1&a[]=2` keeps every value as a
//! list; a plain repeated key keeps the last value (fields) or the first
//! file (uploads); spaces in key names are dropped; keys deeper than
//! [`MAX_LEVEL`] are ignored; a scalar and a branch for one key conflict
//! ("invalid multiple values to key '<k>' in tree") unless the incoming
//! value is empty, which never overrides data.

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

/// Deepest key path accepted (RoadRunner's `MaxLevel`); deeper keys are ignored.
pub const MAX_LEVEL: usize = 127;

/// A key that is both a scalar and a branch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid multiple values to key '{0}' in tree")]
pub struct TreeError(pub String);

/// A value that can sit at a leaf of a tree.
pub trait Leaf: Clone {
    /// True for values that never override existing data (an empty string).
    fn is_empty_leaf(&self) -> bool;
    /// The leaf as JSON.
    fn to_json(&self) -> Value;
}

impl Leaf for String {
    fn is_empty_leaf(&self) -> bool {
        self.is_empty()
    }

    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
}

/// One node of a tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<T> {
    /// A single value.
    Leaf(T),
    /// The values of `key[]`.
    List(Vec<T>),
    /// Nested keys.
    Branch(Tree<T>),
}

/// Which value a plain repeated key keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Form fields: the last one (PHP semantics).
    Last,
    /// Uploaded files: the first one (RoadRunner's choice).
    First,
}

/// A form tree; keys are sorted, as Go's JSON encoder sorts map keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree<T> {
    /// The top-level keys.
    pub nodes: BTreeMap<String, Node<T>>,
}

impl<T> Default for Tree<T> {
    fn default() -> Self {
        Tree {
            nodes: BTreeMap::new(),
        }
    }
}

fn values_empty<T: Leaf>(values: &[T]) -> bool {
    values.is_empty() || (values.len() == 1 && values[0].is_empty_leaf())
}

impl<T: Leaf> Node<T> {
    fn is_empty_data(&self) -> bool {
        match self {
            Node::Leaf(v) => v.is_empty_leaf(),
            Node::List(values) => values_empty(values),
            // A branch (a Go map) is never "empty data".
            Node::Branch(_) => false,
        }
    }

    /// The node as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Node::Leaf(v) => v.to_json(),
            Node::List(values) => Value::Array(values.iter().map(Leaf::to_json).collect()),
            Node::Branch(tree) => tree.to_json(),
        }
    }
}

impl<T: Leaf> Tree<T> {
    /// True when no key was mounted.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Mounts all `values` of one form key (`a[b][]`).
    pub fn push(&mut self, key: &str, values: Vec<T>, pick: Pick) -> Result<(), TreeError> {
        let keys = split_key(key);
        if keys.len() > MAX_LEVEL {
            return Ok(());
        }
        self.mount(&keys, values, pick)
    }

    fn mount(&mut self, keys: &[String], values: Vec<T>, pick: Pick) -> Result<(), TreeError> {
        let Some(first) = keys.first() else {
            return Ok(());
        };
        let leaf_incoming = keys.len() == 1 || (keys.len() == 2 && keys[1].is_empty());
        let incoming_empty = values_empty(&values);
        match self.nodes.get(first) {
            None => {
                self.nodes
                    .insert(first.clone(), Node::Branch(Tree::default()));
            }
            Some(Node::Branch(_)) => {
                if leaf_incoming {
                    if incoming_empty {
                        return Ok(());
                    }
                    return Err(TreeError(first.clone()));
                }
            }
            Some(existing) => {
                let existing_empty = existing.is_empty_data();
                if !existing_empty {
                    if keys.len() > 1 && !keys[1].is_empty() {
                        return Err(TreeError(first.clone()));
                    }
                    if incoming_empty {
                        return Ok(());
                    }
                } else if !incoming_empty || keys.len() > 1 {
                    // Go replaces an empty leaf with a branch only for a
                    // non-empty value; an empty value descending into an
                    // empty leaf would panic there, so it gets a branch too.
                    self.nodes
                        .insert(first.clone(), Node::Branch(Tree::default()));
                }
            }
        }
        if keys.len() == 2 && keys[1].is_empty() {
            self.nodes.insert(first.clone(), Node::List(values));
            return Ok(());
        }
        if keys.len() == 1 {
            let node = match pick {
                Pick::Last => values.last().cloned(),
                Pick::First => values.first().cloned(),
            }
            .map_or(Node::List(Vec::new()), Node::Leaf);
            self.nodes.insert(first.clone(), node);
            return Ok(());
        }
        match self.nodes.get_mut(first) {
            Some(Node::Branch(tree)) => tree.mount(&keys[1..], values, pick),
            _ => Err(TreeError(first.clone())),
        }
    }

    /// The tree as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.nodes
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

/// Splits `a[b][]` into `["a", "b", ""]`, dropping spaces (RoadRunner's
/// `fetchIndexes`).
pub fn split_key(key: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum Pos {
        Text,
        Open,
        Closed,
    }
    let mut keys = vec![String::new()];
    let mut pos = Pos::Text;
    for c in key.chars() {
        match c {
            ' ' => continue,
            '[' => pos = Pos::Open,
            ']' => {
                if pos == Pos::Open {
                    keys.push(String::new());
                }
                pos = Pos::Closed;
            }
            _ => {
                if pos != Pos::Text {
                    keys.push(String::new());
                }
                if let Some(last) = keys.last_mut() {
                    last.push(c);
                }
                pos = Pos::Text;
            }
        }
    }
    keys
}

/// Groups `(key, value)` pairs by key, keeping the order keys first appear
/// and the order of each key's values (Go's `url.Values`).
pub fn group<T>(pairs: impl IntoIterator<Item = (String, T)>) -> Vec<(String, Vec<T>)> {
    let mut groups: Vec<(String, Vec<T>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (key, value) in pairs {
        match index.get(&key) {
            Some(&i) => groups[i].1.push(value),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![value]));
            }
        }
    }
    groups
}

/// Builds the field tree of a urlencoded body or query.
pub fn parse_urlencoded(body: &[u8]) -> Result<Tree<String>, TreeError> {
    let mut tree = Tree::default();
    for (key, values) in group(urlencoded_pairs(body)) {
        tree.push(&key, values, Pick::Last)?;
    }
    Ok(tree)
}

/// The `key=value` pairs of a urlencoded text, `+` and `%XX` decoded. Pairs
/// with a bad escape or a `;` are skipped, as Go's `url.ParseQuery` does.
pub fn urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty() && !pair.contains(&b';'))
        .filter_map(|pair| {
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            Some((query_unescape(key)?, query_unescape(value)?))
        })
        .collect()
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; `None` on a bad escape.
pub fn query_unescape(text: &[u8]) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = hex(*text.get(i + 1)?)?;
                let low = hex(*text.get(i + 2)?)?;
                out.push(high * 16 + low);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn tree(body: &str) -> Result<Value, TreeError> {
        parse_urlencoded(body.as_bytes()).map(|t| t.to_json())
    }

    #[test]
    fn keys_split_on_brackets_and_lose_spaces() {
        assert_eq!(split_key("a"), ["a"]);
        assert_eq!(split_key("a[b][c]"), ["a", "b", "c"]);
        assert_eq!(split_key("a[]"), ["a", ""]);
        assert_eq!(split_key("a [ b ] [ ]"), ["a", "b", ""]);
        assert_eq!(split_key("a[b]c"), ["a", "b", "c"]);
    }

    #[test]
    fn nested_lists_and_last_value_wins() {
        assert_eq!(
            tree("a[b][c]=1&a[b][d]=2&l[]=x&l[]=y&s=1&s=2").expect("valid"),
            json!({"a": {"b": {"c": "1", "d": "2"}}, "l": ["x", "y"], "s": "2"})
        );
        assert_eq!(
            tree("name=John+Doe&x=%41%42").expect("valid"),
            json!({"name": "John Doe", "x": "AB"})
        );
    }

    #[test]
    fn scalar_then_branch_conflicts_but_empty_values_never_override() {
        let err = tree("a=1&a[b]=2").expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "invalid multiple values to key 'a' in tree"
        );
        assert!(tree("a[b]=2&a=1").is_err());
        // The Laravel case from RoadRunner's comment: an empty `options`
        // next to `options[0][id]` keeps the array.
        assert_eq!(
            tree("options=&options[0][id]=7").expect("valid"),
            json!({"options": {"0": {"id": "7"}}})
        );
        assert_eq!(
            tree("options[0][id]=7&options=").expect("valid"),
            json!({"options": {"0": {"id": "7"}}})
        );
        assert_eq!(tree("a=1&a=").expect("valid"), json!({"a": ""}));
    }

    #[test]
    fn too_deep_keys_are_ignored() {
        let deep = format!("k{}=1", "[x]".repeat(MAX_LEVEL));
        assert_eq!(tree(&deep).expect("valid"), json!({}));
        let ok = format!("k{}=1", "[x]".repeat(MAX_LEVEL - 1));
        assert_ne!(tree(&ok).expect("valid"), json!({}));
    }

    #[test]
    fn bad_escapes_and_semicolons_drop_the_pair() {
        assert_eq!(tree("a=%zz&b=1;c=2&d=4").expect("valid"), json!({"d": "4"}));
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-c]{1,2}"
    }

    proptest! {
        /// Any body parses without panicking, and the tree is a JSON object.
        #[test]
        fn arbitrary_bodies_never_panic(body in "[a-c\\[\\]=&% +0-9]{0,60}") {
            if let Ok(tree) = parse_urlencoded(body.as_bytes()) {
                prop_assert!(tree.to_json().is_object());
            }
        }

        /// A set of distinct nested keys with non-empty values round-trips:
        /// each value is found at its path.
        #[test]
        fn distinct_paths_are_found_again(
            paths in proptest::collection::btree_map(
                proptest::collection::vec(segment(), 1..4), "[a-z0-9]{1,5}", 1..6)
        ) {
            // Keep only paths where none is a prefix of another (else they conflict).
            let keys: Vec<_> = paths.keys().cloned().collect();
            let paths: Vec<_> = paths
                .into_iter()
                .filter(|(p, _)| !keys.iter().any(|q| q != p && q.starts_with(p)))
                .collect();
            let body = paths
                .iter()
                .map(|(p, v)| {
                    let mut key = p[0].clone();
                    for s in &p[1..] {
                        key.push_str(&format!("[{s}]"));
                    }
                    format!("{key}={v}")
                })
                .collect::<Vec<_>>()
                .join("&");
            let json = tree(&body).expect("no conflicts");
            for (path, value) in &paths {
                let mut node = &json;
                for s in path {
                    node = &node[s];
                }
                prop_assert_eq!(node, &json!(value));
            }
        }

        /// `k[]` collects every value in order.
        #[test]
        fn lists_keep_every_value_in_order(values in proptest::collection::vec("[a-z]{1,4}", 1..8)) {
            let body = values.iter().map(|v| format!("k[]={v}")).collect::<Vec<_>>().join("&");
            prop_assert_eq!(tree(&body).expect("valid"), json!({"k": values}));
        }
    }
}
