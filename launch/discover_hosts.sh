#!/usr/bin/env bash
# Host discovery for elastic Horovod: prints one "host:slots" line per available host.
# Reads HVD_MAGTAG_HOSTS_FILE (default: launch/hosts.current beside this script), one "host:slots" per line;
# edit that file while a job runs to add or remove workers. With no file: this host with 2 slots.
HOSTS_FILE="${HVD_MAGTAG_HOSTS_FILE:-$(dirname "$0")/hosts.current}"
if [ -r "$HOSTS_FILE" ]; then grep -v '^\s*\(#\|$\)' "$HOSTS_FILE"; else echo "localhost:2"; fi
