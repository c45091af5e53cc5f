#!/usr/bin/env bash
# xmlsec1 from Debian's packages (installed on demand): the independent XML-DSig implementation the
# tests check the platform's envelope signatures against (sign with it, verify with ours, and back).
#
#   infra/xmlsec1.sh ensure     # install if missing (root: apt-get; otherwise say how), print its path
#   infra/xmlsec1.sh status     # exit 0 if installed
#
# Machine-readable output (the path) goes to stdout; messages go to stderr.
set -euo pipefail

log() { echo "xmlsec1.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ensure() {
    if ! command -v xmlsec1 >/dev/null; then
        [[ "$(id -u)" == 0 ]] || die "xmlsec1 is not installed and this is not root; install it with: sudo apt-get install -y xmlsec1"
        command -v apt-get >/dev/null || die "xmlsec1 is not installed and apt-get is not available; install xmlsec1 (OpenSSL flavour)"
        log "xmlsec1 not installed; installing Debian package 'xmlsec1' (apt-get) ..."
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y xmlsec1 >&2; then
            apt-get update >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y xmlsec1 >&2
        fi
        command -v xmlsec1 >/dev/null || die "apt-get install xmlsec1 finished but no xmlsec1 on PATH"
    fi
    command -v xmlsec1
}

case "${1:-ensure}" in
    ensure) ensure ;;
    status) command -v xmlsec1 >/dev/null ;;
    *) echo "usage: $0 ensure|status" >&2; exit 2 ;;
esac
