//! A plugin built against an older plugin-api (0.1.0): its root module has
//! another layout than the host's (fewer fields, another `init`), and it says
//! so in its version strings, which the host checks first.
#![allow(non_camel_case_types, non_local_definitions)]

use abi_stable::library::RootModule;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RStr, RString};
use abi_stable::{declare_root_module_statics, export_root_module, StableAbi};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRoot_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginRoot {
    pub name: extern "C" fn() -> RStr<'static>,
    #[sabi(last_prefix_field)]
    pub init: extern "C" fn() -> RString,
}

impl RootModule for PluginRoot_Ref {
    declare_root_module_statics! {PluginRoot_Ref}
    const BASE_NAME: &'static str = "camrouter_plugin";
    const NAME: &'static str = "camrouter_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.1.0");
}

extern "C" fn name() -> RStr<'static> {
    RStr::from_str("oldabi")
}

extern "C" fn init() -> RString {
    RString::from("never called")
}

#[export_root_module]
pub fn root() -> PluginRoot_Ref {
    PluginRoot { name, init }.leak_into_prefix()
}
