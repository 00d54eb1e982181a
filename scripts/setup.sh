#!/usr/bin/env bash
# Installs the C libraries flowtune links against (OpenBLAS, libpng, libjpeg, zlib) and
# pkg-config, OpenMPI (mpirun and libmpi, loaded at run time only under mpirun: data-parallel
# runs over processes and machines), and Python's tensorboard into .build/pyenv (for one test,
# and to view runs).
# Idempotent: returns at once when everything is already installed.
set -euo pipefail
packages=(libopenblas-dev libpng-dev libjpeg-dev zlib1g-dev pkg-config openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Python's tensorboard (PyPI), the real reader the TensorBoard test checks flowtune's event
# files against, in a virtual environment under .build/ (optional: the test is skipped without it)
PYENV=.build/pyenv
if [[ ! -x $PYENV/bin/python ]] || ! $PYENV/bin/python -c "import tensorboard" 2>/dev/null; then
  if ! python3 -m venv "$PYENV" 2>/dev/null; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null 2>&1 || true
    python3 -m venv "$PYENV" 2>/dev/null || true
  fi
  if [[ -x $PYENV/bin/pip ]] && $PYENV/bin/pip install -q tensorboard >/dev/null 2>&1; then
    echo "setup: installed tensorboard into $PYENV" >&2
  else
    echo "setup: warning: could not install Python's tensorboard into $PYENV; its test will be skipped" >&2
  fi
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6 toolchain needed)" >&2; exit 1; }
echo "setup: ok" >&2
