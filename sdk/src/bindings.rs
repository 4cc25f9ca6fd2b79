//! The generated bindings for the two worlds of `wit/grace.wit`.
//!
//! `playbook` is generated in full; `collector` maps every interface it shares with `playbook`
//! onto the `playbook` modules (`with`), so each shared interface and its types exist once.
//! Both export macros are `pub` so that `export_playbook!`/`export_collector!` can expand them
//! in the guest's crate: that is also what makes wit-bindgen put each world's *exports* in the
//! custom section emitted by the export macro, so a guest exports only the world it chose.

/// Bindings for the `playbook` world: every interface, and the `run` export.
pub mod playbook {
    wit_bindgen::generate!({
        path: "../wit",
        world: "playbook",
        pub_export_macro: true,
        export_macro_name: "export",
        runtime_path: "::grace_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings for the `collector` world, reusing the `playbook` world's interfaces.
pub mod collector {
    wit_bindgen::generate!({
        path: "../wit",
        world: "collector",
        pub_export_macro: true,
        export_macro_name: "export",
        runtime_path: "::grace_sdk::__private::wit_bindgen::rt",
        with: {
            "grace:playbook/types@0.1.0": crate::bindings::playbook::grace::playbook::types,
            "grace:playbook/log@0.1.0": crate::bindings::playbook::grace::playbook::log,
            "grace:playbook/clock@0.1.0": crate::bindings::playbook::grace::playbook::clock,
            "grace:playbook/config@0.1.0": crate::bindings::playbook::grace::playbook::config,
            "grace:playbook/metrics@0.1.0": crate::bindings::playbook::grace::playbook::metrics,
        },
    });
}
