//! A XenAPI session: one we logged in ourselves (we log it out, and log in again when xapi
//! says `SESSION_INVALID`), or one handed to us, as xapi hands a fresh session to every
//! SMAPIv1 driver call (that one is xapi's to end, and dies with the call).

use std::fmt;
use std::sync::Mutex;

use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::Error;
use crate::refs::{ApiSession, Ref};
use crate::wire::Value;

/// How many times a call is retried after logging in again, as the Python binding does.
const RELOGIN_ATTEMPTS: usize = 3;

pub struct Session {
    client: Client,
    current: Mutex<Ref<ApiSession>>,
    login: Option<Login>,
    subtask_of: Option<String>,
}

struct Login {
    uname: String,
    password: Password,
    version: String,
    originator: String,
}

/// Kept only to log in again; never printed.
struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Session {
    /// `session.login_with_password`. On the dom0 socket xapi skips the password check.
    pub async fn login_with_password(
        client: &Client,
        uname: &str,
        password: &str,
        version: &str,
        originator: &str,
    ) -> Result<Session, Error> {
        let login = Login {
            uname: uname.to_owned(),
            password: Password(password.to_owned()),
            version: version.to_owned(),
            originator: originator.to_owned(),
        };
        let session_ref = login.run(client).await?;
        Ok(Session {
            client: client.clone(),
            current: Mutex::new(session_ref),
            login: Some(login),
            subtask_of: None,
        })
    }

    /// Uses a session ref handed to us, e.g. `session_ref` of an SMAPIv1 call. It is never
    /// renewed nor logged out by us.
    pub fn adopt(client: &Client, session_ref: Ref<ApiSession>) -> Session {
        Session {
            client: client.clone(),
            current: Mutex::new(session_ref),
            login: None,
            subtask_of: None,
        }
    }

    /// Links every call to a parent task (the `Subtask-of` header), as sm does with the
    /// `subtask_of` it is given.
    pub fn with_subtask_of(mut self, task: impl Into<String>) -> Session {
        self.subtask_of = Some(task.into()).filter(|t| !t.is_empty());
        self
    }

    pub fn session_ref(&self) -> Ref<ApiSession> {
        self.current
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn is_owned(&self) -> bool {
        self.login.is_some()
    }

    /// `session.logout` for a session we own; a handed-over session is left to xapi.
    pub async fn logout(self) -> Result<(), Error> {
        if self.login.is_none() {
            return Ok(());
        }
        let session_ref = self.session_ref();
        match self
            .client
            .call("session.logout", &[Value::from(&session_ref)], None)
            .await
        {
            Ok(_) => Ok(()),
            // Already gone is what we wanted.
            Err(e) if e.is_failure("SESSION_INVALID") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `method(session, params…)`.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, Error> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::Nil);
        all.extend(params);
        let mut attempt = 0;
        loop {
            let used = self.session_ref();
            all[0] = Value::from(&used);
            match self
                .client
                .call(method, &all, self.subtask_of.as_deref())
                .await
            {
                Err(e) if e.is_failure("SESSION_INVALID") && attempt < RELOGIN_ATTEMPTS => {
                    let Some(login) = &self.login else {
                        return Err(e);
                    };
                    attempt += 1;
                    tracing::info!(method, attempt, "xapi session expired; logging in again");
                    let fresh = login.run(&self.client).await?;
                    if let Ok(mut current) = self.current.lock()
                        && *current == used
                    {
                        *current = fresh;
                    }
                }
                other => return other,
            }
        }
    }

    /// A call whose result is decoded into `T`.
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: Vec<Value>,
    ) -> Result<T, Error> {
        self.call(method, params).await?.decode(method)
    }

    /// A call whose result is `void`.
    pub async fn call_void(&self, method: &str, params: Vec<Value>) -> Result<(), Error> {
        self.call(method, params).await.map(drop)
    }

    /// Sets one key of a map field the way xapi needs: `add_to_<field>` fails with
    /// `MAP_DUPLICATE_KEY` when the key exists, even with the same value, and
    /// `remove_from_<field>` of a missing key is a no-op; so remove, then add. Another writer
    /// can slip in between the two: if its add wins, ours is retried once.
    pub async fn put_map_key(
        &self,
        class: &str,
        field: &str,
        object: &str,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        let remove = format!("{class}.remove_from_{field}");
        let add = format!("{class}.add_to_{field}");
        let mut raced = false;
        loop {
            self.call_void(&remove, vec![object.into(), key.into()])
                .await?;
            match self
                .call_void(&add, vec![object.into(), key.into(), value.into()])
                .await
            {
                Err(e) if e.is_failure("MAP_DUPLICATE_KEY") && !raced => raced = true,
                other => return other,
            }
        }
    }
}

impl Login {
    async fn run(&self, client: &Client) -> Result<Ref<ApiSession>, Error> {
        let params = [
            Value::from(&self.uname),
            Value::from(&self.password.0),
            Value::from(&self.version),
            Value::from(&self.originator),
        ];
        client
            .call("session.login_with_password", &params, None)
            .await?
            .decode("session ref")
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", self.client.endpoint())
            .field("owned", &self.login.is_some())
            .finish_non_exhaustive()
    }
}
