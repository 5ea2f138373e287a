#!/usr/bin/env bash
# The README's two commands on a fresh Debian machine, as a newcomer meets them: makes a minimal
# Debian bookworm root with debootstrap in a scratch folder, clones the current commit into it,
# and runs `bash scripts/main-job.sh` and then `bash scripts/test.sh` inside it (chroot, as root),
# timing each. Run it by hand, as root, whenever scripts/deps.sh, CMakeLists.txt, cmake/ or the
# presets change; it needs the network (Debian's mirror) and about 3 GB in the scratch folder.
#
#   sudo bash scripts/fresh-machine-check.sh [SCRATCH_DIR]     (default /tmp/circuitry-fresh)
#
# Environment: MIRROR (default http://deb.debian.org/debian), KEEP=1 keeps the root afterwards,
# ONLY=main-job|test runs one of the two commands, OPTIONAL=0 checks a machine without the optional
# packages (graphviz, oneDNN, OpenCL): deps.sh then installs only the required ones, PYTHON=1 then
# runs the Python package's tests too (scripts/python-tests.sh, against the CLI the commands built).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
scratch="${1:-/tmp/circuitry-fresh}"
mirror="${MIRROR:-http://deb.debian.org/debian}"
only="${ONLY:-}"
optional="${OPTIONAL:-1}"
if [ "$(id -u)" != 0 ]; then
  echo "fresh-machine-check: run as root (debootstrap and chroot need it): sudo bash $0 $*" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "fresh-machine-check: installing debootstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
commit="$(git -C "$repo" rev-parse HEAD)"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  echo "fresh-machine-check: note: uncommitted changes are not checked, only commit $commit" >&2
fi

root="$scratch/root"
mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$root"; fi
}
trap cleanup EXIT
rm -rf "$root"
mkdir -p "$scratch"
echo "fresh-machine-check: debootstrap bookworm (minbase) into $root" >&2
start=$(date +%s)
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$scratch/debootstrap.log" 2>&1 ||
  { tail -20 "$scratch/debootstrap.log" >&2; exit 1; }
echo "fresh-machine-check: root made in $(($(date +%s) - start)) s" >&2

# The clone a newcomer makes: the current commit, no build folder, no untracked files.
git clone -q --no-hardlinks "$repo" "$root/root/circuitry"
git -C "$root/root/circuitry" checkout -q "$commit"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A host that reaches PyPI through a TLS-inspecting proxy lends pip in the root its CA bundle
# (PIP_CERT); a fresh machine on the open internet needs none.
pip_cert=""
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  cp "$PIP_CERT" "$root/etc/host-ca-bundle.crt"
  pip_cert=/etc/host-ca-bundle.crt
fi
for fs in proc sys dev dev/pts; do
  mount --bind "/$fs" "$root/$fs"
  mounted+=("$root/$fs")
done

run_in_root() {  # name, command
  local name="$1" command="$2" log="$scratch/$1.log" t0 status
  echo "fresh-machine-check: $name: $command" >&2
  t0=$(date +%s)
  set +e
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    CIRCUITRY_OPTIONAL_PACKAGES="$optional" ${pip_cert:+PIP_CERT=$pip_cert} bash -c "cd /root/circuitry && $command" >"$log" 2>&1
  status=$?
  set -e
  local seconds=$(($(date +%s) - t0))
  tail -15 "$log"
  if [ $status = 0 ]; then
    echo "fresh-machine-check: $name: PASSED in $seconds s (log: $log)"
  else
    echo "fresh-machine-check: $name: FAILED (exit $status) after $seconds s (log: $log)"
    return 1
  fi
}
status=0
if [ "$only" != test ]; then run_in_root main-job "bash scripts/main-job.sh" || status=1; fi
if [ "$only" != main-job ]; then run_in_root test "bash scripts/test.sh" || status=1; fi
if [ "${PYTHON:-0}" = 1 ]; then run_in_root python "bash scripts/python-tests.sh" || status=1; fi
if [ "$optional" = 0 ]; then
  for pkg in graphviz libdnnl-dev ocl-icd-opencl-dev; do
    if chroot "$root" dpkg -s "$pkg" >/dev/null 2>&1; then
      echo "fresh-machine-check: $pkg was installed though OPTIONAL=0"; status=1
    fi
  done
  echo "fresh-machine-check: optional packages absent; the configure said: $(grep -h 'circuitry: oneDNN' "$scratch"/*.log | sort -u | tr '\n' ' ')"
fi
echo "fresh-machine-check: commit $commit: $([ $status = 0 ] && echo 'both commands green' || echo 'FAILED')"
exit $status
