#!/usr/bin/env bash
# Run the python-zaqarclient compatibility tests against a running server.
#
#   tests/python/run.sh ZAQAR_URL [extra pytest args...]
#
# e.g. tests/python/run.sh http://127.0.0.1:8888 -k claim
#
# Creates (or reuses) a virtualenv at ${ZAQAR_PY_VENV:-/tmp/zaqar-py-venv},
# installs requirements.txt into it when it is not installed yet, then runs
# pytest on ${ZAQAR_PY_TESTS:-test_zaqarclient.py} (space-separated files of
# this directory; test_zaqarclient_pools.py needs a pooled admin server) with
# ZAQAR_URL exported. Exits with pytest's
# status (124 if the run exceeds ${ZAQAR_PY_TIMEOUT:-900} seconds). Needs
# python3 with the venv module and pip access to PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

url="${1:-${ZAQAR_URL:-}}"
if [[ -z "$url" ]]; then
    echo "usage: $0 ZAQAR_URL [pytest args...]   (e.g. http://127.0.0.1:8888)" >&2
    exit 2
fi
[[ $# -gt 0 ]] && shift

venv="${ZAQAR_PY_VENV:-/tmp/zaqar-py-venv}"
req="$here/requirements.txt"
py="$venv/bin/python"

if [[ ! -x "$py" ]] || ! "$py" -c 'import sys' >/dev/null 2>&1; then
    echo "run.sh: creating virtualenv $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
fi

# Install only when the pinned requirements are not in place already: the
# stamp records the hash of the requirements file that was installed.
stamp="$venv/.zaqar-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]] \
        || ! "$py" -c 'import zaqarclient.queues.v2.client, pytest' >/dev/null 2>&1; then
    echo "run.sh: installing $req into $venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
fi

export ZAQAR_URL="$url"
export PYTHONDONTWRITEBYTECODE=1
cd "$here"
set +e
# Hard limit so that a server that stops answering cannot hang CI.
files=()
for file in ${ZAQAR_PY_TESTS:-test_zaqarclient.py}; do
    files+=("$here/$file")
done
timeout "${ZAQAR_PY_TIMEOUT:-900}" \
    "$py" -m pytest -p no:cacheprovider -v "${files[@]}" "$@"
status=$?
set -e
exit "$status"
