#!/bin/sh
# Enforces the import DAG of DESIGN.md: each package may import only the
# project packages listed for it, and third-party libraries stay inside the
# package that owns them.
set -eu
mod=github.com/astrid-go/astrid
fail=0
check() { # pkg allowed-project-pkgs...
	pkg=$1; shift
	deps=$(go list -f '{{join .Imports "\n"}}' "./$pkg" 2>/dev/null | grep "^$mod/" | sed "s|^$mod/||" || true)
	for d in $deps; do
		ok=0
		for a in "$@"; do [ "$d" = "$a" ] && ok=1; done
		[ $ok = 1 ] || { echo "depcheck: $pkg must not import $d"; fail=1; }
	done
}
owns() { # library allowed-pkgs...
	lib=$1; shift
	for p in $(go list ./... | grep -v -e /integration -e /bench -e /bustest); do
		rel=${p#$mod/}; [ "$rel" = "$p" ] && rel=.
		if go list -f '{{join .Imports "\n"}}' "$p" | grep -q "^$lib"; then
			ok=0; for a in "$@"; do [ "$rel" = "$a" ] && ok=1; done
			[ $ok = 1 ] || { echo "depcheck: $rel must not import $lib"; fail=1; }
		fi
	done
}
check manifests
check bus
check hoststate bus
check capsule hoststate bus
check actors capsule hoststate bus manifests
check supervisor actors capsule hoststate bus manifests
check cmd/astrid supervisor manifests bus
owns github.com/tetratelabs/wazero capsule
owns github.com/nats-io bus
owns github.com/asynkron/protoactor-go actors supervisor
owns github.com/BurntSushi/toml manifests supervisor
exit $fail
