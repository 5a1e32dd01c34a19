//! `http.request`: one HTTP request with the shared client (Prometheus's `http_config`: CAs, client
//! certificates, credentials, proxy). Only to URLs under a prefix the binding's grant lists
//! (`scope.url_prefixes`; [`crate::grants`] refuses a grant without one). A non-2xx answer is a
//! result, not an error: the runbook decides what it means.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use vigil_http::HttpClient;

use super::{Capability, Effect, Target, arg_str};
use crate::sandbox::CallError;

/// Bytes of the answer's body kept.
pub const MAX_BODY: usize = 64 << 10;

pub struct HttpCapability {
    client: HttpClient,
}

impl HttpCapability {
    pub fn new(client: HttpClient) -> HttpCapability {
        HttpCapability { client }
    }
}

#[async_trait::async_trait]
impl Capability for HttpCapability {
    fn names(&self) -> &'static [(&'static str, Effect)] {
        &[("http.request", Effect::Acts)]
    }

    async fn target(&self, _name: &str, args: &Value) -> Result<Option<Target>, CallError> {
        let url = arg_str(args, "url")?;
        let parsed =
            url::Url::parse(url).map_err(|e| CallError::BadRequest(format!("url {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CallError::BadRequest(format!(
                "url {url:?}: only http and https"
            )));
        }
        // The normalised form is what prefixes are compared with: no `..` or case tricks.
        Ok(Some(Target {
            kind: "url",
            id: parsed.to_string(),
            labels: BTreeMap::from([(
                "host".to_string(),
                parsed.host_str().unwrap_or("").to_string(),
            )]),
        }))
    }

    async fn call(
        &self,
        _name: &str,
        args: &Value,
        target: Option<&Target>,
    ) -> Result<Value, CallError> {
        let url = match target {
            Some(t) => t.id.clone(),
            None => arg_str(args, "url")?.to_string(),
        };
        let method = args
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
            CallError::BadRequest(format!("method {method:?} is not an HTTP method"))
        })?;
        let mut req = self
            .client
            .request(method, &url)
            .map_err(|e| CallError::Failed(e.to_string()))?;
        if let Some(h) = args.get("headers") {
            let Some(h) = h.as_object() else {
                return Err(CallError::BadRequest(
                    "headers must be an object of strings".into(),
                ));
            };
            for (k, v) in h {
                let Some(v) = v.as_str() else {
                    return Err(CallError::BadRequest(format!(
                        "header {k} must be a string"
                    )));
                };
                if k.eq_ignore_ascii_case("authorization") {
                    return Err(CallError::BadRequest(
                        "the Authorization header comes from the binding's http_config, not from the runbook".into(),
                    ));
                }
                req = req.header(k.as_str(), v);
            }
        }
        match (args.get("json"), args.get("body")) {
            (Some(_), Some(_)) => {
                return Err(CallError::BadRequest("give json or body, not both".into()));
            }
            (Some(j), None) => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(j).unwrap_or_default());
            }
            (None, Some(Value::String(b))) => req = req.body(b.clone()),
            (None, Some(_)) => return Err(CallError::BadRequest("body must be a string".into())),
            (None, None) => {}
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Failed(format!("{url}: {e}")))?;
        let status = resp.status().as_u16();
        let headers: BTreeMap<String, String> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CallError::Failed(format!("{url}: reading the answer: {e}")))?;
        let truncated = bytes.len() > MAX_BODY;
        let body = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
        let mut out =
            json!({"status": status, "headers": headers, "body": body, "truncated": truncated});
        if !truncated && let Ok(j) = serde_json::from_slice::<Value>(&bytes) {
            out["json"] = j;
        }
        Ok(out)
    }
}
