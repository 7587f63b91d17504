# Shared by scripts/vigil and scripts/test: make .venv and install Vigil into it, once per change
# of pyproject.toml. Works on a fresh Debian machine with Python 3.11+ (installs python3-venv
# with apt when it is missing and we are root).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${PYTHON:-python3}

ensure_venv() {  # $1: pip extras, e.g. "[test]" or ""
    local extras=${1:-}
    if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "Vigil needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)" >&2
        exit 1
    fi
    if [ ! -x "$ROOT/.venv/bin/python" ]; then
        if ! "$PY" -m venv "$ROOT/.venv" 2>/dev/null; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
                rm -rf "$ROOT/.venv"
                "$PY" -m venv "$ROOT/.venv"
            else
                echo "Cannot create a virtual environment: install python3-venv (sudo apt-get install python3-venv)" >&2
                exit 1
            fi
        fi
    fi
    local stamp="$ROOT/.venv/.vigil-installed$extras"
    local want
    want=$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        local log="$ROOT/.venv/pip-install.log"
        # pip's output goes to a log, shown only when the install fails
        if ! { "$ROOT/.venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip \
               && "$ROOT/.venv/bin/python" -m pip install --disable-pip-version-check -e "$ROOT$extras"; } >"$log" 2>&1; then
            tail -40 "$log" >&2
            echo "Installing Vigil's dependencies failed (full log: $log)" >&2
            exit 1
        fi
        echo "$want" > "$stamp"
    fi
}
