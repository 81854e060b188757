#!/usr/bin/env bash
# Entry point of the CUDA image (deploy/container/Containerfile.cuda): finds
# torch's and the prefix's libraries, then runs the command it is given, e.g.
#   twist-gpu-env twist-worker --coordinator=HOST:7070 --device=cuda:0
# A bare daemon name is looked up in /opt/twist/bin.
set -euo pipefail
torch_lib=$(/opt/torch/bin/python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="/opt/twist/prefix/lib/x86_64-linux-gnu:/opt/twist/prefix/lib:$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# pip's libtorch exports its own std::filesystem symbols; the system's
# libstdc++ first keeps the daemons on the real ones (docs/deployment.md, CUDA).
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
[ $# -gt 0 ] || set -- twist-worker --help
if [ -x "/opt/twist/bin/$1" ]; then
  cmd=/opt/twist/bin/$1; shift
  exec "$cmd" "$@"
fi
exec "$@"
