#!/usr/bin/env bash
# What the tests and the benchmark run for real: OpenSSH servers on 127.0.0.1 (the
# end-to-end nodes), bubblewrap (the sandbox of the test gate) and openssl (the
# certificate of the HTTPS test remote). Install what is missing, as root, from
# Debian's packages.
set -euo pipefail
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server openssh-client)
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-tools: ${missing[*]} missing and this is not root; install them, then run again" >&2
  exit 1
fi
echo "ensure-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
