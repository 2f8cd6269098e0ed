//! Discovery and manifests: what gets loaded, and the errors for what does not.

use certctl_core::runtime::{Grants, PluginKind, RuntimeError};

use crate::support::{install, plugin_dir, runtime};

/// The error of the plugin in directory `dir_name`, with the temp path replaced.
fn load_error(plugins: &std::path::Path, dir_name: &str) -> String {
    let set = runtime()
        .load_dir(plugins, &Grants::default())
        .expect("load_dir");
    let entry = set
        .entries()
        .iter()
        .find(|e| e.dir.file_name().is_some_and(|n| n == dir_name))
        .expect("entry");
    assert!(!entry.is_loaded());
    entry
        .error
        .as_ref()
        .expect("an error")
        .to_string()
        .replace(&plugins.display().to_string(), "<plugins>")
}

#[test]
fn a_missing_plugin_directory_is_an_empty_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let set = runtime()
        .load_dir(&tmp.path().join("nope"), &Grants::default())
        .expect("load");
    assert!(set.entries().is_empty());
    assert!(matches!(
        set.target("nginx"),
        Err(RuntimeError::NotFound { .. })
    ));
}

#[test]
fn an_unsupported_wit_version_is_refused_before_compiling() {
    let plugins = plugin_dir(&[]);
    let dir = install(plugins.path(), "hostile", "future");
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).expect("read");
    std::fs::write(
        dir.join("plugin.toml"),
        manifest.replace("wit = \"0.1.0\"", "wit = \"0.2.0\""),
    )
    .expect("write");
    // Not even a component: the version check must come first.
    std::fs::write(dir.join("plugin.wasm"), b"not wasm").expect("write");
    assert_eq!(
        load_error(plugins.path(), "future"),
        "plugin `hostile` was built against WIT certctl:connector@0.2.0, but this host implements \
         0.1.x; rebuild it against a supported version"
    );
}

#[test]
fn a_malformed_manifest_names_the_file_line_and_problem() {
    let plugins = plugin_dir(&[]);
    let dir = plugins.path().join("broken");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("plugin.toml"),
        "id = \"broken\"\nkind = \"gateway\"\nversion = \"1\"\nwit = \"0.1.0\"\n",
    )
    .expect("write");
    assert_eq!(
        load_error(plugins.path(), "broken"),
        "malformed manifest <plugins>/broken/plugin.toml: line 2, column 8: unknown variant \
         `gateway`, expected one of `issuer`, `target`, `notifier`"
    );

    std::fs::write(
        dir.join("plugin.toml"),
        "id = \"broken\"\nkind = \"target\"\n",
    )
    .expect("write");
    assert_eq!(
        load_error(plugins.path(), "broken"),
        "malformed manifest <plugins>/broken/plugin.toml: line 1, column 1: missing field `version`"
    );
}

#[test]
fn a_component_that_is_not_wasm_is_a_compile_error() {
    let plugins = plugin_dir(&[]);
    let dir = install(plugins.path(), "hostile", "hostile");
    std::fs::write(dir.join("plugin.wasm"), b"\0asm garbage").expect("write");
    let message = load_error(plugins.path(), "hostile");
    assert!(
        message.starts_with("plugin `hostile` failed to compile: "),
        "{message}"
    );
}

#[test]
fn a_component_of_another_world_does_not_link() {
    let plugins = plugin_dir(&[]);
    let dir = install(plugins.path(), "hostile-notifier", "liar");
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).expect("read");
    std::fs::write(
        dir.join("plugin.toml"),
        manifest
            .replace("kind = \"notifier\"", "kind = \"target\"")
            .replace("hosts = [\"*\"]", ""),
    )
    .expect("write");
    let message = load_error(plugins.path(), "liar");
    assert!(
        message.starts_with("plugin `hostile-notifier` does not match the `target` world: "),
        "{message}"
    );
}

#[test]
fn a_broken_plugin_does_not_stop_the_others() {
    let plugins = plugin_dir(&["nginx", "hostile"]);
    std::fs::write(plugins.path().join("hostile/plugin.wasm"), b"garbage").expect("write");
    std::fs::create_dir(plugins.path().join("not-a-plugin")).expect("mkdir");
    let set = runtime()
        .load_dir(plugins.path(), &Grants::default())
        .expect("load_dir");

    assert_eq!(
        set.entries().len(),
        2,
        "directories without plugin.toml are ignored"
    );
    assert!(set.target("nginx").is_ok());
    let err = set.target("hostile").unwrap_err();
    assert!(matches!(err, RuntimeError::NotLoaded { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("plugin `hostile` is not loaded: plugin `hostile` failed to compile")
    );
    assert_eq!(set.errors().count(), 1);

    let nginx = set.get("nginx").expect("entry");
    let manifest = nginx.manifest.as_ref().expect("manifest");
    assert_eq!(manifest.kind, PluginKind::Target);
    assert_eq!(manifest.capabilities.commands, ["validate", "reload"]);
    assert_eq!(
        manifest.config_schema["required"],
        serde_json::json!(["cert_path", "key_path"])
    );
    assert!(nginx.granted.directories.is_empty(), "nothing granted");
}

#[test]
fn kinds_and_ids_are_checked() {
    let plugins = plugin_dir(&["nginx"]);
    install(plugins.path(), "nginx", "nginx-copy");
    let set = runtime()
        .load_dir(plugins.path(), &Grants::default())
        .expect("load_dir");
    let err = set.notifier("nginx").unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `nginx` is a target connector, not a notifier connector"
    );
    let duplicate = set
        .entries()
        .iter()
        .find(|e| e.dir.ends_with("nginx-copy"))
        .expect("entry");
    let message = duplicate.error.as_ref().expect("error").to_string();
    assert!(
        message.starts_with("duplicate plugin id `nginx` (also loaded from "),
        "{message}"
    );
}

#[tokio::test]
async fn reloading_picks_up_a_plugin_dropped_in_later() {
    let plugins = plugin_dir(&[]);
    let rt = runtime();
    let before = rt
        .load_dir_async(plugins.path().to_path_buf(), Grants::default())
        .await
        .expect("load");
    assert!(before.entries().is_empty());
    install(plugins.path(), "template", "template");
    let after = rt
        .load_dir_async(plugins.path().to_path_buf(), Grants::default())
        .await
        .expect("reload");
    assert!(after.target("template").is_ok());
}
