#!/usr/bin/env bash
# Builds every plugin in this directory for wasm32-wasip2, once, into
#   <repo>/target/plugins/dist/<id>/{plugin.wasm,plugin.toml}      first-party connectors
#   <repo>/target/plugins/fixtures/<id>/{plugin.wasm,plugin.toml}  template + test fixtures
# Each output directory has the layout CERTCTL_PLUGIN_DIR expects, so
#   CERTCTL_PLUGIN_DIR=target/plugins/dist certctl-agent ...
# works as is. Extra arguments go to cargo (e.g. --locked). Incremental: a second
# run with nothing changed takes a second.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target_dir="${CERTCTL_PLUGIN_TARGET_DIR:-$root/target/plugins}"
out="${CERTCTL_PLUGIN_OUT:-$target_dir}"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

cargo build --manifest-path "$here/Cargo.toml" --workspace --release \
    --target wasm32-wasip2 --target-dir "$target_dir" "$@"

built="$target_dir/wasm32-wasip2/release"
install_plugin() { # <crate dir> <dest root>
    local dir="$1" dest_root="$2"
    local crate id dest
    crate="$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)"
    id="$(sed -n 's/^id = "\([^"]*\)".*/\1/p' "$dir/plugin.toml" | head -1)"
    dest="$dest_root/$id"
    mkdir -p "$dest"
    # Copy then rename: concurrent test binaries may run this script at once.
    cp "$built/${crate//-/_}.wasm" "$dest/.plugin.wasm.$$"
    mv -f "$dest/.plugin.wasm.$$" "$dest/plugin.wasm"
    cp "$dir/plugin.toml" "$dest/.plugin.toml.$$"
    mv -f "$dest/.plugin.toml.$$" "$dest/plugin.toml"
}

for dir in "$here"/*/; do
    dir="${dir%/}"
    [[ -f "$dir/plugin.toml" ]] || continue
    case "$(basename "$dir")" in
        template) install_plugin "$dir" "$out/fixtures" ;;
        *) install_plugin "$dir" "$out/dist" ;;
    esac
done
for dir in "$here"/fixtures/*/; do
    dir="${dir%/}"
    [[ -f "$dir/plugin.toml" ]] && install_plugin "$dir" "$out/fixtures"
done
echo "plugins: $out/dist ($(ls "$out/dist" | tr '\n' ' ')), fixtures: $out/fixtures"
