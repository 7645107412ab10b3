//! The worker's reply to a job (RoadRunner's jobs `protocol` package): the
//! body is JSON `{"type": <int>, "data": {...}}`, the context is ignored.
//!
//! | type | meaning |
//! |---|---|
//! | 0 | NO_ERROR (deprecated): ack |
//! | 1 | ERROR (deprecated): log `message`; requeue (headers, delay) if `requeue`, else ack |
//! | 2 | ACK |
//! | 3 | NACK with `requeue` (RoadRunner's `redelivery`) and `delay_seconds` |
//! | 4 | REQUEUE with `headers` (merged) and `delay_seconds` |
//! | other | warn, ack |
//!
//! Types 1, 3 and 4 need a `data` member (`{}` or `null` will do).

use serde::Deserialize;
use thiserror::Error;

use crate::proto::Headers;

/// What the worker asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Type 0 or 2, or an empty body: the job is done.
    Ack,
    /// Type 3: the job failed.
    Nack {
        /// The worker's message.
        message: String,
        /// Put it back (RoadRunner's `redelivery`).
        requeue: bool,
        /// Seconds before it is delivered again.
        delay: i64,
    },
    /// Type 4, or type 1 with `requeue`: deliver again.
    Requeue {
        /// The worker's message.
        message: String,
        /// Seconds before it is delivered again.
        delay: i64,
        /// Headers merged into the job's.
        headers: Headers,
    },
    /// Type 1 without `requeue`: the error is logged and the job acked.
    Failed {
        /// The worker's message.
        message: String,
    },
    /// A type this server does not know: acked with a warning.
    Unknown(i64),
}

/// A reply body that is not the protocol's JSON.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the worker's reply is not a valid jobs reply ({reason}); body: {body}")]
pub struct ReplyError {
    /// What was wrong.
    pub reason: String,
    /// The start of the body, for the log.
    pub body: String,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "type")]
    kind: i64,
    #[serde(default, deserialize_with = "present")]
    data: Option<Option<Data>>,
}

/// Distinguishes an absent `data` (None) from `null` (Some(None)).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Data>>, D::Error> {
    Option::<Data>::deserialize(d).map(Some)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Data {
    message: String,
    requeue: bool,
    delay_seconds: i64,
    headers: Option<Headers>,
}

/// Parses a non-empty reply body.
pub fn parse(body: &[u8]) -> Result<Reply, ReplyError> {
    let error = |reason: String| ReplyError {
        reason,
        body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    let wire: Wire = serde_json::from_slice(body).map_err(|e| error(e.to_string()))?;
    let data = || -> Result<Data, ReplyError> {
        match &wire.data {
            None => Err(error(format!("type {} needs a `data` member", wire.kind))),
            Some(_) => Ok(Data::default()),
        }
    };
    let take = |wire: Wire| wire.data.flatten().unwrap_or_default();
    Ok(match wire.kind {
        0 | 2 => Reply::Ack,
        1 => {
            data()?;
            let d = take(wire);
            if d.requeue {
                Reply::Requeue {
                    message: d.message,
                    delay: d.delay_seconds,
                    headers: d.headers.unwrap_or_default(),
                }
            } else {
                Reply::Failed { message: d.message }
            }
        }
        3 => {
            data()?;
            let d = take(wire);
            Reply::Nack {
                message: d.message,
                requeue: d.requeue,
                delay: d.delay_seconds,
            }
        }
        4 => {
            data()?;
            let d = take(wire);
            Reply::Requeue {
                message: d.message,
                delay: d.delay_seconds,
                headers: d.headers.unwrap_or_default(),
            }
        }
        other => Reply::Unknown(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_php_clients_replies_parse() {
        assert_eq!(parse(br#"{"type":2,"data":{}}"#), Ok(Reply::Ack));
        assert_eq!(parse(br#"{"type":2}"#), Ok(Reply::Ack));
        assert_eq!(parse(br#"{"type":0,"data":null}"#), Ok(Reply::Ack));
        assert_eq!(
            parse(br#"{"type":3,"data":{"message":"boom","requeue":true,"delay_seconds":5}}"#),
            Ok(Reply::Nack {
                message: "boom".into(),
                requeue: true,
                delay: 5
            })
        );
        let requeue =
            parse(br#"{"type":4,"data":{"message":"again","delay_seconds":2,"headers":{"attempt":["2"]}}}"#)
                .expect("valid");
        let Reply::Requeue { delay, headers, .. } = requeue else {
            panic!("{requeue:?}")
        };
        assert_eq!(delay, 2);
        assert_eq!(headers["attempt"], vec!["2".to_owned()]);
        assert_eq!(
            parse(br#"{"type":1,"data":{"message":"old"}}"#),
            Ok(Reply::Failed {
                message: "old".into()
            })
        );
        assert!(matches!(
            parse(br#"{"type":1,"data":{"message":"old","requeue":true}}"#),
            Ok(Reply::Requeue { .. })
        ));
        assert_eq!(parse(br#"{"type":9,"data":{}}"#), Ok(Reply::Unknown(9)));
        assert_eq!(
            parse(br#"{"type":3,"data":null}"#),
            Ok(Reply::Nack {
                message: String::new(),
                requeue: false,
                delay: 0
            })
        );
    }

    #[test]
    fn invalid_replies_are_errors() {
        for bad in [
            &b"not json"[..],
            br#"{"data":{}}"#,
            br#"{"type":"ack"}"#,
            br#"{"type":3}"#,
            br#"{"type":4,"data":{"headers":"x"}}"#,
        ] {
            let err = parse(bad).expect_err(&String::from_utf8_lossy(bad));
            assert!(err.to_string().contains("not a valid jobs reply"), "{err}");
        }
    }
}
