//! The local outbox: instead of sending, every email and SMS is appended as one JSON object per
//! line to `<data-dir>/outbox.jsonl`, and the local server shows them at `GET /_dev/outbox`
//! (a page) and `GET /_dev/outbox.json`. Only the local server uses it; the Lambda build has
//! no outbox.

use latchkey_core::templates::escape_html;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use latchkey_core::ports::{Clock, Email, Mailer, SendError, Sms, SmsSender};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One message as written to the outbox file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: String,
    /// `email` or `sms`.
    pub channel: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// RFC 3339, UTC.
    pub sent_at: String,
}

pub struct Outbox {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    lock: tokio::sync::Mutex<()>,
    sequence: AtomicU64,
}

impl Outbox {
    pub fn new(path: PathBuf, clock: Arc<dyn Clock>) -> Self {
        Self {
            path,
            clock,
            lock: tokio::sync::Mutex::new(()),
            sequence: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn entry(
        &self,
        channel: &str,
        to: &str,
        subject: Option<&str>,
        body: &str,
        html: Option<&str>,
    ) -> OutboxEntry {
        let ms = self.clock.now_ms();
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        OutboxEntry {
            id: format!("{ms:x}-{}-{n}", std::process::id()),
            channel: channel.into(),
            to: to.into(),
            subject: subject.map(str::to_owned),
            body: body.into(),
            html: html.map(str::to_owned),
            sent_at: at,
        }
    }

    /// Appends one line. The line is written with a single `write` on a file opened for
    /// appending, so concurrent writers (threads or processes) never interleave inside a line.
    async fn append(&self, entry: OutboxEntry) -> Result<(), SendError> {
        let mut line =
            serde_json::to_vec(&entry).map_err(|e| SendError::Rejected(format!("outbox: {e}")))?;
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            // The outbox holds live set-up tokens and codes: its owner's eyes only.
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path)?;
            file.write_all(&line)?;
            file.flush()
        })
        .await
        .map_err(|_| SendError::Retryable("outbox task failed".into()))?
        .map_err(|e| SendError::Retryable(format!("writing the outbox: {e}")))
    }

    /// Every message, oldest first. A torn last line (a writer killed mid-write) is skipped.
    pub fn read(&self) -> Vec<OutboxEntry> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send_email(&self, email: &Email) -> Result<(), SendError> {
        let entry = self.entry(
            "email",
            &email.to,
            Some(&email.subject),
            &email.text,
            email.html.as_deref(),
        );
        self.append(entry).await?;
        tracing::info!(to = %email.to, subject = %email.subject, "email written to the local outbox");
        Ok(())
    }
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send_sms(&self, sms: &Sms) -> Result<(), SendError> {
        self.append(self.entry("sms", &sms.to, None, &sms.body, None))
            .await?;
        tracing::info!(to = %sms.to, "SMS written to the local outbox");
        Ok(())
    }
}

/// The messages as JSON, newest first.
pub fn render_json(entries: &[OutboxEntry]) -> String {
    let newest_first: Vec<&OutboxEntry> = entries.iter().rev().collect();
    serde_json::to_string_pretty(&newest_first).unwrap_or_else(|_| "[]".into())
}

/// A small page listing the messages, newest first; refreshes itself every 5 seconds.
pub fn render_html(entries: &[OutboxEntry]) -> String {
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>latchkey outbox</title><style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}\
         article{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}\
         .meta{color:#555;font-size:.9em}pre{white-space:pre-wrap;background:#f6f6f6;padding:.8em}</style></head><body>\
         <h1>latchkey outbox</h1><p>Every email and SMS the local server sent. \
         Raw: <a href=\"/_dev/outbox.json\">/_dev/outbox.json</a>.</p>",
    );
    if entries.is_empty() {
        page.push_str("<p><em>Nothing sent yet.</em></p>");
    }
    for e in entries.iter().rev() {
        page.push_str(&format!(
            "<article><div class=\"meta\">{} to <strong>{}</strong> at {}</div>{}<pre>{}</pre></article>",
            escape_html(&e.channel),
            escape_html(&e.to),
            escape_html(&e.sent_at),
            e.subject.as_deref().map(|s| format!("<h3>{}</h3>", escape_html(s))).unwrap_or_default(),
            escape_html(&e.body)
        ));
    }
    page.push_str("</body></html>");
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::ports::ManualClock;

    fn outbox(dir: &tempfile::TempDir) -> Arc<Outbox> {
        Arc::new(Outbox::new(
            dir.path().join("outbox.jsonl"),
            Arc::new(ManualClock::at(1_900_000_000)),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sends_write_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let out = outbox(&dir);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let out = out.clone();
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    out.send_email(&Email {
                        to: format!("u{i}@example.com"),
                        subject: "s".into(),
                        text: "x".repeat(5000),
                        html: None,
                    })
                    .await
                } else {
                    out.send_sms(&Sms {
                        to: "+4915112345678".into(),
                        body: format!("code {i}"),
                    })
                    .await
                }
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let raw = std::fs::read_to_string(out.path()).unwrap();
        assert_eq!(raw.lines().count(), 40);
        assert!(
            raw.lines()
                .all(|l| serde_json::from_str::<OutboxEntry>(l).is_ok())
        );
        let entries = out.read();
        assert_eq!(entries.iter().filter(|e| e.channel == "sms").count(), 20);
        assert!(entries.iter().all(|e| e.sent_at == "2030-03-17T17:46:40Z"));
        assert!(
            entries
                .iter()
                .filter(|e| e.channel == "sms")
                .all(|e| e.subject.is_none())
        );
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let out = outbox(&dir);
        out.send_sms(&Sms {
            to: "+4915112345678".into(),
            body: "one".into(),
        })
        .await
        .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(out.path())
            .unwrap()
            .write_all(b"{\"id\":\"x\",\"chan")
            .unwrap();
        assert_eq!(out.read().len(), 1);
    }

    #[test]
    fn pages_escape_and_order_newest_first() {
        let e = |id: &str, body: &str| OutboxEntry {
            id: id.into(),
            channel: "email".into(),
            to: "a@example.com".into(),
            subject: Some("<b>hi</b>".into()),
            body: body.into(),
            html: None,
            sent_at: "t".into(),
        };
        let entries = vec![e("1", "first"), e("2", "<script>alert(1)</script>")];
        let html = render_html(&entries);
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.find("&lt;script").unwrap() < html.find("first").unwrap());
        let json: serde_json::Value = serde_json::from_str(&render_json(&entries)).unwrap();
        assert_eq!(json[0]["id"], "2");
        assert_eq!(json[0]["subject"], "<b>hi</b>");
        assert!(render_html(&[]).contains("Nothing sent yet"));
    }
}
