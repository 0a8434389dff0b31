#!/usr/bin/env bash
# Install Debian's chromium for tests/test_report.py, which opens the workflow report headless. Idempotent; needs
# root (CI runs it as root on a fresh machine, as tests/slurm/setup.sh installs Slurm).
set -euo pipefail

if command -v chromium >/dev/null; then
    echo "setup.sh: $(chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "setup.sh: installed $(chromium --version)"
