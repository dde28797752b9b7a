#!/usr/bin/env bash
# The end-to-end tests run real OpenSSH servers on 127.0.0.1. Install
# openssh-server when it is missing (as root, from Debian's packages).
set -euo pipefail
if [ -x /usr/sbin/sshd ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-sshd: /usr/sbin/sshd is missing and this is not root; install openssh-server, then run again" >&2
  exit 1
fi
echo "ensure-sshd: installing openssh-server" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
