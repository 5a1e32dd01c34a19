//! Webhooks (`webhook_configs`): Alertmanager's version 4 JSON payload, POSTed to a URL.

use serde::{Deserialize, Serialize};

use super::{BoxFuture, BuildContext, Integration, Message, Notifier, NotifyError};

fn yes() -> bool {
    true
}

/// One `webhook_configs` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<vigil_http::HttpClientConfig>,
    /// A secret, as in Alertmanager 0.26 and later: webhook URLs often carry a token.
    #[serde(default)]
    pub url: vigil_model::Secret,
    #[serde(default)]
    pub max_alerts: u64,
}

impl WebhookConfig {
    /// Alertmanager's checks.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.url.is_empty() {
            return Err("missing URL in webhook config".into());
        }
        super::check_url(self.url.expose())?;
        if let Some(h) = &mut self.http_config {
            h.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn build(&self, index: usize, ctx: &mut BuildContext<'_>) -> Result<Integration, String> {
        Ok(Integration {
            kind: "webhook",
            index,
            send_resolved: self.send_resolved,
            notifier: Box::new(Webhook {
                client: ctx.http(&self.http_config)?,
                url: self.url.expose().to_string(),
                max_alerts: self.max_alerts as usize,
            }),
        })
    }
}

struct Webhook {
    client: vigil_http::HttpClient,
    url: String,
    max_alerts: usize,
}

/// One alert as the webhook payload (and the v2 API) writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertJson<'a> {
    pub status: &'static str,
    pub labels: &'a vigil_model::Labels,
    pub annotations: &'a std::collections::BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    pub fingerprint: String,
}

impl<'a> AlertJson<'a> {
    /// A firing alert's `endsAt` is Go's zero time, as in Alertmanager's notifications.
    pub fn of(a: &'a crate::router::Alert, now: i64) -> AlertJson<'a> {
        let resolved = a.resolved_at(now);
        AlertJson {
            status: if resolved { "resolved" } else { "firing" },
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: super::go_rfc3339(Some(a.starts_at)),
            ends_at: super::go_rfc3339(resolved.then_some(a.ends_at)),
            generator_url: &a.generator_url,
            fingerprint: format!("{:016x}", a.fingerprint()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    receiver: String,
    status: &'static str,
    alerts: Vec<AlertJson<'a>>,
    group_labels: &'a vigil_model::Labels,
    common_labels: std::collections::BTreeMap<String, String>,
    common_annotations: std::collections::BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    version: &'static str,
    group_key: &'a str,
    truncated_alerts: usize,
}

/// The version 4 payload of `m`, keeping at most `max_alerts` alerts (0: all).
pub fn payload(m: &Message<'_>, max_alerts: usize) -> Vec<u8> {
    let shown = if max_alerts > 0 {
        m.alerts.len().min(max_alerts)
    } else {
        m.alerts.len()
    };
    // Status and common labels are those of the alerts sent, as Alertmanager computes them after
    // truncation.
    let kept = Message {
        alerts: &m.alerts[..shown],
        ..*m
    };
    super::go_json(&Payload {
        receiver: super::quote_meta(m.receiver),
        status: kept.status(),
        alerts: kept
            .alerts
            .iter()
            .map(|a| AlertJson::of(a, m.now))
            .collect(),
        group_labels: m.group_labels,
        common_labels: kept.common_labels(),
        common_annotations: kept.common_annotations(),
        external_url: m.external_url,
        version: "4",
        group_key: m.group_key,
        truncated_alerts: m.alerts.len() - shown,
    })
}

impl Notifier for Webhook {
    fn notify<'a>(&'a self, m: &'a Message<'a>) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let (code, body) =
                super::post_json(&self.client, &self.url, payload(m, self.max_alerts), &[]).await?;
            // Alertmanager names the URL and the body in the error; the URL can carry a token,
            // so Vigil names only the body.
            super::check_status(code, &[], &body)
        })
    }
}
