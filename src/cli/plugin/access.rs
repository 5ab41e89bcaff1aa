//! The cluster as the user may see it: their kubeconfig, their namespace, and
//! every refusal turned into what to do about it.

use kube::api::{Api, ListParams, PostParams};
use kube::config::{Config, KubeConfigOptions};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use artifortress_operator::api::artifortress::Artifortress;

use super::super::failure::{Failure, failed, usage};

pub struct Cluster {
    pub client: kube::Client,
    pub namespace: String,
}

impl Cluster {
    pub async fn connect(namespace: Option<String>, context: Option<String>) -> Result<Cluster, Failure> {
        let options = KubeConfigOptions { context: context.clone(), ..Default::default() };
        let config = match Config::from_kubeconfig(&options).await {
            Ok(config) => config,
            // Inside a pod without a kubeconfig: its service account.
            Err(_) if context.is_none() => Config::infer().await.map_err(|e| {
                usage(format!("no cluster to talk to: {e} (set KUBECONFIG, or run where ~/.kube/config is)"))
            })?,
            Err(e) => return Err(usage(format!("kubeconfig context {context:?}: {e}"))),
        };
        let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| usage(format!("kubeconfig: {e}")))?;
        Ok(Cluster { client, namespace })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn list<K>(&self) -> Result<Vec<K>, Failure>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let listed = self.api::<K>().list(&ListParams::default()).await;
        Ok(listed.map_err(|e| self.explain(e, "list", &K::plural(&Default::default())))?.items)
    }

    pub async fn get<K>(&self, name: &str) -> Result<Option<K>, Failure>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        self.api::<K>().get_opt(name).await.map_err(|e| self.explain(e, "get", &K::plural(&Default::default())))
    }

    pub async fn create<K>(&self, object: &K) -> Result<K, Failure>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let created = self.api::<K>().create(&PostParams::default(), object).await;
        created.map_err(|e| self.explain(e, "create", &K::plural(&Default::default())))
    }

    /// The installation `name`, or a refusal listing the ones there are.
    pub async fn installation(&self, name: &str) -> Result<Artifortress, Failure> {
        if let Some(found) = self.get::<Artifortress>(name).await? {
            return Ok(found);
        }
        let there: Vec<String> = self.list::<Artifortress>().await?.iter().map(|a| a.name_any()).collect();
        let ns = &self.namespace;
        Err(usage(if there.is_empty() {
            format!(
                "no Artifortress installation {name:?} in namespace {ns}, nor any other there (-n NAMESPACE; kubectl get artifortresses -A)"
            )
        } else {
            format!("no Artifortress installation {name:?} in namespace {ns}; there are: {}", there.join(", "))
        }))
    }

    /// A refusal of `verb` on `resource` as a person can act on it.
    pub fn explain(&self, e: kube::Error, verb: &str, resource: &str) -> Failure {
        refusal(&self.namespace, e, verb, resource)
    }
}

pub fn refusal(ns: &str, e: kube::Error, verb: &str, resource: &str) -> Failure {
    match &e {
        kube::Error::Api(s) if s.code == 403 => failed(format!(
            "RBAC: you may not {verb} {resource} in namespace {ns} ({}); ask for a role that grants it (the operator chart's \
             ClusterRoles <release>-viewer read, <release>-editor also create Backups and RecoveryDrills)",
            s.message
        )),
        kube::Error::Api(s) if s.code == 401 => {
            failed(format!("the cluster does not accept your credentials (401: {}); log in again", s.message))
        }
        kube::Error::Api(s) if s.code == 404 && s.message.contains("could not find the requested resource") => {
            failed(format!(
                "this cluster does not serve {resource}: is the Artifortress operator installed? \
             (helm install artifortress-operator charts/artifortress-operator installs its CustomResourceDefinitions)"
            ))
        }
        kube::Error::Api(s) => {
            failed(format!("cannot {verb} {resource} in namespace {ns}: {} ({})", s.message, s.code))
        }
        _ => failed(format!("cannot reach the cluster to {verb} {resource}: {e}")),
    }
}
