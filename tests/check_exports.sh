#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The shared library must export every function libvfio-user (commit
# efd091b) exports, and beyond those only vfu's own documented API.
# Usage: check_exports.sh LIBRARY [NM]
set -eu
lib=${1:?usage: check_exports.sh LIBRARY [NM]}
nm=${2:-nm}

# libvfio-user efd091b: the functions of libvfio-user.h.
libvfio_user="
dma_sg_size
vfu_addr_to_sgl
vfu_attach_ctx
vfu_create_ctx
vfu_create_ioeventfd
vfu_destroy_ctx
vfu_device_quiesced
vfu_get_poll_fd
vfu_get_private
vfu_irq_trigger
vfu_log
vfu_pci_add_capability
vfu_pci_find_capability
vfu_pci_find_next_capability
vfu_pci_get_config_space
vfu_pci_init
vfu_pci_set_class
vfu_pci_set_id
vfu_realize_ctx
vfu_run_ctx
vfu_setup_device_dma
vfu_setup_device_migration_callbacks
vfu_setup_device_nr_irqs
vfu_setup_device_quiesce_cb
vfu_setup_device_reset_cb
vfu_setup_irq_state_callback
vfu_setup_log
vfu_setup_region
vfu_sg_is_mappable
vfu_sgl_get
vfu_sgl_mark_dirty
vfu_sgl_put
vfu_sgl_read
vfu_sgl_write
"

# vfu's additions: vfu.h, vfu-client.h and vfu-client-migration.h.
vfu_extra="
vfu_client_call
vfu_client_caps
vfu_client_close
vfu_client_connect
vfu_client_default_caps
vfu_client_defer_requests
vfu_client_device_feature
vfu_client_device_get_info
vfu_client_device_reset
vfu_client_dma_logging_report
vfu_client_dma_logging_start
vfu_client_dma_logging_stop
vfu_client_dma_map
vfu_client_dma_unmap
vfu_client_fd
vfu_client_get_irq_info
vfu_client_get_region_info
vfu_client_get_region_io_fds
vfu_client_mig_data_read
vfu_client_mig_data_write
vfu_client_mig_dirty_report
vfu_client_mig_get_flags
vfu_client_mig_get_state
vfu_client_mig_read_all
vfu_client_mig_set_state
vfu_client_mig_write_all
vfu_client_migrate
vfu_client_negotiate
vfu_client_negotiate_raw
vfu_client_next_msg_id
vfu_client_poll
vfu_client_recv_raw
vfu_client_region_info_free
vfu_client_region_read
vfu_client_region_write
vfu_client_region_write_multi
vfu_client_region_write_posted
vfu_client_send_raw
vfu_client_set_irqs
vfu_cmd_name
vfu_get_poll_fds
vfu_setup_socket_mode
vfu_setup_trace
"

tmp=$(mktemp -d /tmp/vfu-exports.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Every defined dynamic symbol, whatever its kind: a leaked variable counts.
"$nm" -D --defined-only "$lib" | awk '{ print $NF }' | sed 's/@.*//' |
    sort -u >"$tmp/exported"
test -s "$tmp/exported"
printf '%s\n' $libvfio_user | sort -u >"$tmp/required"
printf '%s\n' $libvfio_user $vfu_extra | sort -u >"$tmp/allowed"

status=0
missing=$(comm -23 "$tmp/required" "$tmp/exported")
if [ -n "$missing" ]; then
    echo "not exported, but libvfio-user efd091b exports them:"
    printf '  %s\n' $missing
    status=1
fi
extra=$(comm -13 "$tmp/allowed" "$tmp/exported")
if [ -n "$extra" ]; then
    echo "exported, but neither libvfio-user's nor listed as vfu's own API:"
    printf '  %s\n' $extra
    status=1
fi
# Functions, not something else under the same name.
notfunc=$("$nm" -D --defined-only "$lib" | awk '$2 != "T" { print $NF }')
if [ -n "$notfunc" ]; then
    echo "exported symbols that are not functions:"
    printf '  %s\n' $notfunc
    status=1
fi
if [ $status -eq 0 ]; then
    echo "$(wc -l <"$tmp/exported") symbols: all $(wc -l <"$tmp/required") of libvfio-user efd091b, the rest vfu's own"
fi
exit $status
