#!/usr/bin/env bash
# talos.linux.talos_upgrade of one node of an emulated cluster (one control plane, one worker) from 1.13.5.
set -eux

source ../setup_talos_emulator/emulator.sh
talos_emulator_up --control-planes 1 --workers 1 --talos-version 1.13.5 --reboot-seconds 0.3

ansible-playbook -i "$TALOS_EMULATOR_INVENTORY" -e "@$TALOS_EMULATOR_VARS" upgrade.yml "$@"
