#!/usr/bin/env bash
# The 10-million-step soak: random programs under every scheme and both
# profiles, plain and tiny memory, every check after every event (not run in
# CI: about 30 minutes on two quiet cores). Extra arguments go to rmaplab fuzz,
# e.g. --scheduler tcp://HOST:8786 to run it on a Dask cluster.
set -euo pipefail
exec rmaplab fuzz --steps "${STEPS:-10000000}" --scheme all --profile all --seed "${SEED:-100000}" "$@"
