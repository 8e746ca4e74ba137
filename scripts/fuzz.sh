#!/usr/bin/env bash
# Fuzz every parser of outside input for a long time (docs/fuzzing.md): each
# target of `python -m tests.fuzz --list` runs for the given time, one after
# the other or N at a time, at a low CPU priority, then one table sums them
# up: executions, coverage, corpus, worst time of one input, crashes.
#
#   bash scripts/fuzz.sh --hours 1                  # every target, an hour each
#   bash scripts/fuzz.sh --hours 1 --parallel 2     # two targets at a time
#   bash scripts/fuzz.sh --minutes 5 http smtp      # some targets
#   bash scripts/fuzz.sh --hours 8 --jobs 2 http    # one target, two processes
#
# Options:
#   --hours H | --minutes M | --seconds S   time per target (default 10 minutes)
#   --parallel N   targets fuzzed at the same time (default 1); the machine
#                  should have N x --jobs cores to spare
#   --jobs J       processes per target, sharing its corpus (default 1)
#   --out DIR      corpora, crashes, logs (default $TMPDIR/ismon-fuzz; a
#                  later run with the same DIR goes on from its corpus)
#   --nice N       niceness of the fuzzers (default 10)
#
# Total time: targets x time / parallel (14 targets x 1 h / 2 = 7 h).
# Needs atheris (`pip install -e '.[test]'`, or `pip install atheris==3.0.0`).
# Exit status 0 when no target crashed, 1 when one did, 2 for bad arguments.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python3}
SECONDS_PER_TARGET=600
PARALLEL=1
JOBS=1
OUT=${TMPDIR:-/tmp}/ismon-fuzz
NICE=10
TARGETS=()

usage() {
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

number() {
    # number NAME VALUE: VALUE must be a positive number.
    if ! [[ "$2" =~ ^[0-9]+([.][0-9]+)?$ ]] || [ "$2" = 0 ]; then
        echo "fuzz.sh: $1 needs a positive number, not '$2'" >&2
        exit 2
    fi
}

while [ $# -gt 0 ]; do
    case $1 in
        --hours) number "$1" "${2-}" && SECONDS_PER_TARGET=$(awk "BEGIN {print int($2 * 3600)}") && shift ;;
        --minutes) number "$1" "${2-}" && SECONDS_PER_TARGET=$(awk "BEGIN {print int($2 * 60)}") && shift ;;
        --seconds) number "$1" "${2-}" && SECONDS_PER_TARGET=${2%.*} && shift ;;
        --parallel) number "$1" "${2-}" && PARALLEL=$2 && shift ;;
        --jobs) number "$1" "${2-}" && JOBS=$2 && shift ;;
        --out) OUT=${2-} && shift ;;
        --nice) NICE=${2-} && shift ;;
        -h | --help) usage ;;
        -*) echo "fuzz.sh: unknown option $1" >&2 && usage ;;
        *) TARGETS+=("$1") ;;
    esac
    shift
done

if ! "$PYTHON" -c 'import atheris' 2>/dev/null; then
    echo "fuzz.sh: atheris is not installed for $PYTHON (pip install atheris==3.0.0)" >&2
    exit 2
fi
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <("$PYTHON" -m tests.fuzz --list | awk '{print $1}')
fi
mkdir -p "$OUT" || exit 2
# Only this run's summaries make the table.
for target in "${TARGETS[@]}"; do rm -f "$OUT/$target/summary.json"; done

total=$((${#TARGETS[@]} * SECONDS_PER_TARGET / PARALLEL))
echo "fuzzing ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET} s each, $PARALLEL at a time," \
    "$JOBS job(s) each: about $((total / 60)) minutes; output in $OUT"

# The drivers are this script's children, ended by PID if it is stopped (each
# ends its own fuzzing processes on SIGTERM).
PIDS=()
stop_children() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    wait
    exit 130
}
trap stop_children INT TERM

for target in "${TARGETS[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do
        wait -n
    done
    echo "$(date -u +%H:%M:%S) $target"
    # nice execs the interpreter: $! is the driver's own PID.
    nice -n "$NICE" "$PYTHON" -m tests.fuzz "$target" --seconds "$SECONDS_PER_TARGET" \
        --jobs "$JOBS" --out "$OUT" >"$OUT/$target.out" 2>&1 &
    PIDS+=($!)
done
wait
trap - INT TERM

echo
"$PYTHON" -m tests.fuzz --summary "$OUT"
