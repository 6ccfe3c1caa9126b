//! Registering the adapter with the aggregator (`local-control-plane.md` §7.4): the `ExternalName` Service
//! `kube-system/autoscale-harness-metrics` → `127.0.0.1`, and one `apiregistration.k8s.io/v1` APIService per
//! served group-version, `insecureSkipTLSVerify: true`, port = the adapter's. All server-side applied with the
//! harness's field manager; then each APIService is waited on until `Available=True`.
//!
//! Unregistering deletes the APIServices first (an unavailable registered APIService makes discovery partial and
//! stalls namespace deletion and garbage collection), then the Service.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams};
use kube::Client;
use serde_json::{json, Value};
use tracing::debug;

use super::custom::CUSTOM_GROUP;
use super::error::MetricsApiError;
use super::options::MetricsAdapterOptions;
use super::resource::RESOURCE_GROUP;
use crate::k8s::apply::server_side_apply;
use crate::k8s::FIELD_MANAGER;

/// The `ExternalName` Service the APIServices point at.
pub const SERVICE_NAME: &str = "autoscale-harness-metrics";
/// Its namespace.
pub const SERVICE_NAMESPACE: &str = "kube-system";

/// One APIService to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServiceSpec {
    /// API group.
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// `versionPriority` (higher is preferred within the group).
    pub version_priority: i32,
}

impl ApiServiceSpec {
    /// `<version>.<group>`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.version, self.group)
    }

    /// The APIService object pointing at the adapter's Service on `port`.
    pub fn manifest(&self, port: u16) -> Value {
        json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": self.name(), "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
            "spec": {
                "group": self.group, "version": self.version,
                "service": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE, "port": port},
                "insecureSkipTLSVerify": true,
                "groupPriorityMinimum": 100,
                "versionPriority": self.version_priority,
            },
        })
    }
}

/// The APIServices `options` asks for.
pub fn api_services(options: &MetricsAdapterOptions) -> Vec<ApiServiceSpec> {
    let mut out = Vec::new();
    if options.register_custom {
        out.push(ApiServiceSpec {
            group: CUSTOM_GROUP,
            version: "v1beta2",
            version_priority: 200,
        });
        if options.register_custom_v1beta1 {
            out.push(ApiServiceSpec {
                group: CUSTOM_GROUP,
                version: "v1beta1",
                version_priority: 100,
            });
        }
    }
    if options.register_resource {
        out.push(ApiServiceSpec {
            group: RESOURCE_GROUP,
            version: "v1beta1",
            version_priority: 100,
        });
    }
    out
}

/// The `ExternalName` Service.
pub(crate) fn service_manifest() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE,
                     "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
        "spec": {"type": "ExternalName", "externalName": "127.0.0.1"},
    })
}

fn kube_err(context: String) -> impl FnOnce(kube::Error) -> MetricsApiError {
    move |source| MetricsApiError::Kube { context, source }
}

/// Applies the Service and the APIServices, then waits until each is `Available=True`.
pub async fn register(
    client: &Client,
    port: u16,
    specs: &[ApiServiceSpec],
    timeout: Duration,
) -> Result<(), MetricsApiError> {
    let services: Api<Service> = Api::namespaced(client.clone(), SERVICE_NAMESPACE);
    server_side_apply(&services, SERVICE_NAME, &service_manifest())
        .await
        .map_err(kube_err(format!(
            "applying Service {SERVICE_NAMESPACE}/{SERVICE_NAME}"
        )))?;
    let api: Api<APIService> = Api::all(client.clone());
    for spec in specs {
        server_side_apply(&api, &spec.name(), &spec.manifest(port))
            .await
            .map_err(kube_err(format!("applying APIService {}", spec.name())))?;
    }
    let started = Instant::now();
    for spec in specs {
        wait_available(&api, &spec.name(), started, timeout).await?;
        debug!(api_service = %spec.name(), elapsed_ms = started.elapsed().as_millis() as u64, "Available");
    }
    Ok(())
}

/// Polls the APIService every 100 ms until `Available=True`, or fails with its condition after `timeout`.
async fn wait_available(
    api: &Api<APIService>,
    name: &str,
    started: Instant,
    timeout: Duration,
) -> Result<(), MetricsApiError> {
    loop {
        let current = api
            .get(name)
            .await
            .map_err(kube_err(format!("reading APIService {name}")))?;
        let condition = current
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
            .cloned();
        if condition.as_ref().is_some_and(|c| c.status == "True") {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(MetricsApiError::NotAvailable {
                name: name.to_string(),
                waited: started.elapsed(),
                reason: condition
                    .as_ref()
                    .and_then(|c| c.reason.clone())
                    .unwrap_or_else(|| "NoCondition".into()),
                message: condition.and_then(|c| c.message).unwrap_or_default(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes the APIServices `names`, then the Service (missing objects are fine). The first error is returned
/// after trying everything.
pub(crate) async fn unregister(client: &Client, names: &[String]) -> Result<(), MetricsApiError> {
    let mut first_error = None;
    let api: Api<APIService> = Api::all(client.clone());
    for name in names {
        if let Err(e) = api.delete(name, &DeleteParams::default()).await {
            if !is_not_found(&e) {
                first_error.get_or_insert(MetricsApiError::Kube {
                    context: format!("deleting APIService {name}"),
                    source: e,
                });
            }
        }
    }
    let services: Api<Service> = Api::namespaced(client.clone(), SERVICE_NAMESPACE);
    if let Err(e) = services
        .delete(SERVICE_NAME, &DeleteParams::default())
        .await
    {
        if !is_not_found(&e) {
            first_error.get_or_insert(MetricsApiError::Kube {
                context: format!("deleting Service {SERVICE_NAMESPACE}/{SERVICE_NAME}"),
                source: e,
            });
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_registration_is_custom_v1beta2_and_resource_v1beta1() {
        let names: Vec<String> = api_services(&MetricsAdapterOptions::default())
            .iter()
            .map(ApiServiceSpec::name)
            .collect();
        assert_eq!(
            names,
            ["v1beta2.custom.metrics.k8s.io", "v1beta1.metrics.k8s.io"]
        );
        let all = MetricsAdapterOptions {
            register_custom_v1beta1: true,
            ..Default::default()
        };
        assert_eq!(api_services(&all).len(), 3);
        let none = MetricsAdapterOptions {
            register_custom: false,
            register_resource: false,
            ..Default::default()
        };
        assert!(api_services(&none).is_empty());
    }

    #[test]
    fn manifests_point_at_the_external_name_service() {
        let m = api_services(&MetricsAdapterOptions::default())[0].manifest(7443);
        assert_eq!(
            m["spec"]["service"],
            json!({"name": SERVICE_NAME, "namespace": "kube-system", "port": 7443})
        );
        assert_eq!(m["spec"]["insecureSkipTLSVerify"], true);
        let typed: APIService = serde_json::from_value(m).expect("valid APIService");
        assert_eq!(
            typed.spec.expect("spec").version.as_deref(),
            Some("v1beta2")
        );
        let s = service_manifest();
        assert_eq!(
            s["spec"],
            json!({"type": "ExternalName", "externalName": "127.0.0.1"})
        );
    }
}
