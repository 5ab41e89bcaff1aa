//! The custom resources (`artifortress.io/v1alpha1`), one module per kind.
//! The CRDs in `crds/` and the chart are generated from these types.

// `#[kube(printcolumn(name = …, type_ = …))]` repeats `type_ = "string"` across
// columns, which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod artifortress;
pub mod backup;
pub mod backup_schedule;
pub mod common;
pub mod job_template;
pub mod recovery_drill;

pub use artifortress::Artifortress;
pub use backup::Backup;
pub use backup_schedule::BackupSchedule;
pub use recovery_drill::RecoveryDrill;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD this operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [Artifortress::crd(), Backup::crd(), BackupSchedule::crd(), RecoveryDrill::crd()]
        .into_iter()
        .map(without_null_enum_values)
        .collect()
}

/// schemars lists `null` among the `enum` values of some optional enum fields;
/// the API server rejects that (`nullable: true` already admits null).
fn without_null_enum_values(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(values)) = map.get_mut("enum") {
                    values.retain(|v| !v.is_null());
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(&crd).expect("a CRD serialises to JSON");
    strip(&mut json);
    serde_json::from_value(json).expect("stripping enum values keeps a valid CRD")
}

/// One CRD as the YAML document written to `crds/`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    serde_saphyr::to_string(crd).expect("a CRD always serialises to YAML")
}

/// File name of a CRD in `crds/`: `<plural>.<group>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}
