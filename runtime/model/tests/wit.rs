//! The WIT is the contract with guests; the capability descriptors say what each of its
//! functions is. These tests parse `wit/` with `wit-parser` and fail when the two drift apart.

use std::path::Path;

use grace_model::capability::{self, INTERFACES};
use wit_parser::{Resolve, WorldItem};

/// Interfaces of the WIT package that are not capabilities: shared types only.
const NOT_CAPABILITIES: [&str; 1] = ["types"];

fn resolve() -> Resolve {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let mut resolve = Resolve::default();
    resolve
        .push_dir(&dir)
        .unwrap_or_else(|e| panic!("{} does not parse: {e:#}", dir.display()));
    resolve
}

/// `(interface, function)` of every function the WIT package's interfaces declare.
fn wit_functions(resolve: &Resolve) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, iface) in &resolve.interfaces {
        let Some(name) = &iface.name else { continue };
        if NOT_CAPABILITIES.contains(&name.as_str()) {
            assert!(
                iface.functions.is_empty(),
                "`{name}` is listed as holding only types, but declares functions"
            );
            continue;
        }
        for f in iface.functions.keys() {
            out.push((name.clone(), f.clone()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_wit_function_has_a_descriptor() {
    for (interface, function) in wit_functions(&resolve()) {
        assert!(
            capability::function(&interface, &function).is_some(),
            "the WIT declares `{interface}.{function}`, which has no capability descriptor \
             (add one in runtime/model/src/capability/{interface}.rs)"
        );
    }
}

#[test]
fn every_descriptor_names_a_wit_function() {
    let wit = wit_functions(&resolve());
    for f in capability::functions() {
        assert!(
            wit.iter().any(|(i, n)| i == f.interface && n == f.name),
            "the capability descriptor `{}.{}` names a function the WIT does not declare",
            f.interface,
            f.name
        );
    }
}

#[test]
fn descriptors_list_every_interface_in_wit_order() {
    let resolve = resolve();
    let wit: Vec<String> = resolve
        .interfaces
        .iter()
        .filter_map(|(_, i)| i.name.clone())
        .filter(|n| !NOT_CAPABILITIES.contains(&n.as_str()))
        .collect();
    let ours: Vec<&str> = INTERFACES.iter().map(|i| i.name).collect();
    assert_eq!(wit, ours);
    for (_, iface) in &resolve.interfaces {
        let Some(name) = &iface.name else { continue };
        let Some(ours) = INTERFACES.iter().find(|i| i.name == name) else {
            continue;
        };
        let wit_order: Vec<&str> = iface.functions.keys().map(String::as_str).collect();
        let our_order: Vec<&str> = ours.functions.iter().map(|f| f.name).collect();
        assert_eq!(wit_order, our_order, "functions of `{name}`");
    }
}

/// Every capability a world imports is one the host describes: a guest can never import a
/// function the trust core and the grants know nothing about.
#[test]
fn every_interface_a_world_imports_is_described() {
    let resolve = resolve();
    for (_, world) in &resolve.worlds {
        for item in world.imports.values() {
            let WorldItem::Interface { id, .. } = item else {
                continue;
            };
            let Some(name) = &resolve.interfaces[*id].name else {
                continue;
            };
            if NOT_CAPABILITIES.contains(&name.as_str()) {
                continue;
            }
            assert!(
                INTERFACES.iter().any(|i| i.name == name),
                "world `{}` imports `{name}`, which has no descriptors",
                world.name
            );
        }
    }
}
