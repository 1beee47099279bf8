#!/usr/bin/env bash
# Cross-builds the client, pure Go, for every supported target, and checks
# the stripped linux/arm64 binary against the 5 MB size budget. Prints a
# size table (the one README quotes). Run from anywhere; CI calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${CROSSBUILD_OUT:-$(mktemp -d)}
mkdir -p "$out"
budget=5000000 # bytes, linux/arm64, stripped

targets=(
	linux/amd64
	linux/arm64
	linux/arm/7
	linux/mipsle
	android/arm64
	darwin/arm64
	windows/amd64
	freebsd/amd64
)

fail=0
printf '%-16s %10s\n' target bytes
for t in "${targets[@]}"; do
	IFS=/ read -r goos goarch goarm <<<"$t"
	name="cipherknock-$goos-$goarch${goarm:+v$goarm}"
	[ "$goos" = windows ] && name+=.exe
	if ! CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=${goarm:-} \
		go build -trimpath -ldflags='-s -w' -o "$out/$name" ./cmd/cipherknock; then
		echo "crossbuild: $t failed" >&2
		fail=1
		continue
	fi
	size=$(wc -c <"$out/$name")
	printf '%-16s %10d\n' "$t" "$size"
	if [ "$t" = linux/arm64 ] && [ "$size" -gt "$budget" ]; then
		echo "crossbuild: linux/arm64 binary is $size bytes, over the $budget-byte budget" >&2
		fail=1
	fi
done
[ -n "${CROSSBUILD_OUT:-}" ] || rm -rf "$out"
exit $fail
