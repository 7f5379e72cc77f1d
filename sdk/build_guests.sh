#!/usr/bin/env bash
# Builds Go guest capsules as WASI reactors, each into <dir>/<basename>.wasm
# beside its Capsule.toml:
#
#   GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o <dir>/<name>.wasm ./<dir>
#
# Usage (from anywhere):
#   sdk/build_guests.sh              # every examples/*/ and capsule/testdata/guests/*/
#   sdk/build_guests.sh examples     # every capsule under the given dirs,
#   sdk/build_guests.sh examples/echo   # or just these capsule dirs
#
# Paths are relative to the repository root. GO selects the go binary
# (default: go). Exits non-zero on the first failed build.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
go_bin="${GO:-go}"

if [ "$#" -eq 0 ]; then
	set -- examples capsule/testdata/guests
fi

dirs=()
for arg in "$@"; do
	arg="${arg%/}"
	if [ -f "$arg/main.go" ]; then
		dirs+=("$arg")
	elif [ -d "$arg" ]; then
		for d in "$arg"/*/; do
			d="${d%/}"
			[ -f "$d/main.go" ] && dirs+=("$d")
		done
	else
		echo "build_guests: $arg: no such capsule dir" >&2
		exit 2
	fi
done

for d in "${dirs[@]}"; do
	name="$(basename "$d")"
	echo "build_guests: $d/$name.wasm"
	GOOS=wasip1 GOARCH=wasm "$go_bin" build -buildmode=c-shared -o "$d/$name.wasm" "./$d"
done
