# Sourced by scripts/install-*.sh: exact versions of PyPI wheels in a venv outside the repo,
# installed only when missing, so a second run needs no network.

# pinned_install VENV PIP_FLAGS NAME==VERSION...: creates VENV if needed and installs the specs
# (PIP_FLAGS: "" or "--no-deps") unless every one is already installed at exactly its version.
pinned_install() {
    local venv=$1 flags=$2
    shift 2
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" >&2
    fi
    if ! "$venv/bin/python" - "$@" <<'PY' >&2
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
    then
        # shellcheck disable=SC2086 # flags is empty or one word
        "$venv/bin/pip" install --quiet --disable-pip-version-check $flags "$@" >&2
    fi
}

# site_packages VENV: the venv's purelib folder (where the wheels' files land).
site_packages() {
    "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}
