//! The path parameters of the OpenIDCS face, named as its routes name them.

use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HostPath {
    /// The host's name.
    #[param(example = "h1")]
    pub hs_name: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VmPath {
    /// The host's name.
    #[param(example = "h1")]
    pub hs_name: String,
    /// The VM's uuid (its name).
    #[param(example = "vm1")]
    pub vm_uuid: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VmItemPath {
    /// The host's name.
    #[param(example = "h1")]
    pub hs_name: String,
    /// The VM's uuid (its name).
    #[param(example = "vm1")]
    pub vm_uuid: String,
    /// The snapshot, backup or NIC.
    pub name: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VmIndexPath {
    /// The host's name.
    #[param(example = "h1")]
    pub hs_name: String,
    /// The VM's uuid (its name).
    #[param(example = "vm1")]
    pub vm_uuid: String,
    /// The entry's position in the VM's list (from 0).
    pub index: usize,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskPath {
    /// The task's id.
    pub id: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VmIdPath {
    /// The VM's numeric id.
    pub id: i64,
}
