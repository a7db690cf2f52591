//! The link mailer: what turns a stored request to email a login link into an email, and how
//! a storefront's own events ask for links. One piece of code for every runtime — the
//! `link-mailer` Lambda function feeds it the table's stream and the SQS and EventBridge
//! events of [`handle_event`]; the local server runs [`deliver`] in-process as soon as a
//! request is stored.
//!
//! Events of storefronts (SQS message body, or EventBridge `detail`) have the shape of
//! `POST /rest/V1/otp/send`'s body, and may name their own id for deduplication:
//!
//! ```json
//! {"email": "customer@example.com", "storeId": 1, "next": "/checkout/", "requestId": "order-1234-login"}
//! ```
//!
//! Without `requestId`, the SQS message id or the EventBridge event id is the id: a
//! redelivered event asks for nothing more.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::app::App;
use crate::identity::Error;
use crate::identity::links::{Delivered, SendLimits, SendRequest, Sent};
use crate::identity::users::User;
use crate::ports::Email;
use crate::records::login_link::{self, MailRequest};
use crate::store::Key;
use crate::stores::StoreView;
use crate::templates::Template;

/// What an audit event names as the channel of event-driven requests.
const VIA_EVENT: &str = "event";

/// The email of a mail request: the store's login-link template with the link.
pub fn compose(app: &App, request: &MailRequest, token: &str) -> Option<Email> {
    let store = app.config.stores.get(request.store_id)?;
    let link = link_url(app, store, &request.path, token);
    let minutes = ((request.valid_until - app.clock.now() + 59) / 60)
        .max(1)
        .to_string();
    let e = app.templates().email(
        Template::LoginLink,
        Some(store),
        &[
            ("store_name", store.name.as_str()),
            ("link", link.as_str()),
            ("minutes", minutes.as_str()),
            ("email", request.to.as_str()),
        ],
    );
    Some(Email {
        to: request.to.clone(),
        subject: e.subject,
        text: e.text,
        html: Some(e.html),
    })
}

/// `https://<store base URL>/<path>/token/<token>/`.
pub fn link_url(app: &App, store: &StoreView, path: &str, token: &str) -> String {
    format!(
        "{}/{}/token/{token}/",
        store.base_url(&app.config.public_url),
        path.trim_matches('/')
    )
}

/// Sends the mail request at `key`, once.
pub async fn deliver(app: &App, key: &Key) -> Result<Delivered, Error> {
    app.links()
        .deliver(key, app.mailer.as_ref(), &|r, t| compose(app, r, t))
        .await
}

/// Why a request for a link was refused before the core saw it.
#[derive(Debug)]
pub enum Refused {
    UnknownStore,
    NextNotAllowed,
    Core(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Core(e)
    }
}

/// Whether `user` may sign in to `store` (customers belong to a website).
pub fn in_website(app: &App, store: &StoreView, user: &User) -> bool {
    let website = app
        .config
        .stores
        .get(user.store_id)
        .map_or(1, |s| s.website_id);
    website == store.website_id
}

/// A link for the customer with `email` (if there is one) in the store `store_field` names,
/// emailed by the mailer: what `POST /rest/V1/otp/send`, the "new link" page and storefront
/// events all do.
pub async fn ask(
    app: &App,
    email: &str,
    store_field: &str,
    next: Option<&str>,
    ip: Option<IpAddr>,
    request_id: Option<&str>,
    via: &'static str,
) -> Result<Sent, Refused> {
    let store = app
        .config
        .stores
        .by_field(store_field)
        .ok_or(Refused::UnknownStore)?;
    let next = match next {
        Some(n) => Some(
            store
                .allowed_next(&app.config.public_url, n)
                .ok_or(Refused::NextNotAllowed)?,
        ),
        None => None,
    };
    let links = &app.config.links;
    let path = links
        .paths
        .first()
        .map_or("customer/otp/auth", String::as_str);
    let sent = app
        .links()
        .send(
            SendRequest {
                email: email.trim(),
                store_id: store.id,
                ttl_secs: links.default_secs.min(links.max_secs),
                next: next.as_deref(),
                path,
                ip,
                request_id,
                limits: SendLimits {
                    per_email: links.per_email,
                    per_ip: links.per_ip,
                    per_store: links.per_store,
                },
                via,
            },
            &|user| in_website(app, store, user),
        )
        .await?;
    Ok(sent)
}

/// One Lambda event for the mailer: a DynamoDB stream batch, an SQS batch or an EventBridge
/// event. Returns the answer (`batchItemFailures` for the batches), or `Err` when an
/// EventBridge event should be retried.
pub async fn handle_event(app: &App, event: &Value) -> Result<Value, String> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let mut failures = Vec::new();
        for record in records {
            let (id, outcome) = match record.get("eventSource").and_then(Value::as_str) {
                Some("aws:dynamodb") => stream_record(app, record).await,
                Some("aws:sqs") => sqs_record(app, record).await,
                _ => {
                    tracing::warn!("an event record of an unknown source was skipped");
                    continue;
                }
            };
            if let Err(why) = outcome {
                tracing::warn!(item = %id, why = %why, "event record failed; reported for retry");
                failures.push(json!({ "itemIdentifier": id }));
            }
        }
        return Ok(json!({ "batchItemFailures": failures }));
    }
    if let Some(detail) = event.get("detail") {
        let id = event.get("id").and_then(Value::as_str);
        return match ask_from_event(app, detail, id).await {
            Ok(()) => Ok(json!({ "status": "ok" })),
            Err(why) => Err(why),
        };
    }
    Err("not a DynamoDB stream, SQS or EventBridge event".into())
}

fn s_attr<'a>(keys: &'a Value, name: &str) -> Option<&'a str> {
    keys.get(name)?.get("S")?.as_str()
}

/// A stream record of a mail request (others are skipped: the template's filter keeps them
/// away, this keeps them harmless).
async fn stream_record(app: &App, record: &Value) -> (String, Result<(), String>) {
    let dynamodb = record.get("dynamodb").unwrap_or(&Value::Null);
    let id = dynamodb
        .get("SequenceNumber")
        .and_then(Value::as_str)
        .or_else(|| record.get("eventID").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    if record.get("eventName").and_then(Value::as_str) != Some("INSERT") {
        return (id, Ok(()));
    }
    let keys = dynamodb.get("Keys").unwrap_or(&Value::Null);
    let Some(key) = s_attr(keys, "pk")
        .zip(s_attr(keys, "sk"))
        .and_then(|(pk, sk)| login_link::mail_key_of(pk, sk))
    else {
        return (id, Ok(()));
    };
    let outcome = match deliver(app, &key).await {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    (id, outcome)
}

async fn sqs_record(app: &App, record: &Value) -> (String, Result<(), String>) {
    let id = record
        .get("messageId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let body = record.get("body").and_then(Value::as_str).unwrap_or("");
    let outcome = match serde_json::from_str::<Value>(body) {
        Ok(detail) => ask_from_event(app, &detail, Some(&id)).await,
        Err(_) => {
            tracing::warn!(message_id = %id, "an SQS message that is not JSON was dropped");
            Ok(())
        }
    };
    (id, outcome)
}

/// A storefront's request for a link. Requests that can never succeed (malformed, unknown
/// store, `next` not allowed, throttled) are dropped with a warning; a failure of the store is
/// the error, so the event is retried.
async fn ask_from_event(app: &App, detail: &Value, event_id: Option<&str>) -> Result<(), String> {
    let field = |name: &str| match detail.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let (Some(email), Some(store)) = (field("email"), field("storeId")) else {
        tracing::warn!("a link request without email or storeId was dropped");
        return Ok(());
    };
    let request_id = field("requestId").or_else(|| event_id.map(str::to_owned));
    match ask(
        app,
        &email,
        &store,
        field("next").as_deref(),
        None,
        request_id.as_deref(),
        VIA_EVENT,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(Refused::Core(Error::Fault(f))) => Err(f.to_string()),
        Err(Refused::Core(Error::SendFailed { retryable: true })) => Err("retry".into()),
        Err(other) => {
            tracing::warn!(refused = ?other, "a link request was dropped");
            Ok(())
        }
    }
}
