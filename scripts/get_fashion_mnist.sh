#!/usr/bin/env bash
# Make Fashion-MNIST available to gradlab (used by `make figures` and `make test`):
#   1. nothing to do when gradlab already finds the four IDX files (DATA_ROOT, DATA_ROOT/FashionMNIST/raw,
#      or Debian's /usr/share/datasets/fashion-mnist);
#   2. else install Debian's package `dataset-fashion-mnist` where apt-get and root (or sudo) are available;
#   3. else download with torchvision into DATA_ROOT/FashionMNIST/raw (needs internet).
# When none works it says so and what to run; it never falls back to generated data.
set -uo pipefail
PY=${PYTHON:-.venv/bin/python}
ROOT=${DATA_ROOT:-data}

found() {
    "$PY" -c "from gradlab.data.sources import fashion_mnist as f; f.locate('$ROOT')" >/dev/null 2>&1
}

found && exit 0
if command -v apt-get >/dev/null 2>&1; then
    SUDO="none"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
    if [ "$SUDO" != "none" ]; then
        echo "get_fashion_mnist: installing Debian's dataset-fashion-mnist (apt-get) ..."
        install() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }
        install || { $SUDO apt-get update -q >/dev/null 2>&1; install; }
        found && exit 0
        echo "get_fashion_mnist: apt-get could not install dataset-fashion-mnist" >&2
    fi
fi
echo "get_fashion_mnist: downloading with torchvision into $ROOT/FashionMNIST/raw ..."
"$PY" - "$ROOT" <<'PYEOF' 2>&1 | tail -n 3
import sys
import torchvision
for train in (True, False):
    torchvision.datasets.FashionMNIST(sys.argv[1], train=train, download=True)
PYEOF
found && exit 0
cat >&2 <<MSG
get_fashion_mnist: error: Fashion-MNIST is not available and could not be fetched.
  Run one of:  sudo apt-get install dataset-fashion-mnist      (Debian / Ubuntu)
               .venv/bin/python -c "import torchvision; torchvision.datasets.FashionMNIST('$ROOT', download=True); torchvision.datasets.FashionMNIST('$ROOT', train=False, download=True)"
  or place train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
  t10k-labels-idx1-ubyte.gz in $ROOT/.
MSG
exit 1
