#!/bin/sh
# Install the ismon OCF resource agent where Pacemaker finds it:
#   $OCF_ROOT/resource.d/<provider>/ismon   (default /usr/lib/ocf/resource.d/ismon/ismon)
# so that it is used as ocf:<provider>:ismon (ocf:ismon:ismon).
#
#   scripts/install-ocf.sh                      install (as root)
#   scripts/install-ocf.sh --uninstall          remove it again
#   scripts/install-ocf.sh --provider NAME      another provider name
#   scripts/install-ocf.sh --ocf-root DIR       another OCF root (default
#                                               $OCF_ROOT or /usr/lib/ocf)
#
# The agent needs resource-agents (ocf-shellfuncs) and the ismon command on
# every node; install both on each node of the cluster.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
agent="$here/ocf/ismon"
provider=ismon
ocf_root=${OCF_ROOT:-/usr/lib/ocf}
action=install

while [ $# -gt 0 ]; do
    case $1 in
    --provider)
        provider=${2:?--provider needs a name}
        shift 2
        ;;
    --ocf-root)
        ocf_root=${2:?--ocf-root needs a folder}
        shift 2
        ;;
    --uninstall)
        action=uninstall
        shift
        ;;
    -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install-ocf.sh: unknown argument: $1" >&2
        exit 2
        ;;
    esac
done

case $provider in
'' | *[!A-Za-z0-9_.-]* | .*)
    echo "install-ocf.sh: bad provider name: $provider" >&2
    exit 2
    ;;
esac

dir="$ocf_root/resource.d/$provider"
target="$dir/ismon"

if [ "$action" = uninstall ]; then
    rm -f "$target"
    rmdir "$dir" 2>/dev/null || true
    echo "removed $target"
    exit 0
fi

if [ ! -r "$ocf_root/lib/heartbeat/ocf-shellfuncs" ]; then
    echo "install-ocf.sh: warning: $ocf_root/lib/heartbeat/ocf-shellfuncs is missing" \
        "(install resource-agents)" >&2
fi
mkdir -p "$dir"
# Copy to a temporary name first: a half-written agent must never be run.
cp "$agent" "$target.tmp.$$"
chmod 755 "$target.tmp.$$"
mv -f "$target.tmp.$$" "$target"
echo "installed $target (use it as ocf:$provider:ismon)"
command -v ismon >/dev/null 2>&1 ||
    echo "note: 'ismon' is not on PATH here; set the resource's binary parameter" >&2
