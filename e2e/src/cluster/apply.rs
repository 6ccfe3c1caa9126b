//! `kubectl apply --server-side` for YAML manifests: any kind the API server knows, CRDs included.
//!
//! Each document of a (multi-document) YAML file is resolved through API discovery to its resource, then applied
//! with server-side apply under the harness's field manager, so the API server validates it against its real
//! schema (CRD OpenAPI schemas included) and a second apply is a no-op. Kustomize directories are read through
//! their `kustomization.yaml` `resources:` list (plain resources only; no patches or generators).

use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::Client;
use serde::Deserialize;

use super::ClusterError;
use crate::k8s::apply::server_side_apply;

/// Reads every YAML document of a file, or of a kustomization directory's resources, in order.
pub fn read_manifests(path: &Path) -> Result<Vec<serde_json::Value>, ClusterError> {
    let err = |message: String| ClusterError::Manifest {
        path: path.to_path_buf(),
        message,
    };
    if path.is_dir() {
        let kustomization = path.join("kustomization.yaml");
        let text = std::fs::read_to_string(&kustomization)
            .map_err(|e| err(format!("no kustomization.yaml: {e}")))?;
        #[derive(Deserialize)]
        struct Kustomization {
            #[serde(default)]
            resources: Vec<String>,
        }
        let k: Kustomization = serde_yaml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut all = Vec::new();
        for resource in k.resources {
            all.extend(read_manifests(&path.join(resource))?);
        }
        return Ok(all);
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    parse_documents(&text).map_err(err)
}

/// Parses a multi-document YAML string into JSON values, skipping empty documents.
pub fn parse_documents(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(document)
            .map_err(|e| format!("document {}: {e}", i + 1))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// An `apiVersion` as (group, version): `apps/v1` → (`apps`, `v1`); the core group's `v1` → (`""`, `v1`).
fn group_and_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Applies manifests to a cluster.
pub struct Applier {
    client: Client,
    discovery: Discovery,
    /// The API groups discovered (and the only ones it can apply).
    groups: Vec<String>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier").finish_non_exhaustive()
    }
}

impl Applier {
    /// Runs API discovery of the groups `objects` use ([`Applier::for_groups`]).
    pub async fn for_objects(
        client: Client,
        objects: &[serde_json::Value],
    ) -> Result<Self, ClusterError> {
        let groups: Vec<&str> = objects
            .iter()
            .filter_map(|o| o["apiVersion"].as_str())
            .map(|v| group_and_version(v).0)
            .collect();
        Self::for_groups(client, &groups).await
    }

    /// Runs API discovery of `groups` (`""` is the core group), and only those: on a cluster where some unrelated
    /// aggregated API is down (a metrics server, say), discovery of every group would fail and nothing could be
    /// applied. When it fails anyway, the error names the unavailable APIServices.
    pub async fn for_groups(client: Client, groups: &[&str]) -> Result<Self, ClusterError> {
        let mut groups: Vec<String> = groups.iter().map(ToString::to_string).collect();
        groups.sort_unstable();
        groups.dedup();
        let allow: Vec<&str> = groups.iter().map(String::as_str).collect();
        match Discovery::new(client.clone()).filter(&allow).run().await {
            Ok(discovery) => Ok(Self {
                client,
                discovery,
                groups,
            }),
            Err(source) => Err(ClusterError::Kube {
                context: format!(
                    "API discovery of {}{}",
                    allow
                        .iter()
                        .map(|g| if g.is_empty() { "core" } else { g })
                        .collect::<Vec<_>>()
                        .join(", "),
                    crate::k8s::health::apiservice_note(&client).await
                ),
                source,
            }),
        }
    }

    /// Re-runs discovery of the same groups (after CRDs are installed).
    pub async fn refresh(&mut self) -> Result<(), ClusterError> {
        let groups: Vec<&str> = self.groups.iter().map(String::as_str).collect();
        *self = Self::for_groups(self.client.clone(), &groups).await?;
        Ok(())
    }

    fn resolve(&self, api_version: &str, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
        let (group, version) = group_and_version(api_version);
        self.discovery
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.versioned_resources(version))
            .find(|(r, _)| r.kind == kind)
    }

    /// Server-side applies one object; `default_namespace` is used for namespaced kinds without one.
    pub async fn apply(
        &self,
        object: &serde_json::Value,
        default_namespace: &str,
    ) -> Result<DynamicObject, ClusterError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let manifest_err = |message: String| ClusterError::Manifest {
            path: PathBuf::from(format!("{kind}/{name}")),
            message,
        };
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(manifest_err(
                "apiVersion, kind and metadata.name are required".into(),
            ));
        }
        let (resource, caps) = self.resolve(api_version, kind).ok_or_else(|| {
            let (group, _) = group_and_version(api_version);
            if self.groups.iter().any(|g| g == group) {
                manifest_err(format!(
                    "the API server does not serve {api_version} {kind}"
                ))
            } else {
                manifest_err(format!(
                    "API group {group:?} was not discovered by this applier (only {:?})",
                    self.groups
                ))
            }
        })?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let namespace = object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(default_namespace);
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        };
        server_side_apply(&api, name, object)
            .await
            .map_err(|source| ClusterError::Kube {
                context: format!("applying {kind} {name}"),
                source,
            })
    }
}

/// Sets `--<flag>=<value>` in a container object's `args`, replacing any earlier `--<flag>` form (how the harness
/// adapts the repository's Deployment, e.g. a shorter `--startup-delay` for tests and scenarios).
pub fn set_container_arg(
    container: &mut serde_json::Value,
    flag: &str,
    value: impl std::fmt::Display,
) {
    let prefix = format!("--{flag}");
    let mut args: Vec<String> = container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    args.retain(|a| a != &prefix && !a.starts_with(&format!("{prefix}=")));
    args.push(format!("{prefix}={value}"));
    container["args"] = serde_json::json!(args);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_parses_and_skips_empty_documents() {
        let docs =
            parse_documents("a: 1\n---\n---\nkind: Service\nmetadata: {name: x}\n").expect("valid");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "Service");
        assert!(parse_documents("a: [1,\n").is_err());
    }

    #[test]
    fn container_args_are_replaced_not_duplicated() {
        let mut container = serde_json::json!({"args": ["--port=8000", "--startup-delay=40", "--startup-delay-x=1"]});
        set_container_arg(&mut container, "startup-delay", 5);
        assert_eq!(
            container["args"],
            serde_json::json!(["--port=8000", "--startup-delay-x=1", "--startup-delay=5"])
        );
        let mut empty = serde_json::json!({});
        set_container_arg(&mut empty, "seed", "7");
        assert_eq!(empty["args"], serde_json::json!(["--seed=7"]));
    }

    #[test]
    fn the_repository_manifests_read() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base/mock-vllm");
        let docs = read_manifests(&base).expect("kustomization reads");
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, vec!["Deployment", "Service"]);
    }
}
