//! `event.from`: what changed since a token, for subscriptions `"pbd"`, `"*"` or
//! `"pbd/OpaqueRef:…"`. The empty token answers every object as an `add`. A call with
//! nothing to report waits up to `timeout` seconds for a change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xenapi::{Failure, Value};

use crate::xapi_sim::XapiSim;
use crate::xapi_sim::db::{Class, Db};

struct Subscription {
    class: Class,
    object: Option<String>,
}

fn parse_subscription(text: &str) -> Result<Vec<Subscription>, Failure> {
    let bad = || Failure::new("EVENT_SUBSCRIPTION_PARSE_FAILURE", [text]);
    let (class, object) = match text.split_once('/') {
        Some((c, o)) if !o.is_empty() => (c, Some(o.to_owned())),
        Some(_) => return Err(bad()),
        None => (text, None),
    };
    if class == "*" && object.is_none() {
        return Ok(evented()
            .map(|class| Subscription {
                class,
                object: None,
            })
            .collect());
    }
    let class = evented()
        .find(|c| c.event_name() == class.to_ascii_lowercase())
        .ok_or_else(bad)?;
    Ok(vec![Subscription { class, object }])
}

/// Sessions are not reported.
fn evented() -> impl Iterator<Item = Class> {
    Class::ALL.into_iter().filter(|c| *c != Class::Session)
}

fn token_of(generation: u64) -> String {
    format!("{generation:020},{:020}", 0)
}

fn parse_token(token: &str) -> Result<u64, Failure> {
    if token.is_empty() {
        return Ok(0);
    }
    let first = token.split(',').next().unwrap_or_default();
    first
        .trim()
        .parse()
        .map_err(|_| Failure::new("EVENT_FROM_TOKEN_PARSE_FAILURE", [token]))
}

fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}

fn collect(db: &Db, subs: &[Subscription], since: u64) -> Vec<(u64, Value)> {
    let wanted = |class: Class, object: &str| {
        subs.iter()
            .any(|s| s.class == class && s.object.as_deref().is_none_or(|o| o == object))
    };
    let mut events: Vec<(u64, Value)> = db
        .stamps
        .values()
        .filter(|s| s.modified > since)
        .filter_map(|s| {
            let class = s.class?;
            if !wanted(class, &s.object) {
                return None;
            }
            let operation = match s.deleted {
                // Made and gone within the window: nothing to tell.
                Some(_) if s.created > since => return None,
                Some(_) => "del",
                None if s.created > since => "add",
                None => "mod",
            };
            let mut event: BTreeMap<String, Value> = [
                ("id".to_owned(), Value::Int(s.modified as i64)),
                ("timestamp".to_owned(), Value::from(timestamp())),
                ("class".to_owned(), Value::from(class.event_name())),
                ("operation".to_owned(), Value::from(operation)),
                ("ref".to_owned(), Value::from(s.object.as_str())),
            ]
            .into();
            if s.deleted.is_none() {
                event.insert("snapshot".into(), db.record(class, &s.object)?);
            }
            Some((s.modified, Value::Struct(event)))
        })
        .collect();
    events.sort_by_key(|(id, _)| *id);
    events
}

pub(crate) async fn from(
    sim: &XapiSim,
    classes: Vec<String>,
    token: &str,
    timeout: f64,
) -> Result<Value, Failure> {
    let mut subs = Vec::new();
    for c in &classes {
        subs.extend(parse_subscription(c)?);
    }
    let since = parse_token(token)?;
    let wait = if timeout.is_finite() && timeout > 0.0 {
        timeout.min(86_400.0)
    } else {
        0.0
    };
    let deadline = Instant::now() + Duration::from_secs_f64(wait);
    let mut changes = sim.inner.changes.subscribe();
    loop {
        changes.borrow_and_update();
        let (events, generation, counts) = {
            let db = sim.db();
            let counts: BTreeMap<String, Value> = subs
                .iter()
                .map(|s| {
                    (
                        s.class.event_name(),
                        Value::Int32(db.all(s.class).len() as i32),
                    )
                })
                .collect();
            (collect(&db, &subs, since), db.generation, counts)
        };
        let done = !events.is_empty() || Instant::now() >= deadline;
        let waited = !done
            && tokio::time::timeout_at(deadline.into(), changes.changed())
                .await
                .is_ok_and(|r| r.is_ok());
        if done || !waited {
            let answer: BTreeMap<String, Value> = [
                (
                    "events".to_owned(),
                    Value::Array(events.into_iter().map(|(_, e)| e).collect()),
                ),
                ("valid_ref_counts".to_owned(), Value::Struct(counts)),
                ("token".to_owned(), Value::from(token_of(generation))),
            ]
            .into();
            return Ok(Value::Struct(answer));
        }
    }
}
