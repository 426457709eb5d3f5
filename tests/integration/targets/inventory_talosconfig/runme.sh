#!/usr/bin/env bash
# The talos.linux.talosconfig inventory plugin against an emulated cluster of one control plane and two workers.
set -eux

source ../setup_talos_emulator/emulator.sh
talos_emulator_up --control-planes 1 --workers 2

# The plugin's configuration, as a user writes it: a file ending in talos.yml naming the talosconfig.
source="$TALOS_EMULATOR_STATE/cluster.talos.yml"
printf 'plugin: talos.linux.talosconfig\ntalosconfig: %s\n' "$TALOS_EMULATOR_STATE/talosconfig" >"$source"

ansible-inventory -i "$source" --graph >"$TALOS_EMULATOR_STATE/graph.txt"
ansible-inventory -i "$source" --list >"$TALOS_EMULATOR_STATE/list.json"

ansible-playbook -i "$source" -e "@$TALOS_EMULATOR_VARS" inventory.yml "$@"
