#!/usr/bin/env bash
# Installs the Debian packages cloudpbx needs, only when something is missing.
#   base: what `make run` needs (a Python with venv; SoX with MP3 support to convert uploaded
#         audio and espeak-ng to make the voice prompts, see docs/media-import.md; spandsp and
#         libtiff's tiff2pdf to receive faxes, FAX-1)
#   test: what `make test` adds (PostgreSQL for the second test run, SIPp for SIP interop,
#         Chromium for the browser tests)
set -euo pipefail

need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v sox >/dev/null 2>&1 || need+=(sox)
ls /usr/lib/*/sox/libsox_fmt_mp3.so >/dev/null 2>&1 || need+=(libsox-fmt-mp3)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
ls /usr/lib/*/libspandsp.so.2 >/dev/null 2>&1 || need+=(libspandsp2)
command -v tiff2pdf >/dev/null 2>&1 || need+=(libtiff-tools)
# Node.js builds the web UI; check npm only (Debian's npm conflicts with a NodeSource nodejs).
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [[ "${1:-base}" == test ]]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
  # The browser tests drive Debian's Chromium (never `playwright install`).
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
(( ${#need[@]} == 0 )) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${need[*]} (run as root or install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
