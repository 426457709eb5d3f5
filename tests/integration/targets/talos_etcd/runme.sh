#!/usr/bin/env bash
# talos.linux.talos_etcd and talos_etcd_info against an emulated cluster of three control planes and one worker.
set -eux

source ../setup_talos_emulator/emulator.sh
talos_emulator_up --control-planes 3 --workers 1

ansible-playbook -i "$TALOS_EMULATOR_INVENTORY" -e "@$TALOS_EMULATOR_VARS" etcd.yml "$@"
