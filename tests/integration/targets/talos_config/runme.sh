#!/usr/bin/env bash
# talos.linux.talos_config against an emulated cluster of one control plane and one worker.
set -eux

source ../setup_talos_emulator/emulator.sh
talos_emulator_up --control-planes 1 --workers 1

ansible-playbook -i "$TALOS_EMULATOR_INVENTORY" -e "@$TALOS_EMULATOR_VARS" config.yml "$@"
